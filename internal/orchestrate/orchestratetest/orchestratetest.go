// Package orchestratetest gives the orchestration tests a real Pulumi engine with nothing
// outside the machine: the Pulumi CLI that `make e2e-deps` builds from the Go module proxy, a
// file backend in a temporary folder, and a program that registers only component resources
// and stack outputs, which need no provider plugin.
package orchestratetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// BinEnv names the Pulumi CLI the tests run (`make e2e-deps` builds it into bin/pulumi).
const BinEnv = "LLM_SANDBOX_PULUMI_BIN"

// Passphrase protects the test stacks' secrets (the file backend's passphrase provider).
const Passphrase = "orchestrate-test-passphrase"

// Bin returns the Pulumi CLI, or skips the test when it is not configured.
func Bin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(BinEnv)
	if bin == "" {
		t.Skipf("Pulumi CLI not configured: run `make e2e-deps` and set %s=bin/pulumi (`make test` and `make unit` do both)", BinEnv)
	}
	st, err := os.Stat(bin)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("%s=%s is not an executable file (run `make e2e-deps`): %v", BinEnv, bin, err)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// Backend is a file backend and Pulumi home of the test's own, removed with it.
type Backend struct {
	// URL is the backend, file://<temp dir>.
	URL string
	// Home is PULUMI_HOME (plugins, the workspace files that stack selection rewrites).
	Home string
}

// NewBackend makes an empty file backend and Pulumi home.
func NewBackend(t testing.TB) Backend {
	t.Helper()
	dir := t.TempDir()
	state, home := filepath.Join(dir, "state"), filepath.Join(dir, "home")
	for _, d := range []string{state, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return Backend{URL: "file://" + state, Home: home}
}

// Env is the CLI environment for the backend: no network (no update check, no Pulumi Cloud).
func (b Backend) Env() map[string]string {
	return map[string]string{
		"PULUMI_BACKEND_URL":       b.URL,
		"PULUMI_HOME":              b.Home,
		"PULUMI_CONFIG_PASSPHRASE": Passphrase,
		"PULUMI_SKIP_UPDATE_CHECK": "true",
		// Keep the CLI from reaching out for anything it would otherwise fetch.
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
	}
}

// Setenv sets Env in the test process (for code that runs the CLI with the process's own
// environment, as sandboxctl does).
func (b Backend) Setenv(t *testing.T) {
	for k, v := range b.Env() {
		t.Setenv(k, v)
	}
}

// Outputs returns the stack's outputs as `pulumi stack output --json` prints them, or nil when
// the stack has none.
func (b Backend) Outputs(t testing.TB, bin, projectDir, stack string) map[string]any {
	t.Helper()
	cmd := exec.Command(bin, "stack", "output", "--json", "--non-interactive", "--stack", stack)
	cmd.Dir = projectDir
	cmd.Env = os.Environ()
	for k, v := range b.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("pulumi stack output --stack %s: %v\n%s", stack, err, stderr)
	}
	var outputs map[string]any
	if err := json.Unmarshal(out, &outputs); err != nil {
		t.Fatalf("pulumi stack output --stack %s: %v\n%s", stack, err, out)
	}
	return outputs
}

// Resources is how many resources Program registers for a stack: the stack itself, the
// department component and its two children.
const Resources = 4

// Hooks let a test watch and steer Program. Any may be nil.
type Hooks struct {
	// Started is called when a stack's program starts, Done when it returns.
	Started, Done func(stack string)
	// Between runs after the department component is registered and before its children:
	// a test holds a stack there (to overlap stacks, or to interrupt one mid-update).
	Between func(stack string)
}

// Program is a program that needs no provider: it reads the stack's config the way the
// project's program does (llm-sandbox:department, the llm-sandbox:network object), registers
// a department component with two child components, and exports the department and the
// network's CIDR. With llm-sandbox:fail set to true it fails after registering the component.
func Program(h Hooks) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		if h.Started != nil {
			h.Started(ctx.Stack())
		}
		if h.Done != nil {
			defer h.Done(ctx.Stack())
		}
		// Raw values, as the engine passes them (objects as JSON), read the way
		// program.Main reads them.
		department, ok := ctx.GetConfig("llm-sandbox:department")
		if !ok {
			return errors.New("no llm-sandbox:department in the stack's config")
		}
		var network struct {
			CIDR string `json:"cidr"`
		}
		raw, _ := ctx.GetConfig("llm-sandbox:network")
		if err := json.Unmarshal([]byte(raw), &network); err != nil {
			return fmt.Errorf("llm-sandbox:network %q: %w", raw, err)
		}

		var dept struct{ pulumi.ResourceState }
		if err := ctx.RegisterComponentResource("llmsandbox:test:Department", department, &dept); err != nil {
			return err
		}
		if fail, _ := ctx.GetConfig("llm-sandbox:fail"); fail == "true" {
			return fmt.Errorf("department %s: failing as its stack file asks (llm-sandbox:fail)", department)
		}
		if h.Between != nil {
			h.Between(ctx.Stack())
		}
		for _, role := range []string{"gateway", "pool"} {
			var child struct{ pulumi.ResourceState }
			if err := ctx.RegisterComponentResource("llmsandbox:test:Tier", department+"-"+role, &child,
				pulumi.Parent(&dept)); err != nil {
				return err
			}
		}
		if err := ctx.RegisterResourceOutputs(&dept, pulumi.Map{}); err != nil {
			return err
		}
		ctx.Export("department", pulumi.String(department))
		ctx.Export("cidr", pulumi.String(network.CIDR))
		return nil
	}
}

// ProjectYAML is a Pulumi.yaml like the project's: the same name, the stack files in stacks/,
// and typed config, so the CLI checks the stack files' objects as it does the project's.
const ProjectYAML = `name: llm-sandbox
runtime: go
stackConfigDir: stacks
config:
  department:
    type: string
  network:
    type: object
  fail:
    type: boolean
    default: false
`

// StackYAML is a stack file for Program.
func StackYAML(department, cidr string, fail bool) string {
	s := fmt.Sprintf("config:\n  llm-sandbox:department: %s\n  llm-sandbox:network:\n    cidr: %s\n", department, cidr)
	if fail {
		s += "  llm-sandbox:fail: true\n"
	}
	return s
}

// Project writes a project with ProjectYAML and the given stack files (stack → contents) and
// returns its directory.
func Project(t testing.TB, stacks map[string]string) string {
	t.Helper()
	return ProjectWith(t, ProjectYAML, stacks)
}

// ProjectWith writes a project with the given Pulumi.yaml and stack files (stack → contents,
// in stacks/Pulumi.<stack>.yaml) and returns its directory.
func ProjectWith(t testing.TB, projectYAML string, stacks map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), []byte(projectYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "stacks"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range stacks {
		if err := os.WriteFile(filepath.Join(dir, "stacks", "Pulumi."+name+".yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// SyncBuffer is a bytes.Buffer that a test may read while stacks running side by side write
// to it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
