// Package gateway provides the llmsandbox:gateway:Gateway component: the LiteLLM tier of a
// department's sandbox. Clients reach a front application load balancer (internet-facing with
// HTTPS, TLS 1.3 and a WAF rate limit, or internal); it forwards to an autoscaling group of
// LiteLLM nodes, which route each model to its pool through an internal load balancer with one
// listener per pool. The security groups chain the tiers and admit nothing else.
package gateway

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/acm"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/route53"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/vpc"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/wafv2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/nodegroup"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// TypeToken is the component's Pulumi type token.
const TypeToken = "llmsandbox:gateway:Gateway"

// Access modes.
const (
	// ModeInternal puts the front load balancer in the private subnets, reachable from the VPC
	// (and networks routed into it) only.
	ModeInternal = "internal"
	// ModePublic puts it in the public subnets, internet-facing, HTTPS only, behind a WAF.
	ModePublic = "public"
)

// Access is who may reach the gateway's endpoint, and how.
type Access struct {
	// Mode is ModeInternal or ModePublic. Required.
	Mode string
	// CertificateARN is the ACM certificate (in Region) of the HTTPS listener. Required when
	// Mode is public and HostedZoneID is empty. Optional otherwise: with HostedZoneID and no
	// CertificateARN the gateway requests a certificate for Hostname itself; internal with
	// neither, PlainHTTP must say so.
	CertificateARN string
	// PlainHTTP makes the endpoint plain HTTP on port 80: keys and prompts cross the VPC
	// unencrypted. Required (true) when Mode is internal with neither CertificateARN nor
	// HostedZoneID; must be false otherwise. Defaults to false.
	PlainHTTP bool
	// AllowedCIDRs are the IPv4 client ranges admitted to the listeners, host bits zero, no
	// duplicates. Required (non-empty) when public. Optional when internal: the VPC's own range
	// (VpcCIDR) is always admitted then. 0.0.0.0/0 only with AllowAnywhere.
	AllowedCIDRs []string
	// AllowAnywhere permits 0.0.0.0/0 in AllowedCIDRs: the whole internet (or, internal, every
	// network routed into the VPC). Optional. Defaults to false.
	AllowAnywhere bool
	// Hostname is the DNS name clients use, which the certificate covers and which points at
	// the front ALB (a record made by whoever runs the zone, or by the gateway when
	// HostedZoneID is set). With it, the front listener answers requests for any other host
	// name with 404. Optional: without it the endpoint is the ALB's own DNS name.
	// Required with HostedZoneID.
	Hostname string
	// HostedZoneID is the Route 53 hosted zone holding Hostname (the bare id, e.g.
	// "Z0123456789ABCDEFGHIJ"). Optional. With it the gateway creates Hostname's alias A record
	// to the front ALB and, when CertificateARN is empty, an ACM certificate for Hostname
	// validated by a DNS record in the zone, which must then be a public zone.
	HostedZoneID string
}

// PoolRoute is one model pool as the gateway routes to it.
type PoolRoute struct {
	// ListenerPort is the internal ALB listener for this pool (config's Pool.ListenerPort()):
	// 1..65535, unique across Pools. Required.
	ListenerPort int
	// TargetGroupArn is the pool's target group (Ollama, 11434; modelpool.ModelPool
	// TargetGroupArn). Required.
	TargetGroupArn pulumi.StringInput
	// SecurityGroupID is the pool's security group (modelpool.ModelPool SecurityGroupID): the
	// internal ALB may send 11434 to it. Required.
	SecurityGroupID pulumi.StringInput
	// Models are the Ollama tags the pool serves, one LiteLLM model entry each. Required; at
	// least one, no duplicates.
	Models []string
	// ContextLength is the pool's context length (config's Pool.ContextLength): LiteLLM answers
	// a chat request whose prompt is longer with 400 context_length_exceeded. Optional; 0 (the
	// default) turns the check off.
	ContextLength int
}

// Team is one team of the department: the models its keys may call and each key's limits
// (config.Team).
type Team struct {
	// Models are model names the gateway serves (of Pools). Required; at least one.
	Models []string
	// RequestsPerMinute, TokensPerMinute and ParallelPerKey are each key's limits, each at
	// least 1. Required.
	RequestsPerMinute, TokensPerMinute, ParallelPerKey int
}

