// Package dashboard defines, as plain Go data, what a department's CloudWatch dashboard shows:
// per group of nodes (the gateway, each model pool) its graphs, each metric with its namespace,
// dimensions and statistic, and the names of the dashboard and of the alarms. The
// observability component renders the dashboard's body from it and `sandboxctl status` reads
// the same metrics for the terminal, so the two cannot drift. It imports no Pulumi.
package dashboard

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/internal/usage"
)

// The node agent's metric contract, whose one home is internal/llmmetrics: what pool nodes
// publish while serving, and what the pools' scaling policies track.
const (
	// AgentNamespace is the CloudWatch namespace of the agent's metrics.
	AgentNamespace = llmmetrics.Namespace
	// MetricInFlightRequests is a node's requests being answered plus those queued (a count,
	// never any text of a request), published every 60 seconds.
	MetricInFlightRequests = llmmetrics.MetricInFlightRequests
	// DimensionDepartment is the department's name (config's department).
	DimensionDepartment = llmmetrics.DimensionDepartment
	// DimensionPool is the pool's name.
	DimensionPool = llmmetrics.DimensionPool
	// DimensionInstance is the node's instance id (the per-node series).
	DimensionInstance = llmmetrics.DimensionInstance
	// MetricGPUUtilization and MetricGPUMemoryUsed are a GPU pool node's utilisation (%) and
	// GPU memory in use (MiB), from nvidia-smi, on the node's series only (Department, Pool,
	// InstanceId).
	MetricGPUUtilization = llmmetrics.MetricGPUUtilization
	MetricGPUMemoryUsed  = llmmetrics.MetricGPUMemoryUsed
	// PoolGateway is the Pool dimension's value on the gateway nodes' in-flight samples.
	PoolGateway = llmmetrics.PoolGateway
)

// AWS metrics the dashboard and the alarms read (CloudWatch User Guide, "CloudWatch metrics
// for your Application Load Balancer"; Amazon EC2 Auto Scaling User Guide, "Monitor CloudWatch
// metrics for your Auto Scaling groups and instances").
const (
	NamespaceELB = "AWS/ApplicationELB"
	NamespaceASG = "AWS/AutoScaling"
	NamespaceEC2 = "AWS/EC2"

	DimLoadBalancer = "LoadBalancer"
	DimTargetGroup  = "TargetGroup"
	DimGroup        = "AutoScalingGroupName"

	MetricRequests     = "RequestCount"
	MetricTarget4xx    = "HTTPCode_Target_4XX_Count"
	MetricTarget5xx    = "HTTPCode_Target_5XX_Count"
	MetricELB4xx       = "HTTPCode_ELB_4XX_Count"
	MetricELB5xx       = "HTTPCode_ELB_5XX_Count"
	MetricResponseTime = "TargetResponseTime"
	MetricHealthy      = "HealthyHostCount"
	MetricUnhealthy    = "UnHealthyHostCount"
	MetricCPU          = "CPUUtilization"
)

// Group metrics (namespace AWS/AutoScaling, dimension AutoScalingGroupName) the dashboard and
// alarms read. Auto Scaling publishes only the group metrics a group enables, so every group
// enables these (components/internal/nodegroup).
const (
	MetricDesiredCapacity    = "GroupDesiredCapacity"
	MetricInServiceInstances = "GroupInServiceInstances"
	MetricPendingInstances   = "GroupPendingInstances"
)

// GatewayLabel names the gateway in alarm names, the dashboard and the tier tag.
const GatewayLabel = "gateway"

// PoolLabel names a pool in alarm names ("pool-<name>"), so that no pool name can collide
// with the gateway's.
func PoolLabel(pool string) string { return "pool-" + pool }

// Name is a department's dashboard name.
func Name(department string) string { return "llm-sandbox-" + department }

// AlarmName is the name of one alarm of a group: "llm-sandbox-<department>-<group>-<kind>",
// where group is GatewayLabel or PoolLabel(name) and kind one of catalog.AlarmKinds.
func AlarmName(department, group, kind string) string {
	return fmt.Sprintf("llm-sandbox-%s-%s-%s", department, group, kind)
}

// consoleHosts are the AWS console's host names by partition; a region outside them has no
// console URL the project knows.
var consoleHosts = map[string]string{
	"aws":        "console.aws.amazon.com",
	"aws-cn":     "console.amazonaws.cn",
	"aws-us-gov": "console.amazonaws-us-gov.com",
}

// URL is the console address of a dashboard.
func URL(region, name string) string {
	host := consoleHosts[rules.Partition(region)]
	if host == "" {
		host = consoleHosts["aws"]
	}
	return fmt.Sprintf("https://%s/cloudwatch/home?region=%s#dashboards/dashboard/%s", host, region, name)
}

