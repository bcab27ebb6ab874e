// Command tinymodel writes a tiny random-weight llama model as a GGUF file (about 0.5 MB) that
// the real Ollama loads and answers with, so the end-to-end tests serve a model without a
// multi-gigabyte download and without the internet.
//
// The file is written with Ollama's own fs/ggml.WriteGGUF, as Ollama's tests do, so its layout
// is what the pinned Ollama reads. Choices that matter:
//   - every token is unique: a duplicate token aborts the whole Ollama server process;
//   - the output rows of the non-word tokens (unknown, BOS, EOS and the 256 byte tokens) are
//     zero, so greedy decoding always picks a word: replies are readable and never empty, and
//     generation never stops early (callers bound it with num_predict or max_tokens);
//   - the weights come from a PCG generator with a fixed seed, so the same flags give the same
//     bytes (and the same SHA-256) and, at temperature 0, the same reply.
//
// Usage:
//
//	tinymodel -o model.gguf [-seed 1]
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"github.com/ollama/ollama/fs/ggml"
)

// Model shape: small enough to load in milliseconds on one CPU core, large enough to be a
// real llama graph (attention with RoPE, SwiGLU feed-forward, RMS norms, two blocks).
//
// The head dimension (embedding / heads) must be a multiple of 32: nodes run Ollama with
// OLLAMA_KV_CACHE_TYPE=q8_0, whose blocks hold 32 values, and ggml's quantize_row_q8_0 aborts
// the runner (assertion `k % QK8_0 == 0`) on the first request when a head is shorter. Real
// models have 64 or 128; 4 heads of 16 load and then crash on the first chat.
const (
	contextLength = 2048
	embedding     = 64
	blocks        = 2
	feedForward   = 128
	heads         = 2
	kvHeads       = 2
	headDimension = embedding / heads
	ropeDimension = headDimension
	rmsEpsilon    = 1e-5
)

// A compile-time check of the constraint above: the array length is negative otherwise.
var _ [1 - 2*(headDimension%32)]struct{}

// SentencePiece token types (llama.cpp's llama_token_type).
const (
	typeNormal  = 1
	typeUnknown = 2
	typeControl = 3
	typeByte    = 6
)

// words are the only tokens the model ever emits. Each carries SentencePiece's word-start
// marker, so decoded replies are space-separated words.
var words = []string{
	"the", "a", "model", "answer", "cloud", "node", "service", "private", "department", "request",
	"token", "stream", "ready", "pool", "gateway", "lifecycle", "continue", "sandbox", "llama", "test",
	"quick", "brown", "fox", "jumps", "over", "lazy", "dog", "green", "blue", "red",
	"river", "mountain", "forest", "ocean", "city", "light", "dark", "fast", "slow", "bright",
	"small", "large", "warm", "cold", "open", "closed", "north", "south", "east", "west",
	"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
}

func main() {
	out := flag.String("o", "", "path of the GGUF file to write (required)")
	seed := flag.Uint64("seed", 1, "seed of the random weights; the same seed gives the same file")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: tinymodel -o model.gguf [-seed N]")
		os.Exit(2)
	}
	if err := write(*out, *seed); err != nil {
		fmt.Fprintf(os.Stderr, "tinymodel: %v\n", err)
		os.Exit(1)
	}
}

// vocabulary returns the tokens, their scores and types, and how many leading tokens are not
// words (their output rows are zeroed).
func vocabulary() (tokens []string, scores []float32, types []int32, nonWords int) {
	add := func(tok string, score float32, typ int32) {
		tokens = append(tokens, tok)
		scores = append(scores, score)
		types = append(types, typ)
	}
	add("<unk>", 0, typeUnknown)
	add("<s>", 0, typeControl)
	add("</s>", 0, typeControl)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), 0, typeByte)
	}
	nonWords = len(tokens)
	for i, w := range words {
		add("\u2581"+w, -float32(i+1), typeNormal)
	}
	seen := make(map[string]bool, len(tokens))
	for _, t := range tokens {
		if seen[t] {
			// Ollama aborts the server process on a duplicate token; never write one.
			panic("duplicate token " + t)
		}
		seen[t] = true
	}
	return tokens, scores, types, nonWords
}

