// Package statustest stands a department up in the AWS emulator the way a deployed stack looks
// to `sandboxctl status`: a front and an internal load balancer, a target group and an
// autoscaling group per group of nodes (attached, so the emulator registers the group's
// instances), the department's alarms under the names the observability component gives
// them, and metric data. It creates them through the same AWS APIs a deployment leaves them
// for, so status reads them as it reads a real account.
package statustest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/llm-sandbox/llm-sandbox/internal/dashboard"
	"github.com/llm-sandbox/llm-sandbox/internal/status"
)

// Group is one group of nodes as the emulator holds it.
type Group struct {
	// Targets is the group as the dashboard names it (title, label, ARN suffixes).
	Targets dashboard.Targets
	// TargetGroupArn is its target group's ARN.
	TargetGroupArn string
	// Instances are the instances the emulator launched for it.
	Instances []string
}

// Department is a department stood up in the emulator.
type Department struct {
	Name string
	// Gateway and Pools are its groups; Pools by pool name.
	Gateway Group
	Pools   map[string]Group
	// Alarms are every alarm's name, as the observability component names them.
	Alarms []string

	cfg aws.Config
}

// Seed creates department's groups in the emulator cfg points at: the gateway with gateway
// nodes, each pool of pools with its number of nodes. Group names are "<department>-<label>",
// as the stack's outputs would name generated ones.
func Seed(t testing.TB, cfg aws.Config, department string, gateway int, pools map[string]int) *Department {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("emulator: %s: %v", what, err)
		}
	}
	ec := ec2.NewFromConfig(cfg)
	vpc, err := ec.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.20.0.0/16")})
	must("CreateVpc", err)
	var subnets []string
	for i, az := range []string{"a", "b"} {
		s, err := ec.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId,
			CidrBlock: aws.String(fmt.Sprintf("10.20.%d.0/24", i)), AvailabilityZone: aws.String(cfg.Region + az)})
		must("CreateSubnet", err)
		subnets = append(subnets, aws.ToString(s.Subnet.SubnetId))
	}
	images, err := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	must("DescribeImages", err)
	if len(images.Images) == 0 {
		t.Fatal("emulator: no image to launch")
	}
	lt, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(department + "-nodes"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: images.Images[0].ImageId, InstanceType: ec2types.InstanceTypeT3Large},
	})
	must("CreateLaunchTemplate", err)

	elb := elbv2.NewFromConfig(cfg)
	newLB := func(name string, scheme elbtypes.LoadBalancerSchemeEnum) string {
		out, err := elb.CreateLoadBalancer(ctx, &elbv2.CreateLoadBalancerInput{Name: aws.String(name), Subnets: subnets, Scheme: scheme})
		must("CreateLoadBalancer "+name, err)
		return aws.ToString(out.LoadBalancers[0].LoadBalancerArn)
	}
	front := newLB(department+"-front", elbtypes.LoadBalancerSchemeEnumInternetFacing)
	internal := newLB(department+"-internal", elbtypes.LoadBalancerSchemeEnumInternal)

	asg := autoscaling.NewFromConfig(cfg)
	port := int32(11434)
	group := func(label, lbArn string, nodes int) Group {
		tg, err := elb.CreateTargetGroup(ctx, &elbv2.CreateTargetGroupInput{Name: aws.String(department + "-" + label),
			Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(port), VpcId: vpc.Vpc.VpcId, TargetType: elbtypes.TargetTypeEnumInstance})
		must("CreateTargetGroup "+label, err)
		tgArn := aws.ToString(tg.TargetGroups[0].TargetGroupArn)
		_, err = elb.CreateListener(ctx, &elbv2.CreateListenerInput{LoadBalancerArn: aws.String(lbArn),
			Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(port),
			DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tgArn)}}})
		must("CreateListener "+label, err)
		port++
		name := department + "-" + label
		_, err = asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
			AutoScalingGroupName: aws.String(name),
			MinSize:              aws.Int32(0), MaxSize: aws.Int32(8), DesiredCapacity: aws.Int32(int32(nodes)),
			LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId},
			VPCZoneIdentifier: aws.String(subnets[0] + "," + subnets[1]),
			TargetGroupARNs:   []string{tgArn},
		})
		must("CreateAutoScalingGroup "+name, err)
		out, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
		must("DescribeAutoScalingGroups "+name, err)
		g := Group{TargetGroupArn: tgArn}
		for _, i := range out.AutoScalingGroups[0].Instances {
			g.Instances = append(g.Instances, aws.ToString(i.InstanceId))
		}
		return g
	}
	d := &Department{Name: department, Pools: map[string]Group{}, cfg: cfg}
	d.Gateway = group(dashboard.GatewayLabel, front, gateway)
	d.Gateway.Targets = dashboard.Gateway(department, department+"-"+dashboard.GatewayLabel, lbSuffix(front), tgSuffix(d.Gateway.TargetGroupArn))
	for _, pool := range slices.Sorted(maps.Keys(pools)) {
		label := dashboard.PoolLabel(pool)
		g := group(label, internal, pools[pool])
		// The GPU flag only decides which graphs a group has; a test that wants a pool's GPU
		// figures says so in status.Input and publishes the nodes' series itself.
		g.Targets = dashboard.Pool(department, pool, false, department+"-"+label, lbSuffix(internal), tgSuffix(g.TargetGroupArn))
		d.Pools[pool] = g
	}

	// The alarms, under the component's names; what they watch does not matter to status,
	// which reads their state.
	cw := status.NewClients(cfg).CloudWatch
	for _, g := range d.Groups() {
		for _, kind := range status.AlarmKinds(g.Targets.Label) {
			name := dashboard.AlarmName(department, g.Targets.Label, kind)
			_, err := cw.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{
				AlarmName: aws.String(name), Namespace: aws.String(dashboard.NamespaceASG), MetricName: aws.String(dashboard.MetricPendingInstances),
				Dimensions: []cwtypes.Dimension{{Name: aws.String(dashboard.DimGroup), Value: aws.String(g.Targets.GroupName)}},
				Statistic:  cwtypes.StatisticMaximum, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(1),
				Threshold: aws.Float64(0), ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanThreshold,
			})
			must("PutMetricAlarm "+name, err)
			d.Alarms = append(d.Alarms, name)
		}
	}
	return d
}

