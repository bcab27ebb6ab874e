package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/node/awstest"
	"github.com/llm-sandbox/llm-sandbox/node/litellmtest"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

const (
	secretArn = "arn:aws:secretsmanager:ca-central-1:123456789012:secret:llm-sandbox/chemistry/litellm-master-key-AbCdEf"
	masterKey = "sk-Zq7Xw2Lr9Vb4Nc1Md8Kf3Hj6Gt5Ps0Ya2Ue7Wi4Ro9TyQx"
)

// standInPip is the stand-in pip wheel of the test wheelhouse; standInLock is the embedded
// lock with the hash of that wheel for its pip pin, which the agent checks before it runs pip
// from the wheel.
var (
	standInPip  = "not really pip"
	standInLock = regexp.MustCompile(`(?m)^pip==([^\s\\]+)((?:[ \t]*\\\n[ \t]*--hash=sha256:[0-9a-f]{64})+)`).
			ReplaceAll([]byte(versions.LiteLLMRequirements), []byte("pip==${1} \\\n    --hash=sha256:"+sha([]byte(standInPip))))
	lockedPip = regexp.MustCompile(`(?m)^pip==([^\s\\]+)`).FindStringSubmatch(versions.LiteLLMRequirements)[1]
)

// venvRunner stands in for python3 and pip, which would install ~170 MB of real wheels: `python3
// -m venv --without-pip` lays out a venv whose bin/litellm runs this test binary as the litellmtest
// fake, and `pip install`, run from the wheelhouse's pip wheel, must be pointed at the extracted
// wheelhouse (--no-index --find-links) and mark the venv installed. Everything else, `env ...
// litellm --version` included, really runs.
type venvRunner struct {
	mu   sync.Mutex
	cmds []string
	exe  string
}

func (r *venvRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	r.mu.Lock()
	r.cmds = append(r.cmds, node.CommandLine(name, args...))
	r.mu.Unlock()
	switch {
	case name == "python3" && len(args) == 4 && args[0] == "-m" && args[1] == "venv" && args[2] == "--without-pip":
		venv := args[3]
		bin := filepath.Join(venv, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			return nil, err
		}
		script := "#!/bin/sh\nexport " + litellmtest.EnvExec + "=1 " + litellmtest.EnvVersion + "=" + versions.LiteLLM.Version + "\n" +
			"[ -e '" + filepath.Join(venv, "installed") + "' ] || { echo 'No module named litellm' >&2; exit 1; }\n" +
			"exec '" + r.exe + "' \"$@\"\n"
		return nil, os.WriteFile(filepath.Join(bin, "litellm"), []byte(script), 0o755)
	case filepath.Base(name) == "python3" && len(args) > 2 && strings.HasSuffix(args[0], ".whl/pip") && args[1] == "install":
		i := slices.Index(args, "--find-links")
		if i < 0 || !slices.Contains(args, "--no-index") {
			return nil, fmt.Errorf("pip install would reach PyPI: %q", args)
		}
		if wheels, _ := filepath.Glob(filepath.Join(args[i+1], "*.whl")); len(wheels) != 3 {
			return nil, fmt.Errorf("the wheelhouse holds %d wheels at pip time, want 3", len(wheels))
		}
		return nil, os.WriteFile(filepath.Join(filepath.Dir(filepath.Dir(name)), "installed"), nil, 0o644)
	case filepath.Base(name) == "python3" && len(args) == 2 && strings.HasSuffix(args[0], ".whl/pip") && args[1] == "check":
		return []byte("No broken requirements found.\n"), nil
	case name == "env":
		return exec.CommandContext(ctx, name, args...).CombinedOutput()
	}
	return nil, fmt.Errorf("%s %q: unexpected in this test", name, args)
}

