// Package ollamatest is a test double of Ollama's REST API, for the failures a real Ollama
// cannot be made to show on a CPU-only machine without network: a model resident on the CPU
// of a GPU pool, a registry that fails, a create that errors, a server that never gets
// healthy. The end-to-end tests run the real Ollama; this fake serves the agent's unit tests
// and, run as an `ollama` executable (Main), the command's tests.
package ollamatest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// Options configure a fake server.
type Options struct {
	// Version is what GET /api/version reports.
	Version string
	// Unhealthy makes GET /api/version answer 503 forever.
	Unhealthy bool
	// GPU makes loaded models report size_vram equal to their size; otherwise 0 (on CPU).
	GPU bool
	// Models are present from the start (GET /api/tags lists them).
	Models []string
	// PullFailures is how many pulls fail (with a streamed "error" line) before pulls succeed.
	PullFailures int
	// PullError, when set, makes every pull fail with it.
	PullError string
	// CreateError, when set, makes every create fail with it.
	CreateError string
	// GenerateError, when set, makes every generation fail with it after the model loads (a
	// runner that crashes on the first token).
	GenerateError string
	// Embedding names the embedding models: as with a real Ollama, they answer POST /api/embed
	// and refuse POST /api/generate with 400, and chat models refuse /api/embed here.
	Embedding []string
}

// Counts are the calls the fake has answered, for idempotency assertions.
type Counts struct {
	Pulls       int `json:"pulls"`
	Creates     int `json:"creates"`
	BlobChecks  int `json:"blobChecks"`
	BlobUploads int `json:"blobUploads"`
	Generates   int `json:"generates"`
	Embeds      int `json:"embeds"`
}

// Server is the fake. It is an http.Handler.
type Server struct {
	mu     sync.Mutex
	opts   Options
	models map[string]int64
	loaded map[string]bool
	blobs  map[string]int64
	counts Counts
}

const modelSize = 64 << 20

// New returns a fake server.
func New(o Options) *Server {
	s := &Server{opts: o, models: map[string]int64{}, loaded: map[string]bool{}, blobs: map[string]int64{}}
	for _, m := range o.Models {
		s.models[canonical(m)] = modelSize
	}
	return s
}

func canonical(name string) string {
	if strings.Contains(name, ":") {
		return name
	}
	return name + ":latest"
}

// Counts returns the calls answered so far.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// Loaded returns the names of the loaded models, sorted.
func (s *Server) Loaded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.loaded {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// streamLines writes JSON lines as Ollama's streaming endpoints do.
func streamLines(w http.ResponseWriter, lines ...any) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, l := range lines {
		_ = enc.Encode(l)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
}

type status struct {
	Status string `json:"status"`
}

type errorLine struct {
	Error string `json:"error"`
}

// ServeHTTP answers the subset of Ollama's API the agent uses, plus GET /fake/counts.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/api/version" && r.Method == http.MethodGet:
		if s.opts.Unhealthy {
			writeJSON(w, http.StatusServiceUnavailable, errorLine{"starting"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"version": s.opts.Version})
	case r.URL.Path == "/api/tags" && r.Method == http.MethodGet:
		s.tags(w)
	case r.URL.Path == "/api/ps" && r.Method == http.MethodGet:
		s.ps(w)
	case r.URL.Path == "/api/pull" && r.Method == http.MethodPost:
		s.pull(w, r)
	case r.URL.Path == "/api/create" && r.Method == http.MethodPost:
		s.create(w, r)
	case strings.HasPrefix(r.URL.Path, "/api/blobs/"):
		s.blob(w, r, strings.TrimPrefix(r.URL.Path, "/api/blobs/"))
	case r.URL.Path == "/api/generate" && r.Method == http.MethodPost:
		s.generate(w, r)
	case r.URL.Path == "/api/embed" && r.Method == http.MethodPost:
		s.embed(w, r)
	case r.URL.Path == "/fake/counts":
		writeJSON(w, http.StatusOK, s.Counts())
	default:
		writeJSON(w, http.StatusNotFound, errorLine{"not found"})
	}
}

func (s *Server) tags(w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type model struct {
		Name  string `json:"name"`
		Model string `json:"model"`
		Size  int64  `json:"size"`
	}
	list := []model{}
	for n, size := range s.models {
		list = append(list, model{n, n, size})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"models": list})
}

