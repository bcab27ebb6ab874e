package preflight

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
)

// Quota is one EC2 vCPU quota a department draws on.
type Quota struct {
	// Code is the Service Quotas code, e.g. "L-DB2E81BA".
	Code string
	// Name is the quota's name in Service Quotas.
	Name string
	// need picks the quota's figure out of Spec.QuotaNeeds.
	need func(config.QuotaNeeds) int
	// counts says which groups draw on the quota.
	counts func(gpu, spot bool) bool
}

// Quotas are the EC2 quotas preflight checks, in service code "ec2", by the codes and names
// Service Quotas lists for it (aws service-quotas list-service-quotas --service-code ec2; the
// vCPU-based instance quotas are described in "Amazon EC2 instance type quotas",
// https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html). All are in
// vCPUs and per region.
var Quotas = []Quota{
	{
		Code: "L-DB2E81BA", Name: "Running On-Demand G and VT instances",
		need:   func(q config.QuotaNeeds) int { return q.OnDemandG },
		counts: func(gpu, spot bool) bool { return gpu && !spot },
	},
	{
		Code: "L-3819A6DF", Name: "All G and VT Spot Instance Requests",
		need:   func(q config.QuotaNeeds) int { return q.SpotG },
		counts: func(gpu, spot bool) bool { return gpu && spot },
	},
	{
		Code: "L-1216C47A", Name: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
		need:   func(q config.QuotaNeeds) int { return q.OnDemandStandard },
		counts: func(gpu, spot bool) bool { return !gpu && !spot },
	},
	{
		Code: "L-34B43A08", Name: "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests",
		need:   func(q config.QuotaNeeds) int { return q.SpotStandard },
		counts: func(gpu, spot bool) bool { return !gpu && spot },
	},
}

// group is one autoscaling group's share of a quota.
type group struct {
	label        string // "pool gpu" or "gateway"
	instanceType string
	vcpus        int
	maxSize      int
	// worstVCPUs is, for a spot pool, the most vCPUs any of its spot types has.
	worstVCPUs int
	worstType  string
}

// groups returns the groups drawing on q, in the order Spec.QuotaNeeds adds them.
func groups(spec *config.Spec, q Quota) []group {
	var gs []group
	for _, name := range spec.PoolNames() {
		p := spec.Pools[name]
		inst, ok := catalog.LookupInstance(p.InstanceType)
		if !ok || !q.counts(inst.HasGPU(), p.Spot) {
			continue
		}
		g := group{label: "pool " + name, instanceType: p.InstanceType, vcpus: inst.VCPUs, maxSize: p.MaxSize,
			worstVCPUs: inst.VCPUs, worstType: p.InstanceType}
		if p.Spot {
			for _, t := range p.SpotInstanceTypes() {
				if i, ok := catalog.LookupInstance(t); ok && i.VCPUs > g.worstVCPUs {
					g.worstVCPUs, g.worstType = i.VCPUs, t
				}
			}
		}
		gs = append(gs, g)
	}
	if gw, ok := catalog.LookupInstance(spec.Gateway.InstanceType); ok && q.counts(false, false) {
		gs = append(gs, group{label: "gateway", instanceType: gw.Type, vcpus: gw.VCPUs, maxSize: spec.Gateway.MaxSize,
			worstVCPUs: gw.VCPUs, worstType: gw.Type})
	}
	return gs
}

// arithmetic spells out a quota's need: each group at maxSize plus the one node an instance
// refresh adds, times the vCPUs of its instance type.
func arithmetic(gs []group) string {
	terms := make([]string, 0, len(gs))
	for _, g := range gs {
		terms = append(terms, fmt.Sprintf("%s (maxSize %d + 1) × %d vCPUs (%s) = %d",
			g.label, g.maxSize, g.vcpus, g.instanceType, (g.maxSize+1)*g.vcpus))
	}
	return strings.Join(terms, "; ")
}

// IncreaseCommand is the AWS CLI command that asks for quota code to be raised to value vCPUs.
func IncreaseCommand(code string, value int, region string) string {
	return fmt.Sprintf("aws service-quotas request-service-quota-increase --service-code ec2 --quota-code %s --desired-value %d --region %s",
		code, value, region)
}

