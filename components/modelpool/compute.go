package modelpool

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/nodegroup"
)

// Lifecycle hook heartbeats, in seconds: how long a launching node has to prove itself ready
// before Auto Scaling ABANDONs it (AWS allows 30..7200). The agent completes the action as soon
// as the node is ready; the heartbeat only bounds a node that hangs.
const (
	// HeartbeatGPUSeconds covers a GPU node's worst ordinary boot: the DLAMI's 75 GiB root
	// restored lazily from its snapshot, nvidia-smi, the Ollama release (~1.5 GB), pulling each
	// model (2-5 GB at NAT speed) and loading it into GPU memory from a cold volume.
	HeartbeatGPUSeconds = 1800
	// HeartbeatCPUSeconds is the same without the GPU checks and on a smaller AMI; models are
	// smaller too, since they must fit in system memory.
	HeartbeatCPUSeconds = 900
)

// HeartbeatSeconds is the launch lifecycle hook's heartbeat for a GPU or a CPU pool.
func HeartbeatSeconds(gpu bool) int {
	if gpu {
		return HeartbeatGPUSeconds
	}
	return HeartbeatCPUSeconds
}

// securityGroup admits Ollama's port from the internal ALB only, and lets nodes out on 443 only.
func (b *builder) securityGroup() error {
	// Inline rules, listed in full: the provider then removes any rule added out of band, and
	// no ingress at all is an explicit, enforced empty list.
	ingress := ec2.SecurityGroupIngressArray{}
	if b.args.SourceSecurityGroupID != nil {
		ingress = append(ingress, &ec2.SecurityGroupIngressArgs{
			Description:    pulumi.String("Ollama from the internal ALB only (Ollama has no authentication)"),
			Protocol:       pulumi.String("tcp"),
			FromPort:       pulumi.Int(OllamaPort),
			ToPort:         pulumi.Int(OllamaPort),
			SecurityGroups: pulumi.StringArray{b.args.SourceSecurityGroupID},
		})
	}
	// HTTPS out only: the Ollama registry and its CDN, the Ollama release on GitHub, the
	// artifacts bucket (through the S3 gateway endpoint's prefix-list route) and AWS APIs
	// (lifecycle action, SSM; through NAT or interface endpoints) all speak HTTPS. Security
	// groups do not filter the VPC's DNS resolver, IMDS or the Time Sync Service, so those
	// need no rule. Nothing needs port 80: the agent must not rely on apt's plain-HTTP mirrors.
	egress := ec2.SecurityGroupEgressArray{
		&ec2.SecurityGroupEgressArgs{
			Description: pulumi.String("HTTPS: model registry, Ollama release, S3 endpoint, AWS APIs"),
			Protocol:    pulumi.String("tcp"),
			FromPort:    pulumi.Int(443),
			ToPort:      pulumi.Int(443),
			CidrBlocks:  pulumi.StringArray{pulumi.String("0.0.0.0/0")},
		},
	}
	n := b.name + "-sg"
	sg, err := ec2.NewSecurityGroup(b.ctx, n, &ec2.SecurityGroupArgs{
		// The description is immutable (changing it replaces the group): keep it constant.
		Description: pulumi.String("llm-sandbox Ollama nodes"),
		VpcId:       b.args.VpcID,
		Ingress:     ingress,
		Egress:      egress,
		// Other groups (the ALB's) reference this one; revoking the rules first lets a destroy
		// or replacement finish instead of waiting on DependencyViolation.
		RevokeRulesOnDelete: pulumi.Bool(true),
		Tags:                nodegroup.NameTag(n),
	}, b.child())
	if err != nil {
		return fmt.Errorf("security group: %w", err)
	}
	b.comp.SecurityGroup = sg
	return nil
}

// targetGroup is the internal target group the gateway's internal ALB forwards this pool's
// requests to.
func (b *builder) targetGroup() error {
	tg, err := nodegroup.NewTargetGroup(b.ctx, b.name, nodegroup.TargetGroupArgs{
		NamePrefix: "ollama",
		VpcID:      b.args.VpcID,
		Port:       OllamaPort,
		// /api/version answers while generations run; it proves the server is up. Model
		// readiness is proven once, before the lifecycle action completes.
		HealthCheckPath:            "/api/version",
		DeregistrationDelaySeconds: nodegroup.DeregistrationDelaySeconds(b.args.ContextLength),
	}, b.child())
	if err != nil {
		return err
	}
	b.comp.TargetGroup = tg
	return nil
}

