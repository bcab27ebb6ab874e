package nodegroup

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/internal/dashboard"
	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
)

// LaunchHookName is the launch lifecycle hook's name. Hook names are per group, so one fixed
// name serves every group, and the node config can carry it before the group exists.
const LaunchHookName = "llm-sandbox-launch"

// TerminateHookName is the terminating lifecycle hook's name: the node agent's drain watcher
// completes it (CONTINUE) once the node's requests in flight have finished.
const TerminateHookName = "llm-sandbox-terminate"

// DrainMarginSeconds is what a terminating hook's heartbeat adds to the deregistration delay:
// the agent notices the termination within one IMDS poll (5 s), may have to wait out the
// deregistration delay itself (a spot notice, or a target state that changed before Auto
// Scaling finished deregistering), and then completes the action, with retries.
const DrainMarginSeconds = 120

// TerminateHeartbeatSeconds is the terminating hook's heartbeat for a group whose target group
// has the given deregistration delay: the delay plus DrainMarginSeconds, so that a draining
// node always has the whole delay for its streams and the agent still answers in time. At
// AWS's largest delay (3600 s) it stays far below the hook's limit of 7200 s.
func TerminateHeartbeatSeconds(deregistrationDelaySeconds int) int {
	return deregistrationDelaySeconds + DrainMarginSeconds
}

// Group metrics (namespace AWS/AutoScaling, dimension AutoScalingGroupName) that every group
// publishes, because the department's dashboard and alarms read them (internal/dashboard names
// them). Auto Scaling publishes only the group metrics a group enables (Amazon EC2 Auto Scaling
// User Guide, "Monitor CloudWatch metrics for your Auto Scaling groups and instances").
const (
	MetricDesiredCapacity    = dashboard.MetricDesiredCapacity
	MetricInServiceInstances = dashboard.MetricInServiceInstances
	MetricPendingInstances   = dashboard.MetricPendingInstances
)

// GroupMetrics returns the group metrics every group enables.
func GroupMetrics() []string {
	return []string{MetricDesiredCapacity, MetricInServiceInstances, MetricPendingInstances}
}

// MetricsGranularity is the only granularity Auto Scaling offers for group metrics: one
// minute, at no charge.
const MetricsGranularity = "1Minute"

// CPUTargetPercent is the target-tracking policy's average CPU utilisation.
const CPUTargetPercent = 60

// Deregistration delay bounds, in seconds: AWS accepts 0..3600; 300 is AWS's default and the
// floor here.
const (
	minDeregistrationDelay = 300
	// MaxDeregistrationDelaySeconds is AWS's maximum, and the delay for any context length of
	// 36000 tokens or more: the longest generation any pool may run.
	MaxDeregistrationDelaySeconds = 3600
	// slowestTokensPerSecond is the slowest per-user generation rate the sizing plans for (the
	// UBC figure of 10 tokens/s).
	slowestTokensPerSecond = 10
)

// DeregistrationDelaySeconds is a target group's deregistration delay for generations of up
// to contextLength tokens: the longest such generation, at 10 tokens/s, rounded up and clamped
// to 300..3600 s. A node leaving its group (scale-in, instance refresh, spot rebalancing) stops
// getting new requests at once, but keeps serving the streams it has for this long before Auto
// Scaling terminates it, so no answer is cut off. A node with nothing in flight is released at
// once, so a long delay costs nothing on an idle node.
func DeregistrationDelaySeconds(contextLength int) int {
	d := (contextLength + slowestTokensPerSecond - 1) / slowestTokensPerSecond
	if d < minDeregistrationDelay {
		d = minDeregistrationDelay
	}
	if d > MaxDeregistrationDelaySeconds {
		d = MaxDeregistrationDelaySeconds
	}
	return d
}

// GroupTags are a group's tags: Name and the Scope tags propagate to the instances at launch
// (and let the role's lifecycle statement match the group); the other extra tags stay on the
// group itself, since the provider's default tags do not reach autoscaling groups and the
// launch template already tags the instances.
func (id Identity) GroupTags(extra map[string]string) autoscaling.GroupTagArray {
	tags := autoscaling.GroupTagArray{&autoscaling.GroupTagArgs{
		Key: pulumi.String(TagName), Value: pulumi.String(id.Name), PropagateAtLaunch: pulumi.Bool(true),
	}}
	for _, t := range id.Scope {
		tags = append(tags, &autoscaling.GroupTagArgs{Key: pulumi.String(t.Key), Value: pulumi.String(t.Value), PropagateAtLaunch: pulumi.Bool(true)})
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if id.owns(k) {
			continue
		}
		tags = append(tags, &autoscaling.GroupTagArgs{Key: pulumi.String(k), Value: pulumi.String(extra[k]), PropagateAtLaunch: pulumi.Bool(false)})
	}
	return tags
}

