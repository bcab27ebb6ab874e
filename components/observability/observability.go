// Package observability provides the llmsandbox:observability:Observability component: one
// department's CloudWatch dashboard and alarms. The alarms notify an SNS topic encrypted with
// the department key, to which the stack file's alert addresses are subscribed. It shows what
// AWS publishes (load balancers, target groups, autoscaling groups, EC2), what the node agent
// publishes (AgentNamespace: in-flight requests, GPU figures) and the gateway's usage counts.
// What the dashboard shows and the names of the dashboard and alarms are plain data in
// internal/dashboard, which `sandboxctl status` reads too; this package registers them.
package observability

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sns"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	dash "github.com/llm-sandbox/llm-sandbox/internal/dashboard"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// TypeToken is the component's Pulumi type token.
const TypeToken = "llmsandbox:observability:Observability"

// The dashboard's body, as internal/dashboard defines it.
type (
	// Dashboard is a CloudWatch dashboard body.
	Dashboard = dash.Dashboard
	// Widget is one widget of a dashboard.
	Widget = dash.Widget
	// Metric is one metric of a widget.
	Metric = dash.Metric
	// MetricOptions are a metric's rendering options.
	MetricOptions = dash.MetricOptions
	// Dimension is one dimension of a metric.
	Dimension = dash.Dimension
	// Search is a metric found by a search expression.
	Search = dash.Search
)

// The node agent's metric contract (internal/dashboard).
const (
	AgentNamespace         = dash.AgentNamespace
	MetricInFlightRequests = dash.MetricInFlightRequests
	DimensionDepartment    = dash.DimensionDepartment
	DimensionPool          = dash.DimensionPool
)

// Group is one group of nodes behind a target group.
type Group struct {
	// GroupName is the autoscaling group's name. Required.
	GroupName pulumi.StringInput
	// LoadBalancerArnSuffix is the ARN suffix ("app/<name>/<id>") of the load balancer that
	// forwards to the group: the front one for the gateway, the internal one for a pool.
	// CloudWatch names load balancers by it. Required.
	LoadBalancerArnSuffix pulumi.StringInput
	// TargetGroupArnSuffix is the ARN suffix ("targetgroup/<name>/<id>") of the group's target
	// group. Required.
	TargetGroupArnSuffix pulumi.StringInput
	// HeartbeatSeconds is the group's launch lifecycle hook heartbeat: the longest a node may
	// take to prove ready. The no-healthy-node and pending-node alarms wait that long. Required;
	// 30 to 7200, as Auto Scaling accepts.
	HeartbeatSeconds int
}

// Pool is one model pool: its group of nodes and what it can answer at once.
type Pool struct {
	Group
	// Parallel is the pool's parallel (OLLAMA_NUM_PARALLEL): the requests a node answers at
	// once, per model. The in-flight-above-capacity alarm fires when the pool's in-flight
	// requests per node stay above it. Required; at least 1.
	Parallel int
	// GPU says the pool's instance type has a GPU: its dashboard row plots its nodes' GPU
	// utilisation and memory. Optional; defaults to false (a CPU pool).
	GPU bool
}

// ObservabilityArgs configure an Observability.
type ObservabilityArgs struct {
	// Department is the department's short name: it names the dashboard and the alarms.
	// Required.
	Department string
	// Region is the AWS region of the metrics, e.g. "ca-central-1" (the provider's). Required.
	Region string
	// KMSKeyArn is the department key, which encrypts the alarm topic. Its key policy must let
	// CloudWatch use it (keys.KeyStore grants that). Required.
	KMSKeyArn pulumi.StringInput
	// AlertEmails are the addresses subscribed to the alarm topic, each once (compared without
	// case). Optional. Defaults to none: the alarms still change state and show on the
	// dashboard.
	AlertEmails []string
	// Gateway is the LiteLLM group behind the front load balancer. Required.
	Gateway Group
	// Pools are the model pools by name, behind the internal load balancer. Required; at least
	// one.
	Pools map[string]Pool
}