// Dashboard is a CloudWatch dashboard body (CloudWatch API Reference, "Dashboard Body
// Structure and Syntax",
// https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html).
type Dashboard struct {
	Widgets []Widget `json:"widgets"`
}

// Widget is one widget of a dashboard, placed on its 24-column grid.
type Widget struct {
	// Type is "metric" (a graph) or "text" (markdown).
	Type       string           `json:"type"`
	X          int              `json:"x"`
	Y          int              `json:"y"`
	Width      int              `json:"width"`
	Height     int              `json:"height"`
	Properties WidgetProperties `json:"properties"`
}

// WidgetProperties are a metric widget's graph, or a text widget's markdown.
type WidgetProperties struct {
	Markdown string   `json:"markdown,omitempty"`
	Title    string   `json:"title,omitempty"`
	Region   string   `json:"region,omitempty"`
	View     string   `json:"view,omitempty"`
	Period   int      `json:"period,omitempty"`
	Metrics  []Metric `json:"metrics,omitempty"`
}

// Dimension is one dimension of a metric.
type Dimension struct {
	Name, Value string
}

// MetricOptions are a metric's rendering options, the last element of its array. An
// expression's array holds only them, with Expression and ID set.
type MetricOptions struct {
	Expression string `json:"expression,omitempty"`
	ID         string `json:"id,omitempty"`
	Stat       string `json:"stat,omitempty"`
	Label      string `json:"label,omitempty"`
}

// Metric is one metric of a widget. In the body it is an array: namespace, metric name, then
// dimension name and value pairs, then the options object; or, for a Search, the options
// object alone with the search's expression.
type Metric struct {
	Namespace  string
	Name       string
	Dimensions []Dimension
	Options    MetricOptions
	// Search, when set, finds the metric's series by a search expression (Namespace and
	// Name are then the search's, Dimensions empty). Read back from a body, an expression is
	// Options.Expression and Search is nil.
	Search *Search
}

// Search finds every series of a metric whose dimension names are exactly Schema and whose
// values include Match, as a CloudWatch search expression does (CloudWatch User Guide,
// "CloudWatch search expression syntax",
// https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/search-expression-syntax.html):
// a series per node, or per key, whose instance ids or key ids no one can list in advance.
// The dashboard draws it with SEARCH; `sandboxctl status` finds the same series with
// ListMetrics and reads each with GetMetricData, so the emulator the tests run against,
// which evaluates no SEARCH, serves it too.
type Search struct {
	Namespace, Name string
	// Schema are the dimension names of the series, all of them.
	Schema []string
	// Match are the dimension values each series has.
	Match []Dimension
	// Stat is the statistic of each series.
	Stat string
	// Sum adds the series into one line (SUM); without it each series is its own line,
	// labelled by its PerSeries dimension.
	Sum bool
	// PerSecond divides the sum by the period: a count per period becomes a rate.
	PerSecond bool
	// PerSeries is the dimension that tells the series apart (InstanceId), when not Sum.
	PerSeries string
}

// Expression is the search as a CloudWatch metric math expression over period seconds. The
// period is fixed in the expression, so PerSecond divides by the same number.
func (s Search) Expression(period int) string {
	terms := []string{fmt.Sprintf("MetricName=%q", s.Name)}
	for _, d := range s.Match {
		terms = append(terms, fmt.Sprintf("%s=%q", d.Name, d.Value))
	}
	e := fmt.Sprintf("SEARCH('{%s,%s} %s', '%s', %d)", s.Namespace, strings.Join(s.Schema, ","), strings.Join(terms, " "), s.Stat, period)
	if s.Sum {
		e = "SUM(" + e + ")"
	}
	if s.PerSecond {
		e = fmt.Sprintf("%s / %d", e, period)
	}
	return e
}

// MarshalJSON writes the metric as the body's array.
func (m Metric) MarshalJSON() ([]byte, error) {
	if m.Search != nil {
		o := m.Options
		o.Expression, o.Stat = m.Search.Expression(graphPeriod), ""
		if !m.Search.Sum && m.Search.PerSeries != "" {
			// A dynamic label names each line by its series' dimension (CloudWatch User
			// Guide, "Use dynamic labels": ${PROP('Dim.<name>')}).
			o.Label = strings.TrimSpace(o.Label + " ${PROP('Dim." + m.Search.PerSeries + "')}")
		}
		return json.Marshal([]any{o})
	}
	a := []any{m.Namespace, m.Name}
	for _, d := range m.Dimensions {
		a = append(a, d.Name, d.Value)
	}
	return json.Marshal(append(a, m.Options))
}

