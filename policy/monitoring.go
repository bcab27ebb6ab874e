package policy

import (
	"fmt"
	"slices"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
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

// checkAlarms requires, for every autoscaling group, each alarm of catalog.AlarmKinds tagged
// with the group's scope, notifying an SNS topic of the plan when it fires.
func checkAlarms(p *Plan) []Finding {
	topics := map[string]bool{}
	for _, t := range p.byType(typeTopic) {
		topics[t.ARN] = true
	}
	var out []Finding
	for _, g := range p.byType(typeASG) {
		key, value := groupScope(g)
		if key == "" {
			out = append(out, finding(g, "has neither a %s nor a %s tag, so no alarm can be told to be its", catalog.TagPool, catalog.TagTier))
			continue
		}
		for _, kind := range catalog.AlarmKinds() {
			var alarms []Resource
			for _, a := range p.byType(typeAlarm) {
				tags := obj(a.Inputs["tags"])
				if str(tags[key]) == value && str(tags[catalog.TagAlarm]) == kind {
					alarms = append(alarms, a)
				}
			}
			if len(alarms) == 0 {
				out = append(out, finding(g, "no %s alarm (tagged %s=%s, %s=%s); every pool and the gateway have one", kind, key, value, catalog.TagAlarm, kind))
				continue
			}
			for _, a := range alarms {
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
