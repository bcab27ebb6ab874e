package config

import (
	"strings"
	"testing"
)

// sizedStack parses a stack with the given pools and gateway (JSON), the rest minimal.
func sizedStack(t *testing.T, pools, gateway string) *Spec {
	t.Helper()
	values := Values{
		"aws:region":             "ca-central-1",
		"llm-sandbox:department": "history",
		"llm-sandbox:network":    `{"cidr":"10.50.0.0/16"}`,
		"llm-sandbox:access":     `{"plainHttp":true}`,
		"llm-sandbox:pools":      pools,
	}
	if gateway != "" {
		values["llm-sandbox:gateway"] = gateway
	}
	spec, err := Parse("history", "stacks/Pulumi.history.yaml", values)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// warningAt returns the message of the warning at path, failing when there is none.
func warningAt(t *testing.T, spec *Spec, path string) string {
	t.Helper()
	for _, w := range spec.Warnings {
		if w.Path == path {
			if w.Source != spec.Source {
				t.Errorf("warning %s names file %q, want %q", path, w.Source, spec.Source)
			}
			return w.Message
		}
	}
	t.Fatalf("no warning at %s; got %v", path, spec.Warnings)
	return ""
}

func wantAll(t *testing.T, msg string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("warning lacks %q:\n%s", p, msg)
		}
	}
}

// A gateway whose maxSize cannot carry the pools' maximum output is warned about, with the
// figures and what would carry it; the stack stays valid.
func TestGatewayMaxSizeWarning(t *testing.T) {
	// 12 nodes × 16 parallel × 10 tokens/s = 1,920 tokens/s; 2 × c7i.large carry 1,647.
	spec := sizedStack(t, `{"gpu":{"models":["llama3.1:8b"],"minSize":1,"maxSize":12,"parallel":16,"contextLength":4096}}`,
		`{"instanceType":"c7i.large","minSize":2,"maxSize":2}`)
	if len(spec.Warnings) != 1 {
		t.Errorf("want one warning, got %v", spec.Warnings)
	}
	msg := warningAt(t, spec, "gateway.maxSize")
	wantAll(t, msg,
		"2 x c7i.large carry about 1647 tokens/s",
		"824 per node: 2 vCPUs x 70 % x 588 tokens/s per vCPU",
		"the pools stream up to 1920 tokens/s at their maxSize",
		"gpu: 12 x 16 parallel x 10 tokens/s = 1920",
		"set gateway.maxSize to 3",
		// c7i.xlarge: 2 nodes at $0.1785 = $0.357/h, as cheap as one c7i.2xlarge and spread wider.
		"or set gateway.instanceType to c7i.xlarge with maxSize 2",
	)
}

// Past the size limit only another type is suggested; past every type, the pools must shrink.
func TestGatewayMaxSizeWarningAtTheLimit(t *testing.T) {
	// 20 × 64 × 10 = 12,800 tokens/s: 16 c7i.large, 4 c7i.2xlarge (3,294 each).
	spec := sizedStack(t, `{"gpu":{"instanceType":"g6e.xlarge","models":["llama3.2:1b"],"maxSize":20,"parallel":64,"contextLength":1024}}`,
		`{"instanceType":"c7i.large","minSize":2,"maxSize":10}`)
	msg := warningAt(t, spec, "gateway.maxSize")
	if strings.Contains(msg, "set gateway.maxSize") {
		t.Errorf("suggests a maxSize past the limit of %d:\n%s", maxGatewaySize, msg)
	}
	// g6e.xlarge: 14.4 tokens/s per stream → 18,432 tokens/s; m7i.2xlarge and c7i.2xlarge
	// carry 3,294 each: 6 nodes.
	wantAll(t, msg, "18432 tokens/s", "set gateway.instanceType to c7i.2xlarge with maxSize 6")
}