// UnmarshalJSON reads the body's array back.
func (m *Metric) UnmarshalJSON(data []byte) error {
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil {
		return err
	}
	if len(parts) == 0 {
		return fmt.Errorf("metric %s: want namespace and name, or an expression", data)
	}
	m.Search = nil
	var strs []string
	for i, p := range parts {
		var s string
		if err := json.Unmarshal(p, &s); err == nil {
			strs = append(strs, s)
			continue
		}
		if i != len(parts)-1 {
			return fmt.Errorf("metric %s: only the last element may be the options", data)
		}
		if err := json.Unmarshal(p, &m.Options); err != nil {
			return fmt.Errorf("metric %s: options: %w", data, err)
		}
	}
	if len(strs) == 0 && m.Options.Expression != "" {
		m.Namespace, m.Name, m.Dimensions = "", "", nil
		return nil
	}
	if len(strs) < 2 || len(strs)%2 != 0 {
		return fmt.Errorf("metric %s: want namespace, name and dimension pairs", data)
	}
	m.Namespace, m.Name, m.Dimensions = strs[0], strs[1], nil
	for i := 2; i < len(strs); i += 2 {
		m.Dimensions = append(m.Dimensions, Dimension{strs[i], strs[i+1]})
	}
	return nil
}

// Targets is one group of nodes as CloudWatch names it.
type Targets struct {
	// Title heads the group's row: "Gateway" or "Pool <name>".
	Title string
	// Label names the group in alarm names: GatewayLabel or PoolLabel(name).
	Label string
	// GroupName is the autoscaling group's name.
	GroupName string
	// LoadBalancer and TargetGroup are the ARN suffixes ("app/...", "targetgroup/...") of the
	// load balancer in front of the group and of the group's target group.
	LoadBalancer, TargetGroup string
	// FrontDoor says the load balancer serves this group only, so its own error counts (ELB
	// 4xx and 5xx) belong on the group's row.
	FrontDoor bool
	// InFlight are the dimensions of the group's in-flight series (Department and Pool,
	// PoolGateway for the gateway), into which each of its nodes puts its sample.
	InFlight []Dimension
	// GPU says the group's nodes have GPUs and publish their GPU figures (a GPU pool).
	GPU bool
}

// Gateway is the gateway's group: the LiteLLM nodes behind the front load balancer, which
// serves them alone.
func Gateway(department, groupName, loadBalancer, targetGroup string) Targets {
	return Targets{Title: "Gateway", Label: GatewayLabel, GroupName: groupName,
		LoadBalancer: loadBalancer, TargetGroup: targetGroup, FrontDoor: true,
		InFlight: []Dimension{{Name: DimensionDepartment, Value: department}, {Name: DimensionPool, Value: PoolGateway}}}
}

// Pool is a model pool's group, behind the internal load balancer the pools share; gpu says
// its instance type has a GPU.
func Pool(department, pool string, gpu bool, groupName, loadBalancer, targetGroup string) Targets {
	return Targets{Title: "Pool " + pool, Label: PoolLabel(pool), GroupName: groupName,
		LoadBalancer: loadBalancer, TargetGroup: targetGroup, GPU: gpu,
		InFlight: []Dimension{{Name: DimensionDepartment, Value: department}, {Name: DimensionPool, Value: pool}}}
}

// Widget grid: a row of text, then rows of three graphs per group.
const (
	gridColumns   = 24
	graphWidth    = 8
	graphHeight   = 6
	headerHeight  = 1
	graphsPerRow  = gridColumns / graphWidth
	graphPeriod   = 60
	viewTimeSerie = "timeSeries"
)

// UsageTitle heads the department's own row: what its gateway answered, from the usage
// metrics (internal/usage).
const UsageTitle = "Usage"

// New lays out the department's dashboard: its usage row (UsageGraphs), then per group (the
// gateway first, then each pool, as given) a header and its Graphs.
func New(region, department string, groups []Targets) Dashboard {
	var d Dashboard
	y := 0
	rows := []struct {
		title  string
		graphs []Widget
	}{{UsageTitle, UsageGraphs(department)}}
	for _, g := range groups {
		rows = append(rows, struct {
			title  string
			graphs []Widget
		}{g.Title, Graphs(g)})
	}
	for _, row := range rows {
		d.Widgets = append(d.Widgets, Widget{Type: "text", X: 0, Y: y, Width: gridColumns, Height: headerHeight,
			Properties: WidgetProperties{Markdown: "## " + row.title}})
		y += headerHeight
		ws := row.graphs
		for i, w := range ws {
			w.Properties.Region, w.Properties.View, w.Properties.Period = region, viewTimeSerie, graphPeriod
			d.Widgets = append(d.Widgets, Widget{Type: "metric",
				X: (i % graphsPerRow) * graphWidth, Y: y + (i/graphsPerRow)*graphHeight, Width: graphWidth, Height: graphHeight,
				Properties: w.Properties})
		}
		y += (len(ws) + graphsPerRow - 1) / graphsPerRow * graphHeight
	}
	return d
}

