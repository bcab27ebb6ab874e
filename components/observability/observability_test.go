package observability

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
)

const (
	region  = "ca-central-1"
	keyArn  = "arn:aws:kms:ca-central-1:123456789012:key/chem-key"
	frontLB = "app/chem-front/1111111111111111"
	innerLB = "app/chem-internal/2222222222222222"

	typeTopic     = "aws:sns/topic:Topic"
	typeSub       = "aws:sns/topicSubscription:TopicSubscription"
	typeAlarm     = "aws:cloudwatch/metricAlarm:MetricAlarm"
	typeDashboard = "aws:cloudwatch/dashboard:Dashboard"
)

// group is a group of nodes whose names all derive from label, so a test can tell whose
// dimension an alarm or widget names.
func group(label, lb string, heartbeat int) Group {
	return Group{
		GroupName:             pulumi.String(label + "-asg"),
		LoadBalancerArnSuffix: pulumi.String(lb),
		TargetGroupArnSuffix:  pulumi.String("targetgroup/" + label + "/3333333333333333"),
		HeartbeatSeconds:      heartbeat,
	}
}

func testArgs() *ObservabilityArgs {
	return &ObservabilityArgs{
		Department:  "chem",
		Region:      region,
		KMSKeyArn:   pulumi.String(keyArn),
		AlertEmails: []string{"Chem-Ops@example.edu", "lab@chem.example.edu"},
		Gateway:     group("gw", frontLB, 600),
		Pools: map[string]Pool{
			"gpu":   {Group: group("gpu", innerLB, 1800), Parallel: 4, GPU: true},
			"embed": {Group: group("embed", innerLB, 900), Parallel: 1},
		},
	}
}

func run(t *testing.T, args *ObservabilityArgs) (*mockaws.Monitor, error) {
	t.Helper()
	m := mockaws.New(region)
	err := m.Run("llm-sandbox", "test", nil, func(ctx *pulumi.Context) error {
		_, err := NewObservability(ctx, "chem-observability", args)
		return err
	})
	return m, err
}

