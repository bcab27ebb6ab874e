package observability

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
)

// TestDocsListEveryFieldAndAlarm keeps docs/observability.md true: every ObservabilityArgs
// field has an input row, every registered output an output row, every alarm a row that states
// its threshold, and the metric contract its names.
func TestDocsListEveryFieldAndAlarm(t *testing.T) {
	data, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	args := reflect.TypeOf(ObservabilityArgs{})
	for i := range args.NumField() {
		if f := args.Field(i); !strings.Contains(doc, "| `"+f.Name+"` |") {
			t.Errorf("docs/observability.md has no input row for %s", f.Name)
		}
	}
	out := reflect.TypeOf(Observability{})
	for i := range out.NumField() {
		if tag := out.Field(i).Tag.Get("pulumi"); tag != "" && !strings.Contains(doc, "| `"+tag+"` (`"+out.Field(i).Name+"`) |") {
			t.Errorf("docs/observability.md has no output row for %s (%s)", tag, out.Field(i).Name)
		}
	}
	thresholds := map[string][]string{
		catalog.AlarmNoHealthyNode: {fmt.Sprintf("heartbeat plus %d minutes", NoHealthyNodeGraceMinutes)},
		catalog.AlarmErrorRate:     {fmt.Sprintf("Above %d %%", ErrorRatePercent), fmt.Sprintf("fewer than %d requests", ErrorRateMinRequests)},
		catalog.AlarmResponseTime:  {fmt.Sprintf("Above %d s", ResponseTimeSeconds)},
		catalog.AlarmPendingNode:   {fmt.Sprintf("out of that plus %d", PendingSlackMinutes)},
		catalog.AlarmInFlightAboveCapacity: {"Above the pool's `parallel`",
			fmt.Sprintf("in each of %d consecutive one-minute periods", InFlightAboveCapacityMinutes), "not breaching"},
	}
	for _, kind := range catalog.PoolAlarmKinds() {
		var row string
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "| `"+kind+"` |") {
				row = line
			}
		}
		if row == "" {
			t.Errorf("docs/observability.md has no alarm row for %s", kind)
		}
		for _, want := range thresholds[kind] {
			if !strings.Contains(row, want) {
				t.Errorf("docs/observability.md's %s row does not say %q", kind, want)
			}
		}
	}
	if want := fmt.Sprintf("| `%s` | `%s` | `%s`, `%s`", AgentNamespace, MetricInFlightRequests, DimensionDepartment, DimensionPool); !strings.Contains(doc, want) {
		t.Errorf("docs/observability.md does not state the metric contract %q", want)
	}
}
