package catalog

// TagAlarm marks a department alarm with what it watches (one of AlarmKinds). Together with
// TagPool or TagTier on the same alarm it says which group of nodes the alarm is for, so that
// a plan can be checked for the alarms every group must have.
const TagAlarm = "llm-sandbox:alarm"

// The alarms every model pool and the gateway have (docs/observability.md gives each one's
// threshold and its reason).
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
)

// AlarmKinds returns the alarms every group of nodes has, in a fixed order.
func AlarmKinds() []string {
	return []string{AlarmNoHealthyNode, AlarmErrorRate, AlarmResponseTime, AlarmPendingNode}
}