// PinnedVersion is the launch template's latest version number. A group names it, never
// $Latest: a new version is then a change of the group, which starts an instance refresh, and
// the refresh can roll back to the previous version.
func PinnedVersion(lt *ec2.LaunchTemplate) pulumi.StringOutput {
	return lt.LatestVersion.ApplyT(strconv.Itoa).(pulumi.StringOutput)
}

// PinnedTemplate is a group's launch template at its PinnedVersion.
func PinnedTemplate(lt *ec2.LaunchTemplate) *autoscaling.GroupLaunchTemplateArgs {
	return &autoscaling.GroupLaunchTemplateArgs{Id: lt.ID(), Version: PinnedVersion(lt)}
}

// GroupSettings is what differs between two groups of nodes in the settings every group
// shares.
type GroupSettings struct {
	// SubnetIDs are the private subnets, one per AZ.
	SubnetIDs pulumi.StringArrayInput
	// MinSize and MaxSize bound the group.
	MinSize, MaxSize int
	// TargetGroupArns are the target groups the nodes register with once the lifecycle
	// action completes.
	TargetGroupArns pulumi.StringArrayInput
	// HeartbeatSeconds is the launch hook's heartbeat: how long a node has to prove itself.
	HeartbeatSeconds int
	// DeregistrationDelaySeconds is the target groups' deregistration delay; the terminating
	// hook's heartbeat is TerminateHeartbeatSeconds of it.
	DeregistrationDelaySeconds int
	// Tags are the group's tags (Identity.GroupTags).
	Tags autoscaling.GroupTagArray
}

// NewGroupArgs returns the settings every group of nodes shares; the caller adds how it
// launches (LaunchTemplate, or a MixedInstancesPolicy) and anything of its own.
func NewGroupArgs(s GroupSettings) *autoscaling.GroupArgs {
	return &autoscaling.GroupArgs{
		VpcZoneIdentifiers: s.SubnetIDs,
		MinSize:            pulumi.Int(s.MinSize),
		MaxSize:            pulumi.Int(s.MaxSize),
		// Desired capacity is left to scaling (AWS starts at MinSize).
		// ELB health: a node whose service stops answering is replaced, not only a dead VM.
		HealthCheckType: pulumi.String("ELB"),
		// Targets register only after the lifecycle action completes, i.e. once the agent has
		// proven the node ready, so there is nothing to wait for after that.
		HealthCheckGracePeriod: pulumi.Int(0),
		TargetGroupArns:        s.TargetGroupArns,
		InitialLifecycleHooks: autoscaling.GroupInitialLifecycleHookArray{
			&autoscaling.GroupInitialLifecycleHookArgs{
				Name:                pulumi.String(LaunchHookName),
				LifecycleTransition: pulumi.String("autoscaling:EC2_INSTANCE_LAUNCHING"),
				// A node that never reports (hung bootstrap, dead agent) is thrown away,
				// never put into service half-configured.
				DefaultResult:    pulumi.String("ABANDON"),
				HeartbeatTimeout: pulumi.Int(s.HeartbeatSeconds),
			},
			&autoscaling.GroupInitialLifecycleHookArgs{
				Name:                pulumi.String(TerminateHookName),
				LifecycleTransition: pulumi.String("autoscaling:EC2_INSTANCE_TERMINATING"),
				// Auto Scaling deregisters a leaving node from its target groups and waits out
				// the deregistration delay, then holds it here; the agent's drain watcher
				// waits for what is still in flight and sends CONTINUE. A node whose agent
				// died mid-drain must still go: the default result is CONTINUE, never
				// ABANDON (which for a terminating node means the same, but says less).
				DefaultResult:    pulumi.String("CONTINUE"),
				HeartbeatTimeout: pulumi.Int(TerminateHeartbeatSeconds(s.DeregistrationDelaySeconds)),
			},
		},
		InstanceRefresh: &autoscaling.GroupInstanceRefreshArgs{
			// A change of the launch template (AMI, user data, agent) or of the mixed
			// instances policy always starts a refresh; no extra triggers are needed.
			Strategy: pulumi.String("Rolling"),
			Preferences: &autoscaling.GroupInstanceRefreshPreferencesArgs{
				// Launch before terminate: a replacement must pass the lifecycle hook before an
				// old node goes, so serving capacity never drops (and the account needs room
				// for one extra node).
				MinHealthyPercentage: pulumi.Int(100),
				MaxHealthyPercentage: pulumi.Int(200),
				// A replacement that ABANDONs fails the refresh, which returns the group to the
				// previous template version (possible because the version is pinned).
				AutoRollback: pulumi.Bool(true),
				SkipMatching: pulumi.Bool(true),
			},
		},
		Tags: s.Tags,
		// The dashboard and the alarms read these (GroupMetrics).
		EnabledMetrics:     pulumi.ToStringArray(GroupMetrics()),
		MetricsGranularity: pulumi.String(MetricsGranularity),
		// `pulumi up` waits for MinSize nodes to pass the lifecycle hook, up to the heartbeat
		// plus ten minutes, so a group that never becomes ready fails the update instead of
		// passing it (the provider's default of ten minutes is shorter than a GPU boot).
		WaitForCapacityTimeout: pulumi.String(fmt.Sprintf("%dm", s.HeartbeatSeconds/60+10)),
	}
}

