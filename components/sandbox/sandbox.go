// Package sandbox composes one department's LLM sandbox from its Spec: the AWS provider with the
// department's region and tags, the KMS key and master-key secret, and the network. Later
// components (artifacts bucket, model pools, gateway) join here; no other component imports
// another.
package sandbox

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/keys"
	"github.com/llm-sandbox/llm-sandbox/components/network"
	"github.com/llm-sandbox/llm-sandbox/config"
)

// SandboxArgs configure a Sandbox.
type SandboxArgs struct {
	// Spec is the department's validated Spec (config.Parse or config.Load). Required.
	Spec *config.Spec
}

// Sandbox is one department's sandbox.
type Sandbox struct {
	pulumi.ResourceState

	// VpcID is the department VPC.
	VpcID pulumi.IDOutput `pulumi:"vpcId"`
	// PrivateSubnetIDs are the subnets every instance runs in, in AZ order.
	PrivateSubnetIDs pulumi.StringArrayOutput `pulumi:"privateSubnetIds"`
	// KeyArn is the department's KMS key.
	KeyArn pulumi.StringOutput `pulumi:"keyArn"`
	// MasterKeySecretArn is the ARN of the secret that holds the LiteLLM master key (the ARN
	// only; the value never leaves Secrets Manager through Pulumi).
	MasterKeySecretArn pulumi.StringOutput `pulumi:"masterKeySecretArn"`

	// Provider is the AWS provider every child uses: the stack's region and tags.
	Provider *aws.Provider
	// Keys is the department's KMS key and secrets.
	Keys *keys.KeyStore
	// Network is the department's VPC.
	Network *network.Network
}

// Tags returns the tags every resource of the department carries: the project's own
// (Department, ManagedBy, Stack) and the stack file's.
func Tags(spec *config.Spec) map[string]string {
	tags := map[string]string{}
	for k, v := range spec.Tags {
		tags[k] = v
	}
	tags["Department"] = spec.Department
	tags["ManagedBy"] = "llm-sandbox"
	tags["Stack"] = spec.Stack
	return tags
}

// NewSandbox builds the department's sandbox from its Spec.
func NewSandbox(ctx *pulumi.Context, name string, args *SandboxArgs, opts ...pulumi.ResourceOption) (*Sandbox, error) {
	if args == nil || args.Spec == nil {
		return nil, fmt.Errorf("sandbox %q: Spec is required", name)
	}
	spec := args.Spec

	comp := &Sandbox{}
	if err := ctx.RegisterComponentResource("llmsandbox:index:Sandbox", name, comp, opts...); err != nil {
		return nil, err
	}

	// An explicit provider pins the region to the Spec's and puts the department's tags on every
	// taggable resource, whatever the engine's default provider is configured with.
	provider, err := aws.NewProvider(ctx, name+"-aws", &aws.ProviderArgs{
		Region:      pulumi.String(spec.Region),
		DefaultTags: &aws.ProviderDefaultTagsArgs{Tags: pulumi.ToStringMap(Tags(spec))},
	}, pulumi.Parent(comp))
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: provider: %w", name, err)
	}
	child := []pulumi.ResourceOption{pulumi.Parent(comp), pulumi.Provider(provider)}

	keyStore, err := keys.NewKeyStore(ctx, name+"-keys", &keys.KeyStoreArgs{
		Department: spec.Department,
		Region:     spec.Region,
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: keys: %w", name, err)
	}

	net, err := network.NewNetwork(ctx, name+"-network", &network.NetworkArgs{
		CIDR:             spec.Network.CIDR.String(),
		AZCount:          spec.Network.AZCount,
		NATStrategy:      network.NATStrategy(spec.Network.NAT),
		Region:           spec.Region,
		FlowLogKMSKeyArn: keyStore.KeyArn,
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: network: %w", name, err)
	}

	comp.Provider, comp.Keys, comp.Network = provider, keyStore, net
	comp.VpcID = net.VpcID
	comp.PrivateSubnetIDs = net.PrivateSubnetIDs
	comp.KeyArn = keyStore.KeyArn
	comp.MasterKeySecretArn = keyStore.MasterKeySecretArn
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"vpcId":              comp.VpcID,
		"privateSubnetIds":   comp.PrivateSubnetIDs,
		"keyArn":             comp.KeyArn,
		"masterKeySecretArn": comp.MasterKeySecretArn,
	}); err != nil {
		return nil, err
	}
	return comp, nil
}