func (b *builder) group() error {
	lt := b.comp.LaunchTemplate
	version := nodegroup.PinnedVersion(lt)
	args := nodegroup.NewGroupArgs(nodegroup.GroupSettings{
		SubnetIDs:        b.args.SubnetIDs,
		MinSize:          b.args.MinSize,
		MaxSize:          b.args.MaxSize,
		TargetGroupArns:  pulumi.StringArray{b.comp.TargetGroup.Arn},
		HeartbeatSeconds: HeartbeatSeconds(b.args.GPU),
		// The terminating hook's heartbeat follows the pool's target group.
		DeregistrationDelaySeconds: nodegroup.DeregistrationDelaySeconds(b.args.ContextLength),
		Tags:                       identity(b.args).GroupTags(b.args.Tags),
	})

	if b.args.Spot {
		overrides := autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArray{}
		for _, t := range b.args.SpotInstanceTypes {
			overrides = append(overrides, &autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs{InstanceType: pulumi.String(t)})
		}
		args.MixedInstancesPolicy = &autoscaling.GroupMixedInstancesPolicyArgs{
			LaunchTemplate: &autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs{
				LaunchTemplateSpecification: &autoscaling.GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs{
					LaunchTemplateId: lt.ID(),
					Version:          version,
				},
				Overrides: overrides,
			},
			InstancesDistribution: &autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs{
				// All spot: a spot pool is an explicit choice in the stack file.
				OnDemandBaseCapacity:                pulumi.Int(0),
				OnDemandPercentageAboveBaseCapacity: pulumi.Int(0),
				// The pools least likely to be interrupted, among the cheapest.
				SpotAllocationStrategy: pulumi.String("price-capacity-optimized"),
			},
		}
		// Launch a replacement when AWS signals a spot node is at elevated risk, before the
		// two-minute interruption notice.
		args.CapacityRebalance = pulumi.Bool(true)
	} else {
		args.LaunchTemplate = nodegroup.PinnedTemplate(lt)
	}

	if b.args.WarmPool > 0 {
		args.WarmPool = &autoscaling.GroupWarmPoolArgs{
			// Stopped, not Hibernated: G instance families cannot hibernate. A stopped node
			// costs only its volume and passes the launch hook again (the agent runs at every
			// boot) when it joins the group.
			PoolState: pulumi.String("Stopped"),
			// Equal minimum and maximum prepared capacity give the warm pool an absolute size
			// (PutWarmPool API reference); otherwise it grows to MaxSize minus desired.
			MinSize:                  pulumi.Int(b.args.WarmPool),
			MaxGroupPreparedCapacity: pulumi.Int(b.args.WarmPool),
			// Scale-in returns nodes to the warm pool instead of terminating them.
			InstanceReusePolicy: &autoscaling.GroupWarmPoolInstanceReusePolicyArgs{ReuseOnScaleIn: pulumi.Bool(true)},
		}
	}

	// Scaling owns the desired capacity. With office hours the scheduled actions own the
	// minimum and maximum too: at night they are 0, and an update must not set them back
	// (that would start nodes at night). A changed MinSize or MaxSize then reaches the group
	// through the start action, at the next Start.
	var ignore []string
	if b.args.Schedule != nil {
		ignore = append(ignore, "minSize", "maxSize")
	}
	group, err := nodegroup.NewGroup(b.ctx, b.name, args, b.nodeRole, ignore, b.child())
	if err != nil {
		return err
	}
	b.comp.Group = group
	return nil
}

// ScaleOutWarmupSeconds is the in-flight policy's estimated instance warm-up: after a scale-out
// the policy waits this long before counting the new node's capacity as settled, so that the
// queue still held by the old nodes does not trigger a second scale-out at once.
const ScaleOutWarmupSeconds = 300

// InFlightTarget is the pool's target of in-flight requests per node:
// nodegroup.InFlightTargetPercent of Parallel (OLLAMA_NUM_PARALLEL). A node answers Parallel
// requests of one model at once; more wait in Ollama's queue.
func InFlightTarget(parallel int) float64 { return nodegroup.InFlightTarget(parallel) }

// scaling creates the target-tracking policy and, with a Schedule, the office-hours actions.
func (b *builder) scaling() error {
	// In-flight requests per node (answered + queued, published by the node agent) is the
	// load signal of an LLM node; CPU is not (a GPU node with a long queue shows low CPU).
	// Target tracking cannot scale out from zero (there is no data), which is why office hours
	// use scheduled actions; the minimum they set bounds scale-in.
	policy, err := nodegroup.NewInFlightTracking(b.ctx, b.name, b.comp.Group.Name, nodegroup.InFlightTrackingArgs{
		Department: b.args.Department, Pool: b.args.Pool,
		Target: InFlightTarget(b.args.Parallel), WarmupSeconds: ScaleOutWarmupSeconds,
	}, b.child())
	if err != nil {
		return err
	}
	b.comp.ScalingPolicy = policy

	s := b.args.Schedule
	if s == nil {
		return nil
	}
	startMin := max(b.args.MinSize, 1)
	for _, action := range []struct {
		key, at           string
		min, max, desired int
	}{
		{"start", s.Start, startMin, b.args.MaxSize, startMin},
		{"stop", s.Stop, 0, 0, 0},
	} {
		n := b.name + "-office-hours-" + action.key
		sched, err := autoscaling.NewSchedule(b.ctx, n, &autoscaling.ScheduleArgs{
			AutoscalingGroupName: b.comp.Group.Name,
			ScheduledActionName:  pulumi.String(n),
			Recurrence:           pulumi.String(Recurrence(action.at, s.Days)),
			TimeZone:             pulumi.String(s.Timezone),
			MinSize:              pulumi.Int(action.min),
			MaxSize:              pulumi.Int(action.max),
			DesiredCapacity:      pulumi.Int(action.desired),
		}, b.child())
		if err != nil {
			return fmt.Errorf("office hours %s action: %w", action.key, err)
		}
		b.comp.ScheduledActions[action.key] = sched
	}
	return nil
}

// Recurrence is the cron expression of a scheduled action at "HH:MM" on days ("MON-FRI"):
// "MM HH * * DAYS", without leading zeros.
func Recurrence(hhmm, days string) string {
	h, m, _ := strings.Cut(hhmm, ":")
	hour, _ := strconv.Atoi(h)
	minute, _ := strconv.Atoi(m)
	return fmt.Sprintf("%d %d * * %s", minute, hour, days)
}
