// Package sandbox composes one department's LLM sandbox from its Spec: the AWS provider with the
// department's region and tags, the KMS key and master-key secret, the network, the artifacts
// bucket with the node agent, one model pool per pool of the Spec, and the gateway in front of
// them. No other component imports another.
package sandbox

import (
	"context"
	"fmt"
	"slices"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/artifacts"
	"github.com/llm-sandbox/llm-sandbox/components/cache"
	"github.com/llm-sandbox/llm-sandbox/components/gateway"
	"github.com/llm-sandbox/llm-sandbox/components/keys"
	"github.com/llm-sandbox/llm-sandbox/components/modelpool"
	"github.com/llm-sandbox/llm-sandbox/components/network"
	"github.com/llm-sandbox/llm-sandbox/components/observability"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
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
	// OllamaRelease is the Ollama release the pools install. Optional. Defaults to
	// versions.Ollama, the project's pin.
	OllamaRelease *versions.Release
	// RenderUnpinnedOllama renders an OllamaRelease without a SHA-256 instead of refusing it
	// (modelpool.ModelPoolArgs.RenderUnpinnedOllama). Optional. Defaults to false; only the
	// offline plan sets it.
	RenderUnpinnedOllama bool
	// ModelPins pins the manifests of the models a mirrored stack serves
	// (Spec.Artifacts.Mirror). Optional. Defaults to versions.ModelPins, the project's pins.
	ModelPins map[string]versions.ModelPin
	// Wheelhouse is the LiteLLM wheelhouse a mirrored stack's gateway nodes install from.
	// Optional. Defaults to versions.Wheelhouse, the project's pin.
	Wheelhouse *versions.WheelhousePin
	// UploadMirror puts every object of set into the artifacts bucket named bucket and returns
	// once they are all there (internal/mirror Fetch and Upload). It runs when the bucket's
	// name is known, only when Spec.Artifacts.Mirror is set and the engine is not previewing;
	// the nodes' launch templates wait for it, so no node boots before its mirror is in place.
	// Optional. Defaults to nil: nothing is uploaded, which suits only an offline plan (the
	// program always sets it for an update).
	UploadMirror func(ctx context.Context, bucket string, set mirror.Set) error
}

// Sandbox is one department's sandbox.
type Sandbox struct {
	pulumi.ResourceState

	// VpcID is the department VPC.
	VpcID pulumi.IDOutput `pulumi:"vpcId"`
	// PrivateSubnetIDs are the subnets every instance runs in, in AZ order.
	PrivateSubnetIDs pulumi.StringArrayOutput `pulumi:"privateSubnetIds"`
	// EndpointURL is the department's OpenAI-compatible endpoint (its base URL is EndpointURL
	// + "/v1").
	EndpointURL pulumi.StringOutput `pulumi:"endpointUrl"`
	// LoadBalancerDNSName is the front load balancer's DNS name (the target of the access
	// hostname's CNAME).
	LoadBalancerDNSName pulumi.StringOutput `pulumi:"loadBalancerDnsName"`
	// GatewayGroupName is the gateway's autoscaling group.
	GatewayGroupName pulumi.StringOutput `pulumi:"gatewayGroupName"`
	// KeyArn is the department's KMS key.
	KeyArn pulumi.StringOutput `pulumi:"keyArn"`
	// MasterKeySecretArn is the ARN of the secret that holds the LiteLLM master key (the ARN
	// only; the value never leaves Secrets Manager through Pulumi).
	MasterKeySecretArn pulumi.StringOutput `pulumi:"masterKeySecretArn"`
	// DashboardURL opens the department's CloudWatch dashboard in the AWS console.
	DashboardURL pulumi.StringOutput `pulumi:"dashboardUrl"`
	// AlarmTopicArn is the SNS topic the department's alarms notify.
	AlarmTopicArn pulumi.StringOutput `pulumi:"alarmTopicArn"`

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
	// InternalALBSecurityGroup is the internal load balancer's group: the only source the pools
	// admit to Ollama's port.
	InternalALBSecurityGroup *ec2.SecurityGroup
	// Gateway is the LiteLLM tier and its load balancers.
	Gateway *gateway.Gateway
	// Cache holds the gateway's rate-limit counters (SharedLimits); nil without it.
	Cache *cache.RateLimitCache
	// Observability is the dashboard, the alarms and their topic.
	Observability *observability.Observability
	// Mirror is what the artifacts bucket holds for the nodes besides the agent
	// (Spec.Artifacts.Mirror); nil when the nodes fetch from the internet.
	Mirror *mirror.Set
}

