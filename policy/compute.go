package policy

import (
	"fmt"
	"regexp"
)

const typeASG = "aws:autoscaling/group:Group"

// launchSpec returns the launch template id and version an autoscaling group launches from,
// directly or through its mixed-instances policy.
func launchSpec(g Resource) (id, version string) {
	if lt := obj(g.Inputs["launchTemplate"]); lt != nil {
		return str(lt["id"]), str(lt["version"])
	}
	spec := obj(obj(obj(g.Inputs["mixedInstancesPolicy"])["launchTemplate"])["launchTemplateSpecification"])
	return str(spec["launchTemplateId"]), str(spec["version"])
}

// groupOf returns the autoscaling group that launches from the launch template, if any.
func (p *Plan) groupOf(lt Resource) (Resource, bool) {
	for _, g := range p.byType(typeASG) {
		if id, _ := launchSpec(g); id == lt.ID {
			return g, true
		}
	}
	return Resource{}, false
}

// minPoolVolumeGiB is the root volume a model pool node needs: the GPU AMI's snapshot is
// 75 GiB, and the models are stored beside it.
const minPoolVolumeGiB = 100

func checkPoolVolume(p *Plan) []Finding {
	var out []Finding
	for _, nc := range p.nodeConfigs() {
		if str(nc.config["role"]) != "ollama" {
			continue
		}
		for _, b := range list(nc.lt.Inputs["blockDeviceMappings"]) {
			ebs := obj(obj(b)["ebs"])
			size, _ := num(ebs["volumeSize"])
			if size < minPoolVolumeGiB || str(ebs["volumeType"]) != "gp3" {
				out = append(out, finding(nc.lt, "volume %s: %s of %d GiB; want gp3 of at least %d GiB", str(obj(b)["deviceName"]), str(ebs["volumeType"]), size, minPoolVolumeGiB))
			}
		}
	}
	return out
}

var amiID = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)

func checkAMIPinned(p *Plan) []Finding {
	return p.eachOf(typeLaunchTmpl, func(lt Resource) string {
		if id := str(lt.Inputs["imageId"]); !amiID.MatchString(id) {
			return fmt.Sprintf("imageId %q; want a concrete ami-… id resolved at deploy time", id)
		}
		return ""
	})
}

func checkMonitoring(p *Plan) []Finding {
	return p.eachOf(typeLaunchTmpl, func(lt Resource) string {
		if on, _ := obj(lt.Inputs["monitoring"])["enabled"].(bool); !on {
			return "monitoring.enabled is not true"
		}
		return ""
	})
}

var numbered = regexp.MustCompile(`^[1-9][0-9]*$`)

func checkLTVersion(p *Plan) []Finding {
	templates := map[string]bool{}
	for _, lt := range p.byType(typeLaunchTmpl) {
		templates[lt.ID] = true
	}
	return p.eachOf(typeASG, func(g Resource) string {
		switch id, version := launchSpec(g); {
		case !templates[id]:
			return fmt.Sprintf("launches from %q, not a launch template of the plan", id)
		case !numbered.MatchString(version):
			return fmt.Sprintf("launch template version %q; want a version number", version)
		}
		return ""
	})
}

func checkASGHealth(p *Plan) []Finding {
	return p.eachOf(typeASG, func(g Resource) string {
		if t := str(g.Inputs["healthCheckType"]); len(list(g.Inputs["targetGroupArns"])) > 0 && t != "ELB" {
			return fmt.Sprintf("healthCheckType %q with target groups; want ELB", t)
		}
		return ""
	})
}

func checkASGMultiAZ(p *Plan) []Finding {
	return p.eachOf(typeASG, func(g Resource) string {
		if n := len(strs(g.Inputs["vpcZoneIdentifiers"])); n < 2 {
			return fmt.Sprintf("%d subnets; want at least 2, in different zones", n)
		}
		return ""
	})
}

const launching = "autoscaling:EC2_INSTANCE_LAUNCHING"

// launchHook returns a group's launch lifecycle hook.
func launchHook(g Resource) map[string]any { return lifecycleHook(g, launching) }

