// Package status reads a deployed department's figures for `sandboxctl status`: the same
// metrics, with the same statistics, that its CloudWatch dashboard plots (internal/dashboard),
// aggregated over a window, with what Auto Scaling, the target groups and the alarms say now.
// Every figure is a count, a time or a size; none carries any text of a request.
package status

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/cwclient"
	"github.com/llm-sandbox/llm-sandbox/internal/dashboard"
)

// Window bounds. GetMetricData keeps one-minute points for 15 days, and a window is one period
// of whole minutes (CloudWatch API Reference, GetMetricData: "Data points with a period of 60
// seconds (1-minute) are available for 15 days").
const (
	MinWindow = time.Minute
	MaxWindow = 15 * 24 * time.Hour
)

// Alarm states as CloudWatch reports them, and Missing for an alarm the stack should have and
// CloudWatch does not know.
const (
	StateAlarm        = string(cwtypes.StateValueAlarm)
	StateInsufficient = string(cwtypes.StateValueInsufficientData)
	StateOK           = string(cwtypes.StateValueOk)
	StateMissing      = "MISSING"
)

// Input is what the stack says about itself: its file (department, region, pools' hours) and
// its outputs (the autoscaling groups' names).
type Input struct {
	// Stack is the stack's name.
	Stack string
	// Department and Region are the stack file's.
	Department, Region string
	// GatewayGroup is the gateway's autoscaling group (the output gatewayGroupName).
	GatewayGroup string
	// Pools are the deployed pools by name (the output poolGroupNames).
	Pools map[string]Pool
}

// Pool is one deployed pool.
type Pool struct {
	// GroupName is its autoscaling group's name.
	GroupName string
	// Hours are its office hours; nil when it serves around the clock.
	Hours *Hours
	// GPU says its instance type has a GPU: its nodes publish GPU figures.
	GPU bool
}

// Clients are the AWS APIs status reads.
type Clients struct {
	AutoScaling *autoscaling.Client
	ELB         *elbv2.Client
	CloudWatch  *cloudwatch.Client
}

// NewClients makes the clients from one configuration; CloudWatch's speaks the query protocol
// (internal/cwclient).
func NewClients(cfg aws.Config) Clients {
	return Clients{
		AutoScaling: autoscaling.NewFromConfig(cfg),
		ELB:         elbv2.NewFromConfig(cfg),
		CloudWatch:  cwclient.New(cfg),
	}
}

// Report is the department's status.
type Report struct {
	Stack      string `json:"stack"`
	Department string `json:"department"`
	Region     string `json:"region"`
	// Dashboard is the console address of the department's dashboard.
	Dashboard string `json:"dashboardUrl"`
	// Window is the figures' window; Start and End bound it (End exclusive).
	Window string    `json:"window"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// Problems are what makes the status not OK: alarms in ALARM, groups with no healthy
	// target while they should serve. Empty when all is well.
	Problems []string `json:"problems"`
	// Notes are what an operator should know that is not a problem of the service.
	Notes []string `json:"notes"`
	// Alarms are the department's alarms, those in ALARM first.
	Alarms []Alarm `json:"alarms"`
	// Usage are the department's own graphs (dashboard.UsageGraphs): what its gateway
	// answered, from the usage metrics of all its keys.
	Usage []Graph `json:"usage"`
	// Groups are the gateway, then each pool by name.
	Groups []Group `json:"groups"`
}

// OK reports whether nothing needs attention.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Alarm is one alarm's state.
type Alarm struct {
	Name string `json:"name"`
	// Group is the group's label (gateway, pool-<name>); Kind one of catalog.AlarmKinds, or
	// for a pool of catalog.PoolAlarmKinds.
	Group string `json:"group"`
	Kind  string `json:"kind"`
	// State is ALARM, INSUFFICIENT_DATA, OK or MISSING.
	State  string     `json:"state"`
	Reason string     `json:"reason,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
}

