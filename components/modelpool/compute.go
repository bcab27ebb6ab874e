package modelpool

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
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

// Deregistration delay bounds, in seconds: AWS accepts 0..3600; 300 is AWS's default and the
// floor here.
const (
	minDeregistrationDelay = 300
	maxDeregistrationDelay = 3600
	// slowestTokensPerSecond is the slowest per-user generation rate the sizing plans for (the
	// UBC figure of 10 tokens/s).
	slowestTokensPerSecond = 10
)

// DeregistrationDelaySeconds is the target group's deregistration delay for a pool with the
// given context length: the longest generation the pool can be asked for, ContextLength tokens
// at 10 tokens/s, rounded up and clamped to 300..3600 s. A node leaving the group (scale-in,
// instance refresh, spot rebalancing) stops getting new requests at once, but keeps serving the
// streams it has for this long before Auto Scaling terminates it, so no answer is cut off.
func DeregistrationDelaySeconds(contextLength int) int {
	d := (contextLength + slowestTokensPerSecond - 1) / slowestTokensPerSecond
	if d < minDeregistrationDelay {
		d = minDeregistrationDelay
	}
	if d > maxDeregistrationDelay {
		d = maxDeregistrationDelay
	}
	return d
}

// HeartbeatSeconds is the launch lifecycle hook's heartbeat for a GPU or a CPU pool.
func HeartbeatSeconds(gpu bool) int {
	if gpu {
		return HeartbeatGPUSeconds
	}
	return HeartbeatCPUSeconds
}

// CPUTargetPercent is the target-tracking policy's average CPU utilisation.
const CPUTargetPercent = 60

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
		Tags:                nameTag(n),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("security group: %w", err)
	}
	b.comp.SecurityGroup = sg
	return nil
}

