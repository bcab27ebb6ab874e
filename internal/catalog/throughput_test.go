package catalog

import (
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 0.01 }

// The per-stream figures: the reference measurement on the A10G, scaled by memory bandwidth on
// the other GPUs; a flat low figure on CPU types.
func TestStreamTokensPerSecond(t *testing.T) {
	for typ, want := range map[string]float64{
		"g5.xlarge":   10, // the reference: 10 tokens/s per stream
		"g5.12xlarge": 10, // four A10Gs: each stream still runs on one
		"g6.xlarge":   5,  // L4, 300 GB/s
		"g4dn.xlarge": 10 * 320.0 / 600,
		"g6e.xlarge":  14.4, // L40S, 864 GB/s
		"m7i.xlarge":  2,    // CPU
		"t3.large":    2,
	} {
		i, _ := LookupInstance(typ)
		if got := i.StreamTokensPerSecond(); !near(got, want) {
			t.Errorf("%s: %.3f tokens/s per stream, want %.3f", typ, got, want)
		}
	}
	g5, _ := LookupInstance("g5.xlarge")
	// Chemistry's pool at maxSize: 2 nodes × 4 parallel × 10.
	if got := g5.PoolOutputTokensPerSecond(2, 4); got != 80 {
		t.Errorf("2 × g5.xlarge at parallel 4: %v tokens/s, want 80", got)
	}
}

// A gateway node carries vCPUs × the CPU share it may use × 1000/1.7 tokens/s; a burstable
// type only its baseline.
func TestGatewayTokensPerSecond(t *testing.T) {
	perVCPU := 1000 / 1.7
	for typ, want := range map[string]float64{
		"c7i.large":   2 * 0.70 * perVCPU, // 823.5
		"c7i.xlarge":  4 * 0.70 * perVCPU,
		"m7i.2xlarge": 8 * 0.70 * perVCPU,
		"t3.large":    2 * 0.30 * perVCPU, // 352.9: its baseline, not the headroom
		"t3.xlarge":   4 * 0.40 * perVCPU,
	} {
		i, _ := LookupInstance(typ)
		if got := i.GatewayTokensPerSecond(); !near(got, want) {
			t.Errorf("%s: %.2f tokens/s per node, want %.2f", typ, got, want)
		}
	}
	c7i, _ := LookupInstance("c7i.large")
	for _, c := range []struct {
		tokens float64
		nodes  int
	}{{0, 1}, {1, 1}, {c7i.GatewayTokensPerSecond(), 1}, {2 * c7i.GatewayTokensPerSecond(), 2}, {2*c7i.GatewayTokensPerSecond() + 1, 3}} {
		if got := c7i.GatewayNodesFor(c.tokens); got != c.nodes {
			t.Errorf("c7i.large nodes for %.1f tokens/s = %d, want %d", c.tokens, got, c.nodes)
		}
	}
	if got := c7i.GatewayWorkers(); got != 2 {
		t.Errorf("c7i.large workers = %d, want 2 (one per vCPU)", got)
	}
}

// Every GPU type has the bandwidth its per-stream figure scales with, every T type (and only
// those) a baseline.
func TestThroughputFiguresAreComplete(t *testing.T) {
	for _, typ := range InstanceTypes() {
		i, _ := LookupInstance(typ)
		if i.HasGPU() != (i.GPUMemoryGBps > 0) {
			t.Errorf("%s: GPUs %d but memory bandwidth %d GB/s", typ, i.GPUs, i.GPUMemoryGBps)
		}
		if i.Burstable() != strings.HasPrefix(typ, "t") {
			t.Errorf("%s: burstable %v (baseline %d %%)", typ, i.Burstable(), i.BaselineCPUPercent)
		}
		if i.Burstable() && (i.BaselineCPUPercent >= 100 || i.HasGPU()) {
			t.Errorf("%s: baseline %d %% on a burstable type", typ, i.BaselineCPUPercent)
		}
	}
}
