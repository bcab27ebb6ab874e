package catalog

import "math"

// Gateway sizing: how many tokens a second the pools can stream at most, and how many a gateway
// node carries. LiteLLM's cost grows with streamed chunks (one chunk per token), not with
// requests, so both sides are counted in completion tokens per second. docs/gateway.md
// ("Sizing") states the formula with a worked example; this file is its one home.

// Per-stream output of a pool node, in completion tokens per second per stream when all of the
// node's parallel slots are busy.
const (
	// ReferenceStreamTokensPerSecond is the measured rate the per-stream figures scale from:
	// about 10 tokens/s per stream on a g5.xlarge (one A10G) serving 8B models to 10–15
	// concurrent users per node, the UBC measurement of the reference design (the same figure
	// `sandboxctl loadtest` takes as its per-user target).
	ReferenceStreamTokensPerSecond = 10.0
	// ReferenceGPUMemoryGBps is the A10G's memory bandwidth, the GPU of that measurement.
	ReferenceGPUMemoryGBps = 600
	// CPUStreamTokensPerSecond is the per-stream figure of a CPU-only pool node. It is an
	// estimate, not a measurement: an 8B model at Q4_K_M reads its 4.9 GB of weights for every
	// token it generates, and the few vCPUs of a general-purpose instance see a memory
	// bandwidth in the tens of GB/s, so a node generates a few tokens/s in all. It is low on
	// purpose: CPU pools are for development and small models, and the gateway in front of
	// them is never the bottleneck at this rate.
	CPUStreamTokensPerSecond = 2.0
)

// StreamTokensPerSecond is the per-stream output of one node of this type with every parallel
// slot busy, for an 8B-class model at Q4_K_M. For a GPU type it is the reference measurement
// scaled by the GPU's memory bandwidth: generating a token reads every weight once, so decode
// is bound by memory bandwidth, and a GPU with half the A10G's bandwidth streams about half as
// fast (the assumption: same model, same quantisation, same concurrency). For a CPU type it is
// CPUStreamTokensPerSecond.
func (i Instance) StreamTokensPerSecond() float64 {
	if !i.HasGPU() {
		return CPUStreamTokensPerSecond
	}
	return ReferenceStreamTokensPerSecond * float64(i.GPUMemoryGBps) / ReferenceGPUMemoryGBps
}

// PoolOutputTokensPerSecond is what nodes nodes of this type stream at most with parallel
// slots each busy: nodes × parallel × StreamTokensPerSecond. With nodes = maxSize it is the
// pool's maximum output.
func (i Instance) PoolOutputTokensPerSecond(nodes, parallel int) float64 {
	return float64(nodes*parallel) * i.StreamTokensPerSecond()
}

// The gateway's side.
const (
	// GatewayCPUMillisPerToken is LiteLLM's CPU cost per streamed token, in milliseconds of one
	// vCPU: the conservative end of the 1.3–1.7 ms measured with the gateway benchmark
	// (docs/performance.md, run D: LiteLLM 1.108.7, one worker, the ollama_chat/ route, CPU time
	// of every LiteLLM process per streamed token). At this cost one busy vCPU carries
	// 1000 / 1.7 ≈ 588 tokens/s.
	GatewayCPUMillisPerToken = 1.7
	// GatewayCPUHeadroomPercent is the share of its CPU a gateway node may spend on streaming
	// at the pools' maximum output. The rest is for the work per request the benchmark does not
	// weigh (key look-ups, usage metrics, health checks, the node agent), and it keeps queueing
	// delay short: a server busy a fraction ρ of the time makes a request wait about
	// ρ / (1 − ρ) service times (M/M/1), 2.3 at 70 %, 9 at 90 %.
	GatewayCPUHeadroomPercent = 70
)

// GatewayTokensPerVCPU is the tokens/s one vCPU busy only with LiteLLM streams:
// 1000 / GatewayCPUMillisPerToken.
func GatewayTokensPerVCPU() float64 { return 1000 / GatewayCPUMillisPerToken }

// Burstable reports whether the type earns CPU credits instead of running its vCPUs at full
// speed all the time (the T family).
func (i Instance) Burstable() bool { return i.BaselineCPUPercent > 0 }

// GatewayCPUPercent is the share of each vCPU a gateway node of this type can spend on LiteLLM
// for as long as the pools stream: GatewayCPUHeadroomPercent, or a burstable type's baseline
// when that is lower (above its baseline a burstable node spends credits it does not earn).
func (i Instance) GatewayCPUPercent() int {
	if i.Burstable() && i.BaselineCPUPercent < GatewayCPUHeadroomPercent {
		return i.BaselineCPUPercent
	}
	return GatewayCPUHeadroomPercent
}

// GatewayTokensPerSecond is what one gateway node of this type carries:
// vCPUs × GatewayCPUPercent × GatewayTokensPerVCPU.
func (i Instance) GatewayTokensPerSecond() float64 {
	return float64(i.VCPUs) * float64(i.GatewayCPUPercent()) / 100 * GatewayTokensPerVCPU()
}

// GatewayNodesFor is the number of gateway nodes of this type that carry tokensPerSecond: at
// least 1.
func (i Instance) GatewayNodesFor(tokensPerSecond float64) int {
	per := i.GatewayTokensPerSecond()
	if per <= 0 {
		return 0
	}
	// A sum of products of decimal figures lands a hair above a whole multiple (3 × 588.2 …);
	// the epsilon keeps that from asking for one more node.
	return max(1, int(math.Ceil(tokensPerSecond/per-1e-9)))
}

// GatewayWorkers is LiteLLM's --num_workers on a gateway node of this type: one uvicorn worker
// per vCPU. A worker is one Python process, which runs its Python code on one core at a time,
// so fewer workers than vCPUs leave vCPUs idle; LiteLLM's production guide sizes a worker at
// one vCPU (docs.litellm.ai/docs/proxy/prod, "Sizing and workers", "Machine specifications":
// cpu "should be 1*num_workers").
func (i Instance) GatewayWorkers() int { return i.VCPUs }
