package gateway

import (
	"fmt"
	"strconv"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/wafv2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/nodegroup"
	"github.com/llm-sandbox/llm-sandbox/internal/frontdoor"
)

// Ports.
const (
	// LiteLLMPort is LiteLLM's listening port on the gateway nodes and its target group's port.
	LiteLLMPort = 4000
	// OllamaPort is the pools' Ollama port: the internal ALB's only way out.
	OllamaPort = 11434
	// HTTPSPort and HTTPPort are the front ALB's listener ports.
	HTTPSPort = 443
	HTTPPort  = 80
)

// TLSPolicy is the HTTPS listener's security policy. Without one, a listener created through
// the API gets ELBSecurityPolicy-2016-08, which still accepts TLS 1.0. This one negotiates TLS
// 1.3, or TLS 1.2 with forward-secret AEAD ciphers only, with hybrid post-quantum key exchange
// (ML-KEM) for clients that offer it; it is what the ELB console now picks and what AWS
// recommends (Elastic Load Balancing User Guide, "Security policies for your Application Load
// Balancer"). ELBSecurityPolicy-TLS13-1-3-PQ-2025-09 would refuse TLS 1.2 altogether, which
// older corporate proxies and clients still need.
const TLSPolicy = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"

// HealthCheckPath is LiteLLM's liveness endpoint, spelled so. It needs no key and calls no
// model; /health would call every model with the master key on every check (LiteLLM docs,
// "Health Checks", https://docs.litellm.ai/docs/proxy/health).
const HealthCheckPath = "/health/liveliness"

// The WAF's rate-based rule.
const (
	// RateLimitPerIP is how many requests one client address may send per RateLimitWindowSeconds
	// before the WAF blocks it until its rate falls again: 2000 per 5 minutes, about 6.7 per
	// second sustained. Each chat request is a multi-second generation, so this is several
	// times what a department's people behind one NAT address send, while a script looping on
	// the endpoint, or guessing keys, is stopped within the window. It guards the gateway, not
	// fairness between users: per-key limits belong to LiteLLM.
	RateLimitPerIP = 2000
	// RateLimitWindowSeconds is how far back the WAF counts (it checks about every 10 s).
	RateLimitWindowSeconds = 300
)

// loadBalancerArgs are the settings both load balancers share: strict HTTP parsing, the idle
// timeout of their place in the chain, and deletion protection.
func (b *builder) loadBalancerArgs(internal bool, subnets pulumi.StringArrayInput, sg pulumi.StringInput, idle int) *lb.LoadBalancerArgs {
	return &lb.LoadBalancerArgs{
		LoadBalancerType: pulumi.String("application"),
		Internal:         pulumi.Bool(internal),
		Subnets:          subnets,
		SecurityGroups:   pulumi.StringArray{sg},
		IdleTimeout:      pulumi.Int(idle),
		// Requests with header names that are not valid HTTP are dropped, not passed on to
		// LiteLLM's parser.
		DropInvalidHeaderFields: pulumi.Bool(true),
		// Request smuggling: refuse every request that does not follow RFC 7230, not only the
		// ones the ALB classes as severe.
		DesyncMitigationMode: pulumi.String("strictest"),
		// With a WAF, a request the WAF cannot inspect is refused, never let through.
		EnableWafFailOpen: pulumi.Bool(false),
		// HTTP/2 from clients; targets get HTTP/1.1 (the target groups say so).
		EnableHttp2:              pulumi.Bool(true),
		EnableDeletionProtection: pulumi.Bool(b.args.DeletionProtection),
		// No access logs: they would record every client's request line and address. Nothing
		// on the request path stores what users send.
	}
}

// targetGroup is LiteLLM's target group behind the front ALB.
func (b *builder) targetGroup() error {
	tg, err := nodegroup.NewTargetGroup(b.ctx, b.name, nodegroup.TargetGroupArgs{
		NamePrefix:                 "litllm",
		VpcID:                      b.args.VpcID,
		Port:                       LiteLLMPort,
		HealthCheckPath:            HealthCheckPath,
		DeregistrationDelaySeconds: DeregistrationDelaySeconds,
	}, b.child())
	if err != nil {
		return err
	}
	b.comp.TargetGroup = tg
	return nil
}

// frontLoadBalancer is the ALB clients reach: internet-facing in the public subnets, or
// internal in the private subnets.
func (b *builder) frontLoadBalancer() error {
	subnets := b.args.PrivateSubnetIDs
	if b.s.public {
		subnets = b.args.PublicSubnetIDs
	}
	args := b.loadBalancerArgs(!b.s.public, subnets, b.comp.LoadBalancerSecurityGroup.ID(), FrontIdleTimeoutSeconds)
	// A load balancer name has at most 32 characters; a generated one from a 6-character
	// prefix always fits.
	args.NamePrefix = pulumi.String("llmgw")
	args.Tags = nodegroup.NameTag(b.name + "-alb")
	alb, err := lb.NewLoadBalancer(b.ctx, b.name+"-alb", args, b.child())
	if err != nil {
		return fmt.Errorf("front load balancer: %w", err)
	}
	b.comp.LoadBalancer = alb
	return nil
}

