package policy

import (
	"fmt"

	"github.com/llm-sandbox/llm-sandbox/internal/frontdoor"
)

const (
	typeWebACL      = "aws:wafv2/webAcl:WebAcl"
	typeWebACLAssoc = "aws:wafv2/webAclAssociation:WebAclAssociation"
	typeBucket      = "aws:s3/bucketV2:BucketV2"
)

func internetFacing(lb Resource) bool {
	internal, _ := lb.Inputs["internal"].(bool)
	return !internal
}

func checkHTTPSOnly(p *Plan) []Finding {
	var out []Finding
	facing := map[string]bool{}
	for _, lb := range p.byType(typeLoadBalancer) {
		if internetFacing(lb) {
			facing[lb.ARN] = true
		}
	}
	for _, l := range p.byType(typeListener) {
		if facing[str(l.Inputs["loadBalancerArn"])] && !isHTTPS(l) {
			out = append(out, finding(l, "protocol %q on an internet-facing load balancer neither serves nor redirects to HTTPS", str(l.Inputs["protocol"])))
		}
	}
	return out
}

func checkLBMultiAZ(p *Plan) []Finding {
	return p.eachOf(typeLoadBalancer, func(lb Resource) string {
		if n := len(strs(lb.Inputs["subnets"])) + len(list(lb.Inputs["subnetMappings"])); n < 2 {
			return fmt.Sprintf("%d subnets; want at least 2, in different zones", n)
		}
		return ""
	})
}

// deletionProtected reports whether the stack keeps deletion protection (the default).
func (p *Plan) deletionProtected() bool {
	return p.Spec == nil || p.Spec.Gateway.DeletionProtection
}

func checkDeletionProtection(p *Plan) []Finding {
	if !p.deletionProtected() {
		return nil
	}
	var out []Finding
	for _, lb := range p.byType(typeLoadBalancer) {
		if on, _ := lb.Inputs["enableDeletionProtection"].(bool); !on {
			out = append(out, finding(lb, "enableDeletionProtection is not true"))
		}
	}
	for _, b := range p.byType(typeBucket) {
		if force, _ := b.Inputs["forceDestroy"].(bool); force {
			out = append(out, finding(b, "forceDestroy is true: a destroy would delete every object"))
		}
	}
	return out
}

func checkWAFAttached(p *Plan) []Finding {
	protected := p.wafProtected()
	return p.eachOf(typeLoadBalancer, func(lb Resource) string {
		if internetFacing(lb) && !protected[lb.ARN] {
			return "internet-facing without a WAF web ACL association"
		}
		return ""
	})
}

func checkWAFFailClosed(p *Plan) []Finding {
	protected := p.wafProtected()
	return p.eachOf(typeLoadBalancer, func(lb Resource) string {
		if open, _ := lb.Inputs["enableWafFailOpen"].(bool); protected[lb.ARN] && open {
			return "enableWafFailOpen is true: requests pass unfiltered when the WAF is unreachable"
		}
		return ""
	})
}

// wafProtected returns the ARNs of the resources a WAF web ACL is associated with.
func (p *Plan) wafProtected() map[string]bool {
	protected := map[string]bool{}
	for _, a := range p.byType(typeWebACLAssoc) {
		protected[str(a.Inputs["resourceArn"])] = true
	}
	return protected
}

func checkWAFRateLimit(p *Plan) []Finding {
	return p.eachOf(typeWebACL, func(acl Resource) string {
		for _, r := range list(acl.Inputs["rules"]) {
			rule := obj(r)
			if _, blocks := obj(rule["action"])["block"]; blocks && obj(obj(rule["statement"])["rateBasedStatement"]) != nil {
				return ""
			}
		}
		return "no rule blocks with a rate-based statement"
	})
}

func checkWAFSampling(p *Plan) []Finding {
	var out []Finding
	for _, acl := range p.byType(typeWebACL) {
		if on, _ := obj(acl.Inputs["visibilityConfig"])["sampledRequestsEnabled"].(bool); on {
			out = append(out, finding(acl, "visibilityConfig.sampledRequestsEnabled is true"))
		}
		for _, r := range list(acl.Inputs["rules"]) {
			if on, _ := obj(obj(r)["visibilityConfig"])["sampledRequestsEnabled"].(bool); on {
				out = append(out, finding(acl, "rule %s: visibilityConfig.sampledRequestsEnabled is true", str(obj(r)["name"])))
			}
		}
	}
	return out
}

