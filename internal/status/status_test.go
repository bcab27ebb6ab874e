package status_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/dashboard"
	"github.com/llm-sandbox/llm-sandbox/internal/preflight/preflighttest"
	"github.com/llm-sandbox/llm-sandbox/internal/status"
	"github.com/llm-sandbox/llm-sandbox/internal/status/statustest"
	"github.com/llm-sandbox/llm-sandbox/internal/usage"
)

const region = "ca-central-1"

// metric is the dashboard's metric of a group's graphs with that name and statistic.
func metric(t *testing.T, g dashboard.Targets, name, stat string) dashboard.Metric {
	t.Helper()
	for _, w := range dashboard.Graphs(g) {
		for _, m := range w.Properties.Metrics {
			if m.Name == name && m.Options.Stat == stat {
				return m
			}
		}
	}
	t.Fatalf("%s: the dashboard plots no %s (%s)", g.Title, name, stat)
	return dashboard.Metric{}
}

// figure is the report's figure of a group with that metric name and statistic.
func figure(t *testing.T, g status.Group, name, stat string) status.Figure {
	t.Helper()
	for _, graph := range g.Graphs {
		for _, f := range graph.Figures {
			if f.Metric == name && f.Stat == stat {
				return f
			}
		}
	}
	t.Fatalf("%s: no figure %s (%s)", g.Title, name, stat)
	return status.Figure{}
}

func value(f status.Figure) string { return status.FormatValue(f.Value) }

// figureIn is the figure of the graphs with that metric name.
func figureIn(t *testing.T, graphs []status.Graph, name string) status.Figure {
	t.Helper()
	for _, graph := range graphs {
		for _, f := range graph.Figures {
			if f.Metric == name {
				return f
			}
		}
	}
	t.Fatalf("no figure %s in %+v", name, graphs)
	return status.Figure{}
}

// notToday are office hours on a day that is not today's, so the pool is outside them now.
func notToday(now time.Time) *status.Hours {
	day := strings.ToUpper(now.In(time.UTC).Add(48 * time.Hour).Weekday().String()[:3])
	return &status.Hours{Timezone: "UTC", Days: day, Start: "00:00", Stop: "23:59"}
}