// UsageGraphs are the department's own graphs: the tokens per second its gateway answered,
// from the usage metrics every gateway worker publishes per team and key (internal/usage), so
// a search adds up the series of all keys. Each title is UsageTitle, ": " and the graph's.
func UsageGraphs(department string) []Widget {
	tokens := func(name, label, id string) Metric {
		return Metric{Namespace: usage.Namespace, Name: name, Options: MetricOptions{Label: label, ID: id},
			Search: &Search{Namespace: usage.Namespace, Name: name,
				Schema: []string{usage.DimDepartment, usage.DimKeyID, usage.DimTeam},
				Match:  []Dimension{{Name: usage.DimDepartment, Value: department}},
				Stat:   "Sum", Sum: true, PerSecond: true}}
	}
	return []Widget{{Properties: WidgetProperties{Title: UsageTitle + ": tokens per second", Metrics: []Metric{
		tokens(usage.MetricCompletionTokens, "completion tokens/s", "completion"),
		tokens(usage.MetricPromptTokens, "prompt tokens/s", "prompt"),
	}}}}
}

// Graphs are one group's graphs in grid order: its requests, errors, response time, healthy
// and unhealthy targets, nodes, CPU, in-flight requests per node and, on a GPU pool, GPU
// utilisation and memory per node. Each title is the group's title, ": " and the graph's;
// each metric carries the statistic the graph plots and its label.
func Graphs(g Targets) []Widget {
	tg := []Dimension{{DimTargetGroup, g.TargetGroup}, {DimLoadBalancer, g.LoadBalancer}}
	lb := []Dimension{{DimLoadBalancer, g.LoadBalancer}}
	asg := []Dimension{{DimGroup, g.GroupName}}
	m := func(ns, name string, dims []Dimension, stat, label string) Metric {
		return Metric{Namespace: ns, Name: name, Dimensions: dims, Options: MetricOptions{Stat: stat, Label: label}}
	}
	graph := func(title string, ms ...Metric) Widget {
		return Widget{Properties: WidgetProperties{Title: g.Title + ": " + title, Metrics: ms}}
	}
	errs := []Metric{
		m(NamespaceELB, MetricTarget4xx, tg, "Sum", "target 4xx"),
		m(NamespaceELB, MetricTarget5xx, tg, "Sum", "target 5xx"),
	}
	if g.FrontDoor {
		errs = append(errs,
			m(NamespaceELB, MetricELB4xx, lb, "Sum", "load balancer 4xx"),
			m(NamespaceELB, MetricELB5xx, lb, "Sum", "load balancer 5xx"))
	}
	ws := []Widget{
		graph("requests", m(NamespaceELB, MetricRequests, tg, "Sum", "requests")),
		graph("errors", errs...),
		graph("target response time (s)",
			m(NamespaceELB, MetricResponseTime, tg, "p50", "p50"),
			m(NamespaceELB, MetricResponseTime, tg, "p95", "p95")),
		graph("targets",
			m(NamespaceELB, MetricHealthy, tg, "Minimum", "healthy"),
			m(NamespaceELB, MetricUnhealthy, tg, "Maximum", "unhealthy")),
		graph("nodes",
			m(NamespaceASG, MetricInServiceInstances, asg, "Maximum", "in service"),
			m(NamespaceASG, MetricPendingInstances, asg, "Maximum", "pending"),
			m(NamespaceASG, MetricDesiredCapacity, asg, "Maximum", "desired")),
		graph("CPU (%)", m(NamespaceEC2, MetricCPU, asg, "Average", "average CPU")),
	}
	if len(g.InFlight) > 0 {
		// The group's series holds one sample per node and minute: its Average is the figure
		// a pool's scaling policy tracks, its Maximum the busiest node.
		average := "average (scaling metric)"
		if g.Label == GatewayLabel {
			average = "average"
		}
		ws = append(ws, graph("in-flight requests per node",
			m(AgentNamespace, MetricInFlightRequests, g.InFlight, "Average", average),
			m(AgentNamespace, MetricInFlightRequests, g.InFlight, "Maximum", "busiest node")))
	}
	if g.GPU {
		// The GPU figures exist per node only: a search finds the nodes' series.
		perNode := func(name, stat, id string) Metric {
			return Metric{Namespace: AgentNamespace, Name: name, Options: MetricOptions{Label: "node", ID: id},
				Search: &Search{Namespace: AgentNamespace, Name: name,
					Schema: []string{DimensionDepartment, DimensionPool, DimensionInstance},
					Match:  g.InFlight, Stat: stat, PerSeries: DimensionInstance}}
		}
		ws = append(ws,
			graph("GPU utilisation per node (%)", perNode(MetricGPUUtilization, "Average", "gpu")),
			graph("GPU memory used per node (MiB)", perNode(MetricGPUMemoryUsed, "Maximum", "memory")))
	}
	return ws
}