func (s *Server) ps(w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type running struct {
		Name     string `json:"name"`
		Model    string `json:"model"`
		Size     int64  `json:"size"`
		SizeVRAM int64  `json:"size_vram"`
	}
	list := []running{}
	for n := range s.loaded {
		r := running{Name: n, Model: n, Size: s.models[n]}
		if s.opts.GPU {
			r.SizeVRAM = r.Size
		}
		list = append(list, r)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"models": list})
}

func decode(r *http.Request, v any) error {
	return json.NewDecoder(r.Body).Decode(v)
}

func (s *Server) pull(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string `json:"model"`
	}
	if err := decode(r, &req); err != nil || req.Model == "" {
		writeJSON(w, http.StatusBadRequest, errorLine{"model is required"})
		return
	}
	s.mu.Lock()
	s.counts.Pulls++
	fail := s.opts.PullError
	if fail == "" && s.opts.PullFailures > 0 {
		s.opts.PullFailures--
		fail = "pull model manifest: connection reset by peer"
	}
	if fail == "" {
		s.models[canonical(req.Model)] = modelSize
	}
	s.mu.Unlock()
	if fail != "" {
		streamLines(w, status{"pulling manifest"}, errorLine{fail})
		return
	}
	// As Ollama streams a pull: each layer's status repeated with its bytes so far and its size
	// (a quarter more per line here), then the checks.
	lines := []any{status{"pulling manifest"}}
	for done := int64(0); done <= modelSize; done += modelSize / 4 {
		lines = append(lines, layerProgress{Status: "pulling 0123456789ab", Digest: "sha256:0123456789ab", Total: modelSize, Completed: done})
	}
	lines = append(lines, status{"verifying sha256 digest"}, status{"writing manifest"}, status{"success"})
	streamLines(w, lines...)
}

// layerProgress is a pull's status line while it downloads a layer.
type layerProgress struct {
	Status    string `json:"status"`
	Digest    string `json:"digest"`
	Total     int64  `json:"total"`
	Completed int64  `json:"completed"`
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string            `json:"model"`
		Files map[string]string `json:"files"`
	}
	if err := decode(r, &req); err != nil || req.Model == "" {
		writeJSON(w, http.StatusBadRequest, errorLine{"model is required"})
		return
	}
	s.mu.Lock()
	s.counts.Creates++
	fail := s.opts.CreateError
	var size int64
	for _, digest := range req.Files {
		n, ok := s.blobs[digest]
		if !ok && fail == "" {
			fail = "blob " + digest + " not found"
		}
		size += n
	}
	if len(req.Files) == 0 && fail == "" {
		fail = "neither 'from' nor 'files' was specified"
	}
	if fail == "" {
		s.models[canonical(req.Model)] = max(size, 1)
	}
	s.mu.Unlock()
	if fail != "" {
		streamLines(w, status{"parsing GGUF"}, errorLine{fail})
		return
	}
	streamLines(w, status{"parsing GGUF"}, status{"using existing layer"}, status{"writing manifest"}, status{"success"})
}

func (s *Server) blob(w http.ResponseWriter, r *http.Request, digest string) {
	switch r.Method {
	case http.MethodHead:
		s.mu.Lock()
		s.counts.BlobChecks++
		_, ok := s.blobs[digest]
		s.mu.Unlock()
		if ok {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusNotFound)
		}
	case http.MethodPost:
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorLine{err.Error()})
			return
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
			writeJSON(w, http.StatusBadRequest, errorLine{"digest mismatch, expected \"" + digest + "\", got \"" + got + "\""})
			return
		}
		s.mu.Lock()
		s.counts.BlobUploads++
		s.blobs[digest] = n
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (s *Server) generate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model     string `json:"model"`
		Prompt    string `json:"prompt"`
		KeepAlive any    `json:"keep_alive"`
		Stream    *bool  `json:"stream"`
		Options   struct {
			NumPredict int `json:"num_predict"`
		} `json:"options"`
	}
	if err := decode(r, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorLine{err.Error()})
		return
	}
	name := canonical(req.Model)
	s.mu.Lock()
	s.counts.Generates++
	_, present := s.models[name]
	// Only the preload the agent sends (a one-token prompt, keep_alive -1, no streaming) loads
	// a model here, so a test fails if the agent sends anything else.
	ka, _ := req.KeepAlive.(float64)
	preload := req.Prompt != "" && req.Options.NumPredict == 1 && ka < 0 && req.Stream != nil && !*req.Stream
	if present && preload && !s.isEmbedding(name) {
		s.loaded[name] = true
	}
	s.mu.Unlock()
	switch {
	case !present:
		writeJSON(w, http.StatusNotFound, errorLine{fmt.Sprintf("model %q not found, try pulling it first", req.Model)})
	case s.isEmbedding(name):
		// Ollama's words (server/routes.go, GenerateHandler: errCapabilities).
		writeJSON(w, http.StatusBadRequest, errorLine{fmt.Sprintf("%q does not support generate", req.Model)})
	case !preload:
		writeJSON(w, http.StatusBadRequest, errorLine{"ollamatest: only preload requests are supported"})
	case s.opts.GenerateError != "":
		writeJSON(w, http.StatusInternalServerError, errorLine{s.opts.GenerateError})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"model": req.Model, "response": " world", "done": true, "done_reason": "length", "eval_count": 1})
	}
}