// lifecycleHook returns a group's lifecycle hook on a transition, nil when it has none.
func lifecycleHook(g Resource, transition string) map[string]any {
	for _, h := range list(g.Inputs["initialLifecycleHooks"]) {
		if str(obj(h)["lifecycleTransition"]) == transition {
			return obj(h)
		}
	}
	return nil
}

func checkLaunchHook(p *Plan) []Finding {
	return p.eachOf(typeASG, func(g Resource) string {
		h := launchHook(g)
		beat, _ := num(h["heartbeatTimeout"])
		switch {
		case h == nil:
			return fmt.Sprintf("no %s lifecycle hook: nodes take traffic before they prove ready", launching)
		case str(h["defaultResult"]) != "ABANDON":
			return fmt.Sprintf("launch hook %s defaultResult %q; want ABANDON", str(h["name"]), str(h["defaultResult"]))
		case beat < 30 || beat > 7200:
			return fmt.Sprintf("launch hook %s heartbeatTimeout %d; want 30 to 7200 seconds", str(h["name"]), beat)
		}
		return ""
	})
}

func checkInstanceRefresh(p *Plan) []Finding {
	return p.eachOf(typeASG, func(g Resource) string {
		prefs := obj(obj(g.Inputs["instanceRefresh"])["preferences"])
		minHealthy, _ := num(prefs["minHealthyPercentage"])
		if rollback, _ := prefs["autoRollback"].(bool); minHealthy < 100 || !rollback {
			return fmt.Sprintf("instance refresh minHealthyPercentage %d, autoRollback %v; want 100 and true", minHealthy, rollback)
		}
		return ""
	})
}

const terminating = "autoscaling:EC2_INSTANCE_TERMINATING"

// terminatingHook returns a group's terminating lifecycle hook.
func terminatingHook(g Resource) map[string]any { return lifecycleHook(g, terminating) }

// checkTerminatingHook wants a terminating hook on every group, with a heartbeat no shorter
// than the longest deregistration delay of the group's target groups: the node agent drains
// for up to that delay before it completes the action, and a shorter heartbeat would let Auto
// Scaling terminate the node mid-stream. The node config of the group's launch template must
// name that hook (the drain watcher completes the hook it names) and drain for no longer than
// the heartbeat.
func checkTerminatingHook(p *Plan) []Finding {
	delays := map[string]int{}
	for _, tg := range p.byType(typeTargetGroup) {
		// AWS's default deregistration delay is 300 s.
		d, ok := num(tg.Inputs["deregistrationDelay"])
		if !ok {
			d = 300
		}
		delays[tg.ARN] = d
	}
	out := p.eachOf(typeASG, func(g Resource) string {
		hook := terminatingHook(g)
		if hook == nil {
			return fmt.Sprintf("no %s lifecycle hook: a scale-in or a spot interruption cuts streams mid-answer", terminating)
		}
		beat, ok := num(hook["heartbeatTimeout"])
		if !ok {
			// AWS's default heartbeat is 3600 s.
			beat = 3600
		}
		for _, arn := range strs(g.Inputs["targetGroupArns"]) {
			if d := delays[arn]; beat < d {
				return fmt.Sprintf("terminating hook %s heartbeatTimeout %d is shorter than target group %s's deregistration delay %d; want at least %d", str(hook["name"]), beat, arn, d, d)
			}
		}
		return ""
	})
	for _, nc := range p.nodeConfigs() {
		g, ok := p.groupOf(nc.lt)
		hook := terminatingHook(g)
		if nc.err != nil || !ok || hook == nil {
			continue // node-config-rendered, node-config-hook-matches and the check above say why
		}
		lc := obj(nc.config["lifecycle"])
		drain, _ := num(lc["drainSeconds"])
		beat, _ := num(hook["heartbeatTimeout"])
		if str(lc["terminateHook"]) != str(hook["name"]) || drain < 1 || drain > beat {
			out = append(out, finding(nc.lt, "node config drains %d s for terminating hook %q; group %s's terminating hook is %q (heartbeat %d s): want its name and 1..%d s",
				drain, str(lc["terminateHook"]), g.Name, str(hook["name"]), beat, beat))
		}
	}
	return out
}
