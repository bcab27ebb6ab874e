package node

import (
	"io"
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
