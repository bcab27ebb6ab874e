// Package sandbox composes one department's LLM sandbox from its Spec: the AWS provider with the
// department's region and tags, the KMS key and master-key secret, the network, the artifacts
// bucket with the node agent, and one model pool per pool of the Spec. The gateway joins here
// later; no other component imports another.
package sandbox

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/artifacts"
	"github.com/llm-sandbox/llm-sandbox/components/keys"
	"github.com/llm-sandbox/llm-sandbox/components/modelpool"
	"github.com/llm-sandbox/llm-sandbox/components/network"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// SandboxArgs configure a Sandbox.
type SandboxArgs struct {
	// Spec is the department's validated Spec (config.Parse or config.Load). Required.
	Spec *config.Spec
	// AgentPath is the built node agent (linux/amd64) to upload to the artifacts bucket.
	// Required.
	AgentPath string
	// AgentSHA256 is its lowercase hex SHA-256. Required.
	AgentSHA256 string
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
	// Artifacts is the bucket that holds the node agent.
	Artifacts *artifacts.Bucket
	// Pools are the model pools, keyed by pool name.
	Pools map[string]*modelpool.ModelPool
	// PoolGroupNames maps each pool name to its autoscaling group's name.
	PoolGroupNames pulumi.StringMapOutput `pulumi:"poolGroupNames"`
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

	bucket, err := artifacts.NewBucket(ctx, name+"-artifacts", &artifacts.BucketArgs{
		Department:   spec.Department,
		KMSKeyArn:    keyStore.KeyArn,
		S3EndpointID: net.S3EndpointID,
		AgentPath:    args.AgentPath,
		AgentSHA256:  args.AgentSHA256,
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: artifacts: %w", name, err)
	}

	pools := map[string]*modelpool.ModelPool{}
	groupNames := pulumi.StringMap{}
	for _, poolName := range spec.PoolNames() {
		pool, err := modelpool.NewModelPool(ctx, name+"-"+poolName, poolArgs(spec, spec.Pools[poolName], net, keyStore, bucket), child...)
		if err != nil {
			return nil, fmt.Errorf("sandbox %q: pool %s: %w", name, poolName, err)
		}
		pools[poolName] = pool
		groupNames[poolName] = pool.AutoScalingGroupName
	}

	comp.Provider, comp.Keys, comp.Network, comp.Artifacts, comp.Pools = provider, keyStore, net, bucket, pools
	comp.VpcID = net.VpcID
	comp.PrivateSubnetIDs = net.PrivateSubnetIDs
	comp.KeyArn = keyStore.KeyArn
	comp.MasterKeySecretArn = keyStore.MasterKeySecretArn
	comp.PoolGroupNames = groupNames.ToStringMapOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"vpcId":              comp.VpcID,
		"privateSubnetIds":   comp.PrivateSubnetIDs,
		"keyArn":             comp.KeyArn,
		"masterKeySecretArn": comp.MasterKeySecretArn,
		"poolGroupNames":     comp.PoolGroupNames,
	}); err != nil {
		return nil, err
	}
	return comp, nil
}

// poolArgs maps one pool of the Spec onto the ModelPool component's arguments.
func poolArgs(spec *config.Spec, pool config.Pool, net *network.Network, keyStore *keys.KeyStore, bucket *artifacts.Bucket) *modelpool.ModelPoolArgs {
	inst, _ := config.LookupInstance(pool.InstanceType) // validated by config
	args := &modelpool.ModelPoolArgs{
		Department:         spec.Department,
		Pool:               pool.Name,
		Region:             spec.Region,
		InstanceType:       pool.InstanceType,
		GPU:                inst.HasGPU(),
		MinSize:            pool.MinSize,
		MaxSize:            pool.MaxSize,
		Spot:               pool.Spot,
		WarmPool:           pool.WarmPool,
		Models:             pool.Models,
		Parallel:           pool.Parallel,
		ContextLength:      pool.ContextLength,
		OllamaVersion:      versions.Ollama.Version,
		OllamaRelease:      OllamaRelease(),
		AgentURL:           bucket.AgentURL,
		AgentSHA256:        bucket.AgentSHA256,
		ArtifactsBucketArn: bucket.BucketArn,
		KMSKeyArn:          keyStore.KeyArn,
		VpcID:              net.VpcID.ToStringOutput(),
		SubnetIDs:          net.PrivateSubnetIDs,
		Tags:               Tags(spec),
	}
	if pool.Spot {
		args.SpotInstanceTypes = pool.SpotInstanceTypes()
	}
	if s := pool.Schedule; s != nil {
		args.Schedule = &modelpool.Schedule{Timezone: s.Timezone, Days: s.Days, Start: s.Start, Stop: s.Stop}
	}
	return args
}

// OllamaRelease is the pinned Ollama release as the node agent downloads it.
func OllamaRelease() node.Artifact {
	return node.Artifact{URL: versions.Ollama.URL, SHA256: versions.Ollama.SHA256, SumsURL: versions.Ollama.SumsURL}
}
