package node

import (
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
	"github.com/llm-sandbox/llm-sandbox/node/awstest"
)

// A serving pool node publishes its in-flight requests through the real CloudWatch client,
// per node and per pool, and the figure follows a stream from 0 to 1 and back to 0.
func TestServePublishesInFlightToCloudWatch(t *testing.T) {
	var cw *awstest.CloudWatch
	e := startServe(t, 60, func(o *ServeOptions) {
		cw = awstest.ServeCloudWatch(t)
		o.MetricsInterval = 20 * time.Millisecond
	})
	last := func(dims int) (awstest.Datum, bool) {
		d := cw.Data()
		for i := len(d) - 1; i >= 0; i-- {
			if len(d[i].Dimensions) == dims {
				return d[i], true
			}
		}
		return awstest.Datum{}, false
	}
	valueIs := func(v float64) func() bool {
		return func() bool {
			n, ok1 := last(3)
			p, ok2 := last(2)
			return ok1 && ok2 && n.Value == v && p.Value == v
		}
	}
	waitFor(t, "a published 0 while idle", valueIs(0))
	stream := e.openStream(t)
	waitFor(t, "a published 1 with a stream open", valueIs(1))
	e.backend.next <- "last"
	close(e.backend.next)
	if _, err := io.ReadAll(stream); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a published 0 after the stream ended", valueIs(0))

	n, _ := last(3)
	want := map[string]string{llmmetrics.DimensionDepartment: "chemistry", llmmetrics.DimensionPool: "gpu", llmmetrics.DimensionInstance: "i-0123456789abcdef0"}
	if n.Namespace != llmmetrics.Namespace || n.Metric != llmmetrics.MetricInFlightRequests || n.Unit != "Count" {
		t.Errorf("datum %+v: want %s/%s in Count", n, llmmetrics.Namespace, llmmetrics.MetricInFlightRequests)
	}
	for k, v := range want {
		if n.Dimensions[k] != v {
			t.Errorf("node datum dimension %s = %q, want %q", k, n.Dimensions[k], v)
		}
	}
	p, _ := last(2)
	if p.Dimensions[llmmetrics.DimensionInstance] != "" || p.Dimensions[llmmetrics.DimensionPool] != "gpu" {
		t.Errorf("pool datum dimensions %v: want Department and Pool only", p.Dimensions)
	}
}

func TestParseGPUQuery(t *testing.T) {
	for _, c := range []struct {
		out  string
		want llmmetrics.GPUSample
	}{
		{"37, 9120\n", llmmetrics.GPUSample{UtilizationPercent: 37, MemoryUsedMiB: 9120, GPUs: 1}},
		// Several GPUs fold into one figure per node: the mean utilisation, the summed memory.
		{"10, 1000\n30, 3000\n\n", llmmetrics.GPUSample{UtilizationPercent: 20, MemoryUsedMiB: 4000, GPUs: 2}},
		{"0, 0\n", llmmetrics.GPUSample{GPUs: 1}},
	} {
		got, err := parseGPUQuery([]byte(c.out))
		if err != nil || *got != c.want {
			t.Errorf("parseGPUQuery(%q) = %+v, %v; want %+v", c.out, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "\n", "[N/A], 9120\n", "37, [Not Supported]\n", "37\n", "37, 9120, 1\n", "101, 5\n", "-1, 5\n", "37, -5\n", "10, 1000\nNVIDIA-SMI has failed\n"} {
		if got, err := parseGPUQuery([]byte(bad)); err == nil {
			t.Errorf("parseGPUQuery(%q) = %+v, want an error", bad, got)
		}
	}
}

// A GPU pool node publishes its GPU figures beside the in-flight ones, from the nvidia-smi query
// the docs name; while nvidia-smi fails the in-flight figures go on, the failure is logged once,
// and the GPU figures come back when nvidia-smi does.
func TestServePublishesGPUFiguresBesideInFlight(t *testing.T) {
	var cw *awstest.CloudWatch
	var failing atomic.Bool
	failing.Store(true)
	runner := &fakeRunner{handlers: map[string]func([]string) ([]byte, error){
		"nvidia-smi": func([]string) ([]byte, error) {
			if failing.Load() {
				return nil, errors.New("nvidia-smi: exit status 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver")
			}
			return []byte("50, 1000\n70, 3000\n"), nil
		},
	}}
	e := startServeConfig(t, "InService", 60, func(c *Config) { c.Ollama.GPU = true }, func(o *ServeOptions) {
		cw = awstest.ServeCloudWatch(t)
		o.MetricsInterval = 20 * time.Millisecond
		o.Run = runner
	})
	count := func(metric string) int {
		n := 0
		for _, d := range cw.Data() {
			if d.Metric == metric {
				n++
			}
		}
		return n
	}
	waitFor(t, "several in-flight samples while nvidia-smi fails", func() bool { return count(llmmetrics.MetricInFlightRequests) >= 6 })
	if n := count(llmmetrics.MetricGPUUtilization) + count(llmmetrics.MetricGPUMemoryUsed); n != 0 {
		t.Fatalf("%d GPU data points published while nvidia-smi fails", n)
	}
	if n := strings.Count(e.log.String(), "couldn't communicate with the NVIDIA driver"); n != 1 {
		t.Errorf("the nvidia-smi failure is logged %d times, want once:\n%s", n, e.log)
	}
	failing.Store(false)
	waitFor(t, "GPU figures once nvidia-smi answers", func() bool { return count(llmmetrics.MetricGPUMemoryUsed) > 0 })
	if !strings.Contains(e.log.String(), "GPU figures published again (2 GPU(s))") {
		t.Errorf("the recovery is not logged:\n%s", e.log)
	}
	want := map[string]awstest.Datum{
		llmmetrics.MetricGPUUtilization: {Unit: "Percent", Value: 60},
		llmmetrics.MetricGPUMemoryUsed:  {Unit: "Megabytes", Value: 4000},
	}
	for _, d := range cw.Data() {
		w, ok := want[d.Metric]
		if !ok {
			continue
		}
		if d.Namespace != llmmetrics.Namespace || d.Unit != w.Unit || d.Value != w.Value || len(d.Dimensions) != 3 ||
			d.Dimensions[llmmetrics.DimensionInstance] != "i-0123456789abcdef0" || d.Dimensions[llmmetrics.DimensionPool] != "gpu" {
			t.Errorf("datum %+v: want %s in %s, value %v, per node", d, d.Metric, w.Unit, w.Value)
		}
	}
	for _, c := range runner.commands() {
		if c != "nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits" {
			t.Errorf("ran %q, want only the documented nvidia-smi query", c)
		}
	}
}

// A CPU pool node runs no nvidia-smi and publishes no GPU figures.
func TestServeOnCPUPoolPublishesNoGPUFigures(t *testing.T) {
	var cw *awstest.CloudWatch
	runner := &fakeRunner{}
	startServe(t, 60, func(o *ServeOptions) {
		cw = awstest.ServeCloudWatch(t)
		o.MetricsInterval = 20 * time.Millisecond
		o.Run = runner
	})
	waitFor(t, "several samples", func() bool { return len(cw.Data()) >= 6 })
	for _, d := range cw.Data() {
		if d.Metric != llmmetrics.MetricInFlightRequests {
			t.Errorf("a CPU pool published %+v", d)
		}
	}
	if c := runner.commands(); len(c) != 0 {
		t.Errorf("a CPU pool ran %q", c)
	}
}