// targetGroup is the internal target group the gateway's internal ALB forwards this pool's
// requests to.
func (b *builder) targetGroup() error {
	n := b.name + "-tg"
	tg, err := lb.NewTargetGroup(b.ctx, n, &lb.TargetGroupArgs{
		// A target group name has at most 32 characters; a generated name from the 6-character
		// prefix always fits (the component name plus a random suffix might not), and lets a
		// replacement be created before the old group goes.
		NamePrefix:      pulumi.String("ollama"),
		VpcId:           b.args.VpcID,
		Port:            pulumi.Int(OllamaPort),
		Protocol:        pulumi.String("HTTP"),
		ProtocolVersion: pulumi.String("HTTP1"),
		TargetType:      pulumi.String("instance"),
		// LLM requests vary from milliseconds to minutes: send each new one to the node with
		// the fewest in flight, not round robin.
		LoadBalancingAlgorithmType: pulumi.String("least_outstanding_requests"),
		DeregistrationDelay:        pulumi.Int(DeregistrationDelaySeconds(b.args.ContextLength)),
		HealthCheck: &lb.TargetGroupHealthCheckArgs{
			Enabled: pulumi.Bool(true),
			// /api/version answers while generations run; it proves the server is up. Model
			// readiness is proven once, before the lifecycle action completes.
			Path:               pulumi.String("/api/version"),
			Matcher:            pulumi.String("200"),
			Protocol:           pulumi.String("HTTP"),
			Port:               pulumi.String("traffic-port"),
			Interval:           pulumi.Int(15),
			Timeout:            pulumi.Int(5),
			HealthyThreshold:   pulumi.Int(2),
			UnhealthyThreshold: pulumi.Int(3),
		},
		Tags: nameTag(n),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("target group: %w", err)
	}
	b.comp.TargetGroup = tg
	return nil
}

// groupTags are the group's tags: Name, Department and Pool propagate to the instances at
// launch (and let the role's lifecycle statement match the group); the other Tags stay on the
// group itself, since the provider's default tags do not reach autoscaling groups and the
// launch template already tags the instances.
func (b *builder) groupTags() autoscaling.GroupTagArray {
	tags := autoscaling.GroupTagArray{}
	for _, t := range []struct{ k, v string }{
		{tagName, b.nodeName()},
		{tagDepartment, b.args.Department},
		{tagPool, b.args.Pool},
	} {
		tags = append(tags, &autoscaling.GroupTagArgs{Key: pulumi.String(t.k), Value: pulumi.String(t.v), PropagateAtLaunch: pulumi.Bool(true)})
	}
	for _, k := range sortedKeys(b.args.Tags) {
		if k == tagName || k == tagDepartment || k == tagPool {
			continue
		}
		tags = append(tags, &autoscaling.GroupTagArgs{Key: pulumi.String(k), Value: pulumi.String(b.args.Tags[k]), PropagateAtLaunch: pulumi.Bool(false)})
	}
	return tags
}

func (b *builder) group() error {
	lt := b.comp.LaunchTemplate
	// The group pins the template's latest version number, never $Latest: a new version is
	// then a change of the group, which starts an instance refresh, and the refresh can roll
	// back to the previous version.
	version := lt.LatestVersion.ApplyT(strconv.Itoa).(pulumi.StringOutput)
	heartbeat := HeartbeatSeconds(b.args.GPU)

	args := &autoscaling.GroupArgs{
		VpcZoneIdentifiers: b.args.SubnetIDs,
		MinSize:            pulumi.Int(b.args.MinSize),
		MaxSize:            pulumi.Int(b.args.MaxSize),
		// Desired capacity is left to scaling (AWS starts at MinSize).
		// ELB health: a node whose Ollama stops answering is replaced, not only a dead VM.
		HealthCheckType: pulumi.String("ELB"),
		// Targets register only after the lifecycle action completes, i.e. once the agent has
		// proven the models loaded, so there is nothing to wait for after that.
		HealthCheckGracePeriod: pulumi.Int(0),
		TargetGroupArns:        pulumi.StringArray{b.comp.TargetGroup.Arn},
		InitialLifecycleHooks: autoscaling.GroupInitialLifecycleHookArray{
			&autoscaling.GroupInitialLifecycleHookArgs{
				Name:                pulumi.String(LaunchHookName),
				LifecycleTransition: pulumi.String("autoscaling:EC2_INSTANCE_LAUNCHING"),
				// A node that never reports (hung bootstrap, dead agent) is thrown away,
				// never put into service half-configured.
				DefaultResult:    pulumi.String("ABANDON"),
				HeartbeatTimeout: pulumi.Int(heartbeat),
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
		Tags: b.groupTags(),
		// `pulumi up` waits for MinSize nodes to pass the lifecycle hook, up to the heartbeat
		// plus ten minutes, so a pool that never becomes ready fails the update instead of
		// passing it (the provider's default of ten minutes is shorter than a GPU boot).
		WaitForCapacityTimeout: pulumi.String(fmt.Sprintf("%dm", heartbeat/60+10)),
	}

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
		args.LaunchTemplate = &autoscaling.GroupLaunchTemplateArgs{Id: lt.ID(), Version: version}
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
	ignore := []string{"desiredCapacity"}
	if b.args.Schedule != nil {
		ignore = append(ignore, "minSize", "maxSize")
	}
	// The node must be able to complete its lifecycle action as soon as it boots.
	after := pulumi.DependsOn([]pulumi.Resource{b.comp.RolePolicy, b.comp.SSMAttachment})

	n := b.name + "-asg"
	group, err := autoscaling.NewGroup(b.ctx, n, args, b.child(after, pulumi.IgnoreChanges(ignore))...)
	if err != nil {
		return fmt.Errorf("autoscaling group: %w", err)
	}
	b.comp.Group = group
	return nil
}

// scaling creates the target-tracking policy and, with a Schedule, the office-hours actions.
func (b *builder) scaling() error {
	// Average CPU is the baseline signal until the gateway adds the internal ALB; request-based
	// tracking (ALBRequestCountPerTarget, or in-flight requests per node) then replaces it.
	// Target tracking cannot scale out from zero (there is no data), which is why office hours
	// use scheduled actions.
	policy, err := autoscaling.NewPolicy(b.ctx, b.name+"-cpu-tracking", &autoscaling.PolicyArgs{
		AutoscalingGroupName: b.comp.Group.Name,
		PolicyType:           pulumi.String("TargetTrackingScaling"),
		TargetTrackingConfiguration: &autoscaling.PolicyTargetTrackingConfigurationArgs{
			PredefinedMetricSpecification: &autoscaling.PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs{
				PredefinedMetricType: pulumi.String("ASGAverageCPUUtilization"),
			},
			TargetValue: pulumi.Float64(CPUTargetPercent),
		},
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("scaling policy: %w", err)
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
		}, b.child()...)
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
