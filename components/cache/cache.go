// Package cache provides the RateLimitCache component: the department's ElastiCache for Valkey
// replication group in which every LiteLLM worker of every gateway node keeps its rate-limit
// counters, so that a key's requests per minute, tokens per minute and concurrent requests
// hold for the whole gateway instead of once per worker (docs/keys.md, "Limits across the
// gateway"). It holds counters keyed by a key's hash, never a prompt or a completion.
package cache

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/elasticache"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
)

// TypeToken is the component's Pulumi type token.
const TypeToken = "llmsandbox:cache:RateLimitCache"

const (
	// Port is the cache's TLS port (ElastiCache's default for Valkey).
	Port = 6379
	// Engine and EngineVersion: Valkey, the open-source engine ElastiCache offers beside Redis
	// OSS at a lower node price, in a version that supports AUTH tokens with in-transit
	// encryption (Amazon ElastiCache User Guide, "Supported engines and versions" and
	// "Authenticating with the Valkey and Redis OSS AUTH command").
	Engine        = "valkey"
	EngineVersion = "7.2"
	// DefaultNodeType is the smallest Graviton node: the counters of a department's keys take
	// a few kilobytes, and every request costs the cache one script call.
	DefaultNodeType = "cache.t4g.micro"
	// DefaultNodes is a primary and one replica in another AZ with automatic failover: the
	// gateway refuses requests (503) while the cache does not answer, so one node's loss must
	// not stop it for longer than a failover.
	DefaultNodes = 2
)

// RateLimitCacheArgs configures a RateLimitCache.
type RateLimitCacheArgs struct {
	// Department is the department's short name. Required. It names the replication group
	// (<department>-limits) and appears in descriptions.
	Department string
	// VpcID is the department's VPC. Required.
	VpcID pulumi.StringInput
	// PrivateSubnetIDs are the private subnets the nodes run in, one per AZ (at least two).
	// Required.
	PrivateSubnetIDs pulumi.StringArrayInput
	// KMSKeyArn is the department key, which encrypts the cache's data at rest (and its
	// backups, of which it keeps none). Required.
	KMSKeyArn pulumi.StringInput
	// AuthToken is the AUTH token every client must present (keys.KeyStore CacheAuthToken,
	// marked secret). Required.
	AuthToken pulumi.StringInput
	// NodeType is the cache node type. Optional. Defaults to cache.t4g.micro.
	NodeType string
	// Nodes is the number of nodes: a primary and Nodes-1 replicas, spread over the subnets'
	// AZs. Optional. Defaults to 2; must be 2..6 (automatic failover needs a replica).
	Nodes int
}

// RateLimitCache is the department's rate-limit cache.
type RateLimitCache struct {
	pulumi.ResourceState

	// Host is the primary endpoint's DNS name, which the gateway nodes connect to over TLS.
	Host pulumi.StringOutput `pulumi:"host"`
	// Port is the cache's port (Port).
	Port pulumi.IntOutput `pulumi:"port"`
	// SecurityGroupID is the cache's security group. It has no rule of its own: the gateway
	// admits its nodes on Port (gateway.GatewayArgs RateLimitCache), so nothing else reaches
	// the cache.
	SecurityGroupID pulumi.IDOutput `pulumi:"securityGroupId"`

	// Group is the replication group.
	Group *elasticache.ReplicationGroup
	// SubnetGroup places the nodes in the private subnets.
	SubnetGroup *elasticache.SubnetGroup
	// SecurityGroup is the cache's security group.
	SecurityGroup *ec2.SecurityGroup
}