func (r *venvRunner) matching(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.cmds {
		if strings.Contains(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// liteFakes is a gateway node's world; its artifact is the LiteLLM wheelhouse, and a
// venvRunner stands in for python3 and pip.
type liteFakes struct {
	*nodeFakes
	runner *venvRunner
}

func newLiteFakes(t *testing.T) *liteFakes {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wheelhouse := tarZst(t,
		tarFile{"./litellm-" + versions.LiteLLM.Version + "-cp310-abi3-manylinux_2_28_x86_64.whl", "wheel", 0o644},
		tarFile{"./pip-" + lockedPip + "-py3-none-any.whl", standInPip, 0o644},
		tarFile{"./uvicorn-0.54.0-py3-none-any.whl", "wheel", 0o644},
	)
	f := &liteFakes{
		nodeFakes: newNodeFakes(t, &awstest.IMDS{InstanceID: "i-0fedcba9876543210", Group: "chemistry-gateway", Region: "ca-central-1"}, wheelhouse, node.LiteLLMPidFile),
		runner:    &venvRunner{exe: exe},
	}
	f.sm.Put(secretArn, masterKey)
	f.cfg = map[string]any{
		"role": "litellm", "department": "chemistry", "pool": "gateway", "region": "ca-central-1",
		"lifecycle": map[string]any{"hook": "llm-sandbox-launch", "heartbeatSeconds": 600},
		"litellm": map[string]any{
			"wheelhouse":         map[string]any{"url": f.artifactURL + "/litellm-wheelhouse.tar.zst", "sha256": sha(wheelhouse)},
			"port":               f.port,
			"workers":            2,
			"masterKeySecretArn": secretArn,
			"models": []any{
				map[string]any{"name": "llama3.1:8b", "apiBase": "http://127.0.0.1:21234"},
				map[string]any{"name": "phi3:mini", "apiBase": "http://127.0.0.1:21234"},
			},
			"requestTimeoutSeconds": 3600, "keepAliveSeconds": 960, "numRetries": 1,
		},
	}
	f.writeConfig(t)
	return f
}

func TestLiteLLMBootstrapReadyThenRerun(t *testing.T) {
	f := newLiteFakes(t)
	r := f.bootstrap(t, f.runner)
	if r.code != exitReady {
		t.Fatalf("exit %d, want 0\nstderr:\n%s", r.code, r.stderr)
	}
	wantCalls(t, f.asg, awstest.Call{Group: "chemistry-gateway", Hook: "llm-sandbox-launch", InstanceID: "i-0fedcba9876543210", Result: "CONTINUE"})
	for _, step := range []string{"install", "user", "secret", "configure", "start", "lifecycle"} {
		if !strings.Contains(r.stderr, "\nstep "+step+": start\n") || !strings.Contains(r.stderr, "\nstep "+step+": ok") {
			t.Errorf("stderr lacks step %s start/ok", step)
		}
	}
	// LiteLLM answers on loopback with the key from Secrets Manager.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", f.port, node.LiteLLMHealthPath))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /health/liveliness: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/fake/auth", f.port), nil)
	req.Header.Set("Authorization", "Bearer "+masterKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("LiteLLM did not get the master key: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if _, err := os.Stat(filepath.Join(f.root, node.LiteLLMPidFile)); err != nil {
		t.Errorf("no pid file: %v", err)
	}
	console, _ := os.ReadFile(f.console)
	for where, text := range map[string]string{"stderr": r.stderr, "console": string(console)} {
		if strings.Contains(text, strings.TrimPrefix(masterKey, "sk-")) {
			t.Errorf("the master key is in the %s", where)
		}
	}
	if n := f.artifactHits(); n != 1 {
		t.Errorf("wheelhouse downloaded %d times, want 1", n)
	}

	// A reboot: LiteLLM still serving, no pending lifecycle action.
	f.asg.SetNoActiveAction(true)
	r = f.bootstrap(t, f.runner)
	if r.code != exitReady {
		t.Fatalf("re-run exit %d, want 0\nstderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "step lifecycle: ok: no active lifecycle action") || !strings.Contains(r.stderr, "already running as pid") {
		t.Errorf("re-run stderr lacks the kept process or the no-action outcome:\n%s", r.stderr)
	}
	if n := len(f.runner.matching(".whl/pip install")); n != 1 {
		t.Errorf("pip install ran %d times over two runs, want 1", n)
	}
	if n := f.artifactHits(); n != 1 {
		t.Errorf("wheelhouse downloaded %d times over two runs, want 1", n)
	}
}

func TestLiteLLMMissingSecretExits1AndAbandons(t *testing.T) {
	f := newLiteFakes(t)
	f.cfg["litellm"].(map[string]any)["masterKeySecretArn"] = strings.Replace(secretArn, "AbCdEf", "Gone00", 1)
	f.writeConfig(t)
	r := f.bootstrap(t, f.runner)
	if r.code != exitFailed {
		t.Fatalf("exit %d, want 1\nstderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "step secret: failed: ") || !strings.Contains(r.stderr, "ResourceNotFoundException") {
		t.Errorf("stderr lacks the failed step:\n%s", r.stderr)
	}
	wantCalls(t, f.asg, awstest.Call{Group: "chemistry-gateway", Hook: "llm-sandbox-launch", InstanceID: "i-0fedcba9876543210", Result: "ABANDON"})
	if _, err := os.Stat(filepath.Join(f.root, node.LiteLLMPidFile)); err == nil {
		t.Errorf("LiteLLM was started without its key")
	}
}

func TestLiteLLMInvalidConfigExits2AndAbandons(t *testing.T) {
	f := newLiteFakes(t)
	f.cfg["litellm"].(map[string]any)["numRetries"] = 3
	f.cfg["litellm"].(map[string]any)["workers"] = 0
	f.writeConfig(t)
	r := f.bootstrap(t, f.runner)
	if r.code != exitUsage {
		t.Fatalf("exit %d, want 2\nstderr:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"litellm.numRetries: must be 0 or 1", "litellm.workers: must be 1-64"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	if f.artifactHits() != 0 || len(f.runner.matching("")) != 0 {
		t.Errorf("an invalid config still installed something")
	}
	wantCalls(t, f.asg, awstest.Call{Group: "chemistry-gateway", Hook: "llm-sandbox-launch", InstanceID: "i-0fedcba9876543210", Result: "ABANDON"})
}