// frontListeners are HTTPS on 443 with the certificate and port 80 redirecting to it, or,
// internal with Access.PlainHTTP, plain HTTP on 80. The client listener (HTTPS, or the plain
// one) forwards only the inference paths; its default action answers everything else 403
// (clientListenerRules).
func (b *builder) frontListeners() error {
	def := frontdoor.Design(b.args.Access.Hostname).Default
	denied := lb.ListenerDefaultActionArray{&lb.ListenerDefaultActionArgs{
		Type: pulumi.String("fixed-response"),
		FixedResponse: &lb.ListenerDefaultActionFixedResponseArgs{
			StatusCode:  pulumi.String(strconv.Itoa(def.Status)),
			ContentType: pulumi.String(frontdoor.ContentType),
			MessageBody: pulumi.String(def.Body),
		},
	}}
	if !b.s.https {
		l, err := lb.NewListener(b.ctx, b.name+"-http", &lb.ListenerArgs{
			LoadBalancerArn: b.comp.LoadBalancer.Arn,
			Port:            pulumi.Int(HTTPPort),
			Protocol:        pulumi.String("HTTP"),
			DefaultActions:  denied,
			Tags:            nodegroup.NameTag(b.name + "-http"),
		}, b.child())
		if err != nil {
			return fmt.Errorf("HTTP listener: %w", err)
		}
		b.comp.HTTPListener = l
		return b.clientListenerRules(l)
	}

	https, err := lb.NewListener(b.ctx, b.name+"-https", &lb.ListenerArgs{
		LoadBalancerArn: b.comp.LoadBalancer.Arn,
		Port:            pulumi.Int(HTTPSPort),
		Protocol:        pulumi.String("HTTPS"),
		SslPolicy:       pulumi.String(TLSPolicy),
		CertificateArn:  b.certificateARN(),
		DefaultActions:  denied,
		Tags:            nodegroup.NameTag(b.name + "-https"),
	}, b.child())
	if err != nil {
		return fmt.Errorf("HTTPS listener: %w", err)
	}
	b.comp.HTTPSListener = https
	if err := b.clientListenerRules(https); err != nil {
		return err
	}

	redirect, err := lb.NewListener(b.ctx, b.name+"-http", &lb.ListenerArgs{
		LoadBalancerArn: b.comp.LoadBalancer.Arn,
		Port:            pulumi.Int(HTTPPort),
		Protocol:        pulumi.String("HTTP"),
		// Port 80 never forwards: it only tells clients where HTTPS is. A client that sent a
		// key over it has already leaked it; the redirect at least stops the next one.
		DefaultActions: lb.ListenerDefaultActionArray{&lb.ListenerDefaultActionArgs{
			Type: pulumi.String("redirect"),
			Redirect: &lb.ListenerDefaultActionRedirectArgs{
				Protocol:   pulumi.String("HTTPS"),
				Port:       pulumi.String(strconv.Itoa(HTTPSPort)),
				StatusCode: pulumi.String("HTTP_301"),
			},
		}},
		Tags: nodegroup.NameTag(b.name + "-http"),
	}, b.child())
	if err != nil {
		return fmt.Errorf("HTTP redirect listener: %w", err)
	}
	b.comp.HTTPListener = redirect
	return nil
}

// clientListenerRules gives the client listener the rules of frontdoor.Design: LiteLLM sees
// only the inference paths a client needs (exact paths, so no other spelling of a path gets
// through), under the stack's hostname when it has one; its management routes (/config/*,
// /key/*, /user/*, /prompts/*, ...) are answered 403 by the load balancer, and any other host
// name 404. Each rule is named for its role, never by position.
func (b *builder) clientListenerRules(l *lb.Listener) error {
	for _, r := range frontdoor.Design(b.args.Access.Hostname).Rules {
		var conds lb.ListenerRuleConditionArray
		if r.Hosts != nil {
			conds = append(conds, &lb.ListenerRuleConditionArgs{
				HostHeader: &lb.ListenerRuleConditionHostHeaderArgs{Values: pulumi.ToStringArray(r.Hosts)},
			})
		}
		if r.Paths != nil {
			conds = append(conds, &lb.ListenerRuleConditionArgs{
				PathPattern: &lb.ListenerRuleConditionPathPatternArgs{Values: pulumi.ToStringArray(r.Paths)},
			})
		}
		action := &lb.ListenerRuleActionArgs{Type: pulumi.String("forward"), TargetGroupArn: b.comp.TargetGroup.Arn}
		if !r.Action.Forward {
			action = &lb.ListenerRuleActionArgs{
				Type: pulumi.String("fixed-response"),
				FixedResponse: &lb.ListenerRuleActionFixedResponseArgs{
					StatusCode:  pulumi.String(strconv.Itoa(r.Action.Status)),
					ContentType: pulumi.String(frontdoor.ContentType),
					MessageBody: pulumi.String(r.Action.Body),
				},
			}
		}
		n := b.name + "-front-" + r.Name
		rule, err := lb.NewListenerRule(b.ctx, n, &lb.ListenerRuleArgs{
			ListenerArn: l.Arn,
			Priority:    pulumi.Int(r.Priority),
			Conditions:  conds,
			Actions:     lb.ListenerRuleActionArray{action},
			Tags:        nodegroup.NameTag(n),
		}, b.child())
		if err != nil {
			return fmt.Errorf("listener rule %s: %w", r.Name, err)
		}
		b.comp.ListenerRules[n] = rule
	}
	return nil
}

