package policy

import (
	"fmt"
	"slices"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
)

const (
	typeAlarm = "aws:cloudwatch/metricAlarm:MetricAlarm"
	typeTopic = "aws:sns/topic:Topic"
)

// groupScope is the tag that says which pool (Pool) or tier (llm-sandbox:tier) a group of
// nodes is, as the group carries it; alarms carry the same tag.
func groupScope(g Resource) (key, value string) {
	for _, t := range list(g.Inputs["tags"]) {
		k := str(obj(t)["key"])
		if k == catalog.TagPool || k == catalog.TagTier {
			return k, str(obj(t)["value"])
		}
	}
	return "", ""
}

// checkAlarms requires, for every autoscaling group, each alarm of its kinds tagged with the
// group's scope (catalog.PoolAlarmKinds for a pool, catalog.AlarmKinds for the gateway),
// notifying an SNS topic of the plan when it fires.
func checkAlarms(p *Plan) []Finding {
	topics := map[string]bool{}
	for _, t := range p.byType(typeTopic) {
		topics[t.ARN] = true
	}
	parallel := p.poolParallel()
	var out []Finding
	for _, g := range p.byType(typeASG) {
		key, value := groupScope(g)
		if key == "" {
			out = append(out, finding(g, "has neither a %s nor a %s tag, so no alarm can be told to be its", catalog.TagPool, catalog.TagTier))
			continue
		}
		kinds := catalog.AlarmKinds()
		if key == catalog.TagPool {
			kinds = catalog.PoolAlarmKinds()
		}
		for _, kind := range kinds {
			var alarms []Resource
			for _, a := range p.byType(typeAlarm) {
				tags := obj(a.Inputs["tags"])
				if str(tags[key]) == value && str(tags[catalog.TagAlarm]) == kind {
					alarms = append(alarms, a)
				}
			}
			if len(alarms) == 0 {
				who := "every pool and the gateway have one"
				if !slices.Contains(catalog.AlarmKinds(), kind) {
					who = "every pool has one"
				}
				out = append(out, finding(g, "no %s alarm (tagged %s=%s, %s=%s); %s", kind, key, value, catalog.TagAlarm, kind, who))
				continue
			}
			for _, a := range alarms {
				if kind == catalog.AlarmInFlightAboveCapacity {
					out = append(out, checkInFlightAlarm(a, value, parallel)...)
				}
				actions := strs(a.Inputs["alarmActions"])
				if !slices.ContainsFunc(actions, func(arn string) bool { return topics[arn] }) {
					out = append(out, finding(a, "%s alarm of %s=%s notifies %v; want the department's alarm topic, so someone hears of it", kind, key, value, actions))
				}
				if on, set := a.Inputs["actionsEnabled"].(bool); set && !on {
					out = append(out, finding(a, "%s alarm of %s=%s has actionsEnabled false; it would never notify", kind, key, value))
				}
			}
		}
	}
	return out
}

// poolParallel returns each pool's parallel (OLLAMA_NUM_PARALLEL) as its launch template's
// node config says it.
func (p *Plan) poolParallel() map[string]int {
	out := map[string]int{}
	for _, nc := range p.nodeConfigs() {
		if nc.err != nil || str(nc.config["role"]) != "ollama" {
			continue
		}
		if n, ok := num(obj(nc.config["ollama"])["parallel"]); ok {
			out[str(nc.config["pool"])] = n
		}
	}
	return out
}

// checkInFlightAlarm requires a pool's in-flight-above-capacity alarm to watch the pool's own
// in-flight series with the pool's parallel as its threshold: above it requests queue on the
// nodes; a higher threshold would stay quiet while they do.
func checkInFlightAlarm(a Resource, pool string, parallel map[string]int) []Finding {
	var out []Finding
	dims := obj(a.Inputs["dimensions"])
	if got := str(dims[llmmetrics.DimensionPool]); got != pool || str(a.Inputs["metricName"]) != llmmetrics.MetricInFlightRequests || str(a.Inputs["namespace"]) != llmmetrics.Namespace {
		out = append(out, finding(a, "%s alarm of Pool=%s watches %s %s with Pool=%s; want the pool's own %s %s series",
			catalog.AlarmInFlightAboveCapacity, pool, str(a.Inputs["namespace"]), str(a.Inputs["metricName"]), got, llmmetrics.Namespace, llmmetrics.MetricInFlightRequests))
	}
	want, known := parallel[pool]
	if got, _ := a.Inputs["threshold"].(float64); known && got != float64(want) {
		out = append(out, finding(a, "%s alarm of Pool=%s has threshold %g; want the pool's parallel %d (its nodes' OLLAMA_NUM_PARALLEL), above which requests queue",
			catalog.AlarmInFlightAboveCapacity, pool, got, want))
	}
	return out
}

// checkTopicEncryption requires every SNS topic to be encrypted with the department key (the
// default is no encryption at rest; alias/aws/sns cannot be used by CloudWatch alarms).
func checkTopicEncryption(p *Plan) []Finding {
	keys := p.departmentKeys()
	return p.eachOf(typeTopic, func(t Resource) string {
		if k := str(t.Inputs["kmsMasterKeyId"]); !keys[k] {
			return fmt.Sprintf("kmsMasterKeyId %q; want the department key", k)
		}
		return ""
	})
}