// Group is one group of nodes: what it is, what it has now, and its graphs' figures.
type Group struct {
	Title            string `json:"title"`
	Label            string `json:"label"`
	AutoScalingGroup string `json:"autoScalingGroup"`
	TargetGroupArn   string `json:"targetGroupArn"`
	LoadBalancer     string `json:"loadBalancer"`
	// Hours are the pool's office hours, nil for a group that serves around the clock.
	Hours *Hours `json:"hours"`
	// ShouldServe says the group is within its hours (always, without hours).
	ShouldServe bool `json:"shouldServe"`
	// Desired, Min and Max are the group's capacity settings now.
	Desired int `json:"desired"`
	Min     int `json:"min"`
	Max     int `json:"max"`
	// Lifecycle counts the group's instances by lifecycle state (InService, Pending:Wait, ...).
	Lifecycle map[string]int `json:"lifecycle"`
	// Targets counts the target group's targets by health state (healthy, unhealthy,
	// initial, draining, ...).
	Targets map[string]int `json:"targets"`
	// Graphs are the dashboard's graphs of the group, each figure over the window.
	Graphs []Graph `json:"graphs"`
}

// Graph is one graph of the dashboard.
type Graph struct {
	Title   string   `json:"title"`
	Figures []Figure `json:"figures"`
}

// Figure is one metric of a graph with its statistic over the window; Value is nil when the
// metric has no data points in it. A metric the dashboard finds by a search (dashboard.Search)
// is every series the search finds: their sum when the dashboard adds them (per second when
// it divides by the period), else the highest series, each series in Series.
type Figure struct {
	Label     string   `json:"label"`
	Namespace string   `json:"namespace"`
	Metric    string   `json:"metric"`
	Stat      string   `json:"stat"`
	Value     *float64 `json:"value"`
	// Series are the series of a search drawn one line each (a node's), those with data in
	// the window, by name (the dimension that tells them apart).
	Series []Series `json:"series,omitempty"`
	query  cwtypes.MetricDataQuery
	search *dashboard.Search
}

// Series is one series of a search figure.
type Series struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Collect reads the department's status at now over the window before it (whole minutes).
func Collect(ctx context.Context, c Clients, in Input, window time.Duration, now time.Time) (*Report, error) {
	if window < MinWindow || window > MaxWindow {
		return nil, fmt.Errorf("window %s: want between %s and %s", window, MinWindow, MaxWindow)
	}
	window = window.Round(time.Minute)
	end := now.UTC().Truncate(time.Minute)
	r := &Report{
		Stack: in.Stack, Department: in.Department, Region: in.Region,
		Dashboard: dashboard.URL(in.Region, dashboard.Name(in.Department)),
		Window:    WindowText(window), Start: end.Add(-window), End: end,
		Problems: []string{}, Notes: []string{},
	}

	// The gateway first, then the pools by name: the dashboard's order.
	type member struct {
		pool  string
		group string
		hours *Hours
		gpu   bool
	}
	members := []member{{group: in.GatewayGroup}}
	for _, name := range slices.Sorted(maps.Keys(in.Pools)) {
		p := in.Pools[name]
		members = append(members, member{pool: name, group: p.GroupName, hours: p.Hours, gpu: p.GPU})
	}
	var names []string
	for _, m := range members {
		names = append(names, m.group)
	}
	asgs, err := describeGroups(ctx, c.AutoScaling, names)
	if err != nil {
		return nil, err
	}
	rd := &reader{window: window}
	r.Usage = rd.graphs(dashboard.UsageGraphs(in.Department), dashboard.UsageTitle)
	for _, m := range members {
		asg, ok := asgs[m.group]
		if !ok {
			return nil, fmt.Errorf("autoscaling group %s (named by the stack's outputs) does not exist in %s: is the stack deployed there, and are these the account's credentials?", m.group, in.Region)
		}
		if len(asg.TargetGroupARNs) != 1 {
			return nil, fmt.Errorf("autoscaling group %s has %d target groups, want 1 (the stack attaches one)", m.group, len(asg.TargetGroupARNs))
		}
		tgArn := asg.TargetGroupARNs[0]
		lbArn, err := loadBalancerOf(ctx, c.ELB, tgArn)
		if err != nil {
			return nil, err
		}
		targets := dashboard.Gateway(in.Department, m.group, arnSuffix(lbArn, ":loadbalancer/"), arnSuffix(tgArn, ":"))
		if m.pool != "" {
			targets = dashboard.Pool(in.Department, m.pool, m.gpu, m.group, arnSuffix(lbArn, ":loadbalancer/"), arnSuffix(tgArn, ":"))
		}
		g := Group{
			Title: targets.Title, Label: targets.Label, AutoScalingGroup: m.group,
			TargetGroupArn: tgArn, LoadBalancer: targets.LoadBalancer, Hours: m.hours, ShouldServe: true,
			Desired: int(aws.ToInt32(asg.DesiredCapacity)), Min: int(aws.ToInt32(asg.MinSize)), Max: int(aws.ToInt32(asg.MaxSize)),
			Lifecycle: map[string]int{}, Targets: map[string]int{},
		}
		if m.hours != nil {
			if g.ShouldServe, err = m.hours.Contains(now); err != nil {
				return nil, fmt.Errorf("pool %s: %w", m.pool, err)
			}
		}
		for _, i := range asg.Instances {
			g.Lifecycle[string(i.LifecycleState)]++
		}
		if g.Targets, err = targetHealth(ctx, c.ELB, tgArn); err != nil {
			return nil, err
		}
		g.Graphs = rd.graphs(dashboard.Graphs(targets), targets.Title)
		r.Groups = append(r.Groups, g)
		if g.ShouldServe && g.Targets["healthy"] == 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: no healthy target while it should serve (desired %d; instances %s; targets %s)",
				g.Title, g.Desired, counts(g.Lifecycle), counts(g.Targets)))
		}
	}
	if err := rd.read(ctx, c.CloudWatch, r.Start, r.End); err != nil {
		return nil, err
	}
	if r.Alarms, err = alarms(ctx, c.CloudWatch, in.Department, r.Groups); err != nil {
		return nil, err
	}
	for _, a := range r.Alarms {
		switch a.State {
		case StateAlarm:
			r.Problems = append(r.Problems, fmt.Sprintf("alarm %s is in ALARM: %s", a.Name, a.Reason))
		case StateMissing:
			r.Notes = append(r.Notes, fmt.Sprintf("alarm %s does not exist: the stack's deployment predates it, or it was deleted (sandboxctl up restores it)", a.Name))
		}
	}
	return r, nil
}

