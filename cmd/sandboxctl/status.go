package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/status"
)

// statusTimeout bounds one status report: a handful of API calls.
const statusTimeout = 2 * time.Minute

// minWatch is the shortest --watch interval: the figures are one-minute points, and every
// report costs GetMetricData calls (billed per metric requested).
const minWatch = 10 * time.Second

const statusDescription = `Prints STACK's service at a glance, for an operator without the AWS console: the same
figures its CloudWatch dashboard plots (the department's tokens per second; per group:
requests, errors, target response time p50 and p95, healthy and unhealthy targets, nodes,
CPU, in-flight requests per node, a GPU pool's GPU utilisation and memory per node, and
whatever else the dashboard gains), each with the dashboard's statistic over the last
--since (a figure drawn per node: the highest node's, then each node's); what Auto
Scaling and the target groups say now (desired capacity, instances by lifecycle state such
as Pending:Wait, targets by health); and the state of every alarm, those in ALARM first.

The groups come from the deployed stack's outputs (gatewayGroupName, poolGroupNames, read
with the pulumi CLI), their target groups and load balancers from Auto Scaling and Elastic
Load Balancing, the alarms' names and the pools' office hours from the stack file.
Credentials come from the standard AWS chain; AWS_ENDPOINT_URL points every call elsewhere
(an emulator). It only reads: autoscaling:DescribeAutoScalingGroups,
elasticloadbalancing:DescribeTargetGroups and DescribeTargetHealth,
cloudwatch:GetMetricData, ListMetrics and DescribeAlarms.

Exit codes: 0 all OK; 3 an alarm is in ALARM, or a group has no healthy target while it
should serve (a pool within its office hours, the gateway always); 1 an AWS call failed or
the stack file is invalid; 2 usage error, no stack outputs or no AWS credentials. With
--watch, the last report's code once interrupted.`

func runStatus(e env, projectFlag string, args []string) int {
	return exit(e, "status", statusCommand(e, projectFlag, args))
}

func statusCommand(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "status", "status STACK [--since DURATION] [--format text|json] [--watch INTERVAL]", statusDescription)
	since := fs.Duration("since", time.Hour, "the figures' window, a `DURATION` of whole minutes up to 360h (CloudWatch keeps one-minute points 15 days)")
	format := fs.String("format", "text", "output `format`: text, or json (with --watch, one JSON object a line)")
	watch := fs.Duration("watch", 0, "report again every `INTERVAL` (at least 10s) until interrupted; 0 reports once")
	_, spec, err := parseOneStack(e, fs, args, format, projectFlag)
	if err != nil {
		return err
	}
	if *since < status.MinWindow || *since > status.MaxWindow || *since%time.Minute != 0 {
		return usagef("--since must be whole minutes from 1m to 360h (got %s)", *since)
	}
	if *watch != 0 && *watch < minWatch {
		return usagef("--watch must be 0 or at least %s (got %s)", minWatch, *watch)
	}

	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	in, err := statusInput(ctx, e, projectFlag, spec)
	if err != nil {
		return err
	}
	cfg, err := loadCredentials(ctx, spec.Region, statusCredentialsHelp)
	if err != nil {
		return err
	}
	clients := status.NewClients(cfg)
	report := func(ctx context.Context, clear bool) error {
		ctx, cancel := context.WithTimeout(ctx, statusTimeout)
		defer cancel()
		r, err := status.Collect(ctx, clients, in, *since, time.Now())
		if err != nil {
			return err
		}
		if *format == "json" {
			err = status.WriteJSON(e.stdout, r)
		} else {
			if clear {
				io.WriteString(e.stdout, status.Clear)
			}
			err = status.WriteText(e.stdout, r)
		}
		if err != nil {
			return err
		}
		if !r.OK() {
			return errAttention
		}
		return nil
	}
	if *watch == 0 {
		return report(context.Background(), false)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return watchStatus(ctx, *watch, func(ctx context.Context) error {
		return report(ctx, *format == "text" && isTerminal(e.stdout))
	})
}

// watchStatus reports every interval until ctx ends, and returns the last report's outcome; a
// report that fails (an AWS error) ends the watch with its error.
func watchStatus(ctx context.Context, interval time.Duration, report func(context.Context) error) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := report(ctx)
		if err != nil && err != errAttention {
			if ctx.Err() != nil {
				return nil // interrupted mid-report: the last whole report stands
			}
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}

// isTerminal reports whether w is a terminal, where a watch draws each report over the last.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// statusInput is what status needs of the stack: its file's department, region and pools'
// office hours, and its outputs' group names.
func statusInput(ctx context.Context, e env, projectFlag string, spec *config.Spec) (status.Input, error) {
	outputs, err := stackOutputs(ctx, e, projectFlag, spec.Stack, "run status where the pulumi CLI can read the stack's backend")
	if err != nil {
		return status.Input{}, err
	}
	gateway, _ := outputs["gatewayGroupName"].(string)
	pools, _ := outputs["poolGroupNames"].(map[string]any)
	if gateway == "" || len(pools) == 0 {
		return status.Input{}, usagef("stack %s has no gatewayGroupName or poolGroupNames output (outputs: %s): has it been deployed with `pulumi up`?",
			spec.Stack, strings.Join(slices.Sorted(maps.Keys(outputs)), ", "))
	}
	in := status.Input{Stack: spec.Stack, Department: spec.Department, Region: spec.Region, GatewayGroup: gateway, Pools: map[string]status.Pool{}}
	for name, v := range pools {
		group, _ := v.(string)
		if group == "" {
			return status.Input{}, usagef("stack %s: output poolGroupNames.%s is not a group name (got %v)", spec.Stack, name, v)
		}
		inst, _ := catalog.LookupInstance(spec.Pools[name].InstanceType) // validated by config
		p := status.Pool{GroupName: group, GPU: inst.HasGPU()}
		if s := spec.Pools[name].Schedule; s != nil {
			p.Hours = &status.Hours{Timezone: s.Timezone, Days: s.Days, Start: s.Start, Stop: s.Stop}
		}
		in.Pools[name] = p
	}
	for _, name := range spec.PoolNames() {
		if _, ok := pools[name]; !ok {
			fmt.Fprintf(e.stderr, "sandboxctl status: pool %s is in %s but not in the deployed stack (run sandboxctl up %s)\n", name, spec.Source, spec.Stack)
		}
	}
	return in, nil
}

// statusCredentialsHelp says how to give status credentials.
const statusCredentialsHelp = `Provide AWS credentials that may read the department's autoscaling groups, target groups,
metrics and alarms the usual way: AWS_PROFILE=<profile> (after "aws sso login --profile
<profile>" for SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN).`
