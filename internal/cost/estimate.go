// Package cost estimates what a department's stack costs a month, from its offline plan and a
// dated price table: instance-hours per autoscaling group from its sizes and office-hours
// schedule, spot and warm pools, volumes, NAT gateways, load balancers, WAF, KMS keys, secrets,
// flow-log ingestion and interface endpoints. It needs no cloud account unless asked for live
// prices (Live).
package cost

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/program"
)

// Assumptions are the figures an offline plan cannot know: how a month is counted, what spot
// saves and how much traffic passes. Every one is printed with the estimate.
type Assumptions struct {
	// HoursPerMonth is the length of a month: 730 h (8,760 h a year / 12), i.e. 4.345 weeks.
	HoursPerMonth float64 `json:"hoursPerMonth"`
	// SpotDiscount is the fraction spot saves below the on-demand price (0.6 = 60% off).
	SpotDiscount float64 `json:"spotDiscount"`
	// NATGBPerMonth is the data each NAT gateway processes a month (model and package downloads).
	NATGBPerMonth float64 `json:"natGBPerMonth"`
	// FlowLogGBPerMonth is the flow-log data each VPC flow log delivers a month.
	FlowLogGBPerMonth float64 `json:"flowLogGBPerMonth"`
	// LCUsPerLoadBalancer is the average load balancer capacity units each ALB uses.
	LCUsPerLoadBalancer float64 `json:"lcusPerLoadBalancer"`
	// WAFMillionRequests is the requests each web ACL inspects a month, in millions.
	WAFMillionRequests float64 `json:"wafMillionRequests"`
}

// DefaultAssumptions are the figures `sandboxctl cost` uses unless told otherwise. The spot
// discount is an assumption, not a price: spot prices move by the hour and by AZ (AWS states
// savings of up to 90%); 60% is near what G instances have been seen to save, and --spot-discount
// changes it.
func DefaultAssumptions() Assumptions {
	return Assumptions{
		HoursPerMonth:       730,
		SpotDiscount:        0.60,
		NATGBPerMonth:       100,
		FlowLogGBPerMonth:   5,
		LCUsPerLoadBalancer: 1,
		WAFMillionRequests:  1,
	}
}

// Line is what one resource (or one group of like resources) costs a month in each profile.
type Line struct {
	// Resource names the planned resource(s).
	Resource string `json:"resource"`
	// Item says what is charged, with the quantities, e.g. "g5.xlarge on-demand, 261 h".
	Item string `json:"item"`
	// Min is the month at every group's minimum size, with its schedule and spot.
	Min float64 `json:"min"`
	// Max is the month at every group's maximum size, with its schedule and spot.
	Max float64 `json:"max"`
	// AlwaysOn is the month with no schedule and no spot, each group at the minimum size it
	// serves with (its own, or the larger one its office-hours action sets).
	AlwaysOn float64 `json:"alwaysOn"`
	// Prices are the keys of the prices used.
	Prices []string `json:"prices"`
}

// Schedule is the office hours found on one autoscaling group.
type Schedule struct {
	// Group is the autoscaling group's logical name.
	Group string `json:"group"`
	// Timezone is the scheduled actions' IANA time zone.
	Timezone string `json:"timezone"`
	// Recurrences are the actions' cron expressions with the sizes they set.
	Recurrences []string `json:"recurrences"`
	// MinHoursPerWeek and MaxHoursPerWeek are instance-hours a week at minimum and maximum size.
	MinHoursPerWeek float64 `json:"minHoursPerWeek"`
	MaxHoursPerWeek float64 `json:"maxHoursPerWeek"`
	// ServingMinSize is the largest minimum size an action sets: the size the group serves
	// with, which the always-on profile keeps all month.
	ServingMinSize float64 `json:"servingMinSize"`
}