// describeGroups returns the named autoscaling groups by name.
func describeGroups(ctx context.Context, c *autoscaling.Client, names []string) (map[string]astypes.AutoScalingGroup, error) {
	out := map[string]astypes.AutoScalingGroup{}
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(c, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: names})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("DescribeAutoScalingGroups: %w", err)
		}
		for _, g := range page.AutoScalingGroups {
			out[aws.ToString(g.AutoScalingGroupName)] = g
		}
	}
	return out, nil
}

// loadBalancerOf returns the ARN of the one load balancer that forwards to the target group.
func loadBalancerOf(ctx context.Context, c *elbv2.Client, tgArn string) (string, error) {
	out, err := c.DescribeTargetGroups(ctx, &elbv2.DescribeTargetGroupsInput{TargetGroupArns: []string{tgArn}})
	if err != nil {
		return "", fmt.Errorf("DescribeTargetGroups %s: %w", tgArn, err)
	}
	if len(out.TargetGroups) != 1 || len(out.TargetGroups[0].LoadBalancerArns) != 1 {
		return "", fmt.Errorf("target group %s: want one load balancer forwarding to it", tgArn)
	}
	return out.TargetGroups[0].LoadBalancerArns[0], nil
}

// targetHealth counts the target group's targets by health state.
func targetHealth(ctx context.Context, c *elbv2.Client, tgArn string) (map[string]int, error) {
	out, err := c.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(tgArn)})
	if err != nil {
		return nil, fmt.Errorf("DescribeTargetHealth %s: %w", tgArn, err)
	}
	n := map[string]int{"healthy": 0}
	for _, d := range out.TargetHealthDescriptions {
		if d.TargetHealth != nil {
			n[string(d.TargetHealth.State)]++
		}
	}
	return n, nil
}

// arnSuffix is what follows sep in an ARN: CloudWatch names a load balancer by the part after
// ":loadbalancer/" ("app/<name>/<id>") and a target group by its resource ("targetgroup/<name>/<id>").
func arnSuffix(arn, sep string) string {
	if i := strings.LastIndex(arn, sep); i >= 0 {
		return arn[i+len(sep):]
	}
	return arn
}