// Status reads every figure of the dashboard's graphs with the graph's statistic over the
// window (and nothing before it), the groups' capacity, instances and targets now, and the
// alarms, those in ALARM first; an alarm in ALARM and a pool without a healthy node in its
// hours are problems, a pool without one outside its hours is not.
func TestCollectReadsTheDashboardsFiguresAndFindsProblems(t *testing.T) {
	m := preflighttest.Start(t, nil)
	cfg := m.Config(region)
	d := statustest.Seed(t, cfg, "chem", 2, map[string]int{"gpu": 2, "embed": 1})
	now := time.Now().UTC()
	at := now.Add(-10 * time.Minute)
	gw := d.Gateway.Targets

	d.Put(t, metric(t, gw, dashboard.MetricRequests, "Sum"), at, 100, 50)
	d.Put(t, metric(t, gw, dashboard.MetricRequests, "Sum"), now.Add(-2*time.Hour), 1000) // before the window
	d.Put(t, metric(t, gw, dashboard.MetricTarget5xx, "Sum"), at, 2, 1)
	// 40 fast, 50 middling and 10 slow answers: p50 0.8 s and p95 9 s whichever way a
	// percentile is interpolated.
	var times []float64
	for i := range 100 {
		switch {
		case i < 40:
			times = append(times, 0.2)
		case i < 90:
			times = append(times, 0.8)
		default:
			times = append(times, 9)
		}
	}
	d.Put(t, metric(t, gw, dashboard.MetricResponseTime, "p50"), at, times...)
	d.Put(t, metric(t, gw, dashboard.MetricHealthy, "Minimum"), at, 2, 1, 2)
	d.Put(t, metric(t, gw, dashboard.MetricCPU, "Average"), at, 10, 30)

	gpuAlarm := dashboard.AlarmName("chem", dashboard.PoolLabel("gpu"), catalog.AlarmNoHealthyNode)
	d.SetAlarm(t, gpuAlarm, cwtypes.StateValueAlarm, "Threshold Crossed: 1 datapoint [1.0] was >= the threshold (1.0).")
	d.StopInstances(t, d.Pools["gpu"].Instances)
	d.StopInstances(t, d.Pools["embed"].Instances)
	d.EnterStandby(t, gw.GroupName, d.Gateway.Instances[0])

	// The GPU pool's nodes' GPU figures, each node its own series; the searches must not
	// take a series with other dimensions, or another pool's or department's.
	node := func(name, pool, instance string) dashboard.Metric {
		dims := []dashboard.Dimension{{Name: "Department", Value: "chem"}, {Name: "Pool", Value: pool}}
		if instance != "" {
			dims = append(dims, dashboard.Dimension{Name: "InstanceId", Value: instance})
		}
		return dashboard.Metric{Namespace: dashboard.AgentNamespace, Name: name, Dimensions: dims}
	}
	gpuA, gpuB := d.Pools["gpu"].Instances[0], d.Pools["gpu"].Instances[1]
	d.Put(t, node(dashboard.MetricGPUUtilization, "gpu", gpuA), at, 40, 60)
	d.Put(t, node(dashboard.MetricGPUUtilization, "gpu", gpuB), at, 90)
	d.Put(t, node(dashboard.MetricGPUUtilization, "gpu", ""), at, 99)
	d.Put(t, node(dashboard.MetricGPUUtilization, "embed", d.Pools["embed"].Instances[0]), at, 100)
	d.Put(t, node(dashboard.MetricGPUMemoryUsed, "gpu", gpuA), at, 9000, 9100)
	// The gateway's in-flight series.
	d.Put(t, node(dashboard.MetricInFlightRequests, "gateway", ""), at, 2, 4)
	// Completion tokens of two keys of the department, and of another department's key.
	key := func(department, team, id string) dashboard.Metric {
		return dashboard.Metric{Namespace: usage.Namespace, Name: usage.MetricCompletionTokens, Dimensions: []dashboard.Dimension{
			{Name: usage.DimDepartment, Value: department}, {Name: usage.DimTeam, Value: team}, {Name: usage.DimKeyID, Value: id}}}
	}
	d.Put(t, key("chem", "lab", "k1"), at, 600, 1200)
	d.Put(t, key("chem", "students", "k2"), at, 3600)
	d.Put(t, key("bio", "lab", "k3"), at, 36000)

	in := status.Input{Stack: "chemistry", Department: "chem", Region: region, GatewayGroup: gw.GroupName, Pools: map[string]status.Pool{
		"gpu":   {GroupName: d.Pools["gpu"].Targets.GroupName, GPU: true},
		"embed": {GroupName: d.Pools["embed"].Targets.GroupName, Hours: notToday(now)},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := status.Collect(ctx, status.NewClients(cfg), in, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}

	if len(r.Groups) != 3 || r.Groups[0].Title != "Gateway" || r.Groups[1].Title != "Pool embed" || r.Groups[2].Title != "Pool gpu" {
		t.Fatalf("groups %+v, want the gateway, then the pools by name", r.Groups)
	}
	g := r.Groups[0]
	if g.LoadBalancer != gw.LoadBalancer || g.AutoScalingGroup != gw.GroupName || g.TargetGroupArn != d.Gateway.TargetGroupArn {
		t.Errorf("gateway names %s %s %s, want %s %s %s", g.LoadBalancer, g.AutoScalingGroup, g.TargetGroupArn, gw.LoadBalancer, gw.GroupName, d.Gateway.TargetGroupArn)
	}
	for _, c := range []struct{ name, stat, want string }{
		{dashboard.MetricRequests, "Sum", "150"},
		{dashboard.MetricTarget5xx, "Sum", "3"},
		{dashboard.MetricTarget4xx, "Sum", "-"},
		{dashboard.MetricResponseTime, "p50", "0.8"},
		{dashboard.MetricResponseTime, "p95", "9"},
		{dashboard.MetricHealthy, "Minimum", "1"},
		{dashboard.MetricCPU, "Average", "20"},
	} {
		if got := value(figure(t, g, c.name, c.stat)); got != c.want {
			t.Errorf("gateway %s (%s) = %s, want %s", c.name, c.stat, got, c.want)
		}
	}
	// A node in Standby keeps the desired capacity, so Auto Scaling launches another.
	if g.Desired != 2 || g.Lifecycle["InService"] != 2 || g.Lifecycle["Standby"] != 1 || g.Targets["healthy"] == 0 || !g.ShouldServe {
		t.Errorf("gateway now: desired %d, instances %v, targets %v, should serve %t; want 2, InService 2 and Standby 1, healthy targets, true",
			g.Desired, g.Lifecycle, g.Targets, g.ShouldServe)
	}
	if embed, gpu := r.Groups[1], r.Groups[2]; embed.ShouldServe || !gpu.ShouldServe || gpu.Targets["healthy"] != 0 || embed.Targets["healthy"] != 0 {
		t.Errorf("embed should serve %t (healthy %d), gpu %t (healthy %d); want false, true and no healthy target in either",
			embed.ShouldServe, embed.Targets["healthy"], gpu.ShouldServe, gpu.Targets["healthy"])
	}

	// 5,400 completion tokens of the department's keys in the hour: 1.5 a second.
	if got := value(figureIn(t, r.Usage, usage.MetricCompletionTokens)); got != "1.5" {
		t.Errorf("completion tokens per second = %s, want 1.5", got)
	}
	if got := value(figureIn(t, r.Usage, usage.MetricPromptTokens)); got != "-" {
		t.Errorf("prompt tokens per second = %s, want none", got)
	}
	if got := value(figure(t, g, dashboard.MetricInFlightRequests, "Average")); got != "3" {
		t.Errorf("gateway in flight per node = %s, want 3", got)
	}
	gpuGroup := r.Groups[2]
	util := figure(t, gpuGroup, dashboard.MetricGPUUtilization, "Average")
	want := []status.Series{{Name: gpuA, Value: 50}, {Name: gpuB, Value: 90}}
	if gpuA > gpuB {
		want[0], want[1] = want[1], want[0]
	}
	if value(util) != "90" || !slices.Equal(util.Series, want) {
		t.Errorf("gpu utilisation %s per node %+v, want the highest node's 90 and each node's %+v", value(util), util.Series, want)
	}
	if mem := figure(t, gpuGroup, dashboard.MetricGPUMemoryUsed, "Maximum"); value(mem) != "9100" || len(mem.Series) != 1 {
		t.Errorf("gpu memory %s per node %+v, want 9100 on one node", value(mem), mem.Series)
	}
	for _, graph := range r.Groups[1].Graphs {
		if strings.Contains(graph.Title, "GPU") {
			t.Errorf("the CPU pool has a graph %q", graph.Title)
		}
	}

	// The gateway's alarms, and each pool's, which include the in-flight alarm.
	if n := len(catalog.AlarmKinds()) + 2*len(catalog.PoolAlarmKinds()); len(r.Alarms) != n || r.Alarms[0].Name != gpuAlarm || r.Alarms[0].State != status.StateAlarm {
		t.Errorf("alarms %+v, want %d with %s first in ALARM", r.Alarms, n, gpuAlarm)
	}
	var inFlight []string
	for _, a := range r.Alarms {
		if a.Kind == catalog.AlarmInFlightAboveCapacity {
			inFlight = append(inFlight, a.Group)
		}
	}
	if slices.Sort(inFlight); !slices.Equal(inFlight, []string{"pool-embed", "pool-gpu"}) {
		t.Errorf("in-flight alarms listed for %v, want each pool's and not the gateway's", inFlight)
	}
	for _, a := range r.Alarms[1:] {
		if a.State != status.StateOK {
			t.Errorf("alarm %s is %s, want OK", a.Name, a.State)
		}
	}
	if r.OK() || len(r.Problems) != 2 || !strings.Contains(r.Problems[0], "Pool gpu: no healthy target") || !strings.Contains(r.Problems[1], gpuAlarm) {
		t.Errorf("problems %q, want the gpu pool without a healthy target and its alarm (not the embed pool, outside its hours)", r.Problems)
	}
}

// An autoscaling group the outputs name and the account does not have is an error that says
// so, not an empty report.
func TestCollectRefusesAnUnknownGroup(t *testing.T) {
	m := preflighttest.Start(t, nil)
	in := status.Input{Stack: "chemistry", Department: "chem", Region: region, GatewayGroup: "chem-gateway-gone"}
	_, err := status.Collect(context.Background(), status.NewClients(m.Config(region)), in, time.Hour, time.Now())
	if err == nil || !strings.Contains(err.Error(), "autoscaling group chem-gateway-gone (named by the stack's outputs) does not exist in ca-central-1") {
		t.Errorf("error %v, want the missing group named", err)
	}
}

func TestHoursContains(t *testing.T) {
	// 2026-12-07 is a Monday.
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	office := status.Hours{Timezone: "America/Vancouver", Days: "MON-FRI", Start: "08:00", Stop: "18:00"}
	for _, c := range []struct {
		h    status.Hours
		at   string
		want bool
	}{
		{office, "2026-12-07T16:00:00Z", true},  // Monday 08:00 in Vancouver (UTC-8): the start counts
		{office, "2026-12-07T15:59:00Z", false}, // 07:59
		{office, "2026-12-08T02:00:00Z", false}, // Monday 18:00: the stop does not
		{office, "2026-12-08T01:59:00Z", true},  // Monday 17:59, already Tuesday in UTC
		{office, "2026-12-12T20:00:00Z", false}, // Saturday noon
		{status.Hours{Timezone: "UTC", Days: "FRI-MON", Start: "09:00", Stop: "17:00"}, "2026-12-13T10:00:00Z", true},  // Sunday, in a range that wraps
		{status.Hours{Timezone: "UTC", Days: "FRI-MON", Start: "09:00", Stop: "17:00"}, "2026-12-09T10:00:00Z", false}, // Wednesday
		{status.Hours{Timezone: "UTC", Days: "MON,WED", Start: "09:00", Stop: "17:00"}, "2026-12-09T10:00:00Z", true},
		{status.Hours{Timezone: "UTC", Days: "MON,WED", Start: "09:00", Stop: "17:00"}, "2026-12-08T10:00:00Z", false},
	} {
		got, err := c.h.Contains(at(c.at))
		if err != nil || got != c.want {
			t.Errorf("%s contains %s = %t, %v; want %t", c.h, c.at, got, err, c.want)
		}
	}
	for _, bad := range []status.Hours{{Timezone: "Mars/Olympus", Days: "MON", Start: "08:00", Stop: "09:00"}, {Timezone: "UTC", Days: "MONDAY", Start: "08:00", Stop: "09:00"}} {
		if _, err := bad.Contains(time.Now()); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestWindowText(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 10 * time.Minute: "10m", 150 * time.Minute: "2h30m", 360 * time.Hour: "360h"} {
		if got := status.WindowText(d); got != want {
			t.Errorf("WindowText(%s) = %s, want %s", d, got, want)
		}
	}
}