// NewRateLimitCache creates the cache's subnet group, its security group (without rules) and
// the replication group: encrypted in transit (TLS required) and at rest with the department
// key, AUTH token required, in the private subnets only, with automatic failover across AZs
// and no backups (counters live a minute).
func NewRateLimitCache(ctx *pulumi.Context, name string, args *RateLimitCacheArgs, opts ...pulumi.ResourceOption) (*RateLimitCache, error) {
	if err := validate(name, args); err != nil {
		return nil, err
	}
	nodeType, nodes := args.NodeType, args.Nodes
	if nodeType == "" {
		nodeType = DefaultNodeType
	}
	if nodes == 0 {
		nodes = DefaultNodes
	}
	comp := &RateLimitCache{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(comp)

	subnets, err := elasticache.NewSubnetGroup(ctx, name+"-subnets", &elasticache.SubnetGroupArgs{
		Name:        pulumi.String(GroupID(args.Department)),
		Description: pulumi.Sprintf("llm-sandbox rate-limit cache of department %s: private subnets", args.Department),
		SubnetIds:   args.PrivateSubnetIDs,
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("cache %q: subnet group: %w", name, err)
	}
	sg, err := ec2.NewSecurityGroup(ctx, name+"-sg", &ec2.SecurityGroupArgs{
		// Descriptions are immutable (changing one replaces the group): keep it constant.
		Description:         pulumi.String("llm-sandbox rate-limit cache"),
		VpcId:               args.VpcID,
		RevokeRulesOnDelete: pulumi.Bool(true),
		Tags:                pulumi.StringMap{"Name": pulumi.String(name + "-sg")},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("cache %q: security group: %w", name, err)
	}
	group, err := elasticache.NewReplicationGroup(ctx, name+"-group", &elasticache.ReplicationGroupArgs{
		ReplicationGroupId:       pulumi.String(GroupID(args.Department)),
		Description:              pulumi.Sprintf("llm-sandbox rate-limit counters of the gateway of department %s", args.Department),
		Engine:                   pulumi.String(Engine),
		EngineVersion:            pulumi.String(EngineVersion),
		NodeType:                 pulumi.String(nodeType),
		NumCacheClusters:         pulumi.Int(nodes),
		AutomaticFailoverEnabled: pulumi.Bool(true),
		MultiAzEnabled:           pulumi.Bool(true),
		Port:                     pulumi.Int(Port),
		SubnetGroupName:          subnets.Name,
		SecurityGroupIds:         pulumi.StringArray{sg.ID().ToStringOutput()},
		// TLS only: "required" refuses plain connections ("preferred" would accept both).
		TransitEncryptionEnabled: pulumi.Bool(true),
		TransitEncryptionMode:    pulumi.String("required"),
		AtRestEncryptionEnabled:  pulumi.Bool(true),
		KmsKeyId:                 args.KMSKeyArn,
		// The SDK marks the token secret in state and in the plan.
		AuthToken: args.AuthToken,
		// Counters live a minute: a snapshot would only copy them.
		SnapshotRetentionLimit:  pulumi.Int(0),
		AutoMinorVersionUpgrade: pulumi.Bool(true),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("cache %q: replication group: %w", name, err)
	}

	comp.Group, comp.SubnetGroup, comp.SecurityGroup = group, subnets, sg
	comp.Host = group.PrimaryEndpointAddress
	comp.Port = pulumi.Int(Port).ToIntOutput()
	comp.SecurityGroupID = sg.ID()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"host":            comp.Host,
		"port":            comp.Port,
		"securityGroupId": comp.SecurityGroupID,
	}); err != nil {
		return nil, err
	}
	return comp, nil
}

// GroupID is the replication group's id (and its subnet group's name): <department>-limits,
// at most 39 characters for a department of at most 32 (ElastiCache allows 40).
func GroupID(department string) string {
	return department + "-limits"
}

// validate returns every problem with args at once, each naming its field.
func validate(name string, args *RateLimitCacheArgs) error {
	c := argcheck.NewChecker("cache", name)
	if args == nil {
		c.Add("args", "required (got nil)")
		return c.Err()
	}
	c.Department(args.Department)
	if strings.Contains(args.Department, "--") {
		c.Add("Department", "must not contain two hyphens in a row: ElastiCache refuses them in %q (got %q)", GroupID(args.Department), args.Department)
	}
	c.Required(map[string]bool{
		"VpcID":            args.VpcID == nil,
		"PrivateSubnetIDs": args.PrivateSubnetIDs == nil,
		"KMSKeyArn":        args.KMSKeyArn == nil,
		"AuthToken":        args.AuthToken == nil,
	})
	if args.NodeType != "" && !strings.HasPrefix(args.NodeType, "cache.") {
		c.Add("NodeType", "must be an ElastiCache node type such as %s (got %q)", DefaultNodeType, args.NodeType)
	}
	if args.Nodes != 0 && (args.Nodes < 2 || args.Nodes > 6) {
		c.Add("Nodes", "must be 2..6, a primary and 1 to 5 replicas, or 0 for the default %d (got %d)", DefaultNodes, args.Nodes)
	}
	return c.Err()
}
