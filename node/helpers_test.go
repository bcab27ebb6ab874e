package node

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/llm-sandbox/llm-sandbox/node/litellmtest"
	"github.com/llm-sandbox/llm-sandbox/node/ollamatest"
)

// TestMain lets the test binary stand in for the ollama and litellm executables: the scripts
// the tests install as bin/ollama and the venv's bin/litellm exec it with FAKE_OLLAMA_EXEC=1 or
// FAKE_LITELLM_EXEC=1.
func TestMain(m *testing.M) {
	if os.Getenv("FAKE_OLLAMA_EXEC") == "1" {
		os.Exit(ollamatest.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getenv(litellmtest.EnvExec) == "1" {
		os.Exit(litellmtest.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const testVersion = "0.35.1"

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name     string
	body     string
	mode     int64
	typeflag byte
	link     string
}

// tarZst builds a zstd-compressed tar archive.
func tarZst(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: e.typeflag, Linkname: e.link}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// releaseArchive is a stand-in for ollama-linux-amd64.tar.zst with the release's layout:
// bin/ollama and lib/ollama/... (with a versioned library and its symlink).
func releaseArchive(t *testing.T, ollamaScript string) []byte {
	t.Helper()
	return tarZst(t, []tarEntry{
		{name: "./", typeflag: tar.TypeDir, mode: 0o755},
		{name: "./bin/", typeflag: tar.TypeDir, mode: 0o755},
		{name: "./bin/ollama", body: ollamaScript, mode: 0o755},
		{name: "./lib/ollama/", typeflag: tar.TypeDir, mode: 0o755},
		{name: "./lib/ollama/libggml-base.so.0.0.0", body: "not really a library"},
		{name: "./lib/ollama/libggml-base.so", typeflag: tar.TypeSymlink, link: "libggml-base.so.0.0.0"},
	})
}

// fakeOllamaScript is a bin/ollama that execs this test binary as ollamatest.
func fakeOllamaScript(t *testing.T, extraEnv ...string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := append([]string{"FAKE_OLLAMA_EXEC=1", "FAKE_OLLAMA_VERSION=" + testVersion}, extraEnv...)
	return "#!/bin/sh\nexport " + strings.Join(quoteAll(env), " ") + "\nexec '" + exe + "' \"$@\"\n"
}

func quoteAll(kvs []string) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		out[i] = k + "='" + v + "'"
	}
	return out
}

// fileServer serves fixed files on 127.0.0.1 and counts requests per path. failFirst makes
// the first n requests of every path answer 503.
type fileServer struct {
	*httptest.Server
	mu        sync.Mutex
	files     map[string][]byte
	hits      map[string]int
	failFirst int
	status    int
}

func newFileServer(t *testing.T, files map[string][]byte) *fileServer {
	t.Helper()
	fs := &fileServer{files: files, hits: map[string]int{}}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.hits[r.URL.Path]++
		n := fs.hits[r.URL.Path]
		status := fs.status
		fail := n <= fs.failFirst
		body, ok := fs.files[r.URL.Path]
		fs.mu.Unlock()
		switch {
		case status != 0:
			w.WriteHeader(status)
		case fail:
			http.Error(w, "try later", http.StatusServiceUnavailable)
		case !ok:
			http.NotFound(w, r)
		default:
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *fileServer) hitsFor(path string) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.hits[path]
}

// fakeRunner records command lines and answers them from handlers keyed by the command's
// base name; a command without a handler succeeds with no output.
type fakeRunner struct {
	mu       sync.Mutex
	cmds     []string
	handlers map[string]func(args []string) ([]byte, error)
}

func (r *fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	r.mu.Lock()
	r.cmds = append(r.cmds, CommandLine(name, args...))
	h := r.handlers[filepath.Base(name)]
	r.mu.Unlock()
	if h == nil {
		return nil, nil
	}
	return h(args)
}

func (r *fakeRunner) commands() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.cmds...)
}

// matching returns the recorded commands that start with prefix.
func (r *fakeRunner) matching(prefix string) []string {
	var out []string
	for _, c := range r.commands() {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// fakeLifecycle records results and answers with errs in turn (nil once they run out).
type fakeLifecycle struct {
	mu      sync.Mutex
	results []string
	errs    []error
	always  error
}

func (f *fakeLifecycle) Complete(_ context.Context, result string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results = append(f.results, result)
	if f.always != nil {
		return f.always
	}
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return err
	}
	return nil
}

func (f *fakeLifecycle) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.results...)
}

// syncBuffer is a log sink safe for the process service's goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one agent under test with its doubles.
type env struct {
	agentEnv
	files   *fileServer
	ollama  *ollamatest.Server
	release []byte
	gguf    []byte
	nvidia  func(args []string) ([]byte, error)
}

// testRetry keeps retries bounded and fast: 3 attempts, millisecond waits.
var testRetry = RetryPolicy{Attempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond}