func write(path string, seed uint64) error {
	tokens, scores, types, nonWords := vocabulary()
	vocab := uint64(len(tokens))
	rng := rand.New(rand.NewPCG(seed, 0x6c6c6d2d73616e64)) // "llm-sand"

	// random returns n normal values scaled by 1/sqrt(fanIn), like a freshly initialised layer.
	random := func(n int, fanIn int) []float32 {
		v := make([]float32, n)
		scale := 1 / math.Sqrt(float64(fanIn))
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}

	var ts []*ggml.Tensor
	// tensor adds an F32 tensor. shape is in GGUF ne order: ne[0] is the row length.
	tensor := func(name string, data []float32, shape ...uint64) {
		var buf bytes.Buffer
		if err := binary.Write(&buf, binary.LittleEndian, data); err != nil {
			panic(err) // writing to a bytes.Buffer does not fail
		}
		ts = append(ts, &ggml.Tensor{Name: name, Kind: 0, Shape: shape, WriterTo: bytes.NewReader(buf.Bytes())})
	}

	tensor("token_embd.weight", random(embedding*int(vocab), 1), embedding, vocab)
	for b := range blocks {
		p := fmt.Sprintf("blk.%d.", b)
		tensor(p+"attn_norm.weight", ones(embedding), embedding)
		tensor(p+"attn_q.weight", random(embedding*embedding, embedding), embedding, embedding)
		tensor(p+"attn_k.weight", random(embedding*embedding, embedding), embedding, embedding)
		tensor(p+"attn_v.weight", random(embedding*embedding, embedding), embedding, embedding)
		tensor(p+"attn_output.weight", random(embedding*embedding, embedding), embedding, embedding)
		tensor(p+"ffn_norm.weight", ones(embedding), embedding)
		tensor(p+"ffn_gate.weight", random(embedding*feedForward, embedding), embedding, feedForward)
		tensor(p+"ffn_up.weight", random(embedding*feedForward, embedding), embedding, feedForward)
		tensor(p+"ffn_down.weight", random(feedForward*embedding, feedForward), feedForward, embedding)
	}
	tensor("output_norm.weight", ones(embedding), embedding)
	output := random(embedding*int(vocab), embedding)
	// Row t of output.weight gives token t's logit; a zero row gives logit 0, below the best
	// word's, so greedy decoding never picks a non-word token.
	clear(output[:nonWords*embedding])
	tensor("output.weight", output, embedding, vocab)

	kv := ggml.KV{
		"general.architecture":                   "llama",
		"general.name":                           "llm-sandbox tiny test model",
		"general.file_type":                      uint32(0), // all F32
		"llama.context_length":                   uint32(contextLength),
		"llama.embedding_length":                 uint32(embedding),
		"llama.block_count":                      uint32(blocks),
		"llama.feed_forward_length":              uint32(feedForward),
		"llama.attention.head_count":             uint32(heads),
		"llama.attention.head_count_kv":          uint32(kvHeads),
		"llama.attention.layer_norm_rms_epsilon": float32(rmsEpsilon),
		"llama.rope.dimension_count":             uint32(ropeDimension),
		"llama.rope.freq_base":                   float32(10000),
		"llama.vocab_size":                       uint32(vocab),
		"tokenizer.ggml.model":                   "llama",
		"tokenizer.ggml.tokens":                  tokens,
		"tokenizer.ggml.scores":                  scores,
		"tokenizer.ggml.token_type":              types,
		"tokenizer.ggml.unknown_token_id":        uint32(0),
		"tokenizer.ggml.bos_token_id":            uint32(1),
		"tokenizer.ggml.eos_token_id":            uint32(2),
		"tokenizer.ggml.add_bos_token":           true,
		"tokenizer.ggml.add_eos_token":           false,
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := ggml.WriteGGUF(f, kv, ts); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
