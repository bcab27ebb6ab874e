package localrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/llm-sandbox/llm-sandbox/node"
)

// Node is one node's worth of state: a root the agent installs into, a HOME, a console file,
// a port for the role's server, and the environment the agent runs with.
type Node struct {
	Agent   string
	Dir     string // holds Root, Home, Console and the node config
	Root    string
	Home    string
	Console string
	Port    int
	Env     []string
	// Stdout and Stderr hold the last Bootstrap's output.
	Stdout, Stderr bytes.Buffer
	// Progress, when set, also receives the agent's step log (its stderr) as it runs.
	Progress io.Writer
	// Ctx, when set, stops a Bootstrap that is still running when it is done.
	Ctx context.Context
}

// services are the servers a node root may run detached (the agent's --no-systemd mode), by
// name, with the node paths of their pid file and log.
var services = map[string]struct{ pid, log string }{
	"litellm": {node.LiteLLMPidFile, node.LiteLLMLogFile},
	"ollama":  {node.OllamaPidFile, node.OllamaLogFile},
}

// NewNode prepares a node in dir (a new temporary directory when empty) whose agent runs with
// this process's environment less AWS_*, HOME and PIP_* settings, plus env: a local node talks
// to no AWS API, and the AWS path's tests add the emulator's endpoints. Its cleanup stops
// whatever the agent left running under its root (the role's server runs on after a
// successful bootstrap), and fails when anything survives.
func NewNode(t T, dir, agent string, env ...string) *Node {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	n := &Node{
		Agent:   agent,
		Dir:     dir,
		Root:    filepath.Join(dir, "root"),
		Home:    filepath.Join(dir, "home"),
		Console: filepath.Join(dir, "console.log"),
		Port:    FreePort(t),
	}
	for _, d := range []string{n.Root, n.Home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("%v", err)
		}
	}
	// The agent appends to its console and never creates it: on a node it is the serial
	// console device, which always exists.
	if err := os.WriteFile(n.Console, nil, 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "PIP_") {
			n.Env = append(n.Env, kv)
		}
	}
	n.Env = append(n.Env, "HOME="+n.Home)
	n.Env = append(n.Env, env...)
	t.Cleanup(func() {
		if t.Failed() {
			n.DumpLogs(t)
		}
		n.StopAll(t)
	})
	return n
}

// WriteConfig writes the node config that cloud-init would write and returns its path.
func (n *Node) WriteConfig(t T, cfg node.Config) string {
	t.Helper()
	// Checked as the agent checks it under --root, which accepts the Ollama release the tests
	// build (older than the floor a node enforces).
	if err := cfg.ValidateFor(node.Options{Root: n.Root}); err != nil {
		t.Fatalf("node config: %v", err) // a bug in the caller, not in the agent
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatalf("node config: %v", err)
	}
	path := filepath.Join(n.Dir, "node.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	return path
}

// Bootstrap runs `sandbox-node bootstrap --no-systemd` into the node's root, at most limit
// long, and returns its exit code.
func (n *Node) Bootstrap(t T, config string, limit time.Duration) int {
	t.Helper()
	parent := n.Ctx
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.Agent, "bootstrap", "--config", config, "--root", n.Root, "--no-systemd", "--console", n.Console)
	cmd.Env = n.Env
	n.Stdout.Reset()
	n.Stderr.Reset()
	cmd.Stdout, cmd.Stderr = &n.Stdout, &n.Stderr
	if n.Progress != nil {
		cmd.Stderr = io.MultiWriter(&n.Stderr, n.Progress)
	}
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	t.Logf("sandbox-node bootstrap took %s", time.Since(start).Round(time.Millisecond))
	if parent.Err() != nil {
		t.Fatalf("sandbox-node bootstrap stopped before it finished")
	}
	if ctx.Err() != nil {
		t.Fatalf("sandbox-node bootstrap did not finish within %s", limit)
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	default:
		t.Fatalf("run sandbox-node: %v", err)
		return -1
	}
}

// LogPath is where a detached service ("ollama", "litellm") writes its log under the node's
// root.
func (n *Node) LogPath(service string) string {
	return filepath.Join(n.Root, services[service].log)
}

// PidPath is where the agent writes a detached service's pid under the node's root.
func (n *Node) PidPath(service string) string {
	return filepath.Join(n.Root, services[service].pid)
}

// Stop stops a detached service's whole process group (server, workers, model runners): the
// agent starts each in a new session, so its pid is its group's id.
func (n *Node) Stop(t T, service string) {
	if err := node.StopDetached(n.PidPath(service), 15*time.Second); err != nil {
		t.Errorf("%s: %v", service, err)
	}
}

// StopAll stops every detached service of the node, then fails (and kills what it finds)
// when any process still runs from under the node's directory.
func (n *Node) StopAll(t T) {
	for _, s := range slices.Sorted(maps.Keys(services)) {
		n.Stop(t, s)
	}
	left := ProcessesUnder(n.Dir)
	for _, pid := range slices.Sorted(maps.Keys(left)) {
		t.Errorf("process %d outlived its service's process group: %s", pid, left[pid])
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// DumpLogs logs the agent's output and the tail of each service log.
func (n *Node) DumpLogs(t T) {
	t.Helper()
	t.Logf("sandbox-node stdout:\n%s", Tail(n.Stdout.Bytes(), 60))
	t.Logf("sandbox-node stderr:\n%s", Tail(n.Stderr.Bytes(), 80))
	for _, s := range slices.Sorted(maps.Keys(services)) {
		if out, err := os.ReadFile(n.LogPath(s)); err == nil {
			t.Logf("%s log:\n%s", s, Tail(out, 60))
		}
	}
}