// Observability is a department's dashboard, alarms and alarm topic.
type Observability struct {
	pulumi.ResourceState

	// DashboardName is the CloudWatch dashboard's name, "llm-sandbox-<department>".
	DashboardName pulumi.StringOutput `pulumi:"dashboardName"`
	// DashboardURL opens the dashboard in the AWS console.
	DashboardURL pulumi.StringOutput `pulumi:"dashboardUrl"`
	// TopicArn is the alarm topic.
	TopicArn pulumi.StringOutput `pulumi:"topicArn"`
	// AlarmNames are the alarms' names, in the gateway's then each pool's order.
	AlarmNames pulumi.StringArrayOutput `pulumi:"alarmNames"`

	// Topic is the alarm topic.
	Topic *sns.Topic
	// Subscriptions are the e-mail subscriptions, keyed by address in lower case.
	Subscriptions map[string]*sns.TopicSubscription
	// Dashboard is the dashboard.
	Dashboard *cloudwatch.Dashboard
	// Alarms are the alarms, keyed by name.
	Alarms map[string]*cloudwatch.MetricAlarm
}

// DashboardName is a department's dashboard name, "llm-sandbox-<department>".
func DashboardName(department string) string { return dash.Name(department) }

// AlarmName is the name of one alarm of a group: "llm-sandbox-<department>-<group>-<kind>",
// where group is "gateway" or "pool-<name>".
func AlarmName(department, group, kind string) string {
	return dash.AlarmName(department, group, kind)
}

// PoolLabel names a pool in alarm names ("pool-<name>"), so that no pool name can collide
// with the gateway's.
func PoolLabel(pool string) string { return dash.PoolLabel(pool) }

// DashboardURL is the console address of a dashboard.
func DashboardURL(region, name string) string { return dash.URL(region, name) }

// NewObservability registers the department's alarm topic, its subscriptions, one set of
// alarms per group (catalog.AlarmKinds for the gateway, catalog.PoolAlarmKinds for each pool)
// and the dashboard.
func NewObservability(ctx *pulumi.Context, name string, args *ObservabilityArgs, opts ...pulumi.ResourceOption) (*Observability, error) {
	if err := validate(name, args); err != nil {
		return nil, err
	}
	comp := &Observability{Subscriptions: map[string]*sns.TopicSubscription{}, Alarms: map[string]*cloudwatch.MetricAlarm{}}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, err
	}
	child := pulumi.Parent(comp)

	// SNS encrypts messages at rest with the department key; CloudWatch may use it (key
	// policy), subscribers receive plain text over the e-mail protocol.
	topic, err := sns.NewTopic(ctx, name+"-alarms", &sns.TopicArgs{
		DisplayName:    pulumi.String("llm-sandbox " + args.Department + " alarms"),
		KmsMasterKeyId: args.KMSKeyArn,
	}, child)
	if err != nil {
		return nil, fmt.Errorf("observability %q: topic: %w", name, err)
	}
	comp.Topic = topic
	for _, email := range args.AlertEmails {
		key := strings.ToLower(email)
		sub, err := sns.NewTopicSubscription(ctx, name+"-alarms-"+key, &sns.TopicSubscriptionArgs{
			Topic: topic.Arn, Protocol: pulumi.String("email"), Endpoint: pulumi.String(email),
		}, child)
		if err != nil {
			return nil, fmt.Errorf("observability %q: subscription %s: %w", name, email, err)
		}
		comp.Subscriptions[key] = sub
	}

	targets := []alarmTarget{target(dash.GatewayLabel, catalog.TagTier, dash.GatewayLabel, args.Gateway, true)}
	for _, pool := range slices.Sorted(maps.Keys(args.Pools)) {
		t := target(PoolLabel(pool), catalog.TagPool, pool, args.Pools[pool].Group, false)
		t.department, t.parallel, t.gpu = args.Department, args.Pools[pool].Parallel, args.Pools[pool].GPU
		targets = append(targets, t)
	}
	var alarmNames pulumi.StringArray
	for _, t := range targets {
		for _, spec := range alarmSpecs(t) {
			alarmName := AlarmName(args.Department, t.label, spec.kind)
			a := spec.args
			a.Name = pulumi.String(alarmName)
			a.AlarmDescription = pulumi.String(spec.description)
			a.AlarmActions = pulumi.Array{topic.Arn}
			a.OkActions = pulumi.Array{topic.Arn}
			a.Tags = pulumi.StringMap{t.scopeKey: pulumi.String(t.scopeValue), catalog.TagAlarm: pulumi.String(spec.kind)}
			alarm, err := cloudwatch.NewMetricAlarm(ctx, name+"-"+t.label+"-"+spec.kind, &a, child)
			if err != nil {
				return nil, fmt.Errorf("observability %q: alarm %s: %w", name, alarmName, err)
			}
			comp.Alarms[alarmName] = alarm
			alarmNames = append(alarmNames, alarm.Name)
		}
	}

	dashboardName := DashboardName(args.Department)
	board, err := cloudwatch.NewDashboard(ctx, name+"-dashboard", &cloudwatch.DashboardArgs{
		DashboardName: pulumi.String(dashboardName),
		DashboardBody: dashboardBody(args.Region, args.Department, targets),
	}, child)
	if err != nil {
		return nil, fmt.Errorf("observability %q: dashboard: %w", name, err)
	}
	comp.Dashboard = board

	comp.DashboardName = board.DashboardName
	comp.DashboardURL = pulumi.String(DashboardURL(args.Region, dashboardName)).ToStringOutput()
	comp.TopicArn = topic.Arn
	comp.AlarmNames = alarmNames.ToStringArrayOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"dashboardName": comp.DashboardName,
		"dashboardUrl":  comp.DashboardURL,
		"topicArn":      comp.TopicArn,
		"alarmNames":    comp.AlarmNames,
	}); err != nil {
		return nil, err
	}
	return comp, nil
}

