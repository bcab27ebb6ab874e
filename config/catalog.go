package config

import (
	"fmt"
	"sort"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
)

// gib formats bytes as GiB with one decimal, for messages.
func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// maxSpotTypes bounds the instance types a spot pool may draw from: enough to ride out one
// type's capacity shortage, few enough to keep performance predictable.
const maxSpotTypes = 4

// SpotInstanceTypes returns the instance types a spot pool may run on: its own type first,
// then the cheapest catalog types of the same kind (GPU or CPU) on which every model of the
// pool still fits at its parallel × contextLength.
func (p Pool) SpotInstanceTypes() []string {
	own, ok := catalog.LookupInstance(p.InstanceType)
	if !ok {
		return nil
	}
	var need int64
	for _, tag := range p.Models {
		if m, ok := catalog.LookupModel(tag); ok {
			need += m.MemoryBytes(p.Parallel, p.ContextLength)
		}
	}
	var others []catalog.Instance
	for _, typ := range catalog.InstanceTypes() {
		i, _ := catalog.LookupInstance(typ)
		if typ != own.Type && i.HasGPU() == own.HasGPU() && i.UsableModelMemoryBytes() >= need {
			others = append(others, i)
		}
	}
	sort.SliceStable(others, func(a, b int) bool { return others[a].PricePerHour < others[b].PricePerHour })
	types := []string{own.Type}
	for _, i := range others {
		if len(types) == maxSpotTypes {
			break
		}
		types = append(types, i.Type)
	}
	return types
}

// QuotaNeeds are the EC2 vCPU quotas a department needs, by AWS quota code.
type QuotaNeeds struct {
	// OnDemandG is "Running On-Demand G and VT instances" (L-DB2E81BA), in vCPUs.
	OnDemandG int
	// SpotG is "All G and VT Spot Instance Requests" (L-3819A6DF), in vCPUs.
	SpotG int
	// OnDemandStandard is "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"
	// (L-1216C47A), in vCPUs: on-demand CPU pools and the gateway.
	OnDemandStandard int
	// SpotStandard is "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"
	// (L-34B43A08), in vCPUs: spot CPU pools.
	SpotStandard int
}

// QuotaNeeds returns the vCPUs each quota must allow for this department at its largest: every
// group at maxSize plus one node, because an instance refresh launches a new node before it
// stops an old one. Stopped warm-pool instances do not count against running quotas.
func (s *Spec) QuotaNeeds() QuotaNeeds {
	var q QuotaNeeds
	for _, name := range s.PoolNames() {
		p := s.Pools[name]
		inst, ok := catalog.LookupInstance(p.InstanceType)
		if !ok {
			continue
		}
		need := (p.MaxSize + 1) * inst.VCPUs
		switch {
		case inst.HasGPU() && p.Spot:
			q.SpotG += need
		case inst.HasGPU():
			q.OnDemandG += need
		case p.Spot:
			q.SpotStandard += need
		default:
			q.OnDemandStandard += need
		}
	}
	if gw, ok := catalog.LookupInstance(s.Gateway.InstanceType); ok {
		q.OnDemandStandard += (s.Gateway.MaxSize + 1) * gw.VCPUs
	}
	return q
}
