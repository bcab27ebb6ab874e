// Package policy holds the security, privacy and reliability rules every department must pass,
// as plain Go functions over an offline plan. `sandboxctl check` runs them; the tests run them
// over the plan of every example stack. Policy reads plans and config only.
package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// Resource is one planned resource as the rules see it.
type Resource struct {
	// Type is the Pulumi type token, e.g. "aws:ec2/securityGroup:SecurityGroup".
	Type string
	// Name is the logical name.
	Name string
	// ID is the id the resource will have (in an offline plan, the canned one), which other
	// resources' inputs refer to.
	ID string
	// ARN is the ARN the resource will have, which other resources' inputs refer to.
	ARN string
	// Inputs are the inputs with Pulumi property names; secrets read "[secret]".
	Inputs map[string]any
}

// Plan is what the rules check: a stack's Spec and its planned resources.
type Plan struct {
	Spec      *config.Spec
	Resources []Resource
}

// Severity says whether a finding fails `sandboxctl check`.
type Severity string

const (
	// Error fails the run (exit 1) unless the stack waives the rule.
	Error Severity = "error"
	// Warning is printed but never fails the run: a practice the project keeps whose breach
	// weakens defence in depth or operations rather than opening a hole on its own.
	Warning Severity = "warning"
)

// Finding is one rule violation.
type Finding struct {
	// Rule is the rule's id.
	Rule string `json:"rule"`
	// Severity is the rule's severity.
	Severity Severity `json:"severity"`
	// Resource names the resource at fault ("type name").
	Resource string `json:"resource"`
	// Message says what is wrong and what is expected.
	Message string `json:"message"`
	// Waived is the reason the stack file gives for waiving the rule, "" when not waived.
	Waived string `json:"waived,omitempty"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s %s: %s: %s", f.Severity, f.Rule, f.Resource, f.Message)
	if f.Waived != "" {
		s += " (waived: " + f.Waived + ")"
	}
	return s
}

// Fails reports whether the finding fails a run: an error that is not waived.
func (f Finding) Fails() bool { return f.Severity == Error && f.Waived == "" }

// Rule is one check.
type Rule struct {
	// ID names the rule in findings and waivers; it never changes once released.
	ID string `json:"id"`
	// Severity says whether a finding fails the run.
	Severity Severity `json:"severity"`
	// Rationale says in one line what the rule requires and why.
	Rationale string `json:"rationale"`
	// Controls are the ids of the matching Checkov (CKV_…), Trivy (AVD-AWS-…) and AWS Security
	// Hub (Service.N) controls, where one exists.
	Controls []string `json:"controls"`
	check    func(*Plan) []Finding
}

// RuleIDs returns the id of every rule, in Rules order.
func RuleIDs() []string {
	var ids []string
	for _, r := range Rules() {
		ids = append(ids, r.ID)
	}
	return ids
}

// Check runs every rule over the plan and returns the findings, sorted by rule and resource.
func Check(p *Plan) []Finding {
	var out []Finding
	for _, r := range Rules() {
		for _, f := range r.check(p) {
			f.Rule, f.Severity = r.ID, r.Severity
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Rule != out[j].Rule {
			return out[i].Rule < out[j].Rule
		}
		return out[i].Resource < out[j].Resource
	})
	return out
}

// Waive marks the findings of every waived rule with the waiver's reason. waivers maps a rule
// id to its reason, as the stack file gives them.
func Waive(findings []Finding, waivers map[string]string) []Finding {
	for i := range findings {
		findings[i].Waived = waivers[findings[i].Rule]
	}
	return findings
}

// Failed reports whether any finding fails the run.
func Failed(findings []Finding) bool {
	for _, f := range findings {
		if f.Fails() {
			return true
		}
	}
	return false
}

func (p *Plan) byType(typ string) []Resource {
	var out []Resource
	for _, r := range p.Resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

func label(r Resource) string { return r.Type + " " + r.Name }

// eachOf returns a finding for every resource of type typ that problem, returning a message,
// finds at fault ("" when the resource passes).
func (p *Plan) eachOf(typ string, problem func(Resource) string) []Finding {
	var out []Finding
	for _, r := range p.byType(typ) {
		if msg := problem(r); msg != "" {
			out = append(out, Finding{Resource: label(r), Message: msg})
		}
	}
	return out
}

func finding(r Resource, format string, args ...any) Finding {
	return Finding{Resource: label(r), Message: fmt.Sprintf(format, args...)}
}

// Plain-value helpers: inputs come as JSON-like values (numbers are float64).

func str(v any) string { s, _ := v.(string); return s }

func num(v any) (int, bool) {
	f, ok := v.(float64)
	return int(f), ok
}

func list(v any) []any { l, _ := v.([]any); return l }

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

func strs(v any) []string {
	var out []string
	for _, e := range list(v) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// oneOrMany is a rule's source: a list of strings (inline rules), or one string (standalone
// rules), as a list.
func oneOrMany(v any) []string {
	if s := str(v); s != "" {
		return []string{s}
	}
	return strs(v)
}

const (
	typeSecurityGroup = "aws:ec2/securityGroup:SecurityGroup"
	typeIngressRule   = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
	typeEgressRule    = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
	typeSGRule        = "aws:ec2/securityGroupRule:SecurityGroupRule"
	typeLaunchTmpl    = "aws:ec2/launchTemplate:LaunchTemplate"
	typeLoadBalancer  = "aws:lb/loadBalancer:LoadBalancer"
	typeListener      = "aws:lb/listener:Listener"
	typeListenerRule  = "aws:lb/listenerRule:ListenerRule"
	typeTargetGroup   = "aws:lb/targetGroup:TargetGroup"
)

// ingress is one security-group rule: a way in, or (from egresses) a way out.
type ingress struct {
	from     Resource // the resource that declares the rule
	target   string   // security group id
	cidr     string   // a CIDR source, or ""
	sourceSG string   // a security-group source, or ""
	lo, hi   int      // port range; 0..65535 for all traffic
}

// ingresses gathers every ingress rule of the plan, inline or standalone.
func (p *Plan) ingresses() []ingress { return p.sgRules("ingress") }

// egresses gathers every egress rule of the plan, inline or standalone; cidr and sourceSG
// are then the destination.
func (p *Plan) egresses() []ingress { return p.sgRules("egress") }

// sgRules gathers every security-group rule of one direction ("ingress" or "egress").
func (p *Plan) sgRules(dir string) []ingress {
	var out []ingress
	add := func(r Resource, target string, rule map[string]any, cidrKeys []string, sgKey string) {
		lo, hi := 0, 65535
		proto := str(rule["protocol"]) + str(rule["ipProtocol"])
		if proto != "-1" && proto != "all" {
			if v, ok := num(rule["fromPort"]); ok {
				lo = v
			}
			if v, ok := num(rule["toPort"]); ok {
				hi = v
			}
		}
		for _, k := range cidrKeys {
			for _, c := range oneOrMany(rule[k]) {
				out = append(out, ingress{from: r, target: target, cidr: c, lo: lo, hi: hi})
			}
		}
		sgs := oneOrMany(rule[sgKey])
		if self, _ := rule["self"].(bool); self {
			sgs = append(sgs, target)
		}
		for _, sg := range sgs {
			out = append(out, ingress{from: r, target: target, sourceSG: sg, lo: lo, hi: hi})
		}
	}
	standalone := typeIngressRule
	if dir == "egress" {
		standalone = typeEgressRule
	}
	for _, sg := range p.byType(typeSecurityGroup) {
		for _, rule := range list(sg.Inputs[dir]) {
			add(sg, sg.ID, obj(rule), []string{"cidrBlocks", "ipv6CidrBlocks"}, "securityGroups")
		}
	}
	for _, r := range p.byType(standalone) {
		add(r, str(r.Inputs["securityGroupId"]), r.Inputs, []string{"cidrIpv4", "cidrIpv6"}, "referencedSecurityGroupId")
	}
	for _, r := range p.byType(typeSGRule) {
		if str(r.Inputs["type"]) == dir {
			add(r, str(r.Inputs["securityGroupId"]), r.Inputs, []string{"cidrBlocks", "ipv6CidrBlocks"}, "sourceSecurityGroupId")
		}
	}
	return out
}

// poolLoadBalancers returns the ARNs of the load balancers that forward to Ollama's target
// groups (port 11434): the internal ALB in front of the pools, which no client reaches.
func (p *Plan) poolLoadBalancers() map[string]bool {
	ollamaTGs := map[string]bool{}
	for _, tg := range p.byType(typeTargetGroup) {
		if port, _ := num(tg.Inputs["port"]); port == 11434 {
			ollamaTGs[tg.ARN] = true
		}
	}
	lbs := map[string]bool{}
	for _, l := range p.byType(typeListener) {
		for _, a := range list(l.Inputs["defaultActions"]) {
			if ollamaTGs[str(obj(a)["targetGroupArn"])] {
				lbs[str(l.Inputs["loadBalancerArn"])] = true
			}
		}
	}
	return lbs
}

// internalALBGroups returns the security groups of the load balancers that forward to Ollama's
// target groups (port 11434).
func (p *Plan) internalALBGroups() map[string]bool {
	lbs := p.poolLoadBalancers()
	groups := map[string]bool{}
	for _, lb := range p.byType(typeLoadBalancer) {
		if lbs[lb.ARN] {
			for _, sg := range strs(lb.Inputs["securityGroups"]) {
				groups[sg] = true
			}
		}
	}
	return groups
}

// internetFacingGroups returns the security groups of internet-facing load balancers.
func (p *Plan) internetFacingGroups() map[string]bool {
	groups := map[string]bool{}
	for _, lb := range p.byType(typeLoadBalancer) {
		if internal, _ := lb.Inputs["internal"].(bool); !internal {
			for _, sg := range strs(lb.Inputs["securityGroups"]) {
				groups[sg] = true
			}
		}
	}
	return groups
}

func checkOpenIngress(p *Plan) []Finding {
	var out []Finding
	facing := p.internetFacingGroups()
	allowAnywhere := p.Spec != nil && p.Spec.Access.AllowAnywhere
	// The department's own VPC range is not a client range: the gateway admits it on an
	// internal load balancer, and the stack file's allow-list is judged without it.
	var vpc netip.Prefix
	if p.Spec != nil {
		vpc = p.Spec.Network.CIDR
	}
	exempt := func(in ingress) bool {
		webOnly := (in.lo == 443 && in.hi == 443) || (in.lo == 80 && in.hi == 80)
		return allowAnywhere && webOnly && facing[in.target]
	}
	// An allow-list is judged by the address space it covers together, per group and ports,
	// the way the stack file's access.allowedCidrs is (rules.WideAllowList): 0.0.0.0/1 and
	// 128.0.0.0/1 are as open as 0.0.0.0/0.
	type port struct {
		target string
		lo, hi int
	}
	lists := map[port][]ingress{}
	var order []port
	for _, in := range p.ingresses() {
		if in.cidr == "" {
			continue
		}
		if in.cidr == "::/0" {
			if !exempt(in) {
				out = append(out, finding(in.from, "admits %s to ports %d-%d of %s", in.cidr, in.lo, in.hi, in.target))
			}
			continue
		}
		pfx, err := netip.ParsePrefix(in.cidr)
		if err != nil || !pfx.Addr().Is4() || pfx.Masked() == vpc {
			continue
		}
		k := port{in.target, in.lo, in.hi}
		if _, seen := lists[k]; !seen {
			order = append(order, k)
		}
		lists[k] = append(lists[k], in)
	}
	for _, k := range order {
		list := lists[k]
		prefixes := make([]netip.Prefix, len(list))
		for i, in := range list {
			prefixes[i] = netip.MustParsePrefix(in.cidr).Masked()
		}
		i, problem := rules.WideAllowList(prefixes)
		if problem == "" {
			continue
		}
		wide := list // the list as a whole
		if i >= 0 {
			wide = list[i : i+1]
		}
		for _, in := range wide {
			if !exempt(in) {
				out = append(out, finding(in.from, "admits %s to ports %d-%d of %s: %s", in.cidr, in.lo, in.hi, in.target, problem))
			}
		}
	}
	return out
}

func checkOllamaPort(p *Plan) []Finding {
	var out []Finding
	allowed := p.internalALBGroups()
	for _, in := range p.ingresses() {
		if in.lo > 11434 || in.hi < 11434 {
			continue
		}
		if in.sourceSG != "" && allowed[in.sourceSG] {
			continue
		}
		src := in.cidr
		if src == "" {
			src = "security group " + in.sourceSG
		}
		out = append(out, finding(in.from, "admits %s to Ollama's port 11434 of %s; only the internal load balancer may", src, in.target))
	}
	return out
}

func checkIMDS(p *Plan) []Finding {
	return p.eachOf(typeLaunchTmpl, func(lt Resource) string {
		if t := str(obj(lt.Inputs["metadataOptions"])["httpTokens"]); t != "required" {
			return fmt.Sprintf("metadataOptions.httpTokens %q; want required (IMDSv2 only)", t)
		}
		return ""
	})
}

func checkIMDSHops(p *Plan) []Finding {
	return p.eachOf(typeLaunchTmpl, func(lt Resource) string {
		if hops, _ := num(obj(lt.Inputs["metadataOptions"])["httpPutResponseHopLimit"]); hops != 1 {
			return fmt.Sprintf("metadataOptions.httpPutResponseHopLimit %d; want 1, so no container or forwarded hop reaches the instance's credentials", hops)
		}
		return ""
	})
}

func checkPublicIP(p *Plan) []Finding {
	var out []Finding
	for _, lt := range p.byType(typeLaunchTmpl) {
		nics := list(lt.Inputs["networkInterfaces"])
		if len(nics) == 0 {
			out = append(out, finding(lt, "no network interface says associatePublicIpAddress \"false\""))
		}
		for _, n := range nics {
			if v := str(obj(n)["associatePublicIpAddress"]); v != "false" {
				out = append(out, finding(lt, "associatePublicIpAddress %q; want \"false\"", v))
			}
		}
	}
	return out
}

func checkEBS(p *Plan) []Finding {
	var out []Finding
	keys := p.departmentKeys()
	for _, lt := range p.byType(typeLaunchTmpl) {
		bdms := list(lt.Inputs["blockDeviceMappings"])
		if len(bdms) == 0 {
			out = append(out, finding(lt, "no block device mapping: the root volume would take the AMI's defaults, unencrypted"))
		}
		for _, b := range bdms {
			ebs := obj(obj(b)["ebs"])
			if str(ebs["encrypted"]) != "true" || !keys[str(ebs["kmsKeyId"])] {
				out = append(out, finding(lt, "volume %s: encrypted %q with key %q; want \"true\" with the department key", str(obj(b)["deviceName"]), str(ebs["encrypted"]), str(ebs["kmsKeyId"])))
			}
		}
	}
	return out
}

func checkTLS(p *Plan) []Finding {
	return p.eachOf(typeListener, func(l Resource) string {
		if policy := str(l.Inputs["sslPolicy"]); str(l.Inputs["protocol"]) == "HTTPS" && !strings.HasPrefix(policy, "ELBSecurityPolicy-TLS13-") {
			return fmt.Sprintf("sslPolicy %q; want an explicit ELBSecurityPolicy-TLS13-* policy (the API default allows TLS 1.0)", policy)
		}
		return ""
	})
}

func checkDropInvalidHeaders(p *Plan) []Finding {
	return p.eachOf(typeLoadBalancer, func(lb Resource) string {
		if drop, _ := lb.Inputs["dropInvalidHeaderFields"].(bool); !drop {
			return "dropInvalidHeaderFields is not true"
		}
		return ""
	})
}

func checkDesync(p *Plan) []Finding {
	return p.eachOf(typeLoadBalancer, func(lb Resource) string {
		if mode := str(lb.Inputs["desyncMitigationMode"]); mode != "strictest" {
			return fmt.Sprintf("desyncMitigationMode %q; want strictest", mode)
		}
		return ""
	})
}

func checkPlainSecrets(p *Plan) []Finding {
	var out []Finding
	for _, r := range p.Resources {
		if path := findKey(r.Inputs, ""); path != "" {
			out = append(out, finding(r, "input %s holds what looks like an API key in plain text", path))
		}
	}
	return out
}

// keyLike matches a LiteLLM key: "sk-" and at least 16 letters, digits, '-' or '_'.
var keyLike = regexp.MustCompile(`^sk-[A-Za-z0-9_-]{16,}$`)

// findKey returns the path of the first string value that looks like a LiteLLM key, or "".
func findKey(v any, path string) string {
	found := ""
	walk(v, path, func(p string, v any) {
		if s, ok := v.(string); ok && found == "" && keyLike.MatchString(s) {
			found = p
		}
	})
	return found
}

// walk calls visit with every value inside v (v included) and its path ("a.b[2].c"), maps in
// key order, so that findings read the same every run.
func walk(v any, path string, visit func(path string, v any)) {
	visit(path, v)
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(t[k], strings.TrimPrefix(path+"."+k, "."), visit)
		}
	case []any:
		for i, e := range t {
			walk(e, fmt.Sprintf("%s[%d]", path, i), visit)
		}
	}
}
