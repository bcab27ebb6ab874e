// Package catalog holds the tables llm-sandbox sizes and checks departments with: the models it
// knows how to size (Ollama tags with the figures the memory estimate needs), the EC2 instance
// types it may run on (with prices for the cost estimate), and the public SSM parameters the
// nodes' AMIs are resolved from. It is a leaf: the stack-file parser, the components and
// preflight read the same tables here.
package catalog

import "sort"

// Model is a model the sandbox knows how to size: an Ollama tag with the figures the memory
// estimate needs.
type Model struct {
	// Tag is the Ollama tag, e.g. "llama3.1:8b".
	Tag string
	// Parameters is the parameter count as published, e.g. "8.0B".
	Parameters string
	// Quantization is the weights' quantisation in the default tag, e.g. "Q4_K_M".
	Quantization string
	// DiskBytes is the download size of the tag.
	DiskBytes int64
	// WeightBytes is the memory the weights take once loaded (GGUF weights load as stored).
	WeightBytes int64
	// Layers, KVHeads and HeadDim are the transformer figures that size the KV cache.
	Layers, KVHeads, HeadDim int
	// MaxContext is the longest context the model was trained for, in tokens: Ollama caps a
	// longer num_ctx at it (llm/server.go, NewLlamaServer: "requested context size too large
	// for model").
	MaxContext int
	// Embedding is true for an embedding model: it answers /v1/embeddings (Ollama's
	// /api/embed) and never chat or completions.
	Embedding bool
	// Tools is true when the tag's Ollama template takes tools (the "tools" capability on its
	// library page): only then does Ollama accept a chat request with tools.
	Tools bool
	// Source names where the figures come from.
	Source string
}

// Instance is an EC2 instance type the sandbox may run on.
type Instance struct {
	// Type is the EC2 instance type, e.g. "g5.xlarge".
	Type string
	// VCPUs and MemoryMiB are the instance's size.
	VCPUs, MemoryMiB int
	// GPUs is the number of GPUs; 0 for a CPU-only type.
	GPUs int
	// GPUModel names the GPU, e.g. "NVIDIA A10G".
	GPUModel string
	// GPUMemoryMiB is one GPU's memory as nvidia-smi reports it (a little under the marketed GB).
	GPUMemoryMiB int
	// GPUMemoryGBps is one GPU's memory bandwidth in GB/s, from NVIDIA's data sheet: it scales
	// the per-stream output (StreamTokensPerSecond). 0 for a CPU-only type.
	GPUMemoryGBps int
	// BaselineCPUPercent is, for a burstable type (T family), the share of each vCPU it earns
	// CPU credits for and can sustain: its baseline utilisation. 0 for a type that is not
	// burstable, which runs every vCPU at full speed all the time.
	BaselineCPUPercent int
	// PricePerHour is the on-demand Linux price in USD in us-east-1 on PriceDate.
	PricePerHour float64
	// PriceDate is the day the price was taken from PriceSource.
	PriceDate string
	// PriceSource names where the price comes from.
	PriceSource string
}

// HasGPU reports whether the type has at least one GPU.
func (i Instance) HasGPU() bool { return i.GPUs > 0 }

const (
	mb = int64(1000 * 1000)
	gb = 1000 * mb
)