// GatewayArgs configures a Gateway.
type GatewayArgs struct {
	// Department is the department's short name: a lowercase DNS label of 2..32 characters. It
	// tags the nodes and scopes the node role's lifecycle permission. Required.
	Department string
	// Region is the AWS region, e.g. "ca-central-1" (the provider's): the node's SDK region,
	// the kms:ViaService conditions and the certificate's region. Required.
	Region string
	// VpcID is the department VPC. Required.
	VpcID pulumi.StringInput
	// VpcCIDR is the VPC's IPv4 range, e.g. "10.20.0.0/16": in internal mode the clients'
	// default range, always admitted. Required when Access.Mode is internal; ignored when
	// public. Plain, because it names security-group rules.
	VpcCIDR string
	// PublicSubnetIDs are the public subnets, one per AZ: the internet-facing ALB's. Required
	// when Access.Mode is public; ignored when internal.
	PublicSubnetIDs pulumi.StringArrayInput
	// PrivateSubnetIDs are the private subnets, one per AZ: the gateway nodes', the internal
	// ALB's, and the front ALB's when internal. Required.
	PrivateSubnetIDs pulumi.StringArrayInput
	// Access is who may reach the endpoint. Required (Mode).
	Access Access
	// DeletionProtection protects both load balancers from deletion. Optional. Defaults to
	// false here; the Spec's default is true, and the caller passes it.
	DeletionProtection bool
	// InstanceType is the gateway nodes' instance type: a CPU type of the instance catalog
	// (catalog.LookupInstance), e.g. "t3.large"; its vCPUs set LiteLLM's worker count. Required.
	InstanceType string
	// MinSize is the fewest gateway nodes, at least 1; the Spec's default of 2 spreads them
	// across AZs. Required.
	MinSize int
	// MaxSize is the most gateway nodes, at least MinSize. Required.
	MaxSize int
	// Pools are the model pools keyed by pool name (a lowercase DNS label of 1..20 characters,
	// as in the Spec). Required; at least one.
	Pools map[string]PoolRoute
	// InternalALBSecurityGroupID is the internal ALB's security group, created by the caller
	// before the pools (they admit 11434 only from it, and the gateway needs their target
	// groups). It must have no inline rules: the gateway adds its rules as separate rule
	// resources. Required.
	InternalALBSecurityGroupID pulumi.StringInput
	// MasterKeySecretArn is the ARN of the Secrets Manager secret holding the LiteLLM master
	// key (keys.KeyStore MasterKeySecretArn): the node role may read that secret only, and the
	// node fetches it at boot. The value never passes through Pulumi. Required.
	MasterKeySecretArn pulumi.StringInput
	// Teams are the department's teams keyed by team name (a lowercase DNS label of at most 32
	// characters): LiteLLM accepts the registry's keys of these teams only, with their models
	// and limits. Optional. Defaults to none, which accepts no key at all.
	Teams map[string]Team
	// KeyRegistryTableArn is the key registry table (keys.KeyStore RegistryTableArn): the node
	// role may read its records one at a time (KeyRegistryActions), nothing more. Required.
	KeyRegistryTableArn pulumi.StringInput
	// MirrorBucket, when set, is the artifacts bucket that holds the stack's mirror
	// (internal/mirror), resolving once the mirror is uploaded: the nodes then install LiteLLM
	// from the Wheelhouse in it, with no package index. Optional. Defaults to nil: pip
	// installs from PyPI.
	MirrorBucket pulumi.StringInput
	// Wheelhouse is the pinned LiteLLM wheelhouse in the mirror (versions.Wheelhouse).
	// Required with MirrorBucket, ignored without.
	Wheelhouse *versions.WheelhousePin
	// AgentURL is the https URL of the node agent binary (artifacts.Bucket AgentURL). Required.
	AgentURL pulumi.StringInput
	// AgentSHA256 is the agent binary's lowercase hex SHA-256 (artifacts.Bucket AgentSHA256).
	// Required.
	AgentSHA256 string
	// ArtifactsBucketArn is the artifacts bucket; the node role may read its objects. Required.
	ArtifactsBucketArn pulumi.StringInput
	// KMSKeyArn is the department's KMS key: it encrypts the root volumes, and the node role
	// may decrypt with it through S3 and through Secrets Manager. Required.
	KMSKeyArn pulumi.StringInput
	// RateLimitCache is the cache that holds LiteLLM's rate-limit counters for every worker of
	// every node, so that a key's limits hold for the whole gateway. Optional. Defaults to none:
	// each worker then counts alone, and a key can reach its limits once per worker
	// (docs/keys.md, "Limits across the gateway").
	RateLimitCache *RateLimitCache
	// Tags are extra tags for the nodes, their volumes and the group. Name, Department and
	// llm-sandbox:tier are set by the gateway; Tags may repeat Department only with the same
	// value. Optional. Defaults to none.
	Tags map[string]string
}

