package dashboard

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The gateway and a pool carry the labels their alarms are named with, and only the gateway's
// row plots the load balancer's own errors.
func TestGroupsNameTheirAlarmsAndErrors(t *testing.T) {
	gw := Gateway("chem", "gw-asg", "app/front/1", "targetgroup/gw/2")
	pool := Pool("chem", "gpu", true, "gpu-asg", "app/internal/3", "targetgroup/gpu/4")
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
	if want := []Dimension{{Name: "Department", Value: "chem"}, {Name: "Pool", Value: "gateway"}}; !slices.Equal(gw.InFlight, want) {
		t.Errorf("Gateway in-flight series = %v, want %v", gw.InFlight, want)
	}
	if want := []Dimension{{Name: "Department", Value: "chem"}, {Name: "Pool", Value: "gpu"}}; !slices.Equal(pool.InFlight, want) {
		t.Errorf("Pool in-flight series = %v, want %v", pool.InFlight, want)
	}
	if !elb(gw) || elb(pool) {
		t.Errorf("load balancer 5xx plotted: gateway %t, pool %t; want true, false", elb(gw), elb(pool))
	}
}

// graph returns the graph of g titled title, or fails.
func graph(t *testing.T, ws []Widget, title string) Widget {
	t.Helper()
	for _, w := range ws {
		if w.Properties.Title == title {
			return w
		}
	}
	t.Fatalf("no graph %q", title)
	return Widget{}
}

// A GPU pool plots its nodes' GPU figures by a search over the nodes' series of the pool; a
// CPU pool has no GPU graph; the gateway plots its nodes' in-flight series.
func TestGPUAndInFlightGraphs(t *testing.T) {
	gpu := Graphs(Pool("chem", "gpu", true, "gpu-asg", "app/internal/3", "targetgroup/gpu/4"))
	for _, c := range []struct{ title, want string }{
		{"Pool gpu: GPU utilisation per node (%)", `SEARCH('{LLMSandbox,Department,Pool,InstanceId} MetricName="GPUUtilization" Department="chem" Pool="gpu"', 'Average', 60)`},
		{"Pool gpu: GPU memory used per node (MiB)", `SEARCH('{LLMSandbox,Department,Pool,InstanceId} MetricName="GPUMemoryUsed" Department="chem" Pool="gpu"', 'Maximum', 60)`},
	} {
		w := graph(t, gpu, c.title)
		if len(w.Properties.Metrics) != 1 || w.Properties.Metrics[0].Search == nil {
			t.Fatalf("%s: metrics %+v, want one search", c.title, w.Properties.Metrics)
		}
		data, err := json.Marshal(w.Properties.Metrics[0])
		if err != nil {
			t.Fatal(err)
		}
		var back []map[string]string
		if err := json.Unmarshal(data, &back); err != nil || len(back) != 1 {
			t.Fatalf("%s: metric JSON %s, want one options object", c.title, data)
		}
		if back[0]["expression"] != c.want || back[0]["label"] != "node ${PROP('Dim.InstanceId')}" || back[0]["id"] == "" || back[0]["stat"] != "" {
			t.Errorf("%s: metric JSON %s, want expression %s labelled by instance", c.title, data, c.want)
		}
	}
	for _, w := range Graphs(Pool("chem", "cpu", false, "cpu-asg", "app/internal/3", "targetgroup/cpu/5")) {
		if strings.Contains(w.Properties.Title, "GPU") {
			t.Errorf("CPU pool plots %q", w.Properties.Title)
		}
	}
	w := graph(t, Graphs(Gateway("chem", "gw-asg", "app/front/1", "targetgroup/gw/2")), "Gateway: in-flight requests per node")
	dims := []Dimension{{Name: "Department", Value: "chem"}, {Name: "Pool", Value: "gateway"}}
	if len(w.Properties.Metrics) != 2 || w.Properties.Metrics[0].Name != "InFlightRequests" || !slices.Equal(w.Properties.Metrics[0].Dimensions, dims) ||
		w.Properties.Metrics[0].Options.Stat != "Average" || w.Properties.Metrics[1].Options.Stat != "Maximum" {
		t.Errorf("gateway in-flight graph %+v, want Average and Maximum of %v", w.Properties.Metrics, dims)
	}
}

// The department's tokens per second add up every key's usage series of the department and
// divide by the period the search fixes.
func TestUsageGraphsSumEveryKeysTokensPerSecond(t *testing.T) {
	w := graph(t, UsageGraphs("chem"), "Usage: tokens per second")
	want := map[string]string{
		"completion tokens/s": `SUM(SEARCH('{LLMSandbox/Usage,Department,KeyId,Team} MetricName="CompletionTokens" Department="chem"', 'Sum', 60)) / 60`,
		"prompt tokens/s":     `SUM(SEARCH('{LLMSandbox/Usage,Department,KeyId,Team} MetricName="PromptTokens" Department="chem"', 'Sum', 60)) / 60`,
	}
	ids := map[string]bool{}
	for _, m := range w.Properties.Metrics {
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back Metric
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("%s does not read back: %v", data, err)
		}
		if e, ok := want[back.Options.Label]; !ok || back.Options.Expression != e {
			t.Errorf("usage metric %s, want one of %v", data, want)
		}
		delete(want, back.Options.Label)
		if id := back.Options.ID; id == "" || ids[id] || strings.ToLower(id[:1]) != id[:1] {
			t.Errorf("usage metric id %q: want unique, starting lower case", id)
		}
		ids[back.Options.ID] = true
	}
	if len(want) != 0 {
		t.Errorf("usage graph lacks %v", want)
	}
}