// NewGroup registers the group "<name>-asg". It waits for the node role's policies, so that a
// first node can complete its lifecycle action, and leaves the desired capacity (plus ignore)
// to scaling.
func NewGroup(ctx *pulumi.Context, name string, args *autoscaling.GroupArgs, role *NodeRole, ignore []string, opts ...pulumi.ResourceOption) (*autoscaling.Group, error) {
	after := pulumi.DependsOn([]pulumi.Resource{role.Policy, role.SSMAttachment})
	ignored := pulumi.IgnoreChanges(append([]string{"desiredCapacity"}, ignore...))
	group, err := autoscaling.NewGroup(ctx, name+"-asg", args, append(append([]pulumi.ResourceOption{}, opts...), after, ignored)...)
	if err != nil {
		return nil, fmt.Errorf("autoscaling group: %w", err)
	}
	return group, nil
}

// NewCPUTracking registers "<name>-cpu-tracking", target tracking on the group's average CPU
// at CPUTargetPercent. Target tracking cannot scale out from zero (there is no data).
func NewCPUTracking(ctx *pulumi.Context, name string, groupName pulumi.StringInput, opts ...pulumi.ResourceOption) (*autoscaling.Policy, error) {
	policy, err := autoscaling.NewPolicy(ctx, name+"-cpu-tracking", &autoscaling.PolicyArgs{
		AutoscalingGroupName: groupName,
		PolicyType:           pulumi.String("TargetTrackingScaling"),
		TargetTrackingConfiguration: &autoscaling.PolicyTargetTrackingConfigurationArgs{
			PredefinedMetricSpecification: &autoscaling.PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs{
				PredefinedMetricType: pulumi.String("ASGAverageCPUUtilization"),
			},
			TargetValue: pulumi.Float64(CPUTargetPercent),
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("scaling policy: %w", err)
	}
	return policy, nil
}

// InFlightTargetPercent is the share of a node's capacity (its parallel slots) that the
// in-flight target-tracking policy aims at: 80 % keeps headroom for a burst while the next
// node boots.
const InFlightTargetPercent = 80

// InFlightTarget is the target-tracking value for nodes that answer parallel requests at once:
// InFlightTargetPercent of parallel (parallel 4 gives 3.2 in flight per node).
func InFlightTarget(parallel int) float64 {
	return float64(parallel) * InFlightTargetPercent / 100
}

// InFlightTrackingArgs names the series a group's nodes publish and the target.
type InFlightTrackingArgs struct {
	// Department and Pool are the series' dimensions (llmmetrics.DimensionDepartment and
	// DimensionPool): every node of the group publishes its in-flight requests into it once a
	// minute, so its Average over a minute is the in-flight requests per node.
	Department, Pool string
	// Target is the in-flight requests per node to keep (InFlightTarget).
	Target float64
	// WarmupSeconds is the estimated instance warm-up: a new node's figures count towards
	// the average only after it (the launch heartbeat: the node serves by then).
	WarmupSeconds int
}

// NewInFlightTracking registers "<name>-inflight-tracking", target tracking on the group's
// average in-flight requests per node (namespace llmmetrics.Namespace, metric
// llmmetrics.MetricInFlightRequests, statistic Average over 60 s). Scale-in stays enabled: the
// same policy removes nodes, and target tracking removes capacity gradually (Amazon EC2 Auto
// Scaling User Guide, "Target tracking scaling policies"); the group's minimum (which the
// office-hours schedule sets) bounds it below. Target tracking cannot scale out from zero.
func NewInFlightTracking(ctx *pulumi.Context, name string, groupName pulumi.StringInput, args InFlightTrackingArgs, opts ...pulumi.ResourceOption) (*autoscaling.Policy, error) {
	if args.Target <= 0 {
		return nil, fmt.Errorf("in-flight scaling policy: target %v, want > 0", args.Target)
	}
	policy, err := autoscaling.NewPolicy(ctx, name+"-inflight-tracking", &autoscaling.PolicyArgs{
		AutoscalingGroupName:    groupName,
		PolicyType:              pulumi.String("TargetTrackingScaling"),
		EstimatedInstanceWarmup: pulumi.Int(args.WarmupSeconds),
		TargetTrackingConfiguration: &autoscaling.PolicyTargetTrackingConfigurationArgs{
			CustomizedMetricSpecification: &autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationArgs{
				Namespace:  pulumi.String(llmmetrics.Namespace),
				MetricName: pulumi.String(llmmetrics.MetricInFlightRequests),
				MetricDimensions: autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricDimensionArray{
					&autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricDimensionArgs{
						Name: pulumi.String(llmmetrics.DimensionDepartment), Value: pulumi.String(args.Department)},
					&autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricDimensionArgs{
						Name: pulumi.String(llmmetrics.DimensionPool), Value: pulumi.String(args.Pool)},
				},
				Statistic: pulumi.String("Average"),
				Unit:      pulumi.String("Count"),
				Period:    pulumi.Int(llmmetrics.IntervalSeconds),
			},
			TargetValue:    pulumi.Float64(args.Target),
			DisableScaleIn: pulumi.Bool(false),
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("in-flight scaling policy: %w", err)
	}
	return policy, nil
}

// TargetGroupArgs is what differs between the target groups of two groups of nodes.
type TargetGroupArgs struct {
	// NamePrefix starts the generated name: at most 6 characters. A target group name has at
	// most 32 characters; a generated name from the prefix always fits (the component name
	// plus a random suffix might not), and lets a replacement be created before the old one
	// goes.
	NamePrefix string
	// VpcID is the department VPC.
	VpcID pulumi.StringInput
	// Port is the service's port on the nodes.
	Port int
	// HealthCheckPath is a cheap GET that answers 200 while the service is up, and keeps
	// answering while long requests run.
	HealthCheckPath string
	// DeregistrationDelaySeconds is how long a leaving node keeps its requests in flight.
	DeregistrationDelaySeconds int
}

// NewTargetGroup registers the target group "<name>-tg": HTTP/1.1 to the instances, least
// outstanding requests, and an HTTP health check on the traffic port.
func NewTargetGroup(ctx *pulumi.Context, name string, args TargetGroupArgs, opts ...pulumi.ResourceOption) (*lb.TargetGroup, error) {
	n := name + "-tg"
	tg, err := lb.NewTargetGroup(ctx, n, &lb.TargetGroupArgs{
		NamePrefix:      pulumi.String(args.NamePrefix),
		VpcId:           args.VpcID,
		Port:            pulumi.Int(args.Port),
		Protocol:        pulumi.String("HTTP"),
		ProtocolVersion: pulumi.String("HTTP1"),
		TargetType:      pulumi.String("instance"),
		// LLM requests vary from milliseconds to minutes: send each new one to the node with
		// the fewest in flight, not round robin.
		LoadBalancingAlgorithmType: pulumi.String("least_outstanding_requests"),
		DeregistrationDelay:        pulumi.Int(args.DeregistrationDelaySeconds),
		HealthCheck: &lb.TargetGroupHealthCheckArgs{
			Enabled:            pulumi.Bool(true),
			Path:               pulumi.String(args.HealthCheckPath),
			Matcher:            pulumi.String("200"),
			Protocol:           pulumi.String("HTTP"),
			Port:               pulumi.String("traffic-port"),
			Interval:           pulumi.Int(15),
			Timeout:            pulumi.Int(5),
			HealthyThreshold:   pulumi.Int(2),
			UnhealthyThreshold: pulumi.Int(3),
		},
		Tags: NameTag(n),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("target group: %w", err)
	}
	return tg, nil
}
