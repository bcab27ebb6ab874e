package config

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
)

// GatewaySizing is the gateway's size held against what the pools can stream, by the formula
// of internal/catalog (docs/gateway.md, "Sizing"). Figures are completion tokens per second.
type GatewaySizing struct {
	// Pools are each pool's figures, in pool-name order.
	Pools []PoolOutput
	// MaxTokensPerSecond is the pools' maximum output: every pool at maxSize.
	MaxTokensPerSecond float64
	// MinTokensPerSecond is the pools' output at minSize: what streams before any pool scales
	// out.
	MinTokensPerSecond float64
	// NodeTokensPerSecond is what one gateway node carries.
	NodeTokensPerSecond float64
	// MaxNodes is the gateway nodes MaxTokensPerSecond needs (what maxSize should be at least).
	MaxNodes int
	// MinNodes is the gateway nodes MinTokensPerSecond needs (what minSize should be at least).
	MinNodes int
}

// PoolOutput is one pool's share of GatewaySizing.
type PoolOutput struct {
	// Name is the pool's name.
	Name string
	// StreamTokensPerSecond is the per-stream figure of the pool's instance type.
	StreamTokensPerSecond float64
	// MaxTokensPerSecond is maxSize × parallel × StreamTokensPerSecond; 0 for a pool of
	// embedding models only, which streams no tokens.
	MaxTokensPerSecond float64
	// MinTokensPerSecond is the same at minSize.
	MinTokensPerSecond float64
}

// GatewaySizing works out the gateway's size against the pools' output. A pool whose models
// are all embedding models counts for nothing: an embedding is one response, not a stream of
// chunks, and LiteLLM's cost per token is a cost per streamed chunk.
func (s *Spec) GatewaySizing() GatewaySizing {
	var z GatewaySizing
	for _, name := range s.PoolNames() {
		p := s.Pools[name]
		inst, ok := catalog.LookupInstance(p.InstanceType)
		if !ok {
			continue
		}
		out := PoolOutput{Name: name, StreamTokensPerSecond: inst.StreamTokensPerSecond()}
		if p.streams() {
			out.MaxTokensPerSecond = inst.PoolOutputTokensPerSecond(p.MaxSize, p.Parallel)
			out.MinTokensPerSecond = inst.PoolOutputTokensPerSecond(p.MinSize, p.Parallel)
		}
		z.Pools = append(z.Pools, out)
		z.MaxTokensPerSecond += out.MaxTokensPerSecond
		z.MinTokensPerSecond += out.MinTokensPerSecond
	}
	if gw, ok := catalog.LookupInstance(s.Gateway.InstanceType); ok {
		z.NodeTokensPerSecond = gw.GatewayTokensPerSecond()
		z.MaxNodes = gw.GatewayNodesFor(z.MaxTokensPerSecond)
		z.MinNodes = gw.GatewayNodesFor(z.MinTokensPerSecond)
	}
	return z
}

// streams reports whether the pool serves a model that answers with streamed tokens.
func (p Pool) streams() bool {
	for _, tag := range p.Models {
		if m, ok := catalog.LookupModel(tag); ok && !m.Embedding {
			return true
		}
	}
	return false
}

// gatewayWarnings are the gateway's sizing warnings: a burstable type, a maxSize that cannot
// carry the pools' maximum output, a minSize that cannot carry their output at minSize. Each
// names its figures and what would do.
func (s *Spec) gatewayWarnings() Problems {
	gw, ok := catalog.LookupInstance(s.Gateway.InstanceType)
	if !ok {
		return nil
	}
	var ws Problems
	warn := func(key, format string, args ...any) {
		ws = append(ws, Problem{Source: s.Source, Path: joinPath("gateway", key), Message: fmt.Sprintf(format, args...)})
	}
	z := s.GatewaySizing()
	g := s.Gateway
	if gw.Burstable() {
		msg := fmt.Sprintf("%s is burstable: it earns CPU credits for %d %% of each vCPU (its baseline), and LiteLLM spends CPU on every streamed token. "+
			"Launched without a credit specification, as gateway nodes are, it runs in unlimited mode (the T3 default): CPU above the baseline is billed as surplus credits on top of the hourly price (in standard mode it is slowed to the baseline). "+
			"At its baseline a node carries about %s tokens/s",
			gw.Type, gw.BaselineCPUPercent, tokens(z.NodeTokensPerSecond))
		if alt, ok := steadyAlternative(gw); ok {
			msg += fmt.Sprintf("; %s (%d vCPUs, not burstable, $%g/h against $%g/h) carries %s tokens/s at %d %% CPU", alt.Type, alt.VCPUs, alt.PricePerHour, gw.PricePerHour,
				tokens(alt.GatewayTokensPerSecond()), alt.GatewayCPUPercent())
		}
		warn("instanceType", "%s (docs/gateway.md, Sizing)", msg)
	}
	if z.MaxNodes > g.MaxSize {
		warn("maxSize", "%d x %s carry about %s tokens/s (%s), but the pools stream up to %s tokens/s at their maxSize (%s); %s (docs/gateway.md, Sizing)",
			g.MaxSize, gw.Type, tokens(float64(g.MaxSize)*z.NodeTokensPerSecond), nodeFormula(gw), tokens(z.MaxTokensPerSecond),
			poolFormulas(s, z, true), s.maxSizeAdvice(gw, z))
	}
	if z.MinNodes > g.MinSize {
		advice := fmt.Sprintf("set gateway.minSize to %d so the gateway does not have to scale out first", z.MinNodes)
		if z.MinNodes > maxGatewaySize {
			advice = fmt.Sprintf("more than %d nodes of %s would be needed: use a larger instance type (see gateway.maxSize)", maxGatewaySize, gw.Type)
		}
		warn("minSize", "%d x %s carry about %s tokens/s (%s), but the pools stream up to %s tokens/s at their minSize, before any of them scales out (%s); %s (docs/gateway.md, Sizing)",
			g.MinSize, gw.Type, tokens(float64(g.MinSize)*z.NodeTokensPerSecond), nodeFormula(gw), tokens(z.MinTokensPerSecond),
			poolFormulas(s, z, false), advice)
	}
	return ws
}

