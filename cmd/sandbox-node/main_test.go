package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/node/awstest"
	"github.com/llm-sandbox/llm-sandbox/node/litellmtest"
	"github.com/llm-sandbox/llm-sandbox/node/ollamatest"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// TestMain lets this test binary stand in for the ollama and litellm executables: the release
// the tests serve holds a bin/ollama script that execs it with FAKE_OLLAMA_EXEC=1, and the
// litellm tests' venv a bin/litellm script that execs it with FAKE_LITELLM_EXEC=1.
func TestMain(m *testing.M) {
	if os.Getenv("FAKE_OLLAMA_EXEC") == "1" {
		os.Exit(ollamatest.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getenv(litellmtest.EnvExec) == "1" {
		os.Exit(litellmtest.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const ollamaVersion = "0.35.1"

type result struct {
	code           int
	stdout, stderr string
}

func runCmd(t *testing.T, args ...string) result {
	t.Helper()
	return runCmdWith(t, nil, args...)
}

// runCmdWith runs the command with fast retries and, when runner is set, that Runner.
func runCmdWith(t *testing.T, runner node.Runner, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	fast := node.RetryPolicy{Attempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond}
	code := run(context.Background(), env{stdout: &stdout, stderr: &stderr, tune: func(o *node.Options) {
		o.Retry = &fast
		o.PollInterval = 20 * time.Millisecond
		o.Timeouts = map[string]time.Duration{node.StepStart: 30 * time.Second}
		if runner != nil {
			o.Runner = runner
		}
		o.LiteLLMLock = standInLock
	}}, args)
	return result{code, stdout.String(), stderr.String()}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := runCmd(t, args...)
		if r.code != exitReady || !strings.Contains(r.stdout, "sandbox-node bootstrap [--config PATH] [--root DIR] [--no-systemd] [--console PATH]") {
			t.Errorf("%v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	r := runCmd(t, "bootstrap", "--help")
	if r.code != exitReady {
		t.Errorf("bootstrap --help: exit %d", r.code)
	}
	for _, flag := range []string{"--config PATH", "--root DIR", "--no-systemd", "--console PATH", node.ConfigPath, "/dev/ttyS0"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("bootstrap --help does not mention %q", flag)
		}
	}
	r = runCmd(t, "version")
	if r.code != exitReady || !strings.HasPrefix(r.stdout, "sandbox-node dev (go") {
		t.Errorf("version: exit %d, %q", r.code, r.stdout)
	}
	// The node config names no LiteLLM version: the version command is where the pins show,
	// with the hash a gateway node records for the lock it installed.
	lockSum := sha256.Sum256([]byte(versions.LiteLLMRequirements))
	for _, want := range []string{
		"\nlitellm " + versions.LiteLLM.Version + " (installed from the embedded lock litellm-requirements.txt, sha256 " + hex.EncodeToString(lockSum[:]) + ")\n",
		"\nollama " + versions.Ollama.Version + " (",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("version does not report %q:\n%s", want, r.stdout)
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{}, {"launch"}, {"bootstrap", "--bogus"}, {"bootstrap", "extra"}} {
		r := runCmd(t, args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "Usage:") {
			t.Errorf("%q: exit %d, stderr %q; want 2 with usage", args, r.code, r.stderr)
		}
	}
}

// nodeFakes is one node's world, whichever its role: a temporary root and console file, fake
// IMDS, Auto Scaling and Secrets Manager, a server of the role's artifact that counts its
// requests, a free loopback port for the role's server, and the node config (cfg, written to
// config by writeConfig).
type nodeFakes struct {
	root, console, config string
	port                  int
	asg                   *awstest.AutoScaling
	sm                    *awstest.SecretsManager
	artifactURL           string
	artifactHits          func() int
	cfg                   map[string]any
}

// newNodeFakes starts the fakes for the instance meta describes, serving artifact, and stops
// the server the agent leaves running (its pid file under the root) when the test ends.
func newNodeFakes(t *testing.T, meta *awstest.IMDS, artifact []byte, pidFile string) *nodeFakes {
	t.Helper()
	f := &nodeFakes{root: t.TempDir()}
	dir := t.TempDir()
	f.console = filepath.Join(dir, "console")
	if err := os.WriteFile(f.console, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.config = filepath.Join(dir, "node.json")
	files, hits := countingServer(t, artifact)
	f.artifactURL, f.artifactHits = files.URL, hits
	f.asg, f.sm = awstest.Serve(t, meta)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	t.Cleanup(func() {
		if err := node.StopDetached(filepath.Join(f.root, pidFile), 5*time.Second); err != nil {
			t.Errorf("stop %s: %v", strings.TrimSuffix(filepath.Base(pidFile), ".pid"), err)
		}
	})
	return f
}

func (f *nodeFakes) writeConfig(t *testing.T) {
	t.Helper()
	data, err := json.MarshalIndent(f.cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.config, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// bootstrap runs `sandbox-node bootstrap --no-systemd` into the root, with runner when not nil.
func (f *nodeFakes) bootstrap(t *testing.T, runner node.Runner) result {
	t.Helper()
	return runCmdWith(t, runner, "bootstrap", "--config", f.config, "--root", f.root, "--no-systemd", "--console", f.console)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tarFile is one regular file of a test archive.
type tarFile struct {
	name, body string
	mode       int64
}

// tarZst builds a zstd-compressed tar of regular files, in the order given.
func tarZst(t *testing.T, files ...tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
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

// release builds a tar.zst with the real release's layout whose bin/ollama runs this test
// binary as ollamatest.
func release(t *testing.T) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nexport FAKE_OLLAMA_EXEC=1 FAKE_OLLAMA_VERSION=" + ollamaVersion + "\nexec '" + exe + "' \"$@\"\n"
	return tarZst(t, tarFile{"bin/ollama", script, 0o755}, tarFile{"lib/ollama/libggml-base.so", "lib", 0o644})
}

// newFakes is a pool node's world; its artifact is the Ollama release.
func newFakes(t *testing.T) *nodeFakes {
	t.Helper()
	archive := release(t)
	f := newNodeFakes(t, &awstest.IMDS{InstanceID: "i-0123456789abcdef0", Group: "chemistry-default", Region: "eu-west-1"}, archive, node.OllamaPidFile)
	f.cfg = map[string]any{
		"role": "ollama", "department": "chemistry", "pool": "cpu", "region": "eu-west-1",
		"lifecycle": map[string]any{"hook": "chemistry-cpu-launch"},
		"ollama": map[string]any{
			"version": ollamaVersion,
			"release": map[string]any{"url": f.artifactURL + "/ollama-linux-amd64.tar.zst", "sha256": sha(archive)},
			"gpu":     false, "port": f.port, "parallel": 2, "contextLength": 4096, "maxQueue": 16,
			"models": []any{map[string]any{"name": "phi3:mini"}},
		},
	}
	f.writeConfig(t)
	return f
}

// ollamaCounts asks the running fake Ollama how often it was called.
func (f *nodeFakes) ollamaCounts(t *testing.T) ollamatest.Counts {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/fake/counts", f.port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c ollamatest.Counts
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func wantCalls(t *testing.T, asg *awstest.AutoScaling, want ...awstest.Call) {
	t.Helper()
	if got := asg.Calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("CompleteLifecycleAction calls = %+v\nwant %+v", got, want)
	}
}

func TestBootstrapReadyThenRerun(t *testing.T) {
	f := newFakes(t)
	r := f.bootstrap(t, nil)
	if r.code != exitReady {
		t.Fatalf("exit %d, want 0\nstderr:\n%s", r.code, r.stderr)
	}
	// Exactly one CONTINUE, for this instance, with the hook from the config and the group
	// from the instance's tag.
	wantCalls(t, f.asg, awstest.Call{Group: "chemistry-default", Hook: "chemistry-cpu-launch", InstanceID: "i-0123456789abcdef0", Result: "CONTINUE"})
	for _, step := range []string{"gpu", "install", "user", "configure", "start", "models", "preload", "resident", "lifecycle"} {
		if !strings.Contains(r.stderr, "\nstep "+step+": start\n") || !strings.Contains(r.stderr, "\nstep "+step+": ok") {
			t.Errorf("stderr lacks step %s start/ok", step)
		}
	}
	console, _ := os.ReadFile(f.console)
	if !strings.Contains(string(console), " sandbox-node: step lifecycle: ok: CONTINUE sent") {
		t.Errorf("console lacks the mirrored step log:\n%s", console)
	}
	if _, err := os.Stat(filepath.Join(f.root, node.OllamaPidFile)); err != nil {
		t.Errorf("no pid file: %v", err)
	}
	before := f.ollamaCounts(t)
	if before.Pulls != 1 {
		t.Errorf("pulls = %d, want 1", before.Pulls)
	}

	// A reboot: Ollama still serving, no pending lifecycle action.
	f.asg.SetNoActiveAction(true)
	r = f.bootstrap(t, nil)
	if r.code != exitReady {
		t.Fatalf("re-run exit %d, want 0\nstderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "step lifecycle: ok: no active lifecycle action") {
		t.Errorf("re-run stderr lacks the no-action outcome:\n%s", r.stderr)
	}
	if n := f.artifactHits(); n != 1 {
		t.Errorf("release downloaded %d times over two runs, want 1", n)
	}
	if after := f.ollamaCounts(t); after.Pulls != before.Pulls || after.Creates != before.Creates {
		t.Errorf("re-run pulled or created models: %+v -> %+v", before, after)
	}
}

func TestBadChecksumExits1AndAbandons(t *testing.T) {
	f := newFakes(t)
	f.cfg["ollama"].(map[string]any)["release"].(map[string]any)["sha256"] = strings.Repeat("0", 64)
	f.writeConfig(t)
	r := f.bootstrap(t, nil)
	if r.code != exitFailed {
		t.Fatalf("exit %d, want 1\nstderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "step install: failed: ") || !strings.Contains(r.stderr, "checksum mismatch") {
		t.Errorf("stderr lacks the failed step:\n%s", r.stderr)
	}
	if n := f.artifactHits(); n != 1 {
		t.Errorf("release requested %d times, want 1 (no retry on a bad checksum)", n)
	}
	wantCalls(t, f.asg, awstest.Call{Group: "chemistry-default", Hook: "chemistry-cpu-launch", InstanceID: "i-0123456789abcdef0", Result: "ABANDON"})
}

func TestInvalidConfigExits2AndAbandons(t *testing.T) {
	f := newFakes(t)
	f.cfg["ollama"].(map[string]any)["port"] = 0
	f.writeConfig(t)
	r := f.bootstrap(t, nil)
	if r.code != exitUsage {
		t.Fatalf("exit %d, want 2\nstderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "ollama.port: must be 1-65535") {
		t.Errorf("stderr does not name the bad key:\n%s", r.stderr)
	}
	if f.artifactHits() != 0 {
		t.Errorf("an invalid config still downloaded the release")
	}
	wantCalls(t, f.asg, awstest.Call{Group: "chemistry-default", Hook: "chemistry-cpu-launch", InstanceID: "i-0123456789abcdef0", Result: "ABANDON"})
}

// A node config whose Ollama release has no pinned hash is refused before anything is fetched,
// even when it names the release's checksum file, and the message says how to pin it.
func TestUnpinnedReleaseExits2AndAbandons(t *testing.T) {
	f := newFakes(t)
	release := f.cfg["ollama"].(map[string]any)["release"].(map[string]any)
	release["sha256"] = ""
	release["sumsUrl"] = "https://github.com/ollama/ollama/releases/download/v0.35.1/sha256sum.txt"
	f.writeConfig(t)
	r := f.bootstrap(t, nil)
	if r.code != exitUsage {
		t.Fatalf("exit %d, want 2\nstderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "ollama.release.sha256: is empty") || !strings.Contains(r.stderr, "sandboxctl pin ollama") {
		t.Errorf("stderr does not say the release is unpinned and how to pin it:\n%s", r.stderr)
	}
	if f.artifactHits() != 0 {
		t.Errorf("an unpinned release was downloaded")
	}
	wantCalls(t, f.asg, awstest.Call{Group: "chemistry-default", Hook: "chemistry-cpu-launch", InstanceID: "i-0123456789abcdef0", Result: "ABANDON"})
}

func TestUnreadableConfigExits2(t *testing.T) {
	f := newFakes(t)
	r := runCmd(t, "bootstrap", "--config", filepath.Join(t.TempDir(), "missing.json"), "--root", f.root, "--console", "none")
	if r.code != exitUsage || !strings.Contains(r.stderr, "missing.json: no such file") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	// Without a readable hook name there is nothing to abandon.
	wantCalls(t, f.asg)
}

func TestMissingConsoleIsNotAnError(t *testing.T) {
	w, closeConsole := openConsole(filepath.Join(t.TempDir(), "no", "ttyS0"), &bytes.Buffer{})
	defer closeConsole()
	if w != nil {
		t.Errorf("a missing console was opened")
	}
	w, closeConsole = openConsole("none", &bytes.Buffer{})
	defer closeConsole()
	if w != nil {
		t.Errorf("--console none still mirrors")
	}
}

// countingServer serves body at every path on 127.0.0.1 and counts the requests.
func countingServer(t *testing.T, body []byte) (*httptest.Server, func() int) {
	t.Helper()
	var mu sync.Mutex
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() int { mu.Lock(); defer mu.Unlock(); return hits }
}

func TestServeCommandLine(t *testing.T) {
	r := runCmd(t, "serve", "--help")
	for _, want := range []string{"--config PATH", "--root DIR", "--poll DURATION", "target-lifecycle-state", "spot/instance-action", "CONTINUE"} {
		if r.code != exitReady || !strings.Contains(r.stdout, want) {
			t.Errorf("serve --help: exit %d, does not mention %q", r.code, want)
		}
	}
	if r := runCmd(t, "serve", "--bogus"); r.code != exitUsage || !strings.Contains(r.stderr, "sandbox-node serve: flag provided but not defined") {
		t.Errorf("serve --bogus: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCmd(t, "serve", "extra"); r.code != exitUsage || !strings.Contains(r.stderr, `unexpected arguments ["extra"]`) {
		t.Errorf("serve extra: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCmd(t, "serve", "--config", filepath.Join(t.TempDir(), "missing.json")); r.code != exitUsage {
		t.Errorf("serve with a missing config: exit %d, want %d", r.code, exitUsage)
	}
}