func mustRun(t *testing.T, args *ObservabilityArgs) *mockaws.Monitor {
	t.Helper()
	m, err := run(t, args)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTopicIsEncryptedAndSubscribesTheAlertEmails(t *testing.T) {
	m := mustRun(t, testArgs())
	topics := m.ByType(typeTopic)
	if len(topics) != 1 {
		t.Fatalf("%d topics, want 1", len(topics))
	}
	if got := mockaws.Plain(topics[0].Inputs)["kmsMasterKeyId"]; got != keyArn {
		t.Errorf("topic kmsMasterKeyId = %v, want the department key %s", got, keyArn)
	}
	var endpoints []string
	for _, s := range m.ByType(typeSub) {
		in := mockaws.Plain(s.Inputs)
		if in["protocol"] != "email" || in["topic"] != topics[0].ARN {
			t.Errorf("%s: protocol %v to %v, want email to %s", s.Name, in["protocol"], in["topic"], topics[0].ARN)
		}
		endpoints = append(endpoints, fmt.Sprint(in["endpoint"]))
	}
	slices.Sort(endpoints)
	if want := []string{"Chem-Ops@example.edu", "lab@chem.example.edu"}; !slices.Equal(endpoints, want) {
		t.Errorf("subscribed %v, want %v", endpoints, want)
	}
	for _, r := range m.Resources() {
		if r.Custom && m.NameOf(r.Parent) != "chem-observability" {
			t.Errorf("%s %s is parented to %q, want the component", r.Type, r.Name, m.NameOf(r.Parent))
		}
	}
}

func TestNoEmailsNoSubscriptions(t *testing.T) {
	args := testArgs()
	args.AlertEmails = nil
	m := mustRun(t, args)
	if n := len(m.ByType(typeSub)); n != 0 {
		t.Errorf("%d subscriptions without alert emails, want none", n)
	}
	if n := len(m.ByType(typeAlarm)); n != 14 {
		t.Errorf("%d alarms without alert emails, want 14: the alarms do not depend on subscribers", n)
	}
}

// dashboard parses the recorded dashboard body back into its structs.
func dashboard(t *testing.T, m *mockaws.Monitor) Dashboard {
	t.Helper()
	ds := m.ByType(typeDashboard)
	if len(ds) != 1 {
		t.Fatalf("%d dashboards, want 1", len(ds))
	}
	in := mockaws.Plain(ds[0].Inputs)
	if in["dashboardName"] != "llm-sandbox-chem" {
		t.Errorf("dashboardName = %v, want llm-sandbox-chem", in["dashboardName"])
	}
	var d Dashboard
	if err := json.Unmarshal([]byte(fmt.Sprint(in["dashboardBody"])), &d); err != nil {
		t.Fatalf("dashboard body does not parse: %v", err)
	}
	return d
}

// hasMetric reports whether a widget titled title plots the metric with that stat and those
// dimensions.
func hasMetric(d Dashboard, title, ns, name, stat string, dims ...Dimension) bool {
	for _, w := range d.Widgets {
		if w.Properties.Title != title {
			continue
		}
		for _, m := range w.Properties.Metrics {
			if m.Namespace == ns && m.Name == name && m.Options.Stat == stat && slices.Equal(m.Dimensions, dims) {
				return true
			}
		}
	}
	return false
}

func TestDashboardHasEveryGroupsWidgets(t *testing.T) {
	d := dashboard(t, mustRun(t, testArgs()))
	for _, g := range []struct {
		title, label, lb string
		front            bool
	}{
		{"Gateway", "gw", frontLB, true}, {"Pool embed", "embed", innerLB, false}, {"Pool gpu", "gpu", innerLB, false},
	} {
		tg := []Dimension{{Name: "TargetGroup", Value: "targetgroup/" + g.label + "/3333333333333333"}, {Name: "LoadBalancer", Value: g.lb}}
		asg := []Dimension{{Name: "AutoScalingGroupName", Value: g.label + "-asg"}}
		want := []struct {
			widget, ns, name, stat string
			dims                   []Dimension
		}{
			{"requests", "AWS/ApplicationELB", "RequestCount", "Sum", tg},
			{"errors", "AWS/ApplicationELB", "HTTPCode_Target_4XX_Count", "Sum", tg},
			{"errors", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "Sum", tg},
			{"target response time (s)", "AWS/ApplicationELB", "TargetResponseTime", "p50", tg},
			{"target response time (s)", "AWS/ApplicationELB", "TargetResponseTime", "p95", tg},
			{"targets", "AWS/ApplicationELB", "HealthyHostCount", "Minimum", tg},
			{"targets", "AWS/ApplicationELB", "UnHealthyHostCount", "Maximum", tg},
			{"nodes", "AWS/AutoScaling", "GroupInServiceInstances", "Maximum", asg},
			{"nodes", "AWS/AutoScaling", "GroupPendingInstances", "Maximum", asg},
			{"nodes", "AWS/AutoScaling", "GroupDesiredCapacity", "Maximum", asg},
			{"CPU (%)", "AWS/EC2", "CPUUtilization", "Average", asg},
		}
		for _, w := range want {
			if !hasMetric(d, g.title+": "+w.widget, w.ns, w.name, w.stat, w.dims...) {
				t.Errorf("%s: widget %q lacks %s %s (%s) with %v", g.title, w.widget, w.ns, w.name, w.stat, w.dims)
			}
		}
		// The load balancer's own errors belong to a group only when it serves that group alone.
		elb := hasMetric(d, g.title+": errors", "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "Sum", Dimension{Name: "LoadBalancer", Value: g.lb})
		if elb != g.front {
			t.Errorf("%s: load balancer 5xx plotted %v, want %v", g.title, elb, g.front)
		}
	}
	// Widgets stay on the 24-column grid and never overlap.
	for i, a := range d.Widgets {
		if a.X < 0 || a.X+a.Width > 24 || a.Width <= 0 || a.Height <= 0 {
			t.Errorf("widget %d (%s) off the grid: %+v", i, a.Properties.Title, a)
		}
		if a.Type == "metric" && (a.Properties.Region != region || len(a.Properties.Metrics) == 0) {
			t.Errorf("widget %q: region %q with %d metrics", a.Properties.Title, a.Properties.Region, len(a.Properties.Metrics))
		}
		for _, b := range d.Widgets[i+1:] {
			if a.X < b.X+b.Width && b.X < a.X+a.Width && a.Y < b.Y+b.Height && b.Y < a.Y+a.Height {
				t.Errorf("widgets %q and %q overlap", a.Properties.Title, b.Properties.Title)
			}
		}
	}
	// Every pool and the gateway plot their in-flight series (the average node and the
	// busiest), the gateway's under Pool=gateway.
	for title, pool := range map[string]string{"Pool embed": "embed", "Pool gpu": "gpu", "Gateway": "gateway"} {
		title += ": in-flight requests per node"
		dims := []Dimension{{Name: "Department", Value: "chem"}, {Name: "Pool", Value: pool}}
		for _, stat := range []string{"Average", "Maximum"} {
			if !hasMetric(d, title, "LLMSandbox", "InFlightRequests", stat, dims...) {
				t.Errorf("no widget %q plots LLMSandbox InFlightRequests %s with %v", title, stat, dims)
			}
		}
	}
	// Only the GPU pool plots GPU figures, by searches over its own nodes' series.
	expressions := map[string][]string{}
	for _, w := range d.Widgets {
		for _, m := range w.Properties.Metrics {
			if m.Options.Expression != "" {
				expressions[w.Properties.Title] = append(expressions[w.Properties.Title], m.Options.Expression)
			}
		}
	}
	gpuSearch := `SEARCH('{LLMSandbox,Department,Pool,InstanceId} MetricName="GPUUtilization" Department="chem" Pool="gpu"', 'Average', 60)`
	if got := expressions["Pool gpu: GPU utilisation per node (%)"]; !slices.Equal(got, []string{gpuSearch}) {
		t.Errorf("GPU pool utilisation graph = %q, want %q", got, gpuSearch)
	}
	if got := expressions["Pool gpu: GPU memory used per node (MiB)"]; len(got) != 1 || !strings.Contains(got[0], `MetricName="GPUMemoryUsed" Department="chem" Pool="gpu"`) {
		t.Errorf("GPU pool memory graph = %q, want a search of the pool's GPUMemoryUsed", got)
	}
	for title := range expressions {
		if strings.Contains(title, "GPU") && !strings.HasPrefix(title, "Pool gpu:") {
			t.Errorf("%q plots GPU figures; only the GPU pool has them", title)
		}
	}
	// The department's tokens per second, above the groups.
	tokens := `SUM(SEARCH('{LLMSandbox/Usage,Department,KeyId,Team} MetricName="CompletionTokens" Department="chem"', 'Sum', 60)) / 60`
	if !slices.Contains(expressions["Usage: tokens per second"], tokens) {
		t.Errorf("no graph plots %s; expressions %v", tokens, expressions)
	}
	if d.Widgets[0].Properties.Markdown != "## Usage" {
		t.Errorf("first row %q, want the department's usage", d.Widgets[0].Properties.Markdown)
	}
}

func TestMetricRoundTrips(t *testing.T) {
	m := Metric{Namespace: "AWS/ApplicationELB", Name: "RequestCount",
		Dimensions: []Dimension{{Name: "LoadBalancer", Value: "app/x/1"}}, Options: MetricOptions{Stat: "Sum", Label: "requests"}}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := `["AWS/ApplicationELB","RequestCount","LoadBalancer","app/x/1",{"stat":"Sum","label":"requests"}]`; string(data) != want {
		t.Errorf("metric JSON = %s, want %s", data, want)
	}
	var back Metric
	if err := json.Unmarshal(data, &back); err != nil || !slices.Equal(back.Dimensions, m.Dimensions) || back.Options != m.Options || back.Name != m.Name {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, m)
	}
	for _, bad := range []string{`["AWS/EC2"]`, `["AWS/EC2","CPUUtilization","AutoScalingGroupName"]`, `["AWS/EC2",{"stat":"Sum"},"CPUUtilization"]`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s parsed, want an error", bad)
		}
	}
}