func target(label, scopeKey, scopeValue string, g Group, frontDoor bool) alarmTarget {
	return alarmTarget{
		scopeKey: scopeKey, scopeValue: scopeValue, label: label,
		groupName: g.GroupName, loadBalancer: g.LoadBalancerArnSuffix, targetGroup: g.TargetGroupArnSuffix,
		frontDoor: frontDoor, heartbeatMinutes: (g.HeartbeatSeconds + minute - 1) / minute,
	}
}

// dashboardBody marshals the dashboard of the targets (internal/dashboard) once their names are
// known.
func dashboardBody(region, department string, targets []alarmTarget) pulumi.StringOutput {
	var names []any
	for _, t := range targets {
		names = append(names, t.groupName, t.loadBalancer, t.targetGroup)
	}
	return pulumi.All(names...).ApplyT(func(v []any) (string, error) {
		var groups []dash.Targets
		for i, t := range targets {
			group, lb, tg := v[3*i].(string), v[3*i+1].(string), v[3*i+2].(string)
			if t.frontDoor {
				groups = append(groups, dash.Gateway(department, group, lb, tg))
			} else {
				groups = append(groups, dash.Pool(department, t.scopeValue, t.gpu, group, lb, tg))
			}
		}
		body, err := json.Marshal(dash.New(region, department, groups))
		return string(body), err
	}).(pulumi.StringOutput)
}

// validate checks the arguments before anything is registered, reporting every problem.
func validate(name string, args *ObservabilityArgs) error {
	c := argcheck.NewChecker("observability", name)
	if args == nil {
		c.Add("args", "required (got nil)")
		return c.Err()
	}
	c.Department(args.Department)
	c.Region(args.Region)
	c.Required(map[string]bool{"KMSKeyArn": args.KMSKeyArn == nil})
	seen := map[string]int{}
	for i, e := range args.AlertEmails {
		f := fmt.Sprintf("AlertEmails[%d]", i)
		if !c.Rule(f, rules.Email(e)) {
			continue
		}
		if j, dup := seen[strings.ToLower(e)]; dup {
			c.Add(f, "duplicates AlertEmails[%d] (got %q)", j, e)
		}
		seen[strings.ToLower(e)] = i
	}
	checkGroup(c, "Gateway", args.Gateway)
	if len(args.Pools) == 0 {
		c.Add("Pools", "at least one pool is required (got none)")
	}
	for _, pool := range slices.Sorted(maps.Keys(args.Pools)) {
		c.Rule("Pools["+pool+"]", rules.PoolName(pool))
		checkGroup(c, "Pools["+pool+"]", args.Pools[pool].Group)
		if p := args.Pools[pool].Parallel; p < 1 {
			c.Add("Pools["+pool+"].Parallel", "must be at least 1 (got %d)", p)
		}
	}
	return c.Err()
}

func checkGroup(c *argcheck.Checker, field string, g Group) {
	c.Required(map[string]bool{
		field + ".GroupName":             g.GroupName == nil,
		field + ".LoadBalancerArnSuffix": g.LoadBalancerArnSuffix == nil,
		field + ".TargetGroupArnSuffix":  g.TargetGroupArnSuffix == nil,
	})
	if g.HeartbeatSeconds < 30 || g.HeartbeatSeconds > 7200 {
		c.Add(field+".HeartbeatSeconds", "must be between 30 and 7200 (got %d)", g.HeartbeatSeconds)
	}
}
