package gateway

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/vpc"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/nodegroup"
)

// securityGroups creates the front ALB's and the gateway nodes' security groups, both without
// inline rules. The two refer to each other (the ALB may send 4000 to the nodes, the nodes take
// 4000 only from the ALB), which inline rules cannot express without a cycle, and the internal
// ALB's group belongs to the caller; so every rule is a rule resource of its own. The provider
// removes the allow-all egress rule AWS puts on a new group, so each group starts empty.
func (b *builder) securityGroups() error {
	for _, g := range []struct {
		suffix, description string
		dst                 **ec2.SecurityGroup
	}{
		// Descriptions are immutable (changing one replaces the group): keep them constant.
		{"-alb-sg", "llm-sandbox gateway front load balancer", &b.comp.LoadBalancerSecurityGroup},
		{"-sg", "llm-sandbox gateway LiteLLM nodes", &b.comp.SecurityGroup},
	} {
		n := b.name + g.suffix
		sg, err := ec2.NewSecurityGroup(b.ctx, n, &ec2.SecurityGroupArgs{
			Description: pulumi.String(g.description),
			VpcId:       b.args.VpcID,
			// Other groups reference this one; revoking the rules first lets a destroy or
			// replacement finish instead of waiting on DependencyViolation.
			RevokeRulesOnDelete: pulumi.Bool(true),
			Tags:                nodegroup.NameTag(n),
		}, b.child())
		if err != nil {
			return fmt.Errorf("security group %s: %w", n, err)
		}
		*g.dst = sg
	}
	return nil
}

// sgRule is one security-group rule: TCP on one port, from (ingress) or to (egress) either a
// CIDR or another security group.
type sgRule struct {
	name        string
	ingress     bool
	group       pulumi.StringInput
	port        int
	cidr        string
	peer        pulumi.StringInput
	description string
}

// rules is the security-group chain and nothing more:
//
//	clients (AllowedCIDRs; internal: + VpcCIDR) -> front ALB  443 (and 80, redirect or plain HTTP)
//	front ALB -> gateway nodes                     4000
//	gateway nodes -> internal ALB                  each pool's listener port
//	gateway nodes -> anywhere                      443 (Secrets Manager, S3, PyPI, AWS APIs)
//	internal ALB -> each pool's nodes              11434
//	gateway nodes -> rate-limit cache              its port (when the gateway has one)
func (b *builder) rules() []sgRule {
	front, nodes, internal := b.comp.LoadBalancerSecurityGroup.ID(), b.comp.SecurityGroup.ID(), b.args.InternalALBSecurityGroupID
	var rules []sgRule

	type listener struct {
		key         string
		port        int
		description string
	}
	var listeners []listener
	if b.s.https {
		listeners = append(listeners,
			listener{"https", HTTPSPort, "HTTPS from clients in "},
			listener{"http", HTTPPort, "HTTP redirect to HTTPS for clients in "})
	} else {
		listeners = append(listeners, listener{"http", HTTPPort, "HTTP from clients in "})
	}
	for _, l := range listeners {
		for _, cidr := range b.s.clientCIDRs {
			rules = append(rules, sgRule{
				name: b.name + "-alb-in-" + l.key + "-" + cidrKey(cidr), ingress: true, group: front,
				port: l.port, cidr: cidr.String(), description: l.description + cidr.String(),
			})
		}
	}
	rules = append(rules,
		sgRule{name: b.name + "-alb-out-litellm", group: front, port: LiteLLMPort, peer: nodes,
			description: "LiteLLM on the gateway nodes"},
		sgRule{name: b.name + "-nodes-in-litellm", ingress: true, group: nodes, port: LiteLLMPort, peer: front,
			description: "LiteLLM from the front load balancer only"},
		sgRule{name: b.name + "-nodes-out-https", group: nodes, port: HTTPSPort, cidr: "0.0.0.0/0",
			description: "HTTPS: Secrets Manager, S3 endpoint, PyPI, AWS APIs"},
		// Ubuntu's archive (the image's <region>.ec2.archive.ubuntu.com mirrors included) is
		// served over plain HTTP only and not through the S3 gateway endpoint; the agent installs
		// python3-venv from it at first boot (the cloud image lacks it). apt checks every package
		// against the archive's signing key, so the transport needs no TLS for integrity. Only
		// this group may send to port 80 (policy rule no-egress-80, docs/security.md).
		sgRule{name: b.name + "-nodes-out-http", group: nodes, port: HTTPPort, cidr: "0.0.0.0/0",
			description: "HTTP: Ubuntu's apt archive (signed packages)"},
	)
	for _, pool := range b.s.poolNames {
		r := b.args.Pools[pool]
		rules = append(rules,
			sgRule{name: b.name + "-nodes-out-pool-" + pool, group: nodes, port: r.ListenerPort, peer: internal,
				description: "Internal load balancer listener of pool " + pool},
			sgRule{name: b.name + "-internal-in-pool-" + pool, ingress: true, group: internal, port: r.ListenerPort, peer: nodes,
				description: "Pool " + pool + " listener from the gateway nodes only"},
			sgRule{name: b.name + "-internal-out-pool-" + pool, group: internal, port: OllamaPort, peer: r.SecurityGroupID,
				description: "Ollama on the nodes of pool " + pool},
		)
	}
	return append(rules, b.cacheRules()...)
}

// cidrKey is a CIDR as a child-name part: 10.20.0.0/16 -> 10-20-0-0-16. Rules are named by
// their range, not by their place in AllowedCIDRs, so removing one range touches one rule.
func cidrKey(p netip.Prefix) string {
	return strings.NewReplacer(".", "-", "/", "-").Replace(p.String())
}

// securityGroupRules registers every rule of the chain.
func (b *builder) securityGroupRules() error {
	for _, r := range b.rules() {
		var cidr, peer pulumi.StringPtrInput
		if r.cidr != "" {
			cidr = pulumi.String(r.cidr)
		} else {
			peer = r.peer.ToStringOutput().ToStringPtrOutput()
		}
		if r.ingress {
			rule, err := vpc.NewSecurityGroupIngressRule(b.ctx, r.name, &vpc.SecurityGroupIngressRuleArgs{
				SecurityGroupId:           r.group,
				IpProtocol:                pulumi.String("tcp"),
				FromPort:                  pulumi.Int(r.port),
				ToPort:                    pulumi.Int(r.port),
				CidrIpv4:                  cidr,
				ReferencedSecurityGroupId: peer,
				Description:               pulumi.String(r.description),
				Tags:                      nodegroup.NameTag(r.name),
			}, b.child())
			if err != nil {
				return fmt.Errorf("security group rule %s: %w", r.name, err)
			}
			b.comp.IngressRules[r.name] = rule
			continue
		}
		rule, err := vpc.NewSecurityGroupEgressRule(b.ctx, r.name, &vpc.SecurityGroupEgressRuleArgs{
			SecurityGroupId:           r.group,
			IpProtocol:                pulumi.String("tcp"),
			FromPort:                  pulumi.Int(r.port),
			ToPort:                    pulumi.Int(r.port),
			CidrIpv4:                  cidr,
			ReferencedSecurityGroupId: peer,
			Description:               pulumi.String(r.description),
			Tags:                      nodegroup.NameTag(r.name),
		}, b.child())
		if err != nil {
			return fmt.Errorf("security group rule %s: %w", r.name, err)
		}
		b.comp.EgressRules[r.name] = rule
	}
	return nil
}