// alarm is one recorded alarm's inputs, by name.
func alarms(t *testing.T, m *mockaws.Monitor) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, a := range m.ByType(typeAlarm) {
		in := mockaws.Plain(a.Inputs)
		out[fmt.Sprint(in["name"])] = in
	}
	return out
}

// queryDims returns the dimensions of the alarm's metric (or of its metric query id).
func queryDims(in map[string]any, id string) map[string]any {
	if id == "" {
		d, _ := in["dimensions"].(map[string]any)
		return d
	}
	qs, _ := in["metricQueries"].([]any)
	for _, q := range qs {
		q := q.(map[string]any)
		if q["id"] == id {
			metric, _ := q["metric"].(map[string]any)
			d, _ := metric["dimensions"].(map[string]any)
			return d
		}
	}
	return nil
}

func TestEveryGroupHasItsAlarmsOnItsOwnMetrics(t *testing.T) {
	m := mustRun(t, testArgs())
	topic := m.ByType(typeTopic)[0].ARN
	got := alarms(t, m)
	if want := len(catalog.AlarmKinds()) + 2*len(catalog.PoolAlarmKinds()); len(got) != want || want != 14 {
		t.Errorf("%d alarms, want %d (4 for the gateway, 5 for each of 2 pools)", len(got), want)
	}
	for _, g := range []struct {
		label, tagKey, tagValue, lb string
		heartbeatMinutes            int
		parallel                    int
	}{
		{"gateway", catalog.TagTier, "gateway", frontLB, 10, 0},
		{"pool-gpu", catalog.TagPool, "gpu", innerLB, 30, 4},
		{"pool-embed", catalog.TagPool, "embed", innerLB, 15, 1},
	} {
		short := strings.TrimPrefix(strings.Replace(g.label, "gateway", "gw", 1), "pool-")
		tg := map[string]any{"TargetGroup": "targetgroup/" + short + "/3333333333333333", "LoadBalancer": g.lb}
		asg := map[string]any{"AutoScalingGroupName": short + "-asg"}
		kinds := catalog.PoolAlarmKinds()
		if g.parallel == 0 {
			kinds = catalog.AlarmKinds()
			// The gateway has no capacity in flight to compare with.
			if _, ok := got["llm-sandbox-chem-gateway-"+catalog.AlarmInFlightAboveCapacity]; ok {
				t.Errorf("the gateway has an %s alarm, want none", catalog.AlarmInFlightAboveCapacity)
			}
		}
		for _, kind := range kinds {
			name := "llm-sandbox-chem-" + g.label + "-" + kind
			in, ok := got[name]
			if !ok {
				t.Errorf("no alarm %s", name)
				continue
			}
			if !slices.Equal(strs(in["alarmActions"]), []string{topic}) || !slices.Equal(strs(in["okActions"]), []string{topic}) {
				t.Errorf("%s: actions %v / %v, want the topic %s", name, in["alarmActions"], in["okActions"], topic)
			}
			tags, _ := in["tags"].(map[string]any)
			if tags[g.tagKey] != g.tagValue || tags[catalog.TagAlarm] != kind {
				t.Errorf("%s: tags %v, want %s=%s and %s=%s", name, tags, g.tagKey, g.tagValue, catalog.TagAlarm, kind)
			}
			if in["alarmDescription"] == nil || in["alarmDescription"] == "" {
				t.Errorf("%s: no description", name)
			}
		}
		eq := func(name string, a, b any) {
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("%s: got %v, want %v", name, a, b)
			}
		}
		p := "llm-sandbox-chem-" + g.label + "-"
		// No healthy node: the group's desired capacity and its own target group, for longer
		// than its heartbeat.
		nh := got[p+catalog.AlarmNoHealthyNode]
		eq(p+"no-healthy-node desired", queryDims(nh, "desired"), asg)
		eq(p+"no-healthy-node healthy", queryDims(nh, "healthy"), tg)
		eq(p+"no-healthy-node periods", nh["evaluationPeriods"], g.heartbeatMinutes+NoHealthyNodeGraceMinutes)
		eq(p+"no-healthy-node datapoints", nh["datapointsToAlarm"], g.heartbeatMinutes+NoHealthyNodeGraceMinutes)
		if expr := expressionOf(nh); !strings.Contains(expr, "desired, 0) >= 1") || !strings.Contains(expr, "healthy, 0) < 1") {
			t.Errorf("%sno-healthy-node expression %q does not require desired capacity and no healthy target", p, expr)
		}
		// 5xx rate: the target group's 5xx; the front door's also its own.
		er := got[p+catalog.AlarmErrorRate]
		eq(p+"5xx t5xx", queryDims(er, "t5xx"), tg)
		if g.label == "gateway" {
			eq(p+"5xx e5xx", queryDims(er, "e5xx"), map[string]any{"LoadBalancer": g.lb})
			eq(p+"5xx requests", queryDims(er, "requests"), map[string]any{"LoadBalancer": g.lb})
		} else {
			eq(p+"5xx e5xx", queryDims(er, "e5xx"), map[string]any(nil))
			eq(p+"5xx requests", queryDims(er, "requests"), tg)
		}
		eq(p+"5xx threshold", er["threshold"], ErrorRatePercent)
		// Response time on the group's target group.
		rt := got[p+catalog.AlarmResponseTime]
		eq(p+"response-time dims", queryDims(rt, ""), tg)
		eq(p+"response-time stat", rt["extendedStatistic"], "p95")
		eq(p+"response-time threshold", rt["threshold"], ResponseTimeSeconds)
		// Pending on the group, for its heartbeat.
		pn := got[p+catalog.AlarmPendingNode]
		eq(p+"pending dims", queryDims(pn, ""), asg)
		eq(p+"pending metric", pn["metricName"], "GroupPendingInstances")
		eq(p+"pending datapoints", pn["datapointsToAlarm"], g.heartbeatMinutes)
		if g.parallel == 0 {
			continue
		}
		// In flight above capacity: the pool's own series (per node: its Average), above
		// its parallel in every one of 10 one-minute periods; no samples is no load.
		fl := got[p+catalog.AlarmInFlightAboveCapacity]
		eq(p+"in-flight namespace", fl["namespace"], "LLMSandbox")
		eq(p+"in-flight metric", fl["metricName"], "InFlightRequests")
		eq(p+"in-flight dims", queryDims(fl, ""), map[string]any{"Department": "chem", "Pool": g.tagValue})
		eq(p+"in-flight stat", fl["statistic"], "Average")
		eq(p+"in-flight period", fl["period"], 60)
		eq(p+"in-flight comparison", fl["comparisonOperator"], "GreaterThanThreshold")
		eq(p+"in-flight threshold", fl["threshold"], g.parallel)
		eq(p+"in-flight periods", fl["evaluationPeriods"], InFlightAboveCapacityMinutes)
		eq(p+"in-flight datapoints", fl["datapointsToAlarm"], InFlightAboveCapacityMinutes)
		eq(p+"in-flight missing", fl["treatMissingData"], "notBreaching")
	}
}