// Gateway is the LiteLLM tier: load balancers, listeners, WAF, security groups and the LiteLLM
// autoscaling group.
type Gateway struct {
	pulumi.ResourceState

	// EndpointURL is https://<Access.Hostname, or the front ALB's DNS name>, or http:// for an
	// internal gateway with Access.PlainHTTP. The OpenAI-compatible base URL is EndpointURL +
	// "/v1".
	EndpointURL pulumi.StringOutput `pulumi:"endpointUrl"`
	// LoadBalancerDNSName is the front ALB's DNS name, which Access.Hostname must point at.
	LoadBalancerDNSName pulumi.StringOutput `pulumi:"loadBalancerDnsName"`
	// AutoScalingGroupName is the gateway group's generated name.
	AutoScalingGroupName pulumi.StringOutput `pulumi:"autoScalingGroupName"`
	// LoadBalancerArn is the front ALB's ARN.
	LoadBalancerArn pulumi.StringOutput `pulumi:"loadBalancerArn"`
	// InternalLoadBalancerArn is the internal ALB's ARN.
	InternalLoadBalancerArn pulumi.StringOutput `pulumi:"internalLoadBalancerArn"`

	// AMIID is the concrete Ubuntu 24.04 AMI the launch template uses.
	AMIID string
	// AMIParameter is the public SSM parameter it was resolved from.
	AMIParameter string
	// LaunchHookName is the launch lifecycle hook the node agent completes.
	LaunchHookName string

	// Role is the node role.
	Role *iam.Role
	// RolePolicy is the node role's inline policy.
	RolePolicy *iam.RolePolicy
	// KeyRegistryPolicy is the node role's read-only grant on the key registry.
	KeyRegistryPolicy *iam.RolePolicy
	// CachePolicy is the node role's grant on the rate-limit cache's AUTH token, when the
	// gateway has a cache.
	CachePolicy *iam.RolePolicy
	// SSMAttachment attaches AmazonSSMManagedInstanceCore to the role.
	SSMAttachment *iam.RolePolicyAttachment
	// InstanceProfile carries the role to the instances.
	InstanceProfile *iam.InstanceProfile
	// LoadBalancerSecurityGroup is the front ALB's security group.
	LoadBalancerSecurityGroup *ec2.SecurityGroup
	// SecurityGroup is the gateway nodes' security group.
	SecurityGroup *ec2.SecurityGroup
	// IngressRules and EgressRules are every security-group rule the gateway adds (to its two
	// groups and to the internal ALB's), keyed by child name.
	IngressRules map[string]*vpc.SecurityGroupIngressRule
	EgressRules  map[string]*vpc.SecurityGroupEgressRule
	// LoadBalancer is the front ALB.
	LoadBalancer *lb.LoadBalancer
	// TargetGroup is LiteLLM's target group behind the front ALB.
	TargetGroup *lb.TargetGroup
	// HTTPSListener is the front ALB's HTTPS listener; nil for an internal gateway without a
	// certificate.
	HTTPSListener *lb.Listener
	// HTTPListener is the front ALB's port 80 listener: a redirect to HTTPS, or, internal
	// with PlainHTTP, the plain HTTP listener.
	HTTPListener *lb.Listener
	// ListenerRules are the client listener's rules (the HTTPS listener's, or the plain HTTP
	// listener's), keyed by child name: the inference paths forwarded to LiteLLM, and with
	// Access.Hostname, the 403 for other paths of that name and the 404 for other names.
	// Every other request gets the listener's default action, a 403.
	ListenerRules map[string]*lb.ListenerRule
	// Certificate is the ACM certificate the gateway requested, its DNS validation record and
	// the validation that waits for ACM to issue it; nil unless Access.HostedZoneID is set and
	// Access.CertificateARN is not.
	Certificate                 *acm.Certificate
	CertificateValidationRecord *route53.Record
	CertificateValidation       *acm.CertificateValidation
	// DNSRecord is Access.Hostname's alias record to the front ALB; nil without
	// Access.HostedZoneID.
	DNSRecord *route53.Record
	// WebACL and WebACLAssociation are the WAF rate limit; nil unless public.
	WebACL            *wafv2.WebAcl
	WebACLAssociation *wafv2.WebAclAssociation
	// InternalLoadBalancer is the internal ALB in front of the pools.
	InternalLoadBalancer *lb.LoadBalancer
	// PoolListeners are the internal ALB's listeners keyed by pool name.
	PoolListeners map[string]*lb.Listener
	// LaunchTemplate is the gateway nodes' launch template.
	LaunchTemplate *ec2.LaunchTemplate
	// Group is the gateway's autoscaling group.
	Group *autoscaling.Group
	// ScalingPolicy is the target-tracking policy.
	ScalingPolicy *autoscaling.Policy
}