// Estimate is a stack's monthly cost.
type Estimate struct {
	Stack  string `json:"stack"`
	Region string `json:"region"`
	// PriceRegion is the region whose prices were applied (Region unless told otherwise).
	PriceRegion string      `json:"priceRegion"`
	Lines       []Line      `json:"lines"`
	Schedules   []Schedule  `json:"schedules"`
	Assumptions Assumptions `json:"assumptions"`
	// Min, Max and AlwaysOn are the monthly totals of the profiles (see Line).
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	AlwaysOn float64 `json:"alwaysOn"`
	// Ratio is Min / AlwaysOn: what the schedule and spot leave of the always-on month.
	Ratio float64 `json:"ratio"`
	// Fixed is the part of Min that no schedule or spot changes (unscheduled on-demand groups
	// such as the gateway, network, load balancers, keys, logs), and FloorRatio is Fixed / AlwaysOn: the lowest Ratio any
	// schedule of the pools could reach.
	Fixed      float64 `json:"fixed"`
	FloorRatio float64 `json:"floorRatio"`
	// Prices are the prices used, each with its date and source.
	Prices []Price `json:"prices"`
	// NotCounted are the planned resources the estimate leaves out, with why.
	NotCounted []NotCounted `json:"notCounted"`
}

// NotCounted is a kind of planned resource the estimate does not price.
type NotCounted struct {
	// Type is the Pulumi resource type and Count how many the plan holds.
	Type  string `json:"type"`
	Count int    `json:"count"`
	// What names the resources and Why says why they are left out.
	What string `json:"what"`
	Why  string `json:"why"`
}

// notCounted are the resource types the plan holds that cost money at some usage and that the
// estimate leaves out. The free tier figures are AWS's, per account and month
// (https://aws.amazon.com/cloudwatch/pricing/, Free tier: 10 alarm metrics, 3 custom
// dashboards); they hold only while the stack is alone in its account.
var notCounted = []NotCounted{
	{Type: "aws:cloudwatch/metricAlarm:MetricAlarm", What: "CloudWatch alarm(s)", Why: "AWS's free tier covers 10 standard alarm metrics an account"},
	{Type: "aws:cloudwatch/dashboard:Dashboard", What: "CloudWatch dashboard(s)", Why: "AWS's free tier covers 3 custom dashboards an account"},
	{Type: "aws:dynamodb/table:Table", What: "DynamoDB table(s)", Why: "on-demand: requests and the few kilobytes stored depend on use"},
	{Type: "aws:elasticache/replicationGroup:ReplicationGroup", What: "ElastiCache replication group(s)", Why: "the gateway's rate-limit cache, two cache.t4g.micro nodes each: not in the dated price table yet"},
	{Type: "aws:sns/topic:Topic", What: "SNS topic(s)", Why: "charged per notification delivered"},
	{Type: "aws:s3/bucketV2:BucketV2", What: "S3 bucket(s)", Why: "the agent's few megabytes and access logs; charged per GB stored and request"},
}

const (
	typeASG        = "aws:autoscaling/group:Group"
	typeSchedule   = "aws:autoscaling/schedule:Schedule"
	typeLaunchTmpl = "aws:ec2/launchTemplate:LaunchTemplate"
	typeNAT        = "aws:ec2/natGateway:NatGateway"
	typeEIP        = "aws:ec2/eip:Eip"
	typeLB         = "aws:lb/loadBalancer:LoadBalancer"
	typeWebACL     = "aws:wafv2/webAcl:WebAcl"
	typeKMSKey     = "aws:kms/key:Key"
	typeSecret     = "aws:secretsmanager/secret:Secret"
	typeFlowLog    = "aws:ec2/flowLog:FlowLog"
	typeLogGroup   = "aws:cloudwatch/logGroup:LogGroup"
	typeEndpoint   = "aws:ec2/vpcEndpoint:VpcEndpoint"
)

const hoursPerWeek = 168