// Groups are the gateway, then the pools by name.
func (d *Department) Groups() []Group {
	out := []Group{d.Gateway}
	for _, pool := range slices.Sorted(maps.Keys(d.Pools)) {
		out = append(out, d.Pools[pool])
	}
	return out
}

// SetAlarm sets an alarm's state as CloudWatch would on evaluation.
func (d *Department) SetAlarm(t testing.TB, name string, state cwtypes.StateValue, reason string) {
	t.Helper()
	_, err := status.NewClients(d.cfg).CloudWatch.SetAlarmState(context.Background(), &cloudwatch.SetAlarmStateInput{
		AlarmName: aws.String(name), StateValue: state, StateReason: aws.String(reason)})
	if err != nil {
		t.Fatalf("emulator: SetAlarmState %s: %v", name, err)
	}
}

// Put publishes values of the metric at the timestamp, each its own data point (as the load
// balancers and Auto Scaling publish them).
func (d *Department) Put(t testing.TB, m dashboard.Metric, at time.Time, values ...float64) {
	t.Helper()
	var dims []cwtypes.Dimension
	for _, dim := range m.Dimensions {
		dims = append(dims, cwtypes.Dimension{Name: aws.String(dim.Name), Value: aws.String(dim.Value)})
	}
	var data []cwtypes.MetricDatum
	for _, v := range values {
		data = append(data, cwtypes.MetricDatum{MetricName: aws.String(m.Name), Dimensions: dims, Timestamp: aws.Time(at), Value: aws.Float64(v)})
	}
	cw := status.NewClients(d.cfg).CloudWatch
	for batch := range slices.Chunk(data, 1000) {
		if _, err := cw.PutMetricData(context.Background(), &cloudwatch.PutMetricDataInput{Namespace: aws.String(m.Namespace), MetricData: batch}); err != nil {
			t.Fatalf("emulator: PutMetricData %s %s: %v", m.Namespace, m.Name, err)
		}
	}
}

// StopInstances stops instances: their targets stop being healthy.
func (d *Department) StopInstances(t testing.TB, ids []string) {
	t.Helper()
	if _, err := ec2.NewFromConfig(d.cfg).StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatalf("emulator: StopInstances: %v", err)
	}
}

// EnterStandby moves an instance of a group to Standby, keeping the group's desired capacity.
func (d *Department) EnterStandby(t testing.TB, group, id string) {
	t.Helper()
	_, err := autoscaling.NewFromConfig(d.cfg).EnterStandby(context.Background(), &autoscaling.EnterStandbyInput{
		AutoScalingGroupName: aws.String(group), InstanceIds: []string{id}, ShouldDecrementDesiredCapacity: aws.Bool(false)})
	if err != nil {
		t.Fatalf("emulator: EnterStandby %s: %v", id, err)
	}
}

// lbSuffix and tgSuffix are the parts of ELB ARNs CloudWatch names load balancers and target
// groups by ("app/<name>/<id>", "targetgroup/<name>/<id>"), as pulumi-aws's arnSuffix gives them.
func lbSuffix(arn string) string {
	_, after, _ := strings.Cut(arn, ":loadbalancer/")
	return after
}

func tgSuffix(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	return parts[len(parts)-1]
}