// isEmbedding reports whether a canonical model name is one of Options.Embedding.
func (s *Server) isEmbedding(name string) bool {
	for _, m := range s.opts.Embedding {
		if canonical(m) == name {
			return true
		}
	}
	return false
}

// embed answers POST /api/embed: a preload (one non-empty input, keep_alive -1) of an
// embedding model loads it and returns one vector; anything else is refused.
func (s *Server) embed(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model     string `json:"model"`
		Input     string `json:"input"`
		KeepAlive any    `json:"keep_alive"`
	}
	if err := decode(r, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorLine{err.Error()})
		return
	}
	name := canonical(req.Model)
	s.mu.Lock()
	s.counts.Embeds++
	_, present := s.models[name]
	ka, _ := req.KeepAlive.(float64)
	preload := req.Input != "" && ka < 0
	embedding := s.isEmbedding(name)
	if present && preload && embedding {
		s.loaded[name] = true
	}
	s.mu.Unlock()
	switch {
	case !present:
		writeJSON(w, http.StatusNotFound, errorLine{fmt.Sprintf("model %q not found, try pulling it first", req.Model)})
	case !embedding:
		writeJSON(w, http.StatusBadRequest, errorLine{"ollamatest: only embedding models embed here"})
	case !preload:
		writeJSON(w, http.StatusBadRequest, errorLine{"ollamatest: only preload requests are supported"})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"model": req.Model, "embeddings": [][]float64{{0.25, -0.5, 0.125}}})
	}
}

// Environment variables that configure Main.
const (
	// EnvVersion is the version the fake reports.
	EnvVersion = "FAKE_OLLAMA_VERSION"
	// EnvGPU, when "1", makes loaded models report VRAM.
	EnvGPU = "FAKE_OLLAMA_GPU"
	// EnvRecord names a file where `serve` writes the OLLAMA_* variables and HOME it got.
	EnvRecord = "FAKE_OLLAMA_RECORD_ENV"
)

// Main runs the fake as an `ollama` executable. "--version" prints "ollama version is X";
// "serve" serves on 127.0.0.1 at OLLAMA_HOST's port (never on a wider address, whatever
// OLLAMA_HOST says) until SIGTERM or SIGINT.
func Main(args []string, stdout, stderr io.Writer) int {
	version := os.Getenv(EnvVersion)
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-v") {
		fmt.Fprintf(stdout, "ollama version is %s\n", version)
		return 0
	}
	if len(args) != 1 || args[0] != "serve" {
		fmt.Fprintf(stderr, "ollamatest: unsupported arguments %q\n", args)
		return 2
	}
	if file := os.Getenv(EnvRecord); file != "" {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(k, "OLLAMA_") || k == "HOME" {
				env[k] = v
			}
		}
		data, _ := json.Marshal(env)
		if err := os.WriteFile(file, data, 0o644); err != nil {
			fmt.Fprintln(stderr, "ollamatest:", err)
			return 1
		}
	}
	_, port, err := net.SplitHostPort(os.Getenv("OLLAMA_HOST"))
	if err != nil {
		fmt.Fprintln(stderr, "ollamatest: OLLAMA_HOST:", err)
		return 2
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		fmt.Fprintln(stderr, "ollamatest:", err)
		return 1
	}
	srv := &http.Server{Handler: New(Options{Version: version, GPU: os.Getenv(EnvGPU) == "1"})}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		_ = srv.Close()
	}()
	fmt.Fprintf(stderr, "ollamatest: listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(stderr, "ollamatest:", err)
		return 1
	}
	return 0
}