// Sources of the model figures. Sizes are the download sizes of the default quantisation on
// each model's page in the Ollama library (https://ollama.com/library/<name>/tags); the
// architecture figures (num_hidden_layers, num_key_value_heads, head_dim or
// hidden_size/num_attention_heads, max_position_embeddings) are from each model's config.json on
// Hugging Face, named per entry.
var models = map[string]Model{
	"llama3.1:8b": {
		Tag: "llama3.1:8b", Parameters: "8.0B", Quantization: "Q4_K_M",
		DiskBytes: 4900 * mb, WeightBytes: 4900 * mb,
		Layers: 32, KVHeads: 8, HeadDim: 128, MaxContext: 131072, Tools: true,
		Source: "ollama.com/library/llama3.1; meta-llama/Llama-3.1-8B-Instruct config.json",
	},
	"llama3.2:3b": {
		Tag: "llama3.2:3b", Parameters: "3.2B", Quantization: "Q4_K_M",
		DiskBytes: 2000 * mb, WeightBytes: 2000 * mb,
		Layers: 28, KVHeads: 8, HeadDim: 128, MaxContext: 131072, Tools: true,
		Source: "ollama.com/library/llama3.2; meta-llama/Llama-3.2-3B-Instruct config.json",
	},
	"llama3.2:1b": {
		Tag: "llama3.2:1b", Parameters: "1.2B", Quantization: "Q8_0",
		DiskBytes: 1300 * mb, WeightBytes: 1300 * mb,
		Layers: 16, KVHeads: 8, HeadDim: 64, MaxContext: 131072, Tools: true,
		Source: "ollama.com/library/llama3.2; meta-llama/Llama-3.2-1B-Instruct config.json",
	},
	"qwen2.5:7b": {
		Tag: "qwen2.5:7b", Parameters: "7.6B", Quantization: "Q4_K_M",
		DiskBytes: 4700 * mb, WeightBytes: 4700 * mb,
		Layers: 28, KVHeads: 4, HeadDim: 128, MaxContext: 32768, Tools: true,
		Source: "ollama.com/library/qwen2.5; Qwen/Qwen2.5-7B-Instruct config.json",
	},
	"qwen2.5:1.5b": {
		Tag: "qwen2.5:1.5b", Parameters: "1.5B", Quantization: "Q4_K_M",
		DiskBytes: 986 * mb, WeightBytes: 986 * mb,
		Layers: 28, KVHeads: 2, HeadDim: 128, MaxContext: 32768, Tools: true,
		Source: "ollama.com/library/qwen2.5; Qwen/Qwen2.5-1.5B-Instruct config.json",
	},
	"qwen2.5:0.5b": {
		Tag: "qwen2.5:0.5b", Parameters: "494M", Quantization: "Q4_K_M",
		DiskBytes: 398 * mb, WeightBytes: 398 * mb,
		Layers: 24, KVHeads: 2, HeadDim: 64, MaxContext: 32768, Tools: true,
		Source: "ollama.com/library/qwen2.5; Qwen/Qwen2.5-0.5B-Instruct config.json",
	},
	"mistral:7b": {
		Tag: "mistral:7b", Parameters: "7.2B", Quantization: "Q4_K_M",
		DiskBytes: 4400 * mb, WeightBytes: 4400 * mb,
		Layers: 32, KVHeads: 8, HeadDim: 128, MaxContext: 32768, Tools: true,
		// mistral:7b is digest 6577803aa9a0, 4.4GB Q4_K_M; the earlier f974a74358d6 was 4.1GB Q4_0.
		Source: "https://ollama.com/library/mistral/tags; mistralai/Mistral-7B-Instruct-v0.3 config.json",
	},
	"gemma3:4b": {
		Tag: "gemma3:4b", Parameters: "4.3B", Quantization: "Q4_K_M",
		DiskBytes: 3300 * mb, WeightBytes: 3300 * mb,
		Layers: 34, KVHeads: 4, HeadDim: 256, MaxContext: 131072,
		Source: "ollama.com/library/gemma3; google/gemma-3-4b-it config.json (text_config)",
	},
	"phi3:mini": {
		Tag: "phi3:mini", Parameters: "3.8B", Quantization: "Q4_0",
		DiskBytes: 2200 * mb, WeightBytes: 2200 * mb,
		Layers: 32, KVHeads: 32, HeadDim: 96, MaxContext: 4096,
		// phi3:mini is the 4k variant (phi3:3.8b-mini-4k-instruct-q4_0, digest 4f2222927938); the
		// 128k variant is phi3:3.8b-mini-128k-instruct-*. https://ollama.com/library/phi3
		Source: "https://ollama.com/library/phi3; https://huggingface.co/microsoft/Phi-3-mini-4k-instruct/blob/main/config.json",
	},
	// Embedding models. They are encoders, so the KV figures (layers, attention heads, head size
	// = hidden size / heads) over-estimate what they hold while embedding: an upper bound.
	"nomic-embed-text": {
		Tag: "nomic-embed-text", Parameters: "137M", Quantization: "F16",
		DiskBytes: 274 * mb, WeightBytes: 274 * mb,
		Layers: 12, KVHeads: 12, HeadDim: 64, MaxContext: 2048, Embedding: true,
		// The GGUF Ollama serves records a 2,048-token training context ("llama.cpp will default
		// to 2048 tokens of context with these files"); the 8,192 of the model card needs RoPE
		// scaling that Ollama does not apply.
		Source: "https://ollama.com/library/nomic-embed-text; https://huggingface.co/nomic-ai/nomic-embed-text-v1.5 (config.json: n_layer 12, n_head 12, n_embd 768); https://huggingface.co/nomic-ai/nomic-embed-text-v1-GGUF",
	},
	"bge-m3": {
		Tag: "bge-m3", Parameters: "567M", Quantization: "F16",
		DiskBytes: 1200 * mb, WeightBytes: 1200 * mb,
		Layers: 24, KVHeads: 16, HeadDim: 64, MaxContext: 8192, Embedding: true,
		Source: "https://ollama.com/library/bge-m3; https://huggingface.co/BAAI/bge-m3 (config.json: num_hidden_layers 24, num_attention_heads 16, hidden_size 1024; 8,192 tokens on the model card)",
	},
}