// checkQuotas compares each quota with what the stack needs at its largest (Spec.QuotaNeeds).
// Quotas the stack does not draw on are reported without a call.
func (r *run) checkQuotas() []Result {
	needs := r.spec.QuotaNeeds()
	var results []Result
	for _, q := range Quotas {
		results = append(results, r.checkQuota(q, q.need(needs)))
	}
	return results
}

func (r *run) checkQuota(q Quota, need int) Result {
	name := "quota " + q.Code
	if need == 0 {
		return Result{Name: name, Status: OK, Detail: fmt.Sprintf("%s: not used by this stack (0 vCPUs needed)", q.Name)}
	}
	gs := groups(r.spec, q)
	value, source, res := r.quotaValue(name, q.Code)
	if res != nil {
		return *res
	}
	detail := fmt.Sprintf("%s is %s vCPUs in %s%s; the stack needs %d: %s",
		q.Name, formatVCPUs(value), r.region, source, need, arithmetic(gs))
	if value < float64(need) {
		return Result{
			Name: name, Status: Fail, Detail: detail,
			Advice: fmt.Sprintf("raise %s (%s) in %s to at least %d vCPUs: %s",
				q.Code, q.Name, r.region, need, IncreaseCommand(q.Code, need, r.region)),
		}
	}
	// A spot pool may launch any of its spot types; the quota counts the vCPUs actually
	// launched, so a larger alternative uses it up sooner than Spec.QuotaNeeds assumes.
	worst := 0
	var larger []string
	for _, g := range gs {
		worst += (g.maxSize + 1) * g.worstVCPUs
		if g.worstVCPUs > g.vcpus {
			larger = append(larger, fmt.Sprintf("%s may launch %s (%d vCPUs)", g.label, g.worstType, g.worstVCPUs))
		}
	}
	if value < float64(worst) {
		return Result{
			Name: name, Status: Warn,
			Detail: detail + fmt.Sprintf("; but %s, which at maxSize + 1 takes %d vCPUs", strings.Join(larger, ", "), worst),
			Advice: fmt.Sprintf("to cover the largest spot types too, raise %s in %s to %d vCPUs: %s",
				q.Code, r.region, worst, IncreaseCommand(q.Code, worst, r.region)),
		}
	}
	return Result{Name: name, Status: OK, Detail: detail}
}

// quotaValue reads the quota's applied value, or the AWS default when Service Quotas has no
// applied value for the account (NoSuchResourceException). source says which, for the detail.
func (r *run) quotaValue(name, code string) (float64, string, *Result) {
	ctx, cancel := r.call()
	defer cancel()
	out, err := r.c.Quotas.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{
		ServiceCode: aws.String("ec2"), QuotaCode: aws.String(code),
	})
	if err == nil && out.Quota != nil && out.Quota.Value != nil {
		return *out.Quota.Value, " (applied value)", nil
	}
	if err != nil && apiCode(err) != "NoSuchResourceException" {
		res := callFailed(name, "servicequotas:GetServiceQuota", err)
		return 0, "", &res
	}
	ctx2, cancel2 := r.call()
	defer cancel2()
	def, err := r.c.Quotas.GetAWSDefaultServiceQuota(ctx2, &servicequotas.GetAWSDefaultServiceQuotaInput{
		ServiceCode: aws.String("ec2"), QuotaCode: aws.String(code),
	})
	if err != nil {
		res := callFailed(name, "servicequotas:GetAWSDefaultServiceQuota", err)
		res.Detail = "Service Quotas returned no applied value, and " + res.Detail
		return 0, "", &res
	}
	if def.Quota == nil || def.Quota.Value == nil {
		return 0, "", &Result{Name: name, Status: Fail,
			Detail: "Service Quotas returned neither an applied nor a default value",
			Advice: fmt.Sprintf("look the quota up in the Service Quotas console (Amazon EC2, %s) and run preflight again", code)}
	}
	return *def.Quota.Value, " (the AWS default: Service Quotas returned no applied value for this account)", nil
}

func formatVCPUs(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}