// newEnv builds a GPU pool with one registry model and one mirrored GGUF, a release server,
// a fake Ollama API on 127.0.0.1, a fake runner and a fake lifecycle.
func newEnv(t *testing.T, o ollamatest.Options) *env {
	t.Helper()
	e := &env{agentEnv: newAgentEnv(t)}
	e.release = releaseArchive(t, "#!/bin/sh\necho 'ollama version is "+testVersion+"'\n")
	e.gguf = []byte("GGUF fake weights for the test")
	e.files = newFileServer(t, map[string][]byte{
		"/ollama-linux-amd64.tar.zst": e.release,
		"/models/tiny.gguf":           e.gguf,
	})
	if o.Version == "" {
		o.Version = testVersion
	}
	e.ollama = ollamatest.New(o)
	api := httptest.NewServer(e.ollama)
	t.Cleanup(api.Close)
	_, portText, _ := net.SplitHostPort(api.Listener.Addr().String())
	port, _ := strconv.Atoi(portText)
	e.cfg = &Config{
		Role: RoleOllama, Department: "chemistry", Pool: "default", Region: "eu-west-1",
		Lifecycle: Lifecycle{AutoScalingGroup: "chemistry-default", Hook: "chemistry-default-launch"},
		Ollama: &OllamaConfig{
			Version: testVersion,
			Release: Artifact{URL: e.files.URL + "/ollama-linux-amd64.tar.zst", SHA256: sha(e.release)},
			GPU:     true, Port: port, Parallel: 4, ContextLength: 8192, MaxQueue: 64,
			Models: []Model{
				{Name: "llama3.1:8b"},
				{Name: "tiny", Source: &Artifact{URL: e.files.URL + "/models/tiny.gguf", SHA256: sha(e.gguf)}},
			},
		},
	}
	e.nvidia = func([]string) ([]byte, error) { return []byte("NVIDIA A10G, 23028 MiB\n"), nil }
	e.runner = &fakeRunner{handlers: map[string]func([]string) ([]byte, error){
		"nvidia-smi": func(args []string) ([]byte, error) { return e.nvidia(args) },
		"ollama": func([]string) ([]byte, error) {
			// Like the real binary: it reports its version only once installed.
			if _, err := os.Stat(filepath.Join(e.root, OllamaBinary)); err != nil {
				return nil, err
			}
			return []byte("Warning: could not connect to a running Ollama instance\nWarning: client version is " + testVersion + "\n"), nil
		},
	}}
	return e
}

// agentEnv is what every agent test drives: a config under a temporary root, a fake runner, a
// fake lifecycle and a log, with fast retries and polls.
type agentEnv struct {
	t      *testing.T
	root   string
	cfg    *Config
	runner *fakeRunner
	lc     *fakeLifecycle
	log    *syncBuffer
}

func newAgentEnv(t *testing.T) agentEnv {
	return agentEnv{t: t, root: t.TempDir(), lc: &fakeLifecycle{}, log: &syncBuffer{}}
}

func (e *agentEnv) options() Options {
	o := Options{
		Root:         e.root,
		Lifecycle:    e.lc,
		Log:          NewLogger(e.log, nil),
		Retry:        &testRetry,
		PollInterval: 10 * time.Millisecond,
		Timeouts:     map[string]time.Duration{StepStart: 5 * time.Second},
	}
	if e.runner != nil { // else the real ExecRunner
		o.Runner = e.runner
	}
	return o
}

func (e *agentEnv) agent(mutate ...func(*Options)) *Agent {
	e.t.Helper()
	opts := e.options()
	for _, m := range mutate {
		m(&opts)
	}
	a, err := New(context.Background(), e.cfg, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *agentEnv) bootstrap(mutate ...func(*Options)) error {
	e.t.Helper()
	return e.agent(mutate...).Bootstrap(context.Background())
}

// detachedBootstrap bootstraps with --no-systemd, giving the detached server time to start.
func (e *agentEnv) detachedBootstrap() error {
	return e.bootstrap(detachedOptions)
}

// detachedOptions are the options of a bootstrap with --no-systemd.
func detachedOptions(o *Options) {
	o.NoSystemd = true
	o.PollInterval = 20 * time.Millisecond
	o.Timeouts = map[string]time.Duration{StepStart: 30 * time.Second}
}

// stopDetachedAtCleanup stops, when the test ends, the server whose pid file (a node path such
// as OllamaPidFile) is under the root.
func (e *agentEnv) stopDetachedAtCleanup(pidFile string) {
	e.t.Cleanup(func() {
		if err := StopDetached(filepath.Join(e.root, pidFile), 5*time.Second); err != nil {
			e.t.Errorf("stop %s: %v", pidFile, err)
		}
	})
}

// wantStepFailure asserts err is a *StepError of step whose message contains each of want.
func wantStepFailure(t *testing.T, err error, step string, want ...string) *StepError {
	t.Helper()
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("Bootstrap() = %v, want a *StepError of step %s", err, step)
	}
	if se.Step != step {
		t.Fatalf("failed step = %s (%v), want %s", se.Step, se.Err, step)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	return se
}

// wantResults asserts the lifecycle results sent, in order.
func wantResults(t *testing.T, lc *fakeLifecycle, want ...string) {
	t.Helper()
	if got := lc.sent(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lifecycle results = %v, want %v", got, want)
	}
}
