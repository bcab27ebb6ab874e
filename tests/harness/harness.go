// Package harness stands up, on loopback, what the local end-to-end tests and the gateway
// benchmark run against: the real sandbox-node agent installing a real Ollama (built from the
// Go module proxy) that serves a tiny model written on the spot, a real pinned LiteLLM
// installed from a hash-checked wheelhouse, a loopback mirror for the artifacts, moto's AWS
// emulator (Auto Scaling lifecycle actions, Secrets Manager) and an IMDSv2 stand-in.
//
// Everything binds to 127.0.0.1, every process it starts is stopped by a cleanup, and every
// wait is bounded. The helpers it runs are prebuilt by `make e2e-deps`; their paths arrive in
// environment variables (Require skips without them).
//
// Functions take a T: *testing.T in tests, a *Runner in commands such as the benchmark.
package harness

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Environment variables naming the helpers that `make e2e-deps` builds or downloads.
const (
	EnvOllamaBin     = "LLM_SANDBOX_OLLAMA_BIN"     // the real Ollama (tools/ollama/cmd/ollama)
	EnvTinyModelBin  = "LLM_SANDBOX_TINYMODEL_BIN"  // the tiny GGUF writer (tools/ollama/cmd/tinymodel)
	EnvMotoPython    = "LLM_SANDBOX_MOTO_PYTHON"    // the python of the venv holding moto[server]
	EnvLiteLLMWheels = "LLM_SANDBOX_LITELLM_WHEELS" // the wheels of versions/litellm-requirements.txt
)

// Module is the main module's path, which identifies the repository root.
const Module = "github.com/llm-sandbox/llm-sandbox"

// T is the part of testing.TB the harness uses. *testing.T satisfies it; so does *Runner.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	TempDir() string
}

// Helpers are the prebuilt programs and files the harness runs, the repository it builds the
// agent from, and the Ollama version that tools/ollama/go.mod pins (and `make e2e-deps` stamps
// into the binary).
type Helpers struct {
	Ollama, TinyModel, MotoPython string
	// LiteLLMWheels is the directory of wheels for versions/litellm-requirements.txt; empty
	// unless RequireLiteLLM was called.
	LiteLLMWheels string
	Repo          string
	OllamaVersion string
}

// Require returns the helpers for the ollama role, or skips when they are not configured.
func Require(t T) Helpers {
	t.Helper()
	h := Helpers{Ollama: os.Getenv(EnvOllamaBin), TinyModel: os.Getenv(EnvTinyModelBin), MotoPython: os.Getenv(EnvMotoPython)}
	if h.Ollama == "" || h.TinyModel == "" || h.MotoPython == "" {
		t.Skipf("end-to-end helpers not configured: run `make e2e-deps` and set %s, %s and %s (`make test` and `make e2e` do both)",
			EnvOllamaBin, EnvTinyModelBin, EnvMotoPython)
	}
	for name, path := range map[string]string{EnvOllamaBin: h.Ollama, EnvTinyModelBin: h.TinyModel, EnvMotoPython: h.MotoPython} {
		if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s=%s is not an executable file (run `make e2e-deps`): %v", name, path, err)
		}
	}
	repo, err := RepoRoot()
	if err != nil {
		t.Fatalf("%v", err)
	}
	h.Repo = repo
	pins, err := os.ReadFile(filepath.Join(repo, "tools", "ollama", "go.mod"))
	if err != nil {
		t.Fatalf("%v", err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/ollama/ollama v(\S+)`).FindSubmatch(pins)
	if m == nil {
		t.Fatalf("tools/ollama/go.mod does not pin github.com/ollama/ollama")
	}
	h.OllamaVersion = string(m[1])
	return h
}

// RequireLiteLLM is Require plus the LiteLLM wheels, or skips when they are not configured.
func RequireLiteLLM(t T) Helpers {
	t.Helper()
	wheels := os.Getenv(EnvLiteLLMWheels)
	if wheels == "" {
		t.Skipf("LiteLLM wheels not configured: run `make e2e-deps` and set %s (`make test` and `make e2e` do both)", EnvLiteLLMWheels)
	}
	h := Require(t)
	found, err := filepath.Glob(filepath.Join(wheels, "*.whl"))
	if err != nil || len(found) == 0 {
		t.Fatalf("%s=%s holds no wheels (run `make e2e-deps`): %v", EnvLiteLLMWheels, wheels, err)
	}
	h.LiteLLMWheels = wheels
	return h
}

// RepoRoot finds the repository root: the nearest directory at or above the working directory
// whose go.mod declares Module (tests run in their package's directory, commands anywhere
// inside the repository).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && regexp.MustCompile(`(?m)^module\s+`+regexp.QuoteMeta(Module)+`\s*$`).Match(data) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root (go.mod of %s) not found above the working directory", Module)
		}
		dir = parent
	}
}

// Runner is a T for commands: Fatalf and Skipf log and stop the function given to Run, and
// Close runs the cleanups, last registered first, as the testing package does.
type Runner struct {
	log io.Writer

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// NewRunner returns a Runner that logs to w.
func NewRunner(w io.Writer) *Runner { return &Runner{log: w} }

// errStopped is what Fatalf and Skipf panic with; Run recovers it.
var errStopped = errors.New("stopped by Fatalf or Skipf")

// Run calls f and returns an error when f called Fatalf or Skipf. Fatalf must be called on
// the goroutine that runs f, as with testing.T.
func (r *Runner) Run(f func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if v != errStopped {
				panic(v)
			}
			err = errStopped
		}
	}()
	f()
	return nil
}

// Close runs the registered cleanups, last first.
func (r *Runner) Close() {
	for {
		r.mu.Lock()
		if len(r.cleanups) == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[len(r.cleanups)-1]
		r.cleanups = r.cleanups[:len(r.cleanups)-1]
		r.mu.Unlock()
		func() {
			defer func() {
				if v := recover(); v != nil && v != errStopped {
					r.Errorf("cleanup panicked: %v", v)
				}
			}()
			f()
		}()
	}
}

func (r *Runner) Helper() {}

func (r *Runner) Logf(format string, args ...any) {
	fmt.Fprintf(r.log, strings.TrimRight(format, "\n")+"\n", args...)
}

func (r *Runner) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	r.Logf("error: "+format, args...)
}

func (r *Runner) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(errStopped)
}

func (r *Runner) Skipf(format string, args ...any) {
	r.Logf("cannot run: "+format, args...)
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	panic(errStopped)
}

func (r *Runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *Runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// TempDir returns a new directory that Close removes.
func (r *Runner) TempDir() string {
	dir, err := os.MkdirTemp("", "llm-sandbox-harness-")
	if err != nil {
		r.Fatalf("temporary directory: %v", err)
	}
	r.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			r.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}