// estimator accumulates lines and the prices they used.
type estimator struct {
	plan   *program.Plan
	prices *Table
	a      Assumptions
	lines  []Line
	used   map[string]Price
	// missing are the keys of the prices the plan needs that the table lacks.
	missing map[string]bool
	errs    []string
}

func (e *estimator) price(key string) float64 {
	p, err := e.prices.Lookup(key)
	if err != nil {
		e.missing[key] = true
		return 0
	}
	e.used[key] = p
	return p.USD
}

func (e *estimator) add(l Line) { e.lines = append(e.lines, l) }

func (e *estimator) byType(typ string) []program.PlannedResource { return e.plan.ByType(typ) }

// New estimates plan's month with prices and a. Every price the plan needs must be in the
// table; if some are not, the error is a *MissingPricesError that names each of them.
func New(plan *program.Plan, prices *Table, a Assumptions) (*Estimate, error) {
	e := &estimator{plan: plan, prices: prices, a: a, used: map[string]Price{}, missing: map[string]bool{}}
	schedules := e.groups()
	e.network()
	e.loadBalancers()
	e.perMonth(typeKMSKey, KeyKMSKey, "customer managed KMS key")
	e.perMonth(typeSecret, KeySecret, "Secrets Manager secret")
	e.waf()
	e.flowLogs()
	if len(e.errs) > 0 {
		for k := range e.missing {
			e.errs = append(e.errs, fmt.Sprintf("no price for %s in %s", k, prices.Region))
		}
		sort.Strings(e.errs)
		return nil, fmt.Errorf("estimate %s: %s", plan.Stack, strings.Join(dedupe(e.errs), "; "))
	}
	if len(e.missing) > 0 {
		m := &MissingPricesError{Stack: plan.Stack, Region: prices.Region}
		for k := range e.missing {
			m.Keys = append(m.Keys, k)
		}
		for k := range e.used {
			m.Have = append(m.Have, k)
		}
		sort.Strings(m.Keys)
		sort.Strings(m.Have)
		return nil, m
	}
	est := &Estimate{Stack: plan.Stack, Region: plan.Region, PriceRegion: prices.Region, Lines: e.lines, Schedules: schedules, Assumptions: a}
	for _, l := range e.lines {
		est.Min += l.Min
		est.Max += l.Max
		est.AlwaysOn += l.AlwaysOn
		if sameCost(l.Min, l.AlwaysOn) {
			est.Fixed += l.Min
		}
	}
	if est.AlwaysOn > 0 {
		est.Ratio = est.Min / est.AlwaysOn
		est.FloorRatio = est.Fixed / est.AlwaysOn
	}
	for _, p := range e.used {
		est.Prices = append(est.Prices, p)
	}
	sort.Slice(est.Prices, func(i, j int) bool { return est.Prices[i].Key < est.Prices[j].Key })
	for _, n := range notCounted {
		if n.Count = len(plan.ByType(n.Type)); n.Count > 0 {
			est.NotCounted = append(est.NotCounted, n)
		}
	}
	return est, nil
}

