package observability

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	dash "github.com/llm-sandbox/llm-sandbox/internal/dashboard"
)

// Alarm thresholds. docs/observability.md gives each one's reason; keep the two together.
const (
	// NoHealthyNodeGraceMinutes is how long past the launch hook's heartbeat a group that
	// should serve may go without a healthy target before the no-healthy-node alarm fires:
	// Auto Scaling replaces a dead node on its own, and a replacement may take the whole
	// heartbeat to prove ready, so only a group that has not healed by then needs a person.
	NoHealthyNodeGraceMinutes = 5
	// ErrorRatePercent is the share of a group's requests answered 5xx, over 5 minutes, that
	// counts as failing; two failing periods in three fire the alarm.
	ErrorRatePercent = 5
	// ErrorRateMinRequests is the fewest requests in 5 minutes for the rate to count: one
	// failed stream out of three in a quiet hour is not an outage.
	ErrorRateMinRequests = 20
	// ResponseTimeSeconds is the 95th percentile of the targets' response time that, held
	// for 15 minutes, fires the response-time alarm.
	ResponseTimeSeconds = 60
	// PendingSlackMinutes is the window beyond the heartbeat in which nodes must have been
	// pending for a whole heartbeat's worth of minutes to fire the pending-node alarm: the
	// gap between an abandoned node and its replacement does not reset it.
	PendingSlackMinutes = 10
	// InFlightAboveCapacityMinutes is how many consecutive minutes a pool's in-flight
	// requests per node must stay above its parallel to fire the in-flight-above-capacity
	// alarm: twice the scale-out warm-up (modelpool.ScaleOutWarmupSeconds, 5 minutes), so a
	// burst that one working scale-out absorbs stays quiet.
	InFlightAboveCapacityMinutes = 10
)

// Periods of the alarms' metrics, in seconds.
const (
	minute      = 60
	fiveMinutes = 300
)

// alarmTarget is one group of nodes as its alarms see it.
type alarmTarget struct {
	// scopeKey and scopeValue are the tag that names the group (TagPool with the pool's name,
	// or TagTier with "gateway"), the same as on the group itself.
	scopeKey, scopeValue string
	// label names the group in alarm names and descriptions: "gateway" or "pool-<name>".
	label string
	// groupName, loadBalancer, targetGroup are as in Targets.
	groupName, loadBalancer, targetGroup pulumi.StringInput
	// frontDoor is as in Targets.
	frontDoor bool
	// heartbeatMinutes is the launch hook's heartbeat, rounded up to minutes.
	heartbeatMinutes int
	// department and parallel are a pool's (Department, Pool.Parallel); parallel is 0 for
	// the gateway, which has no in-flight alarm.
	department string
	parallel   int
	// gpu is a pool's Pool.GPU.
	gpu bool
}

// alarmSpec is one alarm, before it is registered.
type alarmSpec struct {
	kind        string
	description string
	args        cloudwatch.MetricAlarmArgs
}

func metricQuery(id, ns, name string, dims pulumi.StringMap, period int, stat string) cloudwatch.MetricAlarmMetricQueryArgs {
	return cloudwatch.MetricAlarmMetricQueryArgs{
		Id: pulumi.String(id),
		Metric: &cloudwatch.MetricAlarmMetricQueryMetricArgs{
			Namespace: pulumi.String(ns), MetricName: pulumi.String(name), Dimensions: dims,
			Period: pulumi.Int(period), Stat: pulumi.String(stat),
		},
		ReturnData: pulumi.Bool(false),
	}
}

func expression(id, expr, label string) cloudwatch.MetricAlarmMetricQueryArgs {
	return cloudwatch.MetricAlarmMetricQueryArgs{
		Id: pulumi.String(id), Expression: pulumi.String(expr), Label: pulumi.String(label), ReturnData: pulumi.Bool(true),
	}
}