// NewGateway validates args, then creates the gateway's security groups and rules, the front
// ALB with its listeners, target group, (public) WAF and (with a hosted zone) DNS record and
// certificate, the internal ALB with one listener per
// pool, and the LiteLLM nodes: role, launch template, autoscaling group and scaling policy.
func NewGateway(ctx *pulumi.Context, name string, args *GatewayArgs, opts ...pulumi.ResourceOption) (*Gateway, error) {
	s, err := validate(name, args)
	if err != nil {
		return nil, err
	}

	comp := &Gateway{
		LaunchHookName: nodegroup.LaunchHookName,
		IngressRules:   map[string]*vpc.SecurityGroupIngressRule{},
		EgressRules:    map[string]*vpc.SecurityGroupEgressRule{},
		PoolListeners:  map[string]*lb.Listener{},
		ListenerRules:  map[string]*lb.ListenerRule{},
	}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("gateway %q: register component: %w", name, err)
	}
	b := &builder{ctx: ctx, name: name, args: args, s: s, comp: comp}
	if err := b.build(); err != nil {
		return nil, fmt.Errorf("gateway %q: %w", name, err)
	}

	scheme := "https://"
	if !s.https {
		scheme = "http://"
	}
	comp.LoadBalancerDNSName = comp.LoadBalancer.DnsName
	comp.EndpointURL = pulumi.Sprintf("%s%s", scheme, comp.LoadBalancer.DnsName)
	if args.Access.Hostname != "" {
		comp.EndpointURL = pulumi.Sprintf("%s%s", scheme, args.Access.Hostname).ToStringOutput()
	}
	comp.AutoScalingGroupName = comp.Group.Name
	comp.LoadBalancerArn = comp.LoadBalancer.Arn
	comp.InternalLoadBalancerArn = comp.InternalLoadBalancer.Arn
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"endpointUrl":             comp.EndpointURL,
		"loadBalancerDnsName":     comp.LoadBalancerDNSName,
		"autoScalingGroupName":    comp.AutoScalingGroupName,
		"loadBalancerArn":         comp.LoadBalancerArn,
		"internalLoadBalancerArn": comp.InternalLoadBalancerArn,
	}); err != nil {
		return nil, fmt.Errorf("gateway %q: register outputs: %w", name, err)
	}
	return comp, nil
}

// builder registers the children of one Gateway.
type builder struct {
	ctx      *pulumi.Context
	name     string
	args     *GatewayArgs
	s        *settings
	comp     *Gateway
	nodeRole *nodegroup.NodeRole
}

// build registers every child in dependency order.
func (b *builder) build() error {
	for _, step := range []func() error{
		b.resolveAMI,
		b.securityGroups,
		b.securityGroupRules,
		b.targetGroup,
		b.frontLoadBalancer,
		b.dnsRecord,
		b.certificate,
		b.frontListeners,
		b.waf,
		b.internalLoadBalancer,
		b.role,
		b.keyRegistryAccess,
		b.cacheAccess,
		b.launchTemplate,
		b.group,
		b.scaling,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// child returns the option every child gets: the component as parent.
func (b *builder) child() pulumi.ResourceOption {
	return pulumi.Parent(b.comp)
}