func checkHealthChecks(p *Plan) []Finding {
	return p.eachOf(typeTargetGroup, func(tg Resource) string {
		hc := obj(tg.Inputs["healthCheck"])
		enabled, _ := hc["enabled"].(bool)
		switch path := str(hc["path"]); {
		case !enabled || path == "":
			return fmt.Sprintf("health check %v; want enabled with a path", hc)
		case path == "/health" || path == "/health/":
			return fmt.Sprintf("health check path %q calls every model and needs a key; want /health/liveliness", path)
		}
		return ""
	})
}

func checkLeastOutstanding(p *Plan) []Finding {
	return p.eachOf(typeTargetGroup, func(tg Resource) string {
		if a := str(tg.Inputs["loadBalancingAlgorithmType"]); a != "least_outstanding_requests" {
			return fmt.Sprintf("loadBalancingAlgorithmType %q; want least_outstanding_requests", a)
		}
		return ""
	})
}

// clientListener is a listener of a load balancer clients reach, with its rules as the front
// listener's routing.
type clientListener struct {
	Resource
	routing frontdoor.Listener
}

// clientListeners returns the listeners of every load balancer but the pools' (those forward
// to Ollama), each with the listener rules attached to it.
func (p *Plan) clientListeners() []clientListener {
	pools := p.poolLoadBalancers()
	var out []clientListener
	for _, l := range p.byType(typeListener) {
		if pools[str(l.Inputs["loadBalancerArn"])] {
			continue
		}
		rules := map[string]map[string]any{}
		for _, r := range p.byType(typeListenerRule) {
			if str(r.Inputs["listenerArn"]) == l.ARN {
				rules[r.Name] = r.Inputs
			}
		}
		out = append(out, clientListener{Resource: l, routing: frontdoor.Parse(l.Inputs, rules)})
	}
	return out
}

// serves reports whether a listener forwards any request (its default action or a rule),
// rather than only redirecting or answering itself.
func (l clientListener) serves() bool {
	if l.routing.Default.Forward {
		return true
	}
	for _, r := range l.routing.Rules {
		if r.Action.Forward {
			return true
		}
	}
	return false
}

func checkAdminPaths(p *Plan) []Finding {
	hostname := ""
	if p.Spec != nil {
		hostname = p.Spec.Access.Hostname
	}
	var out []Finding
	for _, l := range p.clientListeners() {
		for _, problem := range frontdoor.Problems(l.routing, hostname) {
			out = append(out, finding(l.Resource, "%s", problem))
		}
	}
	return out
}

// plainHTTPListeners returns the client listeners that serve plain HTTP.
func (p *Plan) plainHTTPListeners() []clientListener {
	var out []clientListener
	for _, l := range p.clientListeners() {
		if str(l.Inputs["protocol"]) == "HTTP" && l.serves() {
			out = append(out, l)
		}
	}
	return out
}

// plainHTTPChosen reports whether the stack file opts in to plain HTTP.
func (p *Plan) plainHTTPChosen() bool { return p.Spec != nil && p.Spec.Access.PlainHTTP }

func checkPlainHTTPOptIn(p *Plan) []Finding {
	if p.plainHTTPChosen() {
		return nil
	}
	var out []Finding
	for _, l := range p.plainHTTPListeners() {
		out = append(out, finding(l.Resource, "serves plain HTTP on port %v without access.plainHttp: true in the stack file; give the stack a certificate (access.certificateArn, or access.hostname with access.hostedZoneId) or opt in", l.Inputs["port"]))
	}
	return out
}

func checkPlainHTTP(p *Plan) []Finding {
	if !p.plainHTTPChosen() {
		return nil
	}
	var out []Finding
	for _, l := range p.plainHTTPListeners() {
		out = append(out, finding(l.Resource, "serves plain HTTP on port %v (access.plainHttp: true): API keys, prompts and completions cross the VPC unencrypted", l.Inputs["port"]))
	}
	return out
}
