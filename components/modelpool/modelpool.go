// Package modelpool provides the llmsandbox:modelpool:ModelPool component: one autoscaling group
// of Ollama nodes serving the same models, with its launch template (concrete AMI, IMDSv2,
// encrypted root volume, user data that fetches the node agent), instance role, security
// group, internal target group, launch lifecycle hook, instance refresh, scaling and optional
// spot, warm pool or office hours.
package modelpool

import (
	"fmt"
	"slices"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
	"github.com/llm-sandbox/llm-sandbox/components/internal/nodegroup"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// TypeToken is the component's Pulumi type token, llmsandbox:<package>:<Type>.
const TypeToken = "llmsandbox:modelpool:ModelPool"

// FormerTypeToken is the type token the component was registered with before it was named
// after its package. It stays an alias, so stacks deployed under it keep their resources (the
// engine derives the children's aliases from it) instead of replacing every one.
const FormerTypeToken = "llmsandbox:compute:ModelPool"

// Schedule is a pool's office hours: the pool scales up at Start and to zero at Stop, on Days,
// in Timezone.
type Schedule struct {
	// Timezone is an IANA time zone name, e.g. "America/Vancouver". Required.
	Timezone string
	// Days is a cron day-of-week field of three-letter names, e.g. "MON-FRI" or "MON,WED,FRI".
	// Required.
	Days string
	// Start and Stop are 24-hour "HH:MM" times in Timezone, Start before Stop. Required.
	Start, Stop string
}

// ModelPoolArgs configures a ModelPool.
type ModelPoolArgs struct {
	// Department is the department's short name: a lowercase DNS label of 2..32 characters. It
	// tags every instance and volume and scopes the role's lifecycle permission. Required.
	Department string
	// Pool is the pool's name: a lowercase DNS label of 1..20 characters. It tags every
	// instance and volume and scopes the role's lifecycle permission. Required.
	Pool string
	// Region is the AWS region, e.g. "ca-central-1": the node's SDK clients and the KMS
	// kms:ViaService condition use it. Required; must be the provider's region.
	Region string
	// InstanceType is the EC2 instance type, e.g. "g5.xlarge". Required. With Spot it is also
	// the first entry of SpotInstanceTypes.
	InstanceType string
	// GPU is true for GPU instance types: the launch template uses the Deep Learning Base OSS
	// Nvidia Driver GPU AMI and the agent checks nvidia-smi and that every model is resident
	// in GPU memory (size_vram > 0). Optional. Defaults to false (Ubuntu 24.04 AMI, CPU
	// inference).
	GPU bool
	// SpotInstanceTypes are the instance types the spot group may launch, InstanceType first
	// (config.Pool.SpotInstanceTypes). Required when Spot; ignored otherwise.
	SpotInstanceTypes []string
	// MinSize is the fewest nodes the group keeps running: 0 <= MinSize <= MaxSize. Required.
	// 0 only makes sense with a Schedule (target tracking cannot scale out from zero).
	MinSize int
	// MaxSize is the most nodes the group runs: at least 1. Required.
	MaxSize int
	// Spot runs the pool on spot capacity only, across SpotInstanceTypes, with capacity
	// rebalancing. Optional. Defaults to false (on-demand). Never with WarmPool.
	Spot bool
	// WarmPool is how many stopped, already bootstrapped instances to keep beside the group, to
	// scale out without a full bootstrap. Optional. Defaults to 0 (no warm pool). Never with
	// Spot: AWS does not allow a warm pool on a group with a mixed instances policy or spot.
	WarmPool int
	// Schedule, when set, scales the pool up at Start and down to zero at Stop. Optional.
	// Defaults to nil (always on, between MinSize and MaxSize).
	Schedule *Schedule
	// Models are the Ollama tags every node serves, all preloaded and kept loaded, e.g.
	// ["llama3.1:8b"]. Required; at least one, no duplicates.
	Models []string
	// Parallel is OLLAMA_NUM_PARALLEL: concurrent requests per loaded model. Required; >= 1.
	Parallel int
	// ContextLength is OLLAMA_CONTEXT_LENGTH in tokens. Required; >= 1. It also sizes the
	// target group's deregistration delay.
	ContextLength int
	// OllamaRelease is the Ollama release the nodes install (versions.Ollama): its version,
	// e.g. "0.35.1", which the installed binary must report, and the https:// or s3:// URL of
	// its ollama-linux-amd64.tar.zst with the SHA-256 (or the checksum file) it is checked
	// against. Required; its SHA256 too, unless RenderUnpinnedOllama.
	OllamaRelease versions.Release
	// RenderUnpinnedOllama renders an OllamaRelease whose SHA256 is empty (not pinned yet)
	// instead of refusing it. Optional. Defaults to false. Only the offline plan sets it, so
	// that `sandboxctl plan` shows the stack and `sandboxctl check` fails it (rule
	// pinned-ollama); the node agent refuses the node config rendered this way, and the
	// program refuses to deploy an unpinned release before any component is built.
	RenderUnpinnedOllama bool
	// MirrorBucket, when set, is the artifacts bucket that holds the stack's mirror
	// (internal/mirror), resolving once the mirror is uploaded: the nodes then fetch the Ollama
	// release and every model from it, and nothing from the internet. Optional. Defaults to nil:
	// the release comes from OllamaRelease.URL and the models from the Ollama registry.
	MirrorBucket pulumi.StringInput
	// ModelPins pins every model of Models by its manifest (versions.ModelPins). Required with
	// MirrorBucket, ignored without.
	ModelPins map[string]versions.ModelPin
	// AgentURL is the https URL of the node agent binary in the artifacts bucket
	// (artifacts.Bucket.AgentURL). Required.
	AgentURL pulumi.StringInput
	// AgentSHA256 is the agent binary's lowercase hex SHA-256 (artifacts.Bucket.AgentSHA256).
	// Required.
	AgentSHA256 string
	// ArtifactsBucketArn is the artifacts bucket's ARN; the node role may read its objects.
	// Required.
	ArtifactsBucketArn pulumi.StringInput
	// KMSKeyArn is the department's KMS key: it encrypts the root volumes, and the node role
	// may decrypt with it through S3 (SSE-KMS artifacts). Required.
	KMSKeyArn pulumi.StringInput
	// VpcID is the department VPC. Required.
	VpcID pulumi.StringInput
	// SubnetIDs are the private subnets the group launches into, one per AZ. Required.
	SubnetIDs pulumi.StringArrayInput
	// SourceSecurityGroupID is the internal ALB's security group, the only source admitted to
	// Ollama's port (the sandbox always passes it). Optional. Defaults to nil: no ingress rule
	// at all, the pool is closed.
	SourceSecurityGroupID pulumi.StringInput
	// Tags are extra tags for the instances and their volumes (department, cost centre...).
	// Name, Department and Pool are set by the pool; Tags may repeat Department and Pool only
	// with the same values. Optional. Defaults to none.
	Tags map[string]string
}

// ModelPool is one autoscaling group of Ollama nodes and everything it needs.
type ModelPool struct {
	pulumi.ResourceState

	// AutoScalingGroupName is the group's generated name.
	AutoScalingGroupName pulumi.StringOutput `pulumi:"autoScalingGroupName"`
	// TargetGroupArn is the internal target group the gateway's internal ALB forwards to.
	TargetGroupArn pulumi.StringOutput `pulumi:"targetGroupArn"`
	// SecurityGroupID is the nodes' security group (the ALB's security group needs egress to it
	// on port 11434).
	SecurityGroupID pulumi.IDOutput `pulumi:"securityGroupId"`
	// LaunchTemplateID is the launch template's ID.
	LaunchTemplateID pulumi.IDOutput `pulumi:"launchTemplateId"`
	// RoleArn is the node role's ARN.
	RoleArn pulumi.StringOutput `pulumi:"roleArn"`

	// AMIID is the concrete AMI the launch template uses, resolved from AMIParameter.
	AMIID string
	// AMIParameter is the public SSM parameter the AMI was resolved from.
	AMIParameter string
	// LaunchHookName is the launch lifecycle hook the node agent completes.
	LaunchHookName string
	// NodeConfig is the node config the user data carries; with MirrorBucket, the user data's
	// copy names the bucket's objects instead of the release URL and the registry
	// (MirroredConfig).
	NodeConfig *node.Config

	// Role is the node role.
	Role *iam.Role
	// RolePolicy is the node role's inline policy.
	RolePolicy *iam.RolePolicy
	// SSMAttachment attaches AmazonSSMManagedInstanceCore to the role.
	SSMAttachment *iam.RolePolicyAttachment
	// InstanceProfile carries the role to the instances.
	InstanceProfile *iam.InstanceProfile
	// SecurityGroup is the nodes' security group.
	SecurityGroup *ec2.SecurityGroup
	// TargetGroup is the internal target group on Ollama's port.
	TargetGroup *lb.TargetGroup
	// LaunchTemplate is the nodes' launch template.
	LaunchTemplate *ec2.LaunchTemplate
	// Group is the autoscaling group.
	Group *autoscaling.Group
	// ScalingPolicy is the target-tracking policy.
	ScalingPolicy *autoscaling.Policy
	// ScheduledActions are the office-hours actions keyed by "start" and "stop"; empty
	// without a Schedule.
	ScheduledActions map[string]*autoscaling.Schedule
}

// NewModelPool validates args, resolves the AMI, then creates the pool's role, security group,
// target group, launch template, autoscaling group, scaling policy and scheduled actions.
func NewModelPool(ctx *pulumi.Context, name string, args *ModelPoolArgs, opts ...pulumi.ResourceOption) (*ModelPool, error) {
	cfg, err := validate(name, args)
	if err != nil {
		return nil, err
	}

	comp := &ModelPool{
		LaunchHookName:   nodegroup.LaunchHookName,
		NodeConfig:       cfg,
		ScheduledActions: map[string]*autoscaling.Schedule{},
	}
	opts = append(slices.Clip(opts), pulumi.Aliases([]pulumi.Alias{{Type: pulumi.String(FormerTypeToken)}}))
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("model pool %q: register component: %w", name, err)
	}
	b := &builder{ctx: ctx, name: name, args: args, comp: comp}
	if err := b.build(); err != nil {
		return nil, fmt.Errorf("model pool %q: %w", name, err)
	}

	comp.AutoScalingGroupName = comp.Group.Name
	comp.TargetGroupArn = comp.TargetGroup.Arn
	comp.SecurityGroupID = comp.SecurityGroup.ID()
	comp.LaunchTemplateID = comp.LaunchTemplate.ID()
	comp.RoleArn = comp.Role.Arn
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"autoScalingGroupName": comp.AutoScalingGroupName,
		"targetGroupArn":       comp.TargetGroupArn,
		"securityGroupId":      comp.SecurityGroupID,
		"launchTemplateId":     comp.LaunchTemplateID,
		"roleArn":              comp.RoleArn,
	}); err != nil {
		return nil, fmt.Errorf("model pool %q: register outputs: %w", name, err)
	}
	return comp, nil
}

// builder registers the children of one ModelPool.
type builder struct {
	ctx  *pulumi.Context
	name string
	args *ModelPoolArgs
	comp *ModelPool
	// nodeRole is the role and what hangs off it; the group waits for its policies.
	nodeRole *nodegroup.NodeRole
}

// build registers every child in dependency order.
func (b *builder) build() error {
	for _, step := range []func() error{
		b.resolveAMI,
		b.role,
		b.securityGroup,
		b.targetGroup,
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

// identity names the pool's instances, volumes and group "<department>-<pool>" and scopes the
// role's lifecycle permission to groups tagged with both the department and the pool.
func identity(args *ModelPoolArgs) nodegroup.Identity {
	return nodegroup.Identity{
		Kind: "model pool",
		Name: args.Department + "-" + args.Pool,
		Scope: []argcheck.Tag{
			{Key: nodegroup.TagDepartment, Value: args.Department, Field: "Department"},
			{Key: tagPool, Value: args.Pool, Field: "Pool"},
		},
	}
}