// alarmSpecs are a group's alarms, in catalog.AlarmKinds order, a pool's in
// catalog.PoolAlarmKinds order.
func alarmSpecs(t alarmTarget) []alarmSpec {
	tg := pulumi.StringMap{dash.DimTargetGroup: t.targetGroup, dash.DimLoadBalancer: t.loadBalancer}
	lb := pulumi.StringMap{dash.DimLoadBalancer: t.loadBalancer}
	asg := pulumi.StringMap{dash.DimGroup: t.groupName}

	// No healthy node while the group should serve. A schedule scales a pool to zero outside
	// its hours, where no healthy node is expected: the expression is 1 only in minutes when
	// the desired capacity is at least 1 and no target is healthy, so it never fires off hours.
	// FILL turns a minute without a HealthyHostCount point (a target group with no targets)
	// into zero healthy nodes.
	noHealthy := t.heartbeatMinutes + NoHealthyNodeGraceMinutes
	noHealthyArgs := cloudwatch.MetricAlarmArgs{
		ComparisonOperator: pulumi.String("GreaterThanOrEqualToThreshold"),
		Threshold:          pulumi.Float64(1),
		EvaluationPeriods:  pulumi.Int(noHealthy),
		DatapointsToAlarm:  pulumi.Int(noHealthy),
		// No point at all means the group's metrics are off: the alarm shows INSUFFICIENT_DATA.
		TreatMissingData: pulumi.String("missing"),
		MetricQueries: cloudwatch.MetricAlarmMetricQueryArray{
			metricQuery("desired", dash.NamespaceASG, dash.MetricDesiredCapacity, asg, minute, "Minimum"),
			metricQuery("healthy", dash.NamespaceELB, dash.MetricHealthy, tg, minute, "Maximum"),
			expression("down", "IF(FILL(desired, 0) >= 1 AND FILL(healthy, 0) < 1, 1, 0)", "should serve, no healthy node"),
		},
	}

	// 5xx rate. The front load balancer serves the gateway only, so its own 5xx (no target,
	// timeouts) count too; pools share the internal one, so theirs are the target group's.
	fiveXX := "FILL(t5xx, 0)"
	reqs := metricQuery("requests", dash.NamespaceELB, dash.MetricRequests, tg, fiveMinutes, "Sum")
	rateQueries := cloudwatch.MetricAlarmMetricQueryArray{
		metricQuery("t5xx", dash.NamespaceELB, dash.MetricTarget5xx, tg, fiveMinutes, "Sum"),
	}
	if t.frontDoor {
		fiveXX += " + FILL(e5xx, 0)"
		reqs = metricQuery("requests", dash.NamespaceELB, dash.MetricRequests, lb, fiveMinutes, "Sum")
		rateQueries = append(rateQueries, metricQuery("e5xx", dash.NamespaceELB, dash.MetricELB5xx, lb, fiveMinutes, "Sum"))
	}
	rateQueries = append(rateQueries, reqs, expression("rate",
		fmt.Sprintf("IF(requests >= %d, 100 * (%s) / requests, 0)", ErrorRateMinRequests, fiveXX), "5xx % of requests"))
	rateArgs := cloudwatch.MetricAlarmArgs{
		ComparisonOperator: pulumi.String("GreaterThanThreshold"),
		Threshold:          pulumi.Float64(ErrorRatePercent),
		EvaluationPeriods:  pulumi.Int(3),
		DatapointsToAlarm:  pulumi.Int(2),
		// No requests, no rate: nothing is failing.
		TreatMissingData: pulumi.String("notBreaching"),
		MetricQueries:    rateQueries,
	}

	responseArgs := cloudwatch.MetricAlarmArgs{
		Namespace:         pulumi.String(dash.NamespaceELB),
		MetricName:        pulumi.String(dash.MetricResponseTime),
		Dimensions:        tg,
		ExtendedStatistic: pulumi.String("p95"),
		Period:            pulumi.Int(fiveMinutes),
		// A percentile of a handful of requests says little: such periods leave the state
		// as it is.
		EvaluateLowSampleCountPercentiles: pulumi.String("ignore"),
		ComparisonOperator:                pulumi.String("GreaterThanThreshold"),
		Threshold:                         pulumi.Float64(ResponseTimeSeconds),
		EvaluationPeriods:                 pulumi.Int(3),
		DatapointsToAlarm:                 pulumi.Int(3),
		TreatMissingData:                  pulumi.String("notBreaching"),
	}

	// Pending nodes for a whole heartbeat's worth of minutes within heartbeat plus slack: a
	// healthy boot ends well inside the heartbeat, so only nodes that keep failing or hanging
	// in Pending:Wait (each abandoned at the heartbeat and replaced) fire it.
	pendingArgs := cloudwatch.MetricAlarmArgs{
		Namespace:          pulumi.String(dash.NamespaceASG),
		MetricName:         pulumi.String(dash.MetricPendingInstances),
		Dimensions:         asg,
		Statistic:          pulumi.String("Maximum"),
		Period:             pulumi.Int(minute),
		ComparisonOperator: pulumi.String("GreaterThanThreshold"),
		Threshold:          pulumi.Float64(0),
		EvaluationPeriods:  pulumi.Int(t.heartbeatMinutes + PendingSlackMinutes),
		DatapointsToAlarm:  pulumi.Int(t.heartbeatMinutes),
		TreatMissingData:   pulumi.String("missing"),
	}

	specs := []alarmSpec{
		{catalog.AlarmNoHealthyNode, fmt.Sprintf("%s: desired capacity is at least 1 but no target has been healthy for %d minutes (launch heartbeat plus %d)", t.label, noHealthy, NoHealthyNodeGraceMinutes), noHealthyArgs},
		{catalog.AlarmErrorRate, fmt.Sprintf("%s: more than %d%% of requests answered 5xx in 2 of 3 five-minute periods (periods with at least %d requests)", t.label, ErrorRatePercent, ErrorRateMinRequests), rateArgs},
		{catalog.AlarmResponseTime, fmt.Sprintf("%s: target response time p95 above %d s for 15 minutes", t.label, ResponseTimeSeconds), responseArgs},
		{catalog.AlarmPendingNode, fmt.Sprintf("%s: nodes pending in %d of the last %d minutes (the launch heartbeat is %d minutes)", t.label, t.heartbeatMinutes, t.heartbeatMinutes+PendingSlackMinutes, t.heartbeatMinutes), pendingArgs},
	}
	if t.parallel == 0 {
		return specs
	}

	// In flight above capacity: the pool's series holds one sample per node and minute, so
	// its Average is the in-flight requests per node, the figure target tracking keeps at 80 %
	// of parallel. Above parallel itself the pool holds more requests than its nodes have
	// slots, so requests wait in the nodes' queues (the load balancer sends each request to
	// the node with the fewest outstanding); ten minutes of it mean scaling has not caught up
	// (the group at its maximum, nodes failing to boot, no capacity). No samples (a pool
	// scaled to zero, or nodes that publish nothing) is no load, not an alarm.
	inFlight := pulumi.StringMap{
		dash.DimensionDepartment: pulumi.String(t.department),
		dash.DimensionPool:       pulumi.String(t.scopeValue),
	}
	inFlightArgs := cloudwatch.MetricAlarmArgs{
		Namespace:          pulumi.String(dash.AgentNamespace),
		MetricName:         pulumi.String(dash.MetricInFlightRequests),
		Dimensions:         inFlight,
		Statistic:          pulumi.String("Average"),
		Period:             pulumi.Int(minute),
		ComparisonOperator: pulumi.String("GreaterThanThreshold"),
		Threshold:          pulumi.Float64(float64(t.parallel)),
		EvaluationPeriods:  pulumi.Int(InFlightAboveCapacityMinutes),
		DatapointsToAlarm:  pulumi.Int(InFlightAboveCapacityMinutes),
		TreatMissingData:   pulumi.String("notBreaching"),
	}
	return append(specs, alarmSpec{catalog.AlarmInFlightAboveCapacity,
		fmt.Sprintf("%s: in-flight requests per node above the pool's parallel (%d) in each of the last %d minutes: requests queue on its nodes and scaling has not caught up",
			t.label, t.parallel, InFlightAboveCapacityMinutes), inFlightArgs})
}
