package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/config"
)

// goodPlan is a minimal plan that passes every rule: a public front load balancer, the gateway,
// an internal load balancer forwarding to a pool on 11434.
func goodPlan() *Plan {
	return &Plan{
		Spec: &config.Spec{Access: config.Access{Mode: config.AccessPublic}},
		Resources: []Resource{
			{Type: typeSecurityGroup, Name: "front-sg", ID: "front-sg-id"},
			{Type: typeSecurityGroup, Name: "gw-sg", ID: "gw-sg-id"},
			{Type: typeSecurityGroup, Name: "internal-sg", ID: "internal-sg-id"},
			{Type: typeSecurityGroup, Name: "pool-sg", ID: "pool-sg-id", Inputs: map[string]any{
				"ingress": []any{map[string]any{"protocol": "tcp", "fromPort": 11434.0, "toPort": 11434.0, "securityGroups": []any{"internal-sg-id"}}},
			}},
			{Type: typeIngressRule, Name: "front-443", ID: "r1", Inputs: map[string]any{
				"securityGroupId": "front-sg-id", "cidrIpv4": "142.103.0.0/16", "ipProtocol": "tcp", "fromPort": 443.0, "toPort": 443.0,
			}},
			{Type: typeIngressRule, Name: "gw-4000", ID: "r2", Inputs: map[string]any{
				"securityGroupId": "gw-sg-id", "referencedSecurityGroupId": "front-sg-id", "ipProtocol": "tcp", "fromPort": 4000.0, "toPort": 4000.0,
			}},
			{Type: typeLoadBalancer, Name: "front", ID: "front-id", ARN: "arn:front", Inputs: map[string]any{
				"internal": false, "securityGroups": []any{"front-sg-id"}, "dropInvalidHeaderFields": true, "desyncMitigationMode": "strictest",
			}},
			{Type: typeLoadBalancer, Name: "internal", ID: "internal-id", ARN: "arn:internal", Inputs: map[string]any{
				"internal": true, "securityGroups": []any{"internal-sg-id"}, "dropInvalidHeaderFields": true, "desyncMitigationMode": "strictest",
			}},
			{Type: typeTargetGroup, Name: "pool-tg", ID: "pool-tg-id", ARN: "arn:pool-tg", Inputs: map[string]any{"port": 11434.0}},
			{Type: typeListener, Name: "pool-listener", ID: "l1", Inputs: map[string]any{
				"loadBalancerArn": "arn:internal", "protocol": "HTTP", "defaultActions": []any{map[string]any{"targetGroupArn": "arn:pool-tg"}},
			}},
			{Type: typeListener, Name: "https", ID: "l2", Inputs: map[string]any{
				"loadBalancerArn": "arn:front", "protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
			}},
			{Type: typeLaunchTmpl, Name: "lt", ID: "lt-id", Inputs: map[string]any{
				"metadataOptions":     map[string]any{"httpTokens": "required", "httpPutResponseHopLimit": 1.0},
				"networkInterfaces":   []any{map[string]any{"associatePublicIpAddress": "false"}},
				"blockDeviceMappings": []any{map[string]any{"deviceName": "/dev/sda1", "ebs": map[string]any{"encrypted": "true", "kmsKeyId": "arn:aws:kms:x"}}},
			}},
			{Type: "aws:secretsmanager/secretVersion:SecretVersion", Name: "master", ID: "v", Inputs: map[string]any{"secretString": "[secret]"}},
		},
	}
}

func TestGoodPlanPasses(t *testing.T) {
	if fs := Check(goodPlan()); len(fs) != 0 {
		t.Errorf("findings on a good plan: %v", fs)
	}
}

