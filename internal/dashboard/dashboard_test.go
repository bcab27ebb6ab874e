package dashboard

import (
	"slices"
	"strings"
	"testing"
)

// The gateway and a pool carry the labels their alarms are named with, and only the gateway's
// row plots the load balancer's own errors.
func TestGroupsNameTheirAlarmsAndErrors(t *testing.T) {
	gw := Gateway("gw-asg", "app/front/1", "targetgroup/gw/2")
	pool := Pool("chem", "gpu", "gpu-asg", "app/internal/3", "targetgroup/gpu/4")
	if gw.Label != "gateway" || gw.Title != "Gateway" || !gw.FrontDoor {
		t.Errorf("Gateway = %+v", gw)
	}
	if pool.Label != "pool-gpu" || pool.Title != "Pool gpu" || pool.FrontDoor {
		t.Errorf("Pool = %+v", pool)
	}
	if got := AlarmName("chem", pool.Label, "no-healthy-node"); got != "llm-sandbox-chem-pool-gpu-no-healthy-node" {
		t.Errorf("AlarmName = %s", got)
	}
	elb := func(g Targets) bool {
		for _, w := range Graphs(g) {
			if !strings.HasPrefix(w.Properties.Title, g.Title+": ") {
				t.Errorf("graph %q is not titled after its group %q", w.Properties.Title, g.Title)
			}
			for _, m := range w.Properties.Metrics {
				if m.Name == MetricELB5xx {
					return true
				}
			}
		}
		return false
	}
	if len(gw.InFlight) != 0 {
		t.Errorf("the gateway plots an in-flight series %v; its nodes publish none", gw.InFlight)
	}
	if want := []Dimension{{Name: "Department", Value: "chem"}, {Name: "Pool", Value: "gpu"}}; !slices.Equal(pool.InFlight, want) {
		t.Errorf("Pool in-flight series = %v, want %v", pool.InFlight, want)
	}
	if !elb(gw) || elb(pool) {
		t.Errorf("load balancer 5xx plotted: gateway %t, pool %t; want true, false", elb(gw), elb(pool))
	}
}