// query is one figure's query: the metric with the graph's statistic over one period as long
// as the window.
func query(id string, m dashboard.Metric, window time.Duration) cwtypes.MetricDataQuery {
	var dims []cwtypes.Dimension
	for _, d := range m.Dimensions {
		dims = append(dims, cwtypes.Dimension{Name: aws.String(d.Name), Value: aws.String(d.Value)})
	}
	return cwtypes.MetricDataQuery{
		Id: aws.String(id),
		MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String(m.Namespace), MetricName: aws.String(m.Name), Dimensions: dims},
			Period: aws.Int32(int32(window / time.Second)),
			Stat:   aws.String(m.Options.Stat),
		},
		ReturnData: aws.Bool(true),
	}
}

// maxQueries is GetMetricData's limit of queries per call (CloudWatch API Reference,
// GetMetricData, MetricDataQueries: "as many as 500").
const maxQueries = 500

// reader gathers the figures of the dashboard's graphs and reads them in one go.
type reader struct {
	window  time.Duration
	figures []*Figure
}

// graphs are the widgets as the report's graphs, each title without the row's title, their
// figures still to read.
func (rd *reader) graphs(ws []dashboard.Widget, title string) []Graph {
	var out []Graph
	for _, w := range ws {
		graph := Graph{Title: strings.TrimPrefix(w.Properties.Title, title+": "), Figures: make([]Figure, len(w.Properties.Metrics))}
		for i, m := range w.Properties.Metrics {
			f := Figure{Label: m.Options.Label, Namespace: m.Namespace, Metric: m.Name, Stat: m.Options.Stat, search: m.Search}
			if m.Search != nil {
				f.Stat = m.Search.Stat
			} else {
				f.query = query(fmt.Sprintf("m%d", len(rd.figures)), m, rd.window)
			}
			graph.Figures[i] = f
			// The figures' array is the graph's for good: the pointer stays valid.
			rd.figures = append(rd.figures, &graph.Figures[i])
		}
		out = append(out, graph)
	}
	return out
}

// part is one series a query reads for a figure.
type part struct {
	figure *Figure
	// name tells a search's series apart (its PerSeries dimension's value).
	name string
}

// read fills every figure's value from GetMetricData, after listing the series of each
// search with ListMetrics: the series a CloudWatch search would find, each read with the
// search's statistic.
func (rd *reader) read(ctx context.Context, c *cloudwatch.Client, start, end time.Time) error {
	var queries []cwtypes.MetricDataQuery
	parts := map[string]part{}
	for i, f := range rd.figures {
		if f.search == nil {
			queries = append(queries, f.query)
			parts[aws.ToString(f.query.Id)] = part{figure: f}
			continue
		}
		series, err := searchSeries(ctx, c, *f.search)
		if err != nil {
			return err
		}
		for j, m := range series {
			id := fmt.Sprintf("s%d_%d", i, j)
			queries = append(queries, cwtypes.MetricDataQuery{
				Id: aws.String(id),
				MetricStat: &cwtypes.MetricStat{Metric: &m, Period: aws.Int32(int32(rd.window / time.Second)),
					Stat: aws.String(f.search.Stat)},
				ReturnData: aws.Bool(true),
			})
			parts[id] = part{figure: f, name: dimensionValue(m.Dimensions, f.search.PerSeries)}
		}
	}
	for batch := range slices.Chunk(queries, maxQueries) {
		p := cloudwatch.NewGetMetricDataPaginator(c, &cloudwatch.GetMetricDataInput{
			MetricDataQueries: batch, StartTime: aws.Time(start), EndTime: aws.Time(end),
			ScanBy: cwtypes.ScanByTimestampAscending,
		})
		seen := map[string]bool{}
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("GetMetricData: %w", err)
			}
			for _, res := range page.MetricDataResults {
				id := aws.ToString(res.Id)
				at, ok := parts[id]
				// One period spans the window, so one point; the first is the window's.
				if !ok || seen[id] || len(res.Values) == 0 || math.IsNaN(res.Values[0]) {
					continue
				}
				seen[id] = true
				add(at, res.Values[0], rd.window)
			}
		}
	}
	for _, f := range rd.figures {
		slices.SortFunc(f.Series, func(a, b Series) int { return strings.Compare(a.Name, b.Name) })
	}
	return nil
}

// add puts one series' value into its figure: the value of a plain metric; for a search,
// into the sum (per second over the window when the search divides by the period), or as
// one more series, the figure being the highest.
func add(at part, v float64, window time.Duration) {
	f := at.figure
	switch {
	case f.search == nil:
		f.Value = &v
	case f.search.Sum:
		if f.search.PerSecond {
			v /= window.Seconds()
		}
		if f.Value != nil {
			v += *f.Value
		}
		f.Value = &v
	default:
		f.Series = append(f.Series, Series{Name: at.name, Value: v})
		if f.Value == nil || v > *f.Value {
			f.Value = &v
		}
	}
}