// TypeToken is the component's Pulumi type token, llmsandbox:<package>:<Type>.
const TypeToken = "llmsandbox:sandbox:Sandbox"

// FormerTypeToken is the type token the component was registered with before it was named
// after its package. It stays an alias, so stacks deployed under it keep their resources (the
// engine derives every child's aliases from it) instead of replacing every one.
const FormerTypeToken = "llmsandbox:index:Sandbox"

// SharedLimits reports whether the stack's gateway gets a rate-limit cache: whenever it can
// run more than one LiteLLM process, more than one node (gateway.maxSize above 1) or more than
// one worker on a node (one per vCPU). Without the cache each process counts a key's limits
// alone, and a key could reach them once per process (docs/keys.md).
func SharedLimits(spec *config.Spec) bool {
	inst, _ := catalog.LookupInstance(spec.Gateway.InstanceType) // validated by config
	return spec.Gateway.MaxSize > 1 || inst.GatewayWorkers() > 1
}

// Tags returns the tags every resource of the department carries: the project's own
// (Department, ManagedBy, Stack) and the stack file's.
func Tags(spec *config.Spec) map[string]string {
	tags := map[string]string{}
	for k, v := range spec.Tags {
		tags[k] = v
	}
	tags[catalog.TagDepartment] = spec.Department
	tags[catalog.TagManagedBy] = "llm-sandbox"
	tags[catalog.TagStack] = spec.Stack
	return tags
}

