package gateway

import (
	"fmt"
	"maps"
	"slices"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
	"github.com/llm-sandbox/llm-sandbox/components/internal/nodegroup"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/internal/usage"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

const (
	// TagTier marks the gateway's group and nodes. With Department it scopes the node role's
	// lifecycle permission to the gateway's group: the pools' groups carry a Pool tag
	// instead, so neither tier can complete the other's lifecycle actions.
	TagTier = catalog.TagTier
	// Tier is TagTier's value, and the node config's pool name (it names the node in logs).
	Tier = rules.GatewayTier
	// HeartbeatSeconds is the launch lifecycle hook's heartbeat: a gateway node's worst
	// ordinary boot is Ubuntu, the pinned LiteLLM and its hash-checked dependencies from PyPI
	// (a few hundred MB at NAT speed), the master key from Secrets Manager, and LiteLLM's
	// workers starting until /health/liveliness answers. There are no models to load.
	HeartbeatSeconds = 600
	// RootVolumeGiB is the gp3 root volume: Ubuntu's 8 GiB image, the LiteLLM virtualenv
	// (about 1 GiB) and the journal, with room to spare.
	RootVolumeGiB = 20
)

// identity names the gateway's nodes, volumes and group "<department>-gateway" and scopes the
// role's lifecycle permission to groups tagged with the department and the gateway tier.
func identity(department string) nodegroup.Identity {
	return nodegroup.Identity{
		Kind: "gateway",
		Name: department + "-" + Tier,
		Scope: []argcheck.Tag{
			{Key: nodegroup.TagDepartment, Value: department, Field: "Department"},
			{Key: TagTier, Value: Tier},
		},
	}
}

// nodeConfig is the node config the user data carries: one LiteLLM model entry per pool and
// model, whose api_base is the pool's listener on the internal ALB. The group name is left
// empty: the agent reads it from the instance's aws:autoscaling:groupName tag. The master key
// is named by its secret's ARN only; the node fetches the value at boot.
// The rate-limit cache, when there is one, is named by its endpoint and its token's secret.
func nodeConfig(args *GatewayArgs, s *settings, internalDNS, masterKeySecretArn, cacheHost, cacheSecretArn string) *node.Config {
	var models []node.LiteLLMModel
	for _, pool := range s.poolNames {
		r := args.Pools[pool]
		for _, tag := range r.Models {
			models = append(models, node.NewLiteLLMModel(tag, fmt.Sprintf("http://%s:%d", internalDNS, r.ListenerPort), r.ContextLength))
		}
	}
	return &node.Config{
		Role:       node.RoleLiteLLM,
		Department: args.Department,
		Pool:       Tier,
		Region:     args.Region,
		Lifecycle: node.Lifecycle{
			Hook: nodegroup.LaunchHookName, HeartbeatSeconds: HeartbeatSeconds,
			TerminateHook: nodegroup.TerminateHookName, DrainSeconds: DeregistrationDelaySeconds,
		},
		LiteLLM: &node.LiteLLMConfig{
			// LiteLLM listens on loopback behind the agent's accounting proxy, which owns
			// LiteLLMPort: it counts the requests in flight (published as the gateway's
			// InFlightRequests) and refuses new ones while the node drains.
			Port:                  LiteLLMPort,
			BackendPort:           node.LiteLLMBackendPort,
			Workers:               s.workers,
			MasterKeySecretArn:    masterKeySecretArn,
			Models:                models,
			RequestTimeoutSeconds: RequestTimeoutSeconds,
			KeepAliveSeconds:      KeepAliveSeconds,
			NumRetries:            NumRetries,
			KeyRegistry:           keyRegistry(args),
			Usage:                 &node.LiteLLMUsage{FlushSeconds: usage.FlushSeconds},
			RateLimitCache:        cacheNodeConfig(args.RateLimitCache, cacheHost, cacheSecretArn),
		},
	}
}

// WheelhouseArtifact is the pinned LiteLLM wheelhouse in the mirror in bucket, as the node
// config names it: the node installs from it with no package index.
func WheelhouseArtifact(bucket string, w *versions.WheelhousePin) *node.Artifact {
	return &node.Artifact{URL: mirror.S3URL(bucket, mirror.WheelhouseKey(w.SHA256)), SHA256: w.SHA256}
}

// keyRegistry is the node config's key registry: the department's table and the teams in
// name order.
func keyRegistry(args *GatewayArgs) *node.KeyRegistry {
	k := &node.KeyRegistry{Table: keyregistry.TableName(args.Department), Teams: []node.LiteLLMTeam{}}
	for _, name := range slices.Sorted(maps.Keys(args.Teams)) {
		t := args.Teams[name]
		k.Teams = append(k.Teams, node.LiteLLMTeam{
			Name: name, Models: slices.Clone(t.Models),
			RequestsPerMinute: t.RequestsPerMinute, TokensPerMinute: t.TokensPerMinute, ParallelPerKey: t.ParallelPerKey,
		})
	}
	return k
}

// resolveAMI resolves Ubuntu 24.04's public SSM parameter to a concrete AMI id.
func (b *builder) resolveAMI() error {
	ami, err := nodegroup.ResolveAMI(b.ctx, catalog.CPUAMIParameter, b.comp)
	if err != nil {
		return err
	}
	b.comp.AMIID, b.comp.AMIParameter = ami, catalog.CPUAMIParameter
	return nil
}

// role creates the node role: Session Manager, its own lifecycle action, the artifacts, the
// master-key secret (and the key's decrypt through S3 and Secrets Manager only), and the
// agent's metrics (the gateway's in-flight requests, into llmmetrics.Namespace only).
func (b *builder) role() error {
	r, err := nodegroup.NewNodeRole(b.ctx, b.name, nodegroup.NodeRoleArgs{
		Description:        "llm-sandbox LiteLLM gateway nodes of " + b.args.Department,
		Region:             b.args.Region,
		Scope:              identity(b.args.Department).Scope,
		ArtifactsBucketArn: b.args.ArtifactsBucketArn,
		KMSKeyArn:          b.args.KMSKeyArn,
		SecretArn:          b.args.MasterKeySecretArn,
		Metrics:            true,
	}, b.child())
	if err != nil {
		return err
	}
	b.nodeRole = r
	b.comp.Role, b.comp.SSMAttachment, b.comp.RolePolicy, b.comp.InstanceProfile = r.Role, r.SSMAttachment, r.Policy, r.InstanceProfile
	return nil
}

func (b *builder) launchTemplate() error {
	args, s, sha := b.args, b.s, b.args.AgentSHA256
	// Only a string is rendered in the ApplyT; no resource is created there.
	cacheHost, cacheSecret := pulumi.String("").ToStringOutput(), pulumi.String("").ToStringOutput()
	if c := b.args.RateLimitCache; c != nil {
		cacheHost, cacheSecret = c.Host.ToStringOutput(), c.AuthTokenSecretArn.ToStringOutput()
	}
	mirrorBucket := pulumi.String("").ToStringOutput()
	if b.args.MirrorBucket != nil {
		mirrorBucket = b.args.MirrorBucket.ToStringOutput()
	}
	userData := pulumi.All(b.args.AgentURL.ToStringOutput(), b.comp.InternalLoadBalancer.DnsName, b.args.MasterKeySecretArn.ToStringOutput(), cacheHost, cacheSecret, mirrorBucket).ApplyT(
		func(v []any) (string, error) {
			cfg := nodeConfig(args, s, v[1].(string), v[2].(string), v[3].(string), v[4].(string))
			if bucket := v[5].(string); bucket != "" {
				cfg.LiteLLM.Wheelhouse = WheelhouseArtifact(bucket, args.Wheelhouse)
			}
			return nodegroup.RenderUserData(cfg, node.Artifact{URL: v[0].(string), SHA256: sha})
		}).(pulumi.StringOutput)

	lt, err := nodegroup.NewTemplate(b.ctx, b.name, nodegroup.TemplateArgs{
		Description:        "llm-sandbox LiteLLM gateway nodes of " + b.args.Department,
		AMIID:              b.comp.AMIID,
		InstanceType:       pulumi.String(b.args.InstanceType),
		SecurityGroupID:    b.comp.SecurityGroup.ID(),
		InstanceProfileArn: b.comp.InstanceProfile.Arn,
		KMSKeyArn:          b.args.KMSKeyArn,
		RootVolumeGiB:      RootVolumeGiB,
		Tags:               identity(b.args.Department).InstanceTags(b.args.Tags),
		UserData:           userData,
	}, b.child())
	if err != nil {
		return err
	}
	b.comp.LaunchTemplate = lt
	return nil
}

// group is the gateway's autoscaling group across the private subnets, registered with
// LiteLLM's target group once each node's lifecycle action completes.
func (b *builder) group() error {
	args := nodegroup.NewGroupArgs(nodegroup.GroupSettings{
		SubnetIDs:        b.args.PrivateSubnetIDs,
		MinSize:          b.args.MinSize,
		MaxSize:          b.args.MaxSize,
		TargetGroupArns:  pulumi.StringArray{b.comp.TargetGroup.Arn},
		HeartbeatSeconds: HeartbeatSeconds,
		// The terminating hook's heartbeat follows LiteLLM's target group.
		DeregistrationDelaySeconds: DeregistrationDelaySeconds,
		Tags:                       identity(b.args.Department).GroupTags(b.args.Tags),
	})
	args.LaunchTemplate = nodegroup.PinnedTemplate(b.comp.LaunchTemplate)
	group, err := nodegroup.NewGroup(b.ctx, b.name, args, b.nodeRole, nil, b.child())
	if err != nil {
		return err
	}
	b.comp.Group = group
	return nil
}

// scaling tracks average CPU: LiteLLM's workers are CPU-bound (JSON, tokenisation, streaming).
func (b *builder) scaling() error {
	policy, err := nodegroup.NewCPUTracking(b.ctx, b.name, b.comp.Group.Name, b.child())
	if err != nil {
		return err
	}
	b.comp.ScalingPolicy = policy
	return nil
}
