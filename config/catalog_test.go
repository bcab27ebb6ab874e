package config

import (
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
)

// Every catalog model must take the shortest context a pool may set.
func TestCatalogModelsTakeMinContext(t *testing.T) {
	for _, tag := range catalog.ModelTags() {
		if m, _ := catalog.LookupModel(tag); m.MaxContext < minContext {
			t.Errorf("%s supports %d tokens, less than contextLength's floor %d", tag, m.MaxContext, minContext)
		}
	}
}

func TestSpotInstanceTypes(t *testing.T) {
	pool := Pool{InstanceType: "g5.xlarge", Models: []string{"llama3.1:8b", "qwen2.5:7b"}, Parallel: 8, ContextLength: 8192}
	got := pool.SpotInstanceTypes()
	// 17.1 GiB needed: the T4 types (14.2 GiB usable) are out; the rest of the GPU types by price.
	want := []string{"g5.xlarge", "g6.xlarge", "g6.2xlarge", "g5.2xlarge"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %v, want %v", got, want)
	}
	cpu := Pool{InstanceType: "m7i.xlarge", Models: []string{"qwen2.5:0.5b"}, Parallel: 2, ContextLength: 4096}
	for _, typ := range cpu.SpotInstanceTypes() {
		if i, _ := catalog.LookupInstance(typ); i.HasGPU() {
			t.Errorf("a CPU pool was offered GPU type %s", typ)
		}
	}
	if (Pool{InstanceType: "nope"}).SpotInstanceTypes() != nil {
		t.Error("an unknown type should give no alternatives")
	}
}

func TestQuotaNeeds(t *testing.T) {
	want := map[string]QuotaNeeds{
		// gpu: g5.xlarge, max 2 → 3 × 4; gateway t3.large max 4 → 5 × 2.
		"chemistry": {OnDemandG: 12, OnDemandStandard: 10},
		// gpu: g5.xlarge, max 1 → 2 × 4; gateway max 2 → 3 × 2.
		"physics": {OnDemandG: 8, OnDemandStandard: 6},
		// chat: g5.xlarge max 3 → 4 × 4 on demand; batch: g6.xlarge spot max 4 → 5 × 4.
		"linguistics": {OnDemandG: 16, SpotG: 20, OnDemandStandard: 10},
		// cpu: m7i.xlarge max 1 → 2 × 4; gateway max 1 → 2 × 2.
		"dev": {OnDemandStandard: 12},
	}
	// A spot CPU pool draws on the standard spot quota, not the on-demand one.
	spot := &Spec{Pools: map[string]Pool{"cpu": {Name: "cpu", InstanceType: "m7i.xlarge", MaxSize: 2, Spot: true}}, Gateway: Gateway{InstanceType: "t3.large", MaxSize: 1}}
	if got, w := spot.QuotaNeeds(), (QuotaNeeds{SpotStandard: 12, OnDemandStandard: 4}); got != w {
		t.Errorf("spot CPU pool: %+v, want %+v", got, w)
	}
	for stack, w := range want {
		spec, err := Load("..", stack)
		if err != nil {
			t.Fatal(err)
		}
		if got := spec.QuotaNeeds(); got != w {
			t.Errorf("%s: %+v, want %+v", stack, got, w)
		}
	}
}

// An embedding model shares a pool with chat models: the pool's context, sized for the chat
// models, does not bind it (Ollama caps it at the model's own), and the memory fit counts it.
func TestPoolWithAnEmbeddingModel(t *testing.T) {
	parse := func(pool string) error {
		_, err := Parse("history", "stacks/Pulumi.history.yaml", Values{
			"aws:region":             "ca-central-1",
			"llm-sandbox:department": "history",
			"llm-sandbox:network":    `{"cidr":"10.50.0.0/16"}`,
			"llm-sandbox:access":     `{"mode":"internal","plainHttp":true}`,
			"llm-sandbox:pools":      `{"cpu":` + pool + `}`,
		})
		return err
	}
	// nomic-embed-text was trained for 2,048 tokens; the pool runs llama3.1:8b at 8,192.
	if err := parse(`{"instanceType":"g5.xlarge","models":["llama3.1:8b","nomic-embed-text"],"contextLength":8192}`); err != nil {
		t.Errorf("a chat model beside an embedding model at the chat model's context: %v", err)
	}
	// An embedding model alone.
	if err := parse(`{"instanceType":"m7i.large","models":["bge-m3"]}`); err != nil {
		t.Errorf("an embedding model alone: %v", err)
	}
	// The chat model alone fits; with bge-m3 beside it the pool does not (the invalid stack file
	// embedding-model-does-not-fit.yaml holds the message).
	if err := parse(`{"instanceType":"t3.large","models":["llama3.2:3b"],"parallel":2,"contextLength":8192}`); err != nil {
		t.Errorf("llama3.2:3b alone on t3.large: %v", err)
	}
	if err := parse(`{"instanceType":"t3.large","models":["llama3.2:3b","bge-m3"],"parallel":2,"contextLength":8192}`); err == nil || !strings.Contains(err.Error(), "do not fit") {
		t.Errorf("llama3.2:3b + bge-m3 on t3.large: got %v, want a memory-fit problem", err)
	}
}