// NewSandbox builds the department's sandbox from its Spec.
func NewSandbox(ctx *pulumi.Context, name string, args *SandboxArgs, opts ...pulumi.ResourceOption) (*Sandbox, error) {
	if args == nil || args.Spec == nil {
		return nil, fmt.Errorf("sandbox %q: Spec is required", name)
	}
	spec := args.Spec

	comp := &Sandbox{}
	opts = append(slices.Clip(opts), pulumi.Aliases([]pulumi.Alias{{Type: pulumi.String(FormerTypeToken)}}))
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
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
		// The registry holds who has which key: the stack's one deletion-protection setting
		// keeps it from a mistaken destroy, like the load balancers.
		RegistryDeletionProtection: spec.Gateway.DeletionProtection,
		RateLimitCacheToken:        SharedLimits(spec),
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
		// Who fetched which agent is kept as long as the flow logs that show the connection.
		AccessLogRetentionDays: net.FlowLogRetentionDays,
		// The bucket is never empty (the agent object is retained on delete), so a stack that
		// may be destroyed must let destroy empty it. It holds only what a deploy rebuilds;
		// gateway.deletionProtection says whether the stack may be destroyed at all.
		ForceDestroy: !spec.Gateway.DeletionProtection,
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: artifacts: %w", name, err)
	}

	mirrorBucket, mirrorSet, err := mirrorOf(ctx, args, bucket)
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: artifacts.mirror: %w", name, err)
	}
	comp.Mirror = mirrorSet

	// The internal load balancer's group is made here, before both its users: the pools admit
	// Ollama's port only from it, and the gateway needs the pools' target groups; the gateway
	// adds its rules. No inline rules, so the provider also removes AWS's default allow-all
	// egress.
	internalSG, err := ec2.NewSecurityGroup(ctx, name+"-internal-alb-sg", &ec2.SecurityGroupArgs{
		VpcId:       net.VpcID,
		Description: pulumi.String("llm-sandbox internal load balancer: gateway to model pools"),
		Tags:        pulumi.StringMap{"Name": pulumi.String(name + "-internal-alb")},
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: internal load balancer security group: %w", name, err)
	}

	pools := map[string]*modelpool.ModelPool{}
	groupNames := pulumi.StringMap{}
	routes := map[string]gateway.PoolRoute{}
	for _, poolName := range spec.PoolNames() {
		p := spec.Pools[poolName]
		args := poolArgs(args, spec, p, net, keyStore, bucket)
		if mirrorBucket != nil {
			args.MirrorBucket, args.ModelPins = mirrorBucket, mirrorSet.Pins()
		}
		args.SourceSecurityGroupID = internalSG.ID().ToStringOutput()
		pool, err := modelpool.NewModelPool(ctx, name+"-"+poolName, args, child...)
		if err != nil {
			return nil, fmt.Errorf("sandbox %q: pool %s: %w", name, poolName, err)
		}
		pools[poolName] = pool
		groupNames[poolName] = pool.AutoScalingGroupName
		routes[poolName] = gateway.PoolRoute{
			ListenerPort:    p.ListenerPort(),
			TargetGroupArn:  pool.TargetGroupArn,
			SecurityGroupID: pool.SecurityGroupID.ToStringOutput(),
			Models:          p.Models,
			ContextLength:   p.ContextLength,
		}
	}

	var limits *gateway.RateLimitCache
	if SharedLimits(spec) {
		c, err := cache.NewRateLimitCache(ctx, name+"-cache", &cache.RateLimitCacheArgs{
			Department:       spec.Department,
			VpcID:            net.VpcID.ToStringOutput(),
			PrivateSubnetIDs: net.PrivateSubnetIDs,
			KMSKeyArn:        keyStore.KeyArn,
			AuthToken:        keyStore.CacheAuthToken,
		}, child...)
		if err != nil {
			return nil, fmt.Errorf("sandbox %q: rate-limit cache: %w", name, err)
		}
		comp.Cache = c
		limits = &gateway.RateLimitCache{
			Host: c.Host, Port: cache.Port,
			AuthTokenSecretArn: keyStore.CacheAuthTokenSecretArn,
			SecurityGroupID:    c.SecurityGroupID.ToStringOutput(),
		}
	}

	gwArgs := &gateway.GatewayArgs{
		Department:       spec.Department,
		Region:           spec.Region,
		VpcID:            net.VpcID.ToStringOutput(),
		VpcCIDR:          spec.Network.CIDR.String(),
		PublicSubnetIDs:  net.PublicSubnetIDs,
		PrivateSubnetIDs: net.PrivateSubnetIDs,
		Access: gateway.Access{
			Mode:           string(spec.Access.Mode),
			CertificateARN: spec.Access.CertificateARN,
			AllowedCIDRs:   prefixStrings(spec.Access.AllowedCIDRs),
			AllowAnywhere:  spec.Access.AllowAnywhere,
			Hostname:       spec.Access.Hostname,
			HostedZoneID:   spec.Access.HostedZoneID,
			PlainHTTP:      spec.Access.PlainHTTP,
		},
		DeletionProtection:         spec.Gateway.DeletionProtection,
		InstanceType:               spec.Gateway.InstanceType,
		MinSize:                    spec.Gateway.MinSize,
		MaxSize:                    spec.Gateway.MaxSize,
		Pools:                      routes,
		InternalALBSecurityGroupID: internalSG.ID().ToStringOutput(),
		MasterKeySecretArn:         keyStore.MasterKeySecretArn,
		KeyRegistryTableArn:        keyStore.RegistryTableArn,
		Teams:                      teams(spec),
		AgentURL:                   bucket.AgentURL,
		AgentSHA256:                bucket.AgentSHA256,
		ArtifactsBucketArn:         bucket.BucketArn,
		KMSKeyArn:                  keyStore.KeyArn,
		RateLimitCache:             limits,
		Tags:                       Tags(spec),
	}
	if mirrorBucket != nil {
		gwArgs.MirrorBucket, gwArgs.Wheelhouse = mirrorBucket, mirrorSet.Wheelhouse
	}
	gw, err := gateway.NewGateway(ctx, name+"-gateway", gwArgs, child...)
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: gateway: %w", name, err)
	}

	// The alarms and the dashboard read what the groups and load balancers publish, named as
	// CloudWatch names them (group names, ARN suffixes).
	watched := map[string]observability.Pool{}
	for poolName, pool := range pools {
		inst, _ := catalog.LookupInstance(spec.Pools[poolName].InstanceType) // validated by config
		watched[poolName] = observability.Pool{
			Group: observability.Group{
				GroupName:             pool.AutoScalingGroupName,
				LoadBalancerArnSuffix: gw.InternalLoadBalancer.ArnSuffix,
				TargetGroupArnSuffix:  pool.TargetGroup.ArnSuffix,
				HeartbeatSeconds:      modelpool.HeartbeatSeconds(inst.HasGPU()),
			},
			Parallel: spec.Pools[poolName].Parallel,
			GPU:      inst.HasGPU(),
		}
	}
	obs, err := observability.NewObservability(ctx, name+"-observability", &observability.ObservabilityArgs{
		Department:  spec.Department,
		Region:      spec.Region,
		KMSKeyArn:   keyStore.KeyArn,
		AlertEmails: spec.Alerts.Emails,
		Gateway: observability.Group{
			GroupName:             gw.AutoScalingGroupName,
			LoadBalancerArnSuffix: gw.LoadBalancer.ArnSuffix,
			TargetGroupArnSuffix:  gw.TargetGroup.ArnSuffix,
			HeartbeatSeconds:      gateway.HeartbeatSeconds,
		},
		Pools: watched,
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("sandbox %q: observability: %w", name, err)
	}

	comp.Provider, comp.Keys, comp.Network, comp.Artifacts, comp.Pools = provider, keyStore, net, bucket, pools
	comp.Observability = obs
	comp.DashboardURL = obs.DashboardURL
	comp.AlarmTopicArn = obs.TopicArn
	comp.InternalALBSecurityGroup, comp.Gateway = internalSG, gw
	comp.EndpointURL = gw.EndpointURL
	comp.LoadBalancerDNSName = gw.LoadBalancerDNSName
	comp.GatewayGroupName = gw.AutoScalingGroupName
	comp.VpcID = net.VpcID
	comp.PrivateSubnetIDs = net.PrivateSubnetIDs
	comp.KeyArn = keyStore.KeyArn
	comp.MasterKeySecretArn = keyStore.MasterKeySecretArn
	comp.PoolGroupNames = groupNames.ToStringMapOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"vpcId":               comp.VpcID,
		"privateSubnetIds":    comp.PrivateSubnetIDs,
		"keyArn":              comp.KeyArn,
		"masterKeySecretArn":  comp.MasterKeySecretArn,
		"poolGroupNames":      comp.PoolGroupNames,
		"endpointUrl":         comp.EndpointURL,
		"loadBalancerDnsName": comp.LoadBalancerDNSName,
		"gatewayGroupName":    comp.GatewayGroupName,
		"dashboardUrl":        comp.DashboardURL,
		"alarmTopicArn":       comp.AlarmTopicArn,
	}); err != nil {
		return nil, err
	}
	return comp, nil
}

