package main

// The tests of `sandboxctl local`: its refusals, the stack → local layout mapping, and one real
// run of the chemistry stack with --tiny (the real agent, Ollama and LiteLLM on loopback),
// streamed through, stopped with SIGTERM, leaving no process behind.

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/components/gateway"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/internal/orchestrate/orchestratetest"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

func TestLocalRefusesAStackThatDoesNotValidate(t *testing.T) {
	project := tempProject(t, map[string]string{
		"broken": "config:\n  aws:region: ca-central-1\n  llm-sandbox:department: Broken Dept\n",
	})
	state := filepath.Join(t.TempDir(), "state")
	code, out, errOut := sandboxctl(t, project, "local", "broken", "--tiny", "--ollama", "/bin/true", "--tinymodel", "/bin/true", "--state", state)
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d:\n%s%s", code, exitInvalid, out, errOut)
	}
	if !strings.Contains(errOut, "Pulumi.broken.yaml does not validate") || !strings.Contains(errOut, "stacks/Pulumi.broken.yaml: department: must be a lowercase DNS label") {
		t.Errorf("stderr does not name the file and the bad key:\n%s", errOut)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("an invalid stack made its state directory: %v", err)
	}
}

func TestLocalUsageErrors(t *testing.T) {
	t.Setenv(localrun.EnvTinyModelBin, "")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	for name, args := range map[string][]string{
		"no stack":          {"local"},
		"two stacks":        {"local", "chemistry", "physics"},
		"unknown stack":     {"local", "nosuch", "--ollama", "/bin/true"},
		"port out of range": {"local", "chemistry", "--port", "70000"},
		"tiny, no writer":   {"local", "chemistry", "--tiny", "--ollama", "/bin/true"},
		"port taken":        {"local", "chemistry", "--ollama", os.Args[0], "--port", takenPort, "--state", t.TempDir()},
		"binary and mirror": {"local", "chemistry", "--ollama", "/bin/true", "--ollama-mirror", "http://127.0.0.1:1/ollama"},
		"mirror not a URL":  {"local", "chemistry", "--ollama-mirror", "/srv/ollama"},
		"stop and status":   {"local", "--stop", "--status"},
		"stop two stacks":   {"local", "--stop", "chemistry", "physics"},
		"stop and tiny":     {"local", "--stop", "chemistry", "--tiny"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(localrun.EnvOllamaBin, "")
			code, out, errOut := sandboxctl(t, projectRoot(t), args...)
			if name == "port taken" && !strings.Contains(errOut, "port "+takenPort+" on 127.0.0.1 is taken") {
				t.Errorf("stderr %q does not name the taken port", errOut)
			}
			if code != exitUsage || out != "" || !strings.HasPrefix(errOut, "sandboxctl local: ") {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and a message", code, out, errOut, exitUsage)
			}
		})
	}
}

// TestLocalPinnedOllamaFailsClosed runs `local` without --ollama, so that it fetches the
// pinned Ollama release, from a mirror on 127.0.0.1 (the documented override, once by flag,
// once by environment) that serves the wrong file, then from one that does not answer. Each
// must stop before anything starts, leave nothing in the cache and say that --ollama PATH is
// the offline way.
func TestLocalPinnedOllamaFailsClosed(t *testing.T) {
	t.Setenv(localrun.EnvOllamaBin, "")
	asset := "/mirror/ollama/v" + versions.Ollama.Version + "/" + versions.OllamaAsset
	served := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != asset {
			http.NotFound(w, r)
			return
		}
		served++
		_, _ = w.Write([]byte("not the pinned release"))
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, c := range []struct {
		name, mirror string
		byEnv        bool
		want         []string
	}{
		{"mismatch", srv.URL + "/mirror/ollama", false, []string{"checksum mismatch for " + srv.URL + asset, "want sha256 " + versions.Ollama.SHA256, "Refusing it", "--ollama PATH"}},
		{"mismatch from the environment", srv.URL + "/mirror/ollama/", true, []string{"checksum mismatch for " + srv.URL + asset, "Refusing it"}},
		{"offline", closed.URL, false, []string{"download Ollama " + versions.Ollama.Version, "Offline, pass --ollama PATH"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache := t.TempDir()
			t.Setenv("XDG_CACHE_HOME", cache)
			state := filepath.Join(t.TempDir(), "state")
			args := []string{"local", "chemistry", "--state", state, "--port", strconv.Itoa(localrun.FreePort(t))}
			t.Setenv(localrun.EnvOllamaMirror, "")
			if c.byEnv {
				t.Setenv(localrun.EnvOllamaMirror, c.mirror)
			} else {
				args = append(args, "--ollama-mirror", c.mirror)
			}
			code, out, errOut := sandboxctl(t, projectRoot(t), args...)
			if code != exitInvalid || out != "" {
				t.Fatalf("exit %d, stdout %q; want %d and nothing on stdout:\n%s", code, out, exitInvalid, errOut)
			}
			for _, want := range c.want {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if strings.Contains(errOut, "stopping every process") || strings.Contains(errOut, "on this machine, state in") {
				t.Errorf("it went on after the release failed:\n%s", errOut)
			}
			_ = filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					t.Errorf("file left in the cache: %s", p)
				}
				return nil
			})
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				t.Errorf("a failed release made the state directory: %v", err)
			}
		})
	}
	if served != 2 {
		t.Errorf("the mirror served %d downloads, want 2", served)
	}
}