// Instance prices: AWS EC2 On-Demand Pricing, Linux, US East (N. Virginia); other regions differ
// by a few percent (ca-central-1 is about 10% higher for G types). GPU memory is what nvidia-smi
// reports for the GPU, which the memory fit is checked against.
//
// The AWS page itself (https://aws.amazon.com/ec2/pricing/on-demand/) could not be re-read when
// these rows were checked on 2026-11-28; every price matched AWS list prices as republished in
// public us-east-1 price tables captured between 2026-04 and 2026-09, the latest dated 2026-08-17.
// GPU memory figures match nvidia-smi output for A10G (23028 MiB), T4 (15360), L4 (23034) and
// L40S (46068); vCPU and memory per https://docs.aws.amazon.com/ec2/latest/instancetypes/.
// GPU memory bandwidth is NVIDIA's data-sheet figure: A10 and A10G 600 GB/s, T4 320 GB/s,
// L4 300 GB/s, L40S 864 GB/s. Burstable baselines are the Amazon EC2 User Guide's table of
// burstable performance instances ("Key concepts and definitions", baseline utilization per
// vCPU): t3.large 30 %, t3.xlarge 40 %.
const (
	priceDate   = "2026-08-17"
	priceSource = "AWS EC2 On-Demand list prices, Linux, us-east-1 (aws.amazon.com/ec2/pricing/on-demand), via public price tables captured 2026-08-17"
)

var instances = map[string]Instance{
	"g4dn.xlarge":  {Type: "g4dn.xlarge", VCPUs: 4, MemoryMiB: 16384, GPUs: 1, GPUModel: "NVIDIA T4", GPUMemoryMiB: 15360, GPUMemoryGBps: 320, PricePerHour: 0.526},
	"g4dn.2xlarge": {Type: "g4dn.2xlarge", VCPUs: 8, MemoryMiB: 32768, GPUs: 1, GPUModel: "NVIDIA T4", GPUMemoryMiB: 15360, GPUMemoryGBps: 320, PricePerHour: 0.752},
	"g5.xlarge":    {Type: "g5.xlarge", VCPUs: 4, MemoryMiB: 16384, GPUs: 1, GPUModel: "NVIDIA A10G", GPUMemoryMiB: 23028, GPUMemoryGBps: 600, PricePerHour: 1.006},
	"g5.2xlarge":   {Type: "g5.2xlarge", VCPUs: 8, MemoryMiB: 32768, GPUs: 1, GPUModel: "NVIDIA A10G", GPUMemoryMiB: 23028, GPUMemoryGBps: 600, PricePerHour: 1.212},
	"g5.4xlarge":   {Type: "g5.4xlarge", VCPUs: 16, MemoryMiB: 65536, GPUs: 1, GPUModel: "NVIDIA A10G", GPUMemoryMiB: 23028, GPUMemoryGBps: 600, PricePerHour: 1.624},
	"g5.12xlarge":  {Type: "g5.12xlarge", VCPUs: 48, MemoryMiB: 196608, GPUs: 4, GPUModel: "NVIDIA A10G", GPUMemoryMiB: 23028, GPUMemoryGBps: 600, PricePerHour: 5.672},
	"g6.xlarge":    {Type: "g6.xlarge", VCPUs: 4, MemoryMiB: 16384, GPUs: 1, GPUModel: "NVIDIA L4", GPUMemoryMiB: 23034, GPUMemoryGBps: 300, PricePerHour: 0.8048},
	"g6.2xlarge":   {Type: "g6.2xlarge", VCPUs: 8, MemoryMiB: 32768, GPUs: 1, GPUModel: "NVIDIA L4", GPUMemoryMiB: 23034, GPUMemoryGBps: 300, PricePerHour: 0.9776},
	"g6e.xlarge":   {Type: "g6e.xlarge", VCPUs: 4, MemoryMiB: 32768, GPUs: 1, GPUModel: "NVIDIA L40S", GPUMemoryMiB: 46068, GPUMemoryGBps: 864, PricePerHour: 1.861},
	"t3.large":     {Type: "t3.large", VCPUs: 2, MemoryMiB: 8192, BaselineCPUPercent: 30, PricePerHour: 0.0832},
	"t3.xlarge":    {Type: "t3.xlarge", VCPUs: 4, MemoryMiB: 16384, BaselineCPUPercent: 40, PricePerHour: 0.1664},
	"m7i.large":    {Type: "m7i.large", VCPUs: 2, MemoryMiB: 8192, PricePerHour: 0.1008},
	"m7i.xlarge":   {Type: "m7i.xlarge", VCPUs: 4, MemoryMiB: 16384, PricePerHour: 0.2016},
	"m7i.2xlarge":  {Type: "m7i.2xlarge", VCPUs: 8, MemoryMiB: 32768, PricePerHour: 0.4032},
	"c7i.large":    {Type: "c7i.large", VCPUs: 2, MemoryMiB: 4096, PricePerHour: 0.08925},
	"c7i.xlarge":   {Type: "c7i.xlarge", VCPUs: 4, MemoryMiB: 8192, PricePerHour: 0.1785},
	"c7i.2xlarge":  {Type: "c7i.2xlarge", VCPUs: 8, MemoryMiB: 16384, PricePerHour: 0.357},
	"r7i.xlarge":   {Type: "r7i.xlarge", VCPUs: 4, MemoryMiB: 32768, PricePerHour: 0.2646},
}