// mirrorOf returns the stack's mirror and the bucket name the nodes fetch it from, or nils
// when the stack has no mirror. In an update the name resolves only once UploadMirror has put
// every object into the bucket, so every launch template that names the mirror waits for it;
// a preview, or a run without an uploader (the offline plan), uploads nothing.
func mirrorOf(ctx *pulumi.Context, args *SandboxArgs, bucket *artifacts.Bucket) (pulumi.StringInput, *mirror.Set, error) {
	spec := args.Spec
	if !spec.Artifacts.Mirror {
		return nil, nil, nil
	}
	var models []string
	for _, pool := range spec.PoolNames() {
		models = append(models, spec.Pools[pool].Models...)
	}
	pins := args.ModelPins
	if pins == nil {
		pins = versions.ModelPins
	}
	wheelhouse := args.Wheelhouse
	if wheelhouse == nil {
		wheelhouse = &versions.Wheelhouse
	}
	set, err := mirror.NewSet(ollamaRelease(args), wheelhouse, models, pins)
	if err != nil {
		return nil, nil, err
	}
	upload := args.UploadMirror
	if upload == nil || ctx.DryRun() {
		return bucket.BucketName, &set, nil
	}
	uploaded := bucket.BucketName.ApplyTWithContext(ctx.Context(), func(c context.Context, name string) (string, error) {
		if err := upload(c, name, set); err != nil {
			return "", fmt.Errorf("upload the mirror to bucket %s: %w", name, err)
		}
		return name, nil
	}).(pulumi.StringOutput)
	return uploaded, &set, nil
}