func TestLocalLayoutFollowsTheStack(t *testing.T) {
	spec, err := config.Load(projectRoot(t), "chemistry")
	if err != nil {
		t.Fatal(err)
	}
	l := localLayout(spec, 4321)
	if len(l.Pools) != len(spec.Pools) {
		t.Fatalf("%d local pools for %d in the stack", len(l.Pools), len(spec.Pools))
	}
	for _, p := range l.Pools {
		want := spec.Pools[p.Pool]
		if !slices.Equal(p.Models, want.Models) || p.Parallel != want.Parallel || p.ContextLength != want.ContextLength || p.MaxQueue < 16 {
			t.Errorf("pool %s: %+v, want the stack's models %v, parallel %d, context %d and the pools' queue", p.Pool, p, want.Models, want.Parallel, want.ContextLength)
		}
	}
	g := l.Gateway
	if g.Port != 4321 || g.RequestTimeoutSeconds != gateway.RequestTimeoutSeconds || g.KeepAliveSeconds != gateway.KeepAliveSeconds || g.NumRetries != gateway.NumRetries {
		t.Errorf("gateway %+v: want port 4321 and the gateway component's timeouts", g)
	}
}

func TestLocalHelpIsDocumented(t *testing.T) {
	helpIsDocumented(t, "docs/local.md", "local")
}

// envOpenAIPython names the python of the venv holding the official OpenAI SDK
// (tools/requirements-openai.txt), which `make e2e-deps` installs.
const envOpenAIPython = "LLM_SANDBOX_OPENAI_PYTHON"