// A gateway whose minSize cannot carry the pools' output at their minSize is warned about.
func TestGatewayMinSizeWarning(t *testing.T) {
	spec := sizedStack(t, `{"gpu":{"models":["llama3.1:8b"],"minSize":12,"maxSize":12,"parallel":16,"contextLength":4096}}`,
		`{"instanceType":"c7i.large","minSize":2,"maxSize":4}`)
	if len(spec.Warnings) != 1 {
		t.Errorf("want one warning (maxSize 4 carries 3294), got %v", spec.Warnings)
	}
	wantAll(t, warningAt(t, spec, "gateway.minSize"),
		"2 x c7i.large carry about 1647 tokens/s", "1920 tokens/s at their minSize",
		"gpu: 12 x 16 parallel x 10 tokens/s = 1920", "set gateway.minSize to 3")
}

// Past the size limit at minSize too, a larger type is suggested, never a minSize over the limit.
func TestGatewayMinSizeWarningAtTheLimit(t *testing.T) {
	// 20 × 64 × 14.4 = 18,432 tokens/s from the first node on: 23 c7i.large.
	spec := sizedStack(t, `{"gpu":{"instanceType":"g6e.xlarge","models":["llama3.2:1b"],"minSize":20,"maxSize":20,"parallel":64,"contextLength":1024}}`,
		`{"instanceType":"c7i.large","minSize":2,"maxSize":10}`)
	msg := warningAt(t, spec, "gateway.minSize")
	wantAll(t, msg, "18432 tokens/s at their minSize", "more than 10 nodes of c7i.large would be needed: use a larger instance type")
	if strings.Contains(msg, "set gateway.minSize") {
		t.Errorf("suggests a minSize past the limit:\n%s", msg)
	}
}

// A burstable gateway type is warned about with its baseline, whatever the load.
func TestBurstableGatewayWarning(t *testing.T) {
	spec := sizedStack(t, `{"gpu":{"models":["llama3.1:8b"]}}`, `{"instanceType":"t3.xlarge"}`)
	if len(spec.Warnings) != 1 {
		t.Errorf("want one warning, got %v", spec.Warnings)
	}
	wantAll(t, warningAt(t, spec, "gateway.instanceType"),
		"t3.xlarge is burstable", "40 % of each vCPU", "unlimited mode", "about 941 tokens/s",
		"c7i.xlarge (4 vCPUs, not burstable, $0.1785/h against $0.1664/h) carries 1647 tokens/s at 70 % CPU")
}

// The defaults carry the default pool with room to spare: no warning at all.
func TestSizedGatewayHasNoWarning(t *testing.T) {
	spec := sizedStack(t, `{"gpu":{"models":["llama3.1:8b"]},"embed":{"models":["nomic-embed-text"],"maxSize":20,"parallel":64}}`, "")
	if spec.Warnings != nil {
		t.Errorf("want no warnings, got %v", spec.Warnings)
	}
	z := spec.GatewaySizing()
	// gpu: 2 × 4 × 10 = 80 at maxSize, 40 at minSize; embed streams nothing.
	if z.MaxTokensPerSecond != 80 || z.MinTokensPerSecond != 40 || z.MaxNodes != 1 || z.MinNodes != 1 {
		t.Errorf("sizing %+v, want 80 / 40 tokens/s and 1 node each", z)
	}
}

// The example stacks' outcomes: chemistry and dev keep the t3.large they were written with and
// are warned about it (docs/gateway.md, Sizing, says why that is acceptable for them); the
// others are sized. None is short of capacity.
func TestExampleStacksGatewayWarnings(t *testing.T) {
	want := map[string][]string{
		"chemistry":   {"gateway.instanceType"},
		"dev":         {"gateway.instanceType"},
		"linguistics": nil,
		"physics":     nil,
	}
	stacks, err := Stacks("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stacks {
		spec, err := Load("..", s)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, w := range spec.Warnings {
			got = append(got, w.Path)
		}
		w, ok := want[s]
		if !ok {
			t.Errorf("stack %s: no expected outcome here; add it (warnings %v)", s, spec.Warnings)
			continue
		}
		if strings.Join(got, ",") != strings.Join(w, ",") {
			t.Errorf("stack %s: warnings at %v, want %v:\n%v", s, got, w, spec.Warnings)
		}
	}
}
