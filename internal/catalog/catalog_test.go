package catalog

import (
	"math"
	"testing"
)

func TestKVCacheEstimate(t *testing.T) {
	m, _ := LookupModel("llama3.1:8b")
	// 2 × 32 layers × 8 KV heads × 128 = 65,536 values a token, at 34/32 bytes (q8_0) =
	// 69,632 bytes; × 4 parallel × 8,192 tokens = 2,281,701,376 bytes (2.125 GiB).
	if got := m.KVCacheBytes(4, 8192); got != 2281701376 {
		t.Errorf("KV cache = %d, want 2281701376", got)
	}
	if got, want := m.MemoryBytes(4, 8192), int64(4900e6)+2281701376+(1<<30); got != want {
		t.Errorf("memory = %d, want %d", got, want)
	}
}

func TestUsableMemory(t *testing.T) {
	g5, _ := LookupInstance("g5.xlarge")
	// 23,028 MiB as nvidia-smi reports it, less 5% headroom: floor(23028 × 2^20 × 0.95).
	if got, want := g5.UsableModelMemoryBytes(), int64(22939277721); got != want {
		t.Errorf("g5.xlarge usable = %d, want %d", got, want)
	}
	m7i, _ := LookupInstance("m7i.xlarge")
	if got, want := m7i.UsableModelMemoryBytes(), int64(16384<<20)-(2<<30); got != want {
		t.Errorf("m7i.xlarge usable = %d, want %d", got, want)
	}
}

// Two models on a g5.xlarge fit at parallel 4 and not at 16: phi3:mini's KV cache (32 KV heads)
// is what grows.
func TestFitBoundaries(t *testing.T) {
	g5, _ := LookupInstance("g5.xlarge")
	llama, _ := LookupModel("llama3.1:8b")
	phi, _ := LookupModel("phi3:mini")
	pair := func(parallel int) int64 {
		return llama.MemoryBytes(parallel, 4096) + phi.MemoryBytes(parallel, 4096)
	}
	if pair(4) > g5.UsableModelMemoryBytes() {
		t.Errorf("llama3.1:8b + phi3:mini at parallel 4 should fit a g5.xlarge: need %d, have %d", pair(4), g5.UsableModelMemoryBytes())
	}
	if pair(16) <= g5.UsableModelMemoryBytes() {
		t.Errorf("llama3.1:8b + phi3:mini at parallel 16 should not fit a g5.xlarge: need %d", pair(16))
	}
}

func TestCatalogEntriesAreComplete(t *testing.T) {
	for _, tag := range ModelTags() {
		m, _ := LookupModel(tag)
		if m.Tag != tag || m.DiskBytes <= 0 || m.WeightBytes <= 0 || m.Layers <= 0 || m.KVHeads <= 0 ||
			m.HeadDim <= 0 || m.MaxContext <= 0 || m.Source == "" || m.Quantization == "" || m.Parameters == "" {
			t.Errorf("incomplete model entry %+v", m)
		}
	}
	for _, typ := range InstanceTypes() {
		i, _ := LookupInstance(typ)
		if i.Type != typ || i.VCPUs <= 0 || i.MemoryMiB <= 0 || i.PricePerHour <= 0 || i.PriceDate == "" || i.PriceSource == "" {
			t.Errorf("incomplete instance entry %+v", i)
		}
		if (i.GPUs > 0) != (i.GPUMemoryMiB > 0 && i.GPUModel != "") {
			t.Errorf("GPU fields disagree for %+v", i)
		}
		if math.IsNaN(i.PricePerHour) {
			t.Errorf("price of %s is not a number", typ)
		}
	}
}

// The embedding models are in the catalog as such, and chat models say whether they take tools.
func TestEmbeddingAndToolsFlags(t *testing.T) {
	for _, tag := range []string{"nomic-embed-text", "bge-m3"} {
		m, ok := LookupModel(tag)
		if !ok || !m.Embedding || m.Tools {
			t.Errorf("%s: %+v, want an embedding model without tools", tag, m)
		}
	}
	for tag, tools := range map[string]bool{"llama3.1:8b": true, "qwen2.5:7b": true, "mistral:7b": true, "gemma3:4b": false, "phi3:mini": false} {
		if m, _ := LookupModel(tag); m.Embedding || m.Tools != tools {
			t.Errorf("%s: embedding %v tools %v, want a chat model with tools %v", tag, m.Embedding, m.Tools, tools)
		}
	}
}

// A context beyond what the model was trained for is sized as Ollama runs it: capped.
func TestKVCacheCapsContextAtMaxContext(t *testing.T) {
	m, _ := LookupModel("nomic-embed-text")
	if got, want := m.KVCacheBytes(4, 8192), m.KVCacheBytes(4, 2048); got != want || got == 0 {
		t.Errorf("nomic-embed-text KV cache at 8192 = %d, want its 2048-token figure %d", got, want)
	}
	if got := m.ContextLength(1024); got != 1024 {
		t.Errorf("ContextLength(1024) = %d, want 1024", got)
	}
}