// readmeSDKSnippet is the README's OpenAI Python SDK example of a local run: the indented
// `python3 -c '...'` block, as a shell command.
func readmeSDKSnippet(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(projectRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\n    (python3 -c '.*?'\n)`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatal("README.md has no indented python3 -c '...' block (the OpenAI SDK example of `make local`)")
	}
	return strings.ReplaceAll(m[1], "\n    ", "\n")
}

// TestLocalTinyServesAndStops runs the README's local sequence as a user does: `sandboxctl local
// chemistry --tiny` (what `make local` runs), then, with the printed export lines, a streamed
// completion of each of the stack's models and the README's OpenAI Python SDK example through
// the official SDK; then SIGTERM, and it requires exit 0 and no process left under the state
// directory.
func TestLocalTinyServesAndStops(t *testing.T) {
	h := localruntest.RequireLiteLLM(t)
	sdkPython := os.Getenv(envOpenAIPython)
	if sdkPython == "" {
		t.Skipf("the OpenAI SDK is not configured: run `make e2e-deps` and set %s (`make test` does both)", envOpenAIPython)
	}
	snippet := readmeSDKSnippet(t)
	state := t.TempDir()
	port := localrun.FreePort(t)
	var out, errOut orchestratetest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(env{stdout: &out, stderr: &errOut, cwd: projectRoot(t)}, []string{"local", "chemistry", "--tiny",
			"--port", strconv.Itoa(port), "--state", state,
			"--ollama", h.Ollama, "--tinymodel", h.TinyModel, "--litellm-wheels", h.LiteLLMWheels})
	}()
	exported := regexp.MustCompile(`(?m)^  export OPENAI_BASE_URL=(\S+)\n  export OPENAI_API_KEY=(sk-\S+)$`)
	deadline := time.Now().Add(2 * localrun.BootstrapLimit)
	var m []string
	for m == nil {
		select {
		case code := <-done:
			t.Fatalf("exit %d before it was ready:\n%s%s", code, out.String(), errOut.String())
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %s:\n%s", 2*localrun.BootstrapLimit, errOut.String())
		}
		m = exported.FindStringSubmatch(out.String())
	}
	base, key := m[1], m[2]
	if want := fmt.Sprintf("http://127.0.0.1:%d/v1", port); base != want {
		t.Errorf("base URL %s, want %s", base, want)
	}
	stderr := errOut.String()
	for _, want := range append([]string{"its answers are NOISE", "[pool-gpu] ", "[gateway] ", "step start: ok"}, localDifferences...) {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if !strings.Contains(out.String(), `"model": "llama3.1:8b", "stream": true`) {
		t.Errorf("the curl example does not stream the stack's first model:\n%s", out.String())
	}
	for _, model := range []string{"llama3.1:8b", "qwen2.5:7b"} {
		streamed := localruntest.StreamChat(t, base+"/chat/completions", key, map[string]any{
			"model": model, "messages": []map[string]string{{"role": "user", "content": "Hello"}},
			"max_tokens": 8, "stream": true,
		})
		if strings.TrimSpace(streamed) == "" {
			t.Errorf("%s: empty streamed completion", model)
		}
	}
	// The README's SDK example, with python3 the SDK venv's and the two exported variables.
	sdk := exec.Command("bash", "-c", snippet)
	sdk.Env = append(os.Environ(), "PATH="+filepath.Dir(sdkPython)+":"+os.Getenv("PATH"), "OPENAI_BASE_URL="+base, "OPENAI_API_KEY="+key)
	if sdkOut, err := sdk.CombinedOutput(); err != nil || strings.TrimSpace(string(sdkOut)) == "" {
		t.Errorf("the README's OpenAI SDK example: %v, output %q; want streamed text", err, sdkOut)
	} else {
		t.Logf("through the OpenAI SDK: %q", sdkOut)
	}
	if fi, err := os.Stat(filepath.Join(state, "master-key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("master key file: %v, %v; want mode 0600", fi, err)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d after SIGTERM, want 0:\n%s", code, errOut.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("still running a minute after SIGTERM")
	}
	if left := localrun.ProcessesUnder(state); len(left) != 0 {
		t.Errorf("processes left under the state directory: %v", left)
	}
}

// TestLocalDetachServesAndStops starts the chemistry stack with --tiny --detach, which must
// return once ready with the same export lines; --status must list its servers, the API must
// answer, a second start must be refused while it runs, and --stop must leave no process under
// the state directory.
func TestLocalDetachServesAndStops(t *testing.T) {
	h := localruntest.RequireLiteLLM(t)
	state := t.TempDir()
	port := localrun.FreePort(t)
	t.Cleanup(func() {
		if left := localrun.ProcessesUnder(state); len(left) != 0 {
			_, _ = localrun.StopRun(state)
		}
	})
	code, out, errOut := sandboxctl(t, projectRoot(t), "local", "chemistry", "--tiny", "--detach",
		"--port", strconv.Itoa(port), "--state", state,
		"--ollama", h.Ollama, "--tinymodel", h.TinyModel, "--litellm-wheels", h.LiteLLMWheels)
	if code != exitOK {
		t.Fatalf("--detach: exit %d:\n%s%s", code, out, errOut)
	}
	m := regexp.MustCompile(`(?m)^  export OPENAI_BASE_URL=(\S+)\n  export OPENAI_API_KEY=(sk-\S+)$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "sandboxctl local --stop chemistry") {
		t.Fatalf("--detach printed no export lines or no way to stop:\n%s", out)
	}
	base, key := m[1], m[2]
	startOut := out
	if want := fmt.Sprintf("http://127.0.0.1:%d/v1", port); base != want {
		t.Errorf("base URL %s, want %s", base, want)
	}
	if len(localrun.ProcessesUnder(state)) == 0 {
		t.Fatal("no process runs under the state directory after --detach returned")
	}

	code, out, errOut = sandboxctl(t, projectRoot(t), "local", "--status", "chemistry", "--state", state)
	if code != exitOK || !strings.Contains(out, "chemistry: 2 server(s) running") || !strings.Contains(out, "API "+base+" since") ||
		!strings.Contains(out, "litellm of gateway: running as pid") || !strings.Contains(out, "ollama of pool-gpu: running as pid") {
		t.Errorf("--status: exit %d:\n%s%s", code, out, errOut)
	}

	body := localruntest.PostJSON(t, base+"/chat/completions", key, map[string]any{
		"model": "llama3.1:8b", "max_tokens": 4, "messages": []map[string]string{{"role": "user", "content": "Hello"}},
	})
	if !strings.Contains(string(body), `"choices"`) {
		t.Errorf("completion: %s", body)
	}

	// The keys issued at start, one per team: the exported one is staff's (every model, the
	// longest lifetime); the master key and unknown keys are refused for inference, a team's
	// key for a model outside the team is 403, and a revoked key is refused within the
	// module's cache window.
	issued := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  (\S+)\s+(sk-lsb-\S+)  \(key id`).FindAllStringSubmatch(startOut, -1) {
		issued[m[1]] = m[2]
	}
	if len(issued) != 4 || issued["staff"] != key {
		t.Errorf("keys issued at start %v, want one of each of chemistry's 4 teams, staff's exported:\n%s", issued, startOut)
	}
	masterKey, err := os.ReadFile(filepath.Join(state, "master-key"))
	if err != nil {
		t.Fatal(err)
	}
	chat := map[string]any{"model": "qwen2.5:7b", "max_tokens": 4, "messages": []map[string]string{{"role": "user", "content": "Hello"}}}
	unknown, _, _ := keyregistry.NewRandomKey()
	for name, k := range map[string]string{"the master key": strings.TrimSpace(string(masterKey)), "a key never issued": unknown} {
		if code, body := localruntest.Call(t, http.MethodPost, base+"/chat/completions", k, chat); code != http.StatusUnauthorized {
			t.Errorf("%s: HTTP %d, want 401: %s", name, code, body)
		}
	}
	if code, body := localruntest.Call(t, http.MethodPost, base+"/chat/completions", issued["chem101"], chat); code != http.StatusForbidden {
		t.Errorf("chem101's key for qwen2.5:7b, outside its team: HTTP %d, want 403: %s", code, body)
	}
	if code, body := localruntest.Call(t, http.MethodPost, base+"/chat/completions", issued["grad"], chat); code != http.StatusOK {
		t.Errorf("grad's key for qwen2.5:7b: HTTP %d, want 200: %s", code, body)
	}
	// More keys, and revocations, against the running deployment: the keys commands on its
	// store.
	code, more, errOut := sandboxctl(t, projectRoot(t), "keys", "issue", "chemistry", "--state", state, "--team", "chem101", "--owner", "alice", "--format", "plain")
	if code != exitOK {
		t.Fatalf("keys issue --state: exit %d: %s", code, errOut)
	}
	if code, body := localruntest.Call(t, http.MethodPost, base+"/chat/completions", strings.TrimSpace(more), map[string]any{
		"model": "llama3.1:8b", "max_tokens": 4, "messages": []map[string]string{{"role": "user", "content": "Hello"}},
	}); code != http.StatusOK {
		t.Errorf("a key issued with keys issue --state against the running deployment: HTTP %d: %s", code, body)
	}
	gradID, _ := keyregistry.KeyID(issued["grad"])
	if code, out, errOut := sandboxctl(t, projectRoot(t), "keys", "revoke", "chemistry", gradID, "--state", state); code != exitOK {
		t.Fatalf("keys revoke --state: exit %d:\n%s%s", code, out, errOut)
	}
	revoked := time.Now()
	for {
		code, body := localruntest.Call(t, http.MethodPost, base+"/chat/completions", issued["grad"], chat)
		if code == http.StatusUnauthorized {
			t.Logf("grad's key refused %.1f s after the revoke", time.Since(revoked).Seconds())
			break
		}
		if code != http.StatusOK {
			t.Fatalf("grad's key after the revoke: HTTP %d: %s", code, body)
		}
		if time.Since(revoked) > time.Duration(node.KeyCacheSeconds+10)*time.Second {
			t.Fatalf("grad's key still works %s after the revoke", time.Since(revoked))
		}
		time.Sleep(time.Second)
	}

	code, _, errOut = sandboxctl(t, projectRoot(t), "local", "chemistry", "--tiny", "--state", state,
		"--port", strconv.Itoa(localrun.FreePort(t)), "--ollama", h.Ollama, "--tinymodel", h.TinyModel)
	if code != exitUsage || !strings.Contains(errOut, "a detached run of chemistry is running") {
		t.Errorf("a second start while detached: exit %d, stderr %q; want a usage error", code, errOut)
	}

	code, out, errOut = sandboxctl(t, projectRoot(t), "local", "--stop", "chemistry", "--state", state)
	if code != exitOK || !strings.Contains(out, "chemistry: stopped") || !strings.Contains(out, "litellm of gateway (pid") {
		t.Errorf("--stop: exit %d:\n%s%s", code, out, errOut)
	}
	if left := localrun.ProcessesUnder(state); len(left) != 0 {
		t.Errorf("processes left under the state directory after --stop: %v", left)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still answers after --stop", port)
	}
	code, out, _ = sandboxctl(t, projectRoot(t), "local", "--status", "chemistry", "--state", state)
	if code != exitOK || !strings.Contains(out, "no detached run is running") {
		t.Errorf("--status after --stop: exit %d:\n%s", code, out)
	}
}

// TestLocalStopAndStatusFindRunsInTheCache lays out two detached runs in the default state
// directories (a server running from under each), and requires --status to list both,
// --stop STACK to stop only that stack's, and --stop without STACK the rest.
func TestLocalStopAndStatusFindRunsInTheCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	pids := map[string]int{}
	for _, stack := range []string{"chemistry", "physics"} {
		state := filepath.Join(cache, "llm-sandbox", "local", stack)
		pids[stack] = localruntest.DetachedServer(t, filepath.Join(state, "nodes", "pool-gpu", "root"), node.OllamaPidFile)
	}
	alive := func(stack string) bool {
		return len(localrun.ProcessesUnder(filepath.Join(cache, "llm-sandbox", "local", stack))) > 0
	}

	code, out, errOut := sandboxctl(t, projectRoot(t), "local", "--status")
	for stack, pid := range pids {
		if want := fmt.Sprintf("%s: 1 server(s) running", stack); !strings.Contains(out, want) || !strings.Contains(out, "ollama of pool-gpu: running as pid "+strconv.Itoa(pid)) {
			t.Errorf("--status lacks %q and pid %d:\n%s", want, pid, out)
		}
	}
	if code != exitOK {
		t.Errorf("--status: exit %d: %s", code, errOut)
	}

	code, out, errOut = sandboxctl(t, projectRoot(t), "local", "--stop", "physics")
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("physics: stopped ollama of pool-gpu (pid %d)", pids["physics"])) || alive("physics") || !alive("chemistry") {
		t.Errorf("--stop physics: exit %d, physics running %v, chemistry running %v:\n%s%s", code, alive("physics"), alive("chemistry"), out, errOut)
	}
	code, out, errOut = sandboxctl(t, projectRoot(t), "local", "--stop")
	if code != exitOK || !strings.Contains(out, "chemistry: stopped") || strings.Contains(out, "physics") || alive("chemistry") {
		t.Errorf("--stop: exit %d, chemistry running %v:\n%s%s", code, alive("chemistry"), out, errOut)
	}
	if code, out, _ = sandboxctl(t, projectRoot(t), "local", "--status"); code != exitOK || out != "no detached run is running\n" {
		t.Errorf("--status after --stop: exit %d: %q", code, out)
	}
}