// searchSeries lists the series a search finds: the metric's series in its namespace with the
// Match values whose dimension names are exactly its Schema. ListMetrics, like a search,
// lists series with data in the past two weeks.
func searchSeries(ctx context.Context, c *cloudwatch.Client, s dashboard.Search) ([]cwtypes.Metric, error) {
	var filters []cwtypes.DimensionFilter
	for _, d := range s.Match {
		filters = append(filters, cwtypes.DimensionFilter{Name: aws.String(d.Name), Value: aws.String(d.Value)})
	}
	schema := slices.Sorted(slices.Values(s.Schema))
	var out []cwtypes.Metric
	// Each series once, however often a listing repeats it (the emulator lists one per
	// data point).
	seen := map[string]bool{}
	p := cloudwatch.NewListMetricsPaginator(c, &cloudwatch.ListMetricsInput{
		Namespace: aws.String(s.Namespace), MetricName: aws.String(s.Name), Dimensions: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ListMetrics %s %s: %w", s.Namespace, s.Name, err)
		}
		for _, m := range page.Metrics {
			var names, pairs []string
			for _, d := range m.Dimensions {
				names = append(names, aws.ToString(d.Name))
				pairs = append(pairs, aws.ToString(d.Name)+"="+aws.ToString(d.Value))
			}
			slices.Sort(names)
			slices.Sort(pairs)
			if key := strings.Join(pairs, "\x00"); slices.Equal(names, schema) && !seen[key] {
				seen[key] = true
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// dimensionValue is the value of the named dimension, or "" without one.
func dimensionValue(dims []cwtypes.Dimension, name string) string {
	for _, d := range dims {
		if aws.ToString(d.Name) == name {
			return aws.ToString(d.Value)
		}
	}
	return ""
}

// maxAlarmNames is DescribeAlarms' limit of names per call (CloudWatch API Reference,
// DescribeAlarms, AlarmNames: "Maximum number of 100 items").
const maxAlarmNames = 100

// stateOrder sorts alarms: those that need a person first.
var stateOrder = map[string]int{StateAlarm: 0, StateInsufficient: 1, StateMissing: 2, StateOK: 3}

// alarms reads every alarm the groups have (catalog.AlarmKinds for the gateway,
// catalog.PoolAlarmKinds for each pool), those in ALARM first.
func alarms(ctx context.Context, c *cloudwatch.Client, department string, groups []Group) ([]Alarm, error) {
	var want []Alarm
	for _, g := range groups {
		for _, kind := range AlarmKinds(g.Label) {
			want = append(want, Alarm{Name: dashboard.AlarmName(department, g.Label, kind), Group: g.Label, Kind: kind, State: StateMissing})
		}
	}
	found := map[string]cwtypes.MetricAlarm{}
	for batch := range slices.Chunk(want, maxAlarmNames) {
		var names []string
		for _, a := range batch {
			names = append(names, a.Name)
		}
		p := cloudwatch.NewDescribeAlarmsPaginator(c, &cloudwatch.DescribeAlarmsInput{AlarmNames: names})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("DescribeAlarms: %w", err)
			}
			for _, a := range page.MetricAlarms {
				found[aws.ToString(a.AlarmName)] = a
			}
		}
	}
	for i, a := range want {
		got, ok := found[a.Name]
		if !ok {
			continue
		}
		want[i].State, want[i].Reason, want[i].Since = string(got.StateValue), aws.ToString(got.StateReason), got.StateUpdatedTimestamp
	}
	slices.SortStableFunc(want, func(a, b Alarm) int { return stateOrder[a.State] - stateOrder[b.State] })
	return want, nil
}

// AlarmKinds are the alarms of the group with that label (dashboard.GatewayLabel or
// dashboard.PoolLabel): the gateway's catalog.AlarmKinds, a pool's catalog.PoolAlarmKinds.
func AlarmKinds(label string) []string {
	if label == dashboard.GatewayLabel {
		return catalog.AlarmKinds()
	}
	return catalog.PoolAlarmKinds()
}

// counts spells a count map "InService 2, Pending:Wait 1" in name order, or "none".
func counts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