func init() {
	// The date and source are the same for every row; filling them here keeps the table readable.
	for k, v := range instances {
		v.PriceDate, v.PriceSource = priceDate, priceSource
		instances[k] = v
	}
}

// LookupModel returns the catalog entry for an Ollama tag.
func LookupModel(tag string) (Model, bool) {
	m, ok := models[tag]
	return m, ok
}

// LookupInstance returns the catalog entry for an EC2 instance type.
func LookupInstance(typ string) (Instance, bool) {
	i, ok := instances[typ]
	return i, ok
}

// ModelTags returns every catalog tag, sorted.
func ModelTags() []string { return sortedKeys(models) }

// InstanceTypes returns every catalog instance type, sorted.
func InstanceTypes() []string { return sortedKeys(instances) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Memory sizing. Ollama allocates a KV cache of parallel × context tokens for every loaded model
// (OLLAMA_NUM_PARALLEL multiplies the context; ollama docs/faq "How does Ollama handle concurrent
// requests?"), and every model a pool serves is preloaded and kept loaded, so all of them must
// fit at once.
const (
	// kvBytesPerElement is q8_0's 34 bytes per block of 32 values: the agent sets
	// OLLAMA_KV_CACHE_TYPE=q8_0 with flash attention (ollama docs/faq, "How can I set the
	// quantization type for the K/V cache?").
	kvBytesPerElement = 34.0 / 32.0
	// graphOverheadBytes is the per-model compute graph and CUDA buffers, about 1 GiB for 8B
	// models at these context sizes in Ollama's own estimate (llm/memory.go, "graph").
	graphOverheadBytes = int64(1 << 30)
	// gpuHeadroom keeps 5% of GPU memory free for the driver and fragmentation.
	gpuHeadroom = 0.05
	// systemReserveBytes is what a CPU-only node keeps for the OS, the agent and page cache.
	systemReserveBytes = int64(2 << 30)
)

// KVCacheBytes estimates the KV cache of one model loaded with the given parallel and context:
// 2 (keys and values) × layers × KV heads × head size × bytes per element × tokens. A context
// beyond MaxContext counts as MaxContext, as Ollama caps it so (an embedding model shares a pool
// whose context is sized for its chat models).
func (m Model) KVCacheBytes(parallel, contextLength int) int64 {
	contextLength = m.ContextLength(contextLength)
	perToken := float64(2*m.Layers*m.KVHeads*m.HeadDim) * kvBytesPerElement
	return int64(perToken * float64(parallel) * float64(contextLength))
}

// ContextLength is the context Ollama runs the model with when the pool asks for
// contextLength: at most MaxContext.
func (m Model) ContextLength(contextLength int) int {
	return min(contextLength, m.MaxContext)
}

// MemoryBytes estimates what one loaded model needs: weights, KV cache and graph overhead.
func (m Model) MemoryBytes(parallel, contextLength int) int64 {
	return m.WeightBytes + m.KVCacheBytes(parallel, contextLength) + graphOverheadBytes
}

// UsableModelMemoryBytes is the memory models may fill on one node: all GPUs' memory less the
// headroom on GPU types, system memory less the OS reserve on CPU types.
func (i Instance) UsableModelMemoryBytes() int64 {
	if i.HasGPU() {
		total := float64(int64(i.GPUs) * int64(i.GPUMemoryMiB) << 20)
		return int64(total * (1 - gpuHeadroom))
	}
	return int64(i.MemoryMiB)<<20 - systemReserveBytes
}