// Each rule fires on the mistake it exists for.
func TestEachRuleFires(t *testing.T) {
	set := func(name, key string, v any) func(*Plan) {
		return func(p *Plan) {
			for i := range p.Resources {
				if p.Resources[i].Name == name {
					p.Resources[i].Inputs[key] = v
				}
			}
		}
	}
	cases := []struct {
		rule   string
		mutate func(*Plan)
		want   string
	}{
		{"no-open-ingress", set("front-443", "cidrIpv4", "0.0.0.0/0"), "admits 0.0.0.0/0 to ports 443-443"},
		{"no-open-ingress", func(p *Plan) {
			p.Spec.Access.AllowAnywhere = true
			set("gw-4000", "cidrIpv4", "0.0.0.0/0")(p)
			delete(p.Resources[5].Inputs, "referencedSecurityGroupId")
		}, "admits 0.0.0.0/0 to ports 4000-4000 of gw-sg-id"},
		{"ollama-only-from-internal-alb", set("pool-sg", "ingress", []any{map[string]any{"protocol": "tcp", "fromPort": 11434.0, "toPort": 11434.0, "securityGroups": []any{"gw-sg-id"}}}), "admits security group gw-sg-id to Ollama's port 11434"},
		{"ollama-only-from-internal-alb", set("pool-sg", "ingress", []any{map[string]any{"protocol": "-1", "cidrBlocks": []any{"10.0.0.0/8"}}}), "admits 10.0.0.0/8 to Ollama's port 11434"},
		{"imdsv2-only", set("lt", "metadataOptions", map[string]any{"httpTokens": "optional", "httpPutResponseHopLimit": 1.0}), "want httpTokens required"},
		{"imdsv2-only", set("lt", "metadataOptions", map[string]any{"httpTokens": "required", "httpPutResponseHopLimit": 2.0}), "httpPutResponseHopLimit 1"},
		{"no-public-ip", set("lt", "networkInterfaces", []any{map[string]any{"associatePublicIpAddress": "true"}}), `associatePublicIpAddress "true"`},
		{"ebs-encrypted", set("lt", "blockDeviceMappings", []any{map[string]any{"deviceName": "/dev/sda1", "ebs": map[string]any{"encrypted": "false"}}}), `volume /dev/sda1: encrypted "false"`},
		{"tls13-listeners", set("https", "sslPolicy", "ELBSecurityPolicy-2016-08"), `sslPolicy "ELBSecurityPolicy-2016-08"`},
		{"lb-hardening", set("front", "desyncMitigationMode", "defensive"), `desyncMitigationMode "defensive"`},
		{"lb-hardening", set("internal", "dropInvalidHeaderFields", false), "dropInvalidHeaderFields is not true"},
		{"no-secret-in-plain", set("master", "secretString", "sk-AbCdEfGhIjKlMnOpQrStUv"), "input secretString holds what looks like an API key"},
	}
	for _, c := range cases {
		p := goodPlan()
		c.mutate(p)
		fs := Check(p)
		found := false
		for _, f := range fs {
			if f.Rule == c.rule && strings.Contains(f.Message, c.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want a finding containing %q, got %v", c.rule, c.want, fs)
		}
	}
}

// allowAnywhere opens only 443/80 on the internet-facing load balancer, nothing else.
func TestAllowAnywhereOpensOnlyTheWebPorts(t *testing.T) {
	p := goodPlan()
	p.Spec.Access.AllowAnywhere = true
	p.Resources[4].Inputs["cidrIpv4"] = "0.0.0.0/0"
	if fs := Check(p); len(fs) != 0 {
		t.Errorf("443 from anywhere with allowAnywhere: %v", fs)
	}
	p.Resources[4].Inputs["securityGroupId"] = "internal-sg-id" // not internet-facing
	if fs := Check(p); len(fs) != 1 || fs[0].Rule != "no-open-ingress" {
		t.Errorf("0.0.0.0/0 on an internal load balancer: %v", fs)
	}
}

func TestRulesHaveIDsAndSummaries(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		if r.ID == "" || r.Summary == "" || r.check == nil || seen[r.ID] {
			t.Errorf("rule %+v", r)
		}
		seen[r.ID] = true
	}
}

// An allow-list is judged by the addresses it covers together, not by its spelling: ranges
// that each look narrow but together admit more than a /8 are as open as 0.0.0.0/0, and only
// allowAnywhere excuses them, on the web ports of the internet-facing load balancer.
func TestOpenIngressJudgesTheAddressSpaceCovered(t *testing.T) {
	withRanges := func(allowAnywhere bool, sg string, cidrs ...string) *Plan {
		p := goodPlan()
		p.Spec.Access.AllowAnywhere = allowAnywhere
		p.Spec.Network.CIDR = netip.MustParsePrefix("10.20.0.0/16")
		p.Resources[4].Inputs["securityGroupId"] = sg
		p.Resources[4].Inputs["cidrIpv4"] = cidrs[0]
		for i, c := range cidrs[1:] {
			r := p.Resources[4]
			r.Name, r.ID = fmt.Sprintf("front-443-%d", i), fmt.Sprintf("r1-%d", i)
			r.Inputs = maps.Clone(r.Inputs)
			r.Inputs["cidrIpv4"] = c
			p.Resources = append(p.Resources, r)
		}
		return p
	}
	eights := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%d.0.0.0/8", 11+i))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		plan     *Plan
		findings int
	}{
		{"halves of the internet", withRanges(false, "front-sg-id", "0.0.0.0/1", "128.0.0.0/1"), 1},
		{"two /8s together", withRanges(false, "front-sg-id", eights(2)...), 2},
		{"one /8", withRanges(false, "front-sg-id", eights(1)...), 0},
		{"a /8 and the VPC's own range", withRanges(false, "front-sg-id", "11.0.0.0/8", "10.20.0.0/16"), 0},
		{"halves with allowAnywhere on the front", withRanges(true, "front-sg-id", "0.0.0.0/1", "128.0.0.0/1"), 0},
		{"halves with allowAnywhere on the internal balancer", withRanges(true, "internal-sg-id", "0.0.0.0/1", "128.0.0.0/1"), 1},
	} {
		fs := Check(tc.plan)
		if len(fs) != tc.findings {
			t.Errorf("%s: %d findings %v, want %d", tc.name, len(fs), fs, tc.findings)
		}
		for _, f := range fs {
			if f.Rule != "no-open-ingress" {
				t.Errorf("%s: finding of rule %s", tc.name, f.Rule)
			}
		}
	}
}