// waf puts a rate limit per client address in front of a public gateway.
func (b *builder) waf() error {
	if !b.s.public {
		return nil
	}
	n := b.name + "-waf"
	acl, err := wafv2.NewWebAcl(b.ctx, n, &wafv2.WebAclArgs{
		Description:   pulumi.Sprintf("llm-sandbox gateway of %s: rate limit per client address", b.args.Department),
		Scope:         pulumi.String("REGIONAL"),
		DefaultAction: &wafv2.WebAclDefaultActionArgs{Allow: &wafv2.WebAclDefaultActionAllowArgs{}},
		Rules: wafv2.WebAclRuleArray{&wafv2.WebAclRuleArgs{
			Name:     pulumi.String("rate-limit-per-ip"),
			Priority: pulumi.Int(0),
			Action:   &wafv2.WebAclRuleActionArgs{Block: &wafv2.WebAclRuleActionBlockArgs{}},
			Statement: &wafv2.WebAclRuleStatementArgs{
				RateBasedStatement: &wafv2.WebAclRuleStatementRateBasedStatementArgs{
					// The address the connection comes from, not X-Forwarded-For, which any
					// client can set.
					AggregateKeyType:    pulumi.String("IP"),
					Limit:               pulumi.Int(RateLimitPerIP),
					EvaluationWindowSec: pulumi.Int(RateLimitWindowSeconds),
				},
			},
			// Metrics yes, sampled requests no: a sample stores whole requests, prompts
			// included, for the console to show.
			VisibilityConfig: &wafv2.WebAclRuleVisibilityConfigArgs{
				CloudwatchMetricsEnabled: pulumi.Bool(true),
				MetricName:               pulumi.String(n + "-rate-limit-per-ip"),
				SampledRequestsEnabled:   pulumi.Bool(false),
			},
		}},
		VisibilityConfig: &wafv2.WebAclVisibilityConfigArgs{
			CloudwatchMetricsEnabled: pulumi.Bool(true),
			MetricName:               pulumi.String(n),
			SampledRequestsEnabled:   pulumi.Bool(false),
		},
		Tags: nodegroup.NameTag(n),
	}, b.child())
	if err != nil {
		return fmt.Errorf("web ACL: %w", err)
	}
	b.comp.WebACL = acl

	assoc, err := wafv2.NewWebAclAssociation(b.ctx, n+"-alb", &wafv2.WebAclAssociationArgs{
		ResourceArn: b.comp.LoadBalancer.Arn,
		WebAclArn:   acl.Arn,
	}, b.child())
	if err != nil {
		return fmt.Errorf("web ACL association: %w", err)
	}
	b.comp.WebACLAssociation = assoc
	return nil
}

// internalLoadBalancer is the ALB between the gateway nodes and the pools, with one HTTP
// listener per pool forwarding to the pool's target group.
func (b *builder) internalLoadBalancer() error {
	args := b.loadBalancerArgs(true, b.args.PrivateSubnetIDs, b.args.InternalALBSecurityGroupID, InternalIdleTimeoutSeconds)
	args.NamePrefix = pulumi.String("llmin")
	args.Tags = nodegroup.NameTag(b.name + "-internal")
	alb, err := lb.NewLoadBalancer(b.ctx, b.name+"-internal", args, b.child())
	if err != nil {
		return fmt.Errorf("internal load balancer: %w", err)
	}
	b.comp.InternalLoadBalancer = alb

	for _, pool := range b.s.poolNames {
		r := b.args.Pools[pool]
		n := b.name + "-pool-" + pool
		l, err := lb.NewListener(b.ctx, n, &lb.ListenerArgs{
			LoadBalancerArn: alb.Arn,
			Port:            pulumi.Int(r.ListenerPort),
			// Plain HTTP inside the VPC: the pools' Ollama speaks nothing else, and the hop is
			// fenced by security groups at both ends.
			Protocol: pulumi.String("HTTP"),
			DefaultActions: lb.ListenerDefaultActionArray{&lb.ListenerDefaultActionArgs{
				Type:           pulumi.String("forward"),
				TargetGroupArn: r.TargetGroupArn,
			}},
			Tags: nodegroup.NameTag(n),
		}, b.child())
		if err != nil {
			return fmt.Errorf("internal listener for pool %s: %w", pool, err)
		}
		b.comp.PoolListeners[pool] = l
	}
	return nil
}
