package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/dashboard"
	"github.com/llm-sandbox/llm-sandbox/internal/preflight/preflighttest"
	"github.com/llm-sandbox/llm-sandbox/internal/status"
	"github.com/llm-sandbox/llm-sandbox/internal/status/statustest"
)

// statusStack is a department with a pool around the clock and one whose office hours are
// never today (so outside them now).
func statusStack(now time.Time) string {
	notToday := strings.ToUpper(now.UTC().Add(48 * time.Hour).Weekday().String()[:3])
	return fmt.Sprintf(`config:
  aws:region: ca-central-1
  llm-sandbox:department: chem
  llm-sandbox:network:
    cidr: 10.20.0.0/16
  llm-sandbox:access:
    mode: internal
    plainHttp: true
  llm-sandbox:pools:
    gpu:
      models: [llama3.1:8b]
    embed:
      models: [qwen2.5:7b]
      minSize: 0
      schedule:
        timezone: UTC
        days: %s
        start: "00:00"
        stop: "23:59"
`, notToday)
}

// statusEmulator stands chem up in the emulator, with the stack's outputs naming its groups
// as a deployment's would, and points the SDK at it.
func statusEmulator(t *testing.T) (string, *statustest.Department) {
	t.Helper()
	m := preflighttest.Start(t, nil)
	d := statustest.Seed(t, m.Config("ca-central-1"), "chem", 2, map[string]int{"gpu": 1, "embed": 0})
	m.SetEnv(t)
	standInPulumi(t, map[string]any{
		"department": "chem", "region": "ca-central-1", "endpointUrl": "http://gw.chem.internal",
		"gatewayGroupName": d.Gateway.Targets.GroupName,
		"poolGroupNames":   map[string]string{"gpu": d.Pools["gpu"].Targets.GroupName, "embed": d.Pools["embed"].Targets.GroupName},
	}, "", 0)
	return tempProject(t, map[string]string{"chem": statusStack(time.Now())}), d
}

// reportJSON is the part of status --format json the tests read.
type reportJSON struct {
	Stack    string
	Window   string
	Problems []string
	Alarms   []struct{ Name, State string }
	Groups   []struct {
		Title, AutoScalingGroup, LoadBalancer string
		ShouldServe                           bool
		Desired                               int
		Targets                               map[string]int
		Graphs                                []struct {
			Title   string
			Figures []struct {
				Label, Metric, Stat string
				Value               *float64
			}
		}
	}
}

func statusJSON(t *testing.T, dir string, args ...string) (int, reportJSON, string) {
	t.Helper()
	code, out, errOut := sandboxctl(t, dir, append([]string{"status", "chem", "--format", "json"}, args...)...)
	var r reportJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status: exit %d, not JSON: %v\n%s%s", code, err, out, errOut)
	}
	return code, r, errOut
}

