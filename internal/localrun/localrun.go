// Package localrun runs a department's serving path on this machine, on loopback: the real
// sandbox-node agent, one node per pool and one gateway node, each installing and starting what
// it would on AWS (a real Ollama, the pinned LiteLLM with the rendered config.yaml), in node
// roots under a state directory. It is what `sandboxctl local` runs, and what the end-to-end
// tests (through localruntest, which adds the AWS emulator), the gateway benchmark and the
// verify and loadtest tests start.
//
// Everything binds to 127.0.0.1, every process it starts is stopped by a cleanup, and every
// wait is bounded. Functions take a T: *testing.T in tests, a *Runner in commands.
package localrun

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Environment variables naming the programs and files a local run uses: `make e2e-deps` (and
// `make local`) build or download them; `sandboxctl local` takes them as flag defaults.
const (
	EnvOllamaBin     = "LLM_SANDBOX_OLLAMA_BIN"     // the real Ollama (tools/ollama/cmd/ollama)
	EnvTinyModelBin  = "LLM_SANDBOX_TINYMODEL_BIN"  // the tiny GGUF writer (tools/ollama/cmd/tinymodel)
	EnvLiteLLMWheels = "LLM_SANDBOX_LITELLM_WHEELS" // the wheels of versions/litellm-requirements.txt
)

// Module is the main module's path, which identifies the repository root.
const Module = "github.com/llm-sandbox/llm-sandbox"

// T is the part of testing.TB the package uses. *testing.T satisfies it; so does *Runner.
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

// Helpers are the programs and files a run uses, the repository it builds the agent from, and
// the Ollama version that tools/ollama/go.mod pins (and `make e2e-deps` stamps into the binary).
type Helpers struct {
	// Ollama is the Ollama binary every pool node installs (packaged as its release asset).
	// When empty, OllamaArchive is the release the nodes install.
	Ollama string
	// OllamaArchive is a release archive already checked against OllamaSHA256 (CachedRelease's
	// download of the pinned release), set by UseRelease.
	OllamaArchive, OllamaSHA256 string
	// TinyModel, when set, is the tiny-model writer: every model is then served by a tiny
	// random-weight model under its name. When empty, models are pulled from the registry.
	TinyModel string
	// LiteLLMWheels is the directory of wheels for versions/litellm-requirements.txt. When
	// empty, the gateway node installs the lock from PyPI (with its hashes).
	LiteLLMWheels string
	Repo          string
	OllamaVersion string
}

// NewHelpers checks the given paths (empty ones are left out) and reads the Ollama version the
// repository pins for the binary it builds. repo is the repository (the project directory);
// when empty, RepoRoot finds it. Without an Ollama binary, call UseRelease before
// NewDeployment.
func NewHelpers(repo, ollama, tinyModel, wheels string) (Helpers, error) {
	h := Helpers{Ollama: ollama, TinyModel: tinyModel, LiteLLMWheels: wheels}
	for name, path := range map[string]string{EnvOllamaBin: ollama, EnvTinyModelBin: tinyModel} {
		if path == "" {
			continue
		}
		if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return h, fmt.Errorf("%s=%s is not an executable file (run `make e2e-deps`): %v", name, path, err)
		}
	}
	if wheels != "" {
		found, err := filepath.Glob(filepath.Join(wheels, "*.whl"))
		if err != nil || len(found) == 0 {
			return h, fmt.Errorf("%s=%s holds no wheels (run `make e2e-deps`): %v", EnvLiteLLMWheels, wheels, err)
		}
	}
	if repo == "" {
		var err error
		if repo, err = RepoRoot(); err != nil {
			return h, err
		}
	}
	h.Repo = repo
	pins, err := os.ReadFile(filepath.Join(repo, "tools", "ollama", "go.mod"))
	if err != nil {
		return h, err
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/ollama/ollama v(\S+)`).FindSubmatch(pins)
	if m == nil {
		return h, errors.New("tools/ollama/go.mod does not pin github.com/ollama/ollama")
	}
	h.OllamaVersion = string(m[1])
	return h, nil
}

// UseRelease makes the pool nodes install the release archive file, which holds r and has
// been checked against r.SHA256 (CachedRelease), instead of an Ollama binary.
func (h *Helpers) UseRelease(file string, r versions.Release) {
	h.Ollama, h.OllamaArchive, h.OllamaSHA256, h.OllamaVersion = "", file, r.SHA256, r.Version
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
	// Dir, when set, is where TempDir makes its directories (a command's state directory).
	Dir string

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
	dir, err := os.MkdirTemp(r.Dir, "llm-sandbox-local-")
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