func expressionOf(in map[string]any) string {
	qs, _ := in["metricQueries"].([]any)
	for _, q := range qs {
		if e, ok := q.(map[string]any)["expression"].(string); ok {
			return e
		}
	}
	return ""
}

func strs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

func TestDashboardURL(t *testing.T) {
	for _, c := range []struct{ region, want string }{
		{"ca-central-1", "https://console.aws.amazon.com/cloudwatch/home?region=ca-central-1#dashboards/dashboard/llm-sandbox-chem"},
		{"cn-north-1", "https://console.amazonaws.cn/cloudwatch/home?region=cn-north-1#dashboards/dashboard/llm-sandbox-chem"},
		{"us-gov-west-1", "https://console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-west-1#dashboards/dashboard/llm-sandbox-chem"},
	} {
		if got := DashboardURL(c.region, DashboardName("chem")); got != c.want {
			t.Errorf("DashboardURL(%s) = %s, want %s", c.region, got, c.want)
		}
	}
}

func TestNewObservabilityRejectsInvalidArgs(t *testing.T) {
	for _, c := range []struct {
		name   string
		mutate func(*ObservabilityArgs)
		want   string
	}{
		{"bad email", func(a *ObservabilityArgs) { a.AlertEmails = []string{"ops"} }, `AlertEmails[0]: must be an e-mail address`},
		{"duplicate email", func(a *ObservabilityArgs) { a.AlertEmails = []string{"a@example.edu", "A@example.edu"} }, `AlertEmails[1]: duplicates AlertEmails[0]`},
		{"no key", func(a *ObservabilityArgs) { a.KMSKeyArn = nil }, "KMSKeyArn: required"},
		{"no pools", func(a *ObservabilityArgs) { a.Pools = nil }, "Pools: at least one pool"},
		{"no gateway target group", func(a *ObservabilityArgs) { a.Gateway.TargetGroupArnSuffix = nil }, "Gateway.TargetGroupArnSuffix: required"},
		{"heartbeat", func(a *ObservabilityArgs) { g := a.Pools["gpu"]; g.HeartbeatSeconds = 0; a.Pools["gpu"] = g }, "Pools[gpu].HeartbeatSeconds: must be between 30 and 7200 (got 0)"},
		{"parallel", func(a *ObservabilityArgs) { g := a.Pools["embed"]; g.Parallel = 0; a.Pools["embed"] = g }, "Pools[embed].Parallel: must be at least 1 (got 0)"},
		{"department", func(a *ObservabilityArgs) { a.Department = "Chem" }, "Department:"},
	} {
		args := testArgs()
		c.mutate(args)
		m, err := run(t, args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if n := len(m.Resources()); n != 0 {
			t.Errorf("%s: %d resources registered before the arguments were checked", c.name, n)
		}
	}
}