// maxSizeAdvice says what carries the pools' maximum output: a larger maxSize when the type
// allows it, and the cheapest larger steady type that does it within the size limit.
func (s *Spec) maxSizeAdvice(gw catalog.Instance, z GatewaySizing) string {
	var ways []string
	if z.MaxNodes <= maxGatewaySize {
		ways = append(ways, fmt.Sprintf("set gateway.maxSize to %d", z.MaxNodes))
	}
	if alt, n, ok := cheapestCarrier(gw, z.MaxTokensPerSecond); ok {
		way := fmt.Sprintf("set gateway.instanceType to %s with maxSize %d", alt.Type, max(n, s.Gateway.MinSize))
		ways = append(ways, way)
	}
	if len(ways) == 0 {
		return fmt.Sprintf("no catalog type carries that within %d gateway nodes: lower the pools' maxSize or parallel", maxGatewaySize)
	}
	return strings.Join(ways, ", or ")
}

// cheapestCarrier is the steady CPU type with more vCPUs than current whose nodes carry
// tokensPerSecond within maxGatewaySize nodes at the lowest price per hour, with its node count.
func cheapestCarrier(current catalog.Instance, tokensPerSecond float64) (catalog.Instance, int, bool) {
	var best catalog.Instance
	bestN, bestCost := 0, math.Inf(1)
	for _, i := range steadyCPUTypes() {
		if i.VCPUs <= current.VCPUs {
			continue
		}
		n := i.GatewayNodesFor(tokensPerSecond)
		// Cheapest first, so on a tie (c7i prices scale with size) the smaller nodes win: more
		// of them spread over more zones.
		if cost := float64(n) * i.PricePerHour; n <= maxGatewaySize && cost < bestCost-1e-9 {
			best, bestN, bestCost = i, n, cost
		}
	}
	return best, bestN, bestN > 0
}

// steadyAlternative is the cheapest steady CPU type with at least the burstable type's vCPUs.
func steadyAlternative(burstable catalog.Instance) (catalog.Instance, bool) {
	for _, i := range steadyCPUTypes() {
		if i.VCPUs >= burstable.VCPUs {
			return i, true
		}
	}
	return catalog.Instance{}, false
}

// steadyCPUTypes are the catalog's CPU types that are not burstable, cheapest first.
func steadyCPUTypes() []catalog.Instance {
	var out []catalog.Instance
	for _, typ := range catalog.InstanceTypes() {
		if i, _ := catalog.LookupInstance(typ); !i.HasGPU() && !i.Burstable() {
			out = append(out, i)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].PricePerHour < out[b].PricePerHour })
	return out
}

// nodeFormula spells out one gateway node's figure: "824 per node: 2 vCPUs x 70 % x 588".
func nodeFormula(gw catalog.Instance) string {
	return fmt.Sprintf("%s per node: %d vCPUs x %d %% x %s tokens/s per vCPU", tokens(gw.GatewayTokensPerSecond()), gw.VCPUs, gw.GatewayCPUPercent(),
		tokens(catalog.GatewayTokensPerVCPU()))
}

// poolFormulas spells out each pool's output at maxSize (or minSize):
// "gpu: 2 x 4 parallel x 10 tokens/s = 80".
func poolFormulas(s *Spec, z GatewaySizing, atMax bool) string {
	var parts []string
	for _, o := range z.Pools {
		p := s.Pools[o.Name]
		nodes, out := p.MaxSize, o.MaxTokensPerSecond
		if !atMax {
			nodes, out = p.MinSize, o.MinTokensPerSecond
		}
		if !p.streams() {
			parts = append(parts, fmt.Sprintf("%s: embeddings only, 0", o.Name))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %d x %d parallel x %s tokens/s = %s", o.Name, nodes, p.Parallel, tokens(o.StreamTokensPerSecond), tokens(out)))
	}
	return strings.Join(parts, "; ")
}

// tokens formats a tokens/s figure: whole numbers, one decimal below 100 (per-stream figures).
func tokens(v float64) string {
	if v < 100 && v != math.Trunc(v) {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