// ollamaRelease is the release the pools install: the one given, or the project's pin.
func ollamaRelease(args *SandboxArgs) versions.Release {
	if args.OllamaRelease != nil {
		return *args.OllamaRelease
	}
	return versions.Ollama
}

// poolArgs maps one pool of the Spec onto the ModelPool component's arguments.
func poolArgs(sb *SandboxArgs, spec *config.Spec, pool config.Pool, net *network.Network, keyStore *keys.KeyStore, bucket *artifacts.Bucket) *modelpool.ModelPoolArgs {
	inst, _ := catalog.LookupInstance(pool.InstanceType) // validated by config
	args := &modelpool.ModelPoolArgs{
		Department:           spec.Department,
		Pool:                 pool.Name,
		Region:               spec.Region,
		InstanceType:         pool.InstanceType,
		GPU:                  inst.HasGPU(),
		MinSize:              pool.MinSize,
		MaxSize:              pool.MaxSize,
		Spot:                 pool.Spot,
		WarmPool:             pool.WarmPool,
		Models:               pool.Models,
		Parallel:             pool.Parallel,
		ContextLength:        pool.ContextLength,
		OllamaRelease:        ollamaRelease(sb),
		RenderUnpinnedOllama: sb.RenderUnpinnedOllama,
		AgentURL:             bucket.AgentURL,
		AgentSHA256:          bucket.AgentSHA256,
		ArtifactsBucketArn:   bucket.BucketArn,
		KMSKeyArn:            keyStore.KeyArn,
		VpcID:                net.VpcID.ToStringOutput(),
		SubnetIDs:            net.PrivateSubnetIDs,
		Tags:                 Tags(spec),
	}
	if pool.Spot {
		args.SpotInstanceTypes = pool.SpotInstanceTypes()
	}
	if s := pool.Schedule; s != nil {
		args.Schedule = &modelpool.Schedule{Timezone: s.Timezone, Days: s.Days, Start: s.Start, Stop: s.Stop}
	}
	return args
}

func prefixStrings[T fmt.Stringer](ps []T) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// teams are the Spec's teams as the gateway takes them.
func teams(spec *config.Spec) map[string]gateway.Team {
	out := map[string]gateway.Team{}
	for name, t := range spec.Teams {
		out[name] = gateway.Team{
			Models:            t.Models,
			RequestsPerMinute: t.RequestsPerMinute,
			TokensPerMinute:   t.TokensPerMinute,
			ParallelPerKey:    t.ParallelPerKey,
		}
	}
	return out
}