// sameCost reports whether two monthly figures are the same but for floating-point rounding: a
// volume line reaches its Min through the week's hours and its AlwaysOn directly, and 730 h
// round-tripped through 168 h weeks is not always exactly 730 h.
func sameCost(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// groups prices every autoscaling group: its instance-hours, their volumes and its warm pool.
func (e *estimator) groups() []Schedule {
	var schedules []Schedule
	for _, g := range e.byType(typeASG) {
		minSize, _ := num(g.Inputs["minSize"])
		maxSize, _ := num(g.Inputs["maxSize"])
		lt := e.launchTemplate(g)
		if lt == nil {
			e.errs = append(e.errs, fmt.Sprintf("autoscaling group %s: no launch template in the plan", g.Name))
			continue
		}
		typ := instanceType(g, *lt)
		volumeGB := 0.0
		for _, b := range list(lt.Inputs["blockDeviceMappings"]) {
			if v, ok := num(obj(obj(b)["ebs"])["volumeSize"]); ok {
				volumeGB += v
			}
		}
		minWeek, maxWeek := minSize*hoursPerWeek, maxSize*hoursPerWeek
		// Always on keeps the group at the minimum size it serves with: the larger of its own
		// and the one its office-hours action sets.
		servingSize := minSize
		if s, ok := e.schedule(g); ok {
			minWeek, maxWeek = s.MinHoursPerWeek, s.MaxHoursPerWeek
			servingSize = max(servingSize, s.ServingMinSize)
			schedules = append(schedules, s)
		}
		perWeek := e.a.HoursPerMonth / hoursPerWeek
		minHours, maxHours, alwaysHours := minWeek*perWeek, maxWeek*perWeek, servingSize*e.a.HoursPerMonth

		onDemand := e.price(InstanceKey(typ))
		spot := spotFraction(g)
		hourly := onDemand * (1 - spot*e.a.SpotDiscount)
		purchase := "on-demand"
		if spot > 0 {
			purchase = fmt.Sprintf("%.0f%% spot at %.0f%% off", spot*100, e.a.SpotDiscount*100)
		}
		e.add(Line{
			Resource: g.Name,
			Item: fmt.Sprintf("%s %s: %s instance-hours (min), %s (max), %s always on",
				typ, purchase, hours(minHours), hours(maxHours), hours(alwaysHours)),
			Min: minHours * hourly, Max: maxHours * hourly, AlwaysOn: alwaysHours * onDemand,
			Prices: []string{InstanceKey(typ)},
		})
		gp3 := e.price(KeyEBSGP3)
		e.add(Line{
			Resource: lt.Name,
			Item:     fmt.Sprintf("%g GB gp3 per running instance", volumeGB),
			Min:      volumeGB * gp3 * minHours / e.a.HoursPerMonth, Max: volumeGB * gp3 * maxHours / e.a.HoursPerMonth,
			AlwaysOn: volumeGB * gp3 * servingSize,
			Prices:   []string{KeyEBSGP3},
		})
		if warm, ok := num(obj(g.Inputs["warmPool"])["minSize"]); ok && warm > 0 {
			// Stopped instances pay for their volumes only (EC2 bills no instance-hours while
			// stopped); the warm pool keeps them whatever the schedule does.
			c := warm * volumeGB * gp3
			e.add(Line{
				Resource: g.Name + " warm pool",
				Item:     fmt.Sprintf("%g stopped instance(s): %g GB gp3 each, no instance-hours", warm, volumeGB),
				Min:      c, Max: c, AlwaysOn: c, Prices: []string{KeyEBSGP3},
			})
		}
	}
	return schedules
}

// launchTemplate finds the group's launch template, directly or through its mixed instances
// policy.
func (e *estimator) launchTemplate(g program.PlannedResource) *program.PlannedResource {
	id := str(obj(g.Inputs["launchTemplate"])["id"])
	if id == "" {
		spec := obj(obj(obj(g.Inputs["mixedInstancesPolicy"])["launchTemplate"])["launchTemplateSpecification"])
		id = str(spec["launchTemplateId"])
	}
	for _, lt := range e.byType(typeLaunchTmpl) {
		if lt.ID == id {
			return &lt
		}
	}
	return nil
}

// instanceType is the launch template's instance type or, for a mixed instances policy whose
// template names none, the policy's first override: the pool's own type, which the estimate
// prices (the allocation strategy may pick a cheaper one of the overrides).
func instanceType(g, lt program.PlannedResource) string {
	if t := str(lt.Inputs["instanceType"]); t != "" {
		return t
	}
	for _, o := range list(obj(obj(g.Inputs["mixedInstancesPolicy"])["launchTemplate"])["overrides"]) {
		if t := str(obj(o)["instanceType"]); t != "" {
			return t
		}
	}
	return ""
}

// spotFraction is the share of a group's instances that run on spot: the mixed instances
// policy's 100 - onDemandPercentageAboveBaseCapacity (the project sets no on-demand base).
func spotFraction(g program.PlannedResource) float64 {
	mip := obj(g.Inputs["mixedInstancesPolicy"])
	if mip == nil {
		return 0
	}
	dist := obj(mip["instancesDistribution"])
	pct, ok := num(dist["onDemandPercentageAboveBaseCapacity"])
	if !ok {
		pct = 100 // AWS's default: all on-demand
	}
	return (100 - pct) / 100
}

// schedule reads the scheduled actions of the group's component (the group's siblings).
func (e *estimator) schedule(g program.PlannedResource) (Schedule, bool) {
	var actions []action
	s := Schedule{Group: g.Name}
	for _, r := range e.byType(typeSchedule) {
		if r.Parent != g.Parent {
			continue
		}
		minSize, _ := num(r.Inputs["minSize"])
		maxSize, _ := num(r.Inputs["maxSize"])
		rec := str(r.Inputs["recurrence"])
		starts, err := weeklyMinutes(rec)
		if err != nil {
			e.errs = append(e.errs, fmt.Sprintf("scheduled action %s: %v", r.Name, err))
			continue
		}
		for _, m := range starts {
			actions = append(actions, action{minute: m, min: minSize, max: maxSize})
		}
		s.ServingMinSize = max(s.ServingMinSize, minSize)
		s.Timezone = str(r.Inputs["timeZone"])
		s.Recurrences = append(s.Recurrences, fmt.Sprintf("%q sets min %g, max %g", rec, minSize, maxSize))
	}
	if len(actions) == 0 {
		return s, false
	}
	s.MinHoursPerWeek, s.MaxHoursPerWeek = weeklyHours(actions)
	return s, true
}

func (e *estimator) network() {
	if nats := e.byType(typeNAT); len(nats) > 0 {
		n := float64(len(nats))
		c := n*e.a.HoursPerMonth*e.price(KeyNATHour) + n*e.a.NATGBPerMonth*e.price(KeyNATGB)
		e.add(Line{Resource: names(nats), Item: fmt.Sprintf("%g NAT gateway(s): %s h and %g GB processed each", n, hours(e.a.HoursPerMonth), e.a.NATGBPerMonth),
			Min: c, Max: c, AlwaysOn: c, Prices: []string{KeyNATHour, KeyNATGB}})
	}
	if eips := e.byType(typeEIP); len(eips) > 0 {
		n := float64(len(eips))
		c := n * e.a.HoursPerMonth * e.price(KeyIPv4Hour)
		e.add(Line{Resource: names(eips), Item: fmt.Sprintf("%g public IPv4 address(es) (NAT)", n), Min: c, Max: c, AlwaysOn: c, Prices: []string{KeyIPv4Hour}})
	}
	for _, ep := range e.byType(typeEndpoint) {
		if str(ep.Inputs["vpcEndpointType"]) != "Interface" {
			continue // gateway endpoints (S3) are free
		}
		azs := float64(len(list(ep.Inputs["subnetIds"])))
		c := azs * e.a.HoursPerMonth * e.price(KeyEndpointHour)
		e.add(Line{Resource: ep.Name, Item: fmt.Sprintf("interface endpoint %s in %g AZ(s)", str(ep.Inputs["serviceName"]), azs), Min: c, Max: c, AlwaysOn: c, Prices: []string{KeyEndpointHour}})
	}
}

func (e *estimator) loadBalancers() {
	for _, lb := range e.byType(typeLB) {
		c := e.a.HoursPerMonth * (e.price(KeyALBHour) + e.a.LCUsPerLoadBalancer*e.price(KeyALBLCUHour))
		item := fmt.Sprintf("application load balancer, %g LCU average", e.a.LCUsPerLoadBalancer)
		keys := []string{KeyALBHour, KeyALBLCUHour}
		if internal, _ := lb.Inputs["internal"].(bool); !internal {
			// An internet-facing load balancer holds one public IPv4 address per subnet.
			ips := float64(len(list(lb.Inputs["subnets"])))
			c += ips * e.a.HoursPerMonth * e.price(KeyIPv4Hour)
			item += fmt.Sprintf(", internet-facing with %g public IPv4 addresses", ips)
			keys = append(keys, KeyIPv4Hour)
		}
		e.add(Line{Resource: lb.Name, Item: item, Min: c, Max: c, AlwaysOn: c, Prices: keys})
	}
}

func (e *estimator) perMonth(typ, key, what string) {
	rs := e.byType(typ)
	if len(rs) == 0 {
		return
	}
	c := float64(len(rs)) * e.price(key)
	e.add(Line{Resource: names(rs), Item: fmt.Sprintf("%d %s", len(rs), what), Min: c, Max: c, AlwaysOn: c, Prices: []string{key}})
}

func (e *estimator) waf() {
	for _, acl := range e.byType(typeWebACL) {
		rules := float64(len(list(acl.Inputs["rules"])))
		c := e.price(KeyWAFACL) + rules*e.price(KeyWAFRule) + e.a.WAFMillionRequests*e.price(KeyWAFRequests)
		e.add(Line{Resource: acl.Name, Item: fmt.Sprintf("web ACL with %g rule(s), %g million requests", rules, e.a.WAFMillionRequests),
			Min: c, Max: c, AlwaysOn: c, Prices: []string{KeyWAFACL, KeyWAFRule, KeyWAFRequests}})
	}
}

// flowLogs prices each flow log's ingestion and the storage its log group's retention keeps: at
// steady state a group holds retention/30 months of data.
func (e *estimator) flowLogs() {
	for _, fl := range e.byType(typeFlowLog) {
		if str(fl.Inputs["logDestinationType"]) != "cloud-watch-logs" {
			continue
		}
		retention := 0.0
		for _, g := range e.byType(typeLogGroup) {
			if g.ARN == str(fl.Inputs["logDestination"]) {
				retention, _ = num(g.Inputs["retentionInDays"])
			}
		}
		gb := e.a.FlowLogGBPerMonth
		stored := gb * retention / 30
		c := gb*e.price(KeyLogsIngestGB) + stored*e.price(KeyLogsStorageGB)
		e.add(Line{Resource: fl.Name, Item: fmt.Sprintf("VPC flow log: %g GB/month ingested, %g days kept (%.1f GB stored)", gb, retention, stored),
			Min: c, Max: c, AlwaysOn: c, Prices: []string{KeyLogsIngestGB, KeyLogsStorageGB}})
	}
}

func names(rs []program.PlannedResource) string {
	var n []string
	for _, r := range rs {
		n = append(n, r.Name)
	}
	return strings.Join(n, ", ")
}

func hours(h float64) string { return fmt.Sprintf("%.0f", h) }

// Plain-value helpers: plan inputs are JSON-like values (numbers are float64).

func str(v any) string { s, _ := v.(string); return s }

func num(v any) (float64, bool) { f, ok := v.(float64); return f, ok }

func list(v any) []any { l, _ := v.([]any); return l }

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

// InstanceTypes returns the instance types the plan's launch templates name, sorted: the ones
// Live must price.
func InstanceTypes(plan *program.Plan) []string {
	seen := map[string]bool{}
	var out []string
	add := func(t string) {
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, r := range plan.Resources {
		switch r.Type {
		case typeLaunchTmpl:
			add(str(r.Inputs["instanceType"]))
		case typeASG:
			for _, o := range list(obj(obj(r.Inputs["mixedInstancesPolicy"])["launchTemplate"])["overrides"]) {
				add(str(obj(o)["instanceType"]))
			}
		}
	}
	sort.Strings(out)
	return out
}