// With every alarm OK and every group that should serve healthy, status exits 0 and prints the
// dashboard's figures over the window; the embed pool has no node, but it is outside its hours.
// An alarm in ALARM makes it exit 3 and list the alarm first; so does a pool in its hours with
// no healthy node.
func TestStatusFiguresAndExitCodes(t *testing.T) {
	dir, d := statusEmulator(t)
	gw := d.Gateway.Targets
	now := time.Now().UTC()
	for _, w := range dashboard.Graphs(gw) {
		for _, m := range w.Properties.Metrics {
			if m.Name == dashboard.MetricRequests {
				d.Put(t, m, now.Add(-20*time.Minute), 40, 2)
				d.Put(t, m, now.Add(-90*time.Minute), 500) // outside --since 1h, inside 2h
			}
		}
	}

	code, r, errOut := statusJSON(t, dir)
	if code != exitOK || len(r.Problems) != 0 {
		t.Fatalf("status: exit %d, problems %q, want 0 and none\n%s", code, r.Problems, errOut)
	}
	if len(r.Groups) != 3 || r.Groups[0].AutoScalingGroup != gw.GroupName || r.Groups[0].LoadBalancer != gw.LoadBalancer {
		t.Fatalf("groups %+v, want the gateway %s behind %s first", r.Groups, gw.GroupName, gw.LoadBalancer)
	}
	requests := func(r reportJSON) string {
		for _, g := range r.Groups[0].Graphs {
			for _, f := range g.Figures {
				if f.Metric == dashboard.MetricRequests {
					return status.FormatValue(f.Value)
				}
			}
		}
		return "absent"
	}
	if got := requests(r); got != "42" || r.Window != "1h" {
		t.Errorf("gateway requests over %s = %s, want 42 over 1h", r.Window, got)
	}
	if _, r2, _ := statusJSON(t, dir, "--since", "2h"); requests(r2) != "542" {
		t.Errorf("gateway requests over 2h = %s, want 542", requests(r2))
	}
	if embed := r.Groups[1]; embed.Title != "Pool embed" || embed.ShouldServe || embed.Targets["healthy"] != 0 {
		t.Errorf("embed pool %+v, want no healthy target and outside its hours", embed)
	}

	code, out, _ := sandboxctl(t, dir, "status", "chem")
	for _, want := range []string{"chem (department chem, ca-central-1)", "OK: no alarm in ALARM", fmt.Sprintf("Alarms: %d of %[1]d OK", len(catalog.AlarmKinds())+2*len(catalog.PoolAlarmKinds())),
		"Usage (every key of the department)\n  tokens per second  completion tokens/s -, prompt tokens/s -\n",
		"Gateway (" + gw.GroupName + "; serves around the clock)", "  requests 42\n",
		"Pool embed (" + d.Pools["embed"].Targets.GroupName + "; outside its hours"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("status (text): exit %d, want 0 and %q in:\n%s", code, want, out)
		}
	}
	// One line per graph, its title then its figures, aligned whatever the longest title.
	if line := regexp.MustCompile(`\n  target response time \(s\) +p50 -, p95 -\n`); !line.MatchString(out) {
		t.Errorf("status (text): no line %s in:\n%s", line, out)
	}

	alarm := dashboard.AlarmName("chem", dashboard.GatewayLabel, catalog.AlarmErrorRate)
	d.SetAlarm(t, alarm, cwtypes.StateValueAlarm, "Threshold Crossed")
	code, r, _ = statusJSON(t, dir)
	if code != exitAttention || len(r.Alarms) == 0 || r.Alarms[0].Name != alarm || r.Alarms[0].State != "ALARM" ||
		len(r.Problems) != 1 || !strings.Contains(r.Problems[0], alarm) {
		t.Errorf("status with %s in ALARM: exit %d, first alarm %+v, problems %q; want %d, it first, and it the problem", alarm, code, r.Alarms[:1], r.Problems, exitAttention)
	}
	code, out, _ = sandboxctl(t, dir, "status", "chem")
	if code != exitAttention || !strings.Contains(out, "NEEDS ATTENTION:\n  alarm "+alarm+" is in ALARM") {
		t.Errorf("status (text) with an alarm: exit %d, want %d and the alarm first:\n%s", code, exitAttention, out)
	}

	d.SetAlarm(t, alarm, cwtypes.StateValueOk, "Threshold no longer crossed")
	d.StopInstances(t, d.Pools["gpu"].Instances)
	code, r, _ = statusJSON(t, dir)
	if code != exitAttention || len(r.Problems) != 1 || !strings.HasPrefix(r.Problems[0], "Pool gpu: no healthy target while it should serve") {
		t.Errorf("status with the gpu pool's node stopped: exit %d, problems %q; want %d and the pool", code, r.Problems, exitAttention)
	}
}

// status needs a deployed stack's outputs, and says so.
func TestStatusWithoutOutputs(t *testing.T) {
	preflighttest.Isolate(t)
	standInPulumi(t, map[string]any{"department": "chem"}, "", 0)
	dir := tempProject(t, map[string]string{"chem": statusStack(time.Now())})
	code, _, errOut := sandboxctl(t, dir, "status", "chem")
	if code != exitUsage || !strings.Contains(errOut, "stack chem has no gatewayGroupName or poolGroupNames output (outputs: department)") {
		t.Errorf("status without outputs: exit %d, want %d and the outputs named:\n%s", code, exitUsage, errOut)
	}
}

func TestStatusUsageErrors(t *testing.T) {
	dir := tempProject(t, map[string]string{"chem": statusStack(time.Now())})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "want exactly one STACK (got 0)"},
		{[]string{"status", "chem", "--since", "30s"}, "--since must be whole minutes from 1m to 360h (got 30s)"},
		{[]string{"status", "chem", "--since", "400h"}, "--since must be whole minutes from 1m to 360h"},
		{[]string{"status", "chem", "--watch", "2s"}, "--watch must be 0 or at least 10s (got 2s)"},
		{[]string{"status", "chem", "--format", "yaml"}, "--format must be text or json"},
		{[]string{"status", "nosuch"}, `unknown stack "nosuch"`},
	} {
		if code, _, errOut := sandboxctl(t, dir, c.args...); code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, want %d and %q:\n%s", c.args, code, exitUsage, c.want, errOut)
		}
	}
}

// A watch reports until interrupted and ends with the last report's outcome; a failed report
// ends it with that report's error.
func TestStatusWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rounds := 0
	err := watchStatus(ctx, 10*time.Millisecond, func(context.Context) error {
		switch rounds++; rounds {
		case 1:
			return errAttention
		case 2:
			return nil
		}
		cancel() // interrupted after the third report, which needs attention
		return errAttention
	})
	if !errors.Is(err, errAttention) || rounds != 3 {
		t.Errorf("watch ended with %v after %d reports, want the last report's errAttention after 3", err, rounds)
	}
	failed := errors.New("GetMetricData: throttled")
	n := 0
	err = watchStatus(context.Background(), 10*time.Millisecond, func(context.Context) error {
		if n++; n == 2 {
			return failed
		}
		return nil
	})
	if !errors.Is(err, failed) || n != 2 {
		t.Errorf("watch ended with %v after %d reports, want the failure after 2", err, n)
	}
}

func TestStatusHelpIsDocumented(t *testing.T) {
	helpIsDocumented(t, "docs/observability.md", "status")
}
