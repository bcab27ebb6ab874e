package catalog

// TagAlarm marks a department alarm with what it watches (one of AlarmKinds). Together with
// TagPool or TagTier on the same alarm it says which group of nodes the alarm is for, so that
// a plan can be checked for the alarms every group must have.
const TagAlarm = "llm-sandbox:alarm"

// The alarms of the groups of nodes (docs/observability.md gives each one's threshold and its
// reason): AlarmKinds on every model pool and on the gateway, PoolAlarmKinds on every pool.
const (
	// AlarmNoHealthyNode: the group should be serving (desired capacity at least 1) and its
	// target group has had no healthy node for longer than a node takes to boot.
	AlarmNoHealthyNode = "no-healthy-node"
	// AlarmErrorRate: the share of requests answered 5xx is high.
	AlarmErrorRate = "5xx-rate"
	// AlarmResponseTime: the 95th percentile of the targets' response time is high.
	AlarmResponseTime = "response-time"
	// AlarmPendingNode: nodes stay in Pending (the launch hook's Pending:Wait) for longer
	// than the hook's heartbeat allows one node.
	AlarmPendingNode = "pending-node"
	// AlarmInFlightAboveCapacity (pools only): the pool's in-flight requests per node have
	// stayed above its parallel slots for 10 minutes, so requests queue on its nodes and
	// scaling has not caught up. The gateway has no such figure of capacity.
	AlarmInFlightAboveCapacity = "in-flight-above-capacity"
)

// AlarmKinds returns the alarms every group of nodes has (the gateway and every pool), in a
// fixed order.
func AlarmKinds() []string {
	return []string{AlarmNoHealthyNode, AlarmErrorRate, AlarmResponseTime, AlarmPendingNode}
}

// PoolAlarmKinds returns the alarms every model pool has: AlarmKinds, then those only a pool
// has, in a fixed order.
func PoolAlarmKinds() []string {
	return append(AlarmKinds(), AlarmInFlightAboveCapacity)
}
