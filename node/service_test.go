package node

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// detachedEnv installs, with the real ExecRunner, a release whose bin/ollama runs this test
// binary as the ollamatest fake, on a CPU pool, with --no-systemd. record is where the fake writes the
// environment it was started with.
type detachedEnv struct {
	agentEnv
	record string
}

func newDetachedEnv(t *testing.T, script string) *detachedEnv {
	t.Helper()
	d := &detachedEnv{agentEnv: newAgentEnv(t)}
	d.record = filepath.Join(t.TempDir(), "env.json")
	if script == "" {
		script = fakeOllamaScript(t, "FAKE_OLLAMA_RECORD_ENV="+d.record)
	}
	release := releaseArchive(t, script)
	files := newFileServer(t, map[string][]byte{"/ollama.tar.zst": release})
	d.cfg = &Config{
		Role: RoleOllama, Department: "chemistry", Pool: "cpu", Region: "eu-west-1",
		Lifecycle: Lifecycle{AutoScalingGroup: "g", Hook: "h"},
		Ollama: &OllamaConfig{
			Version: testVersion, Release: Artifact{URL: files.URL + "/ollama.tar.zst", SHA256: sha(release)},
			Port: freePort(t), Parallel: 2, ContextLength: 4096, MaxQueue: 16,
			Models: []Model{{Name: "phi3:mini"}},
		},
	}
	d.stopDetachedAtCleanup(OllamaPidFile)
	return d
}

func (d *detachedEnv) pid(t *testing.T) int {
	t.Helper()
	pid, ok := readPid(filepath.Join(d.root, OllamaPidFile))
	if !ok {
		t.Fatalf("no pid file at %s", OllamaPidFile)
	}
	return pid
}

func TestNoSystemdRunsDetachedOllama(t *testing.T) {
	d := newDetachedEnv(t, "")
	if err := d.detachedBootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, d.log)
	}
	wantResults(t, d.lc, ResultContinue)
	pid := d.pid(t)
	if !isOurProcess(pid, "serve") {
		t.Fatalf("pid %d is not a live session leader running serve", pid)
	}
	if pgid, _ := syscallGetpgid(pid); pgid != pid {
		t.Errorf("ollama's process group = %d, want its own (%d)", pgid, pid)
	}
	// The unit and environment are written in this mode too.
	for _, f := range []string{OllamaEnvFile, OllamaUnitFile} {
		if _, err := os.Stat(filepath.Join(d.root, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	logData, _ := os.ReadFile(filepath.Join(d.root, OllamaLogFile))
	if !strings.Contains(string(logData), "ollamatest: listening on 127.0.0.1:"+strconv.Itoa(d.cfg.Ollama.Port)) {
		t.Errorf("ollama's output is not in %s: %q", OllamaLogFile, logData)
	}
	var got map[string]string
	data, err := os.ReadFile(d.record)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		// Not the unit's 0.0.0.0: outside / nothing guards the port.
		"OLLAMA_HOST":              "127.0.0.1:" + strconv.Itoa(d.cfg.Ollama.Port),
		"OLLAMA_MODELS":            filepath.Join(d.root, OllamaModelsDir),
		"HOME":                     filepath.Join(d.root, OllamaHome),
		"OLLAMA_KEEP_ALIVE":        "-1",
		"OLLAMA_NUM_PARALLEL":      "2",
		"OLLAMA_CONTEXT_LENGTH":    "4096",
		"OLLAMA_MAX_LOADED_MODELS": "1",
		"OLLAMA_NO_CLOUD":          "1",
		"OLLAMA_DEBUG":             "0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("ollama's %s = %q, want %q", k, got[k], v)
		}
	}

	// A re-run keeps the serving process.
	if err := d.detachedBootstrap(); err != nil {
		t.Fatalf("re-run Bootstrap() = %v\nlog:\n%s", err, d.log)
	}
	if again := d.pid(t); again != pid {
		t.Errorf("re-run replaced ollama: pid %d, want %d kept", again, pid)
	}
	if !strings.Contains(d.log.String(), "already running as pid "+strconv.Itoa(pid)) {
		t.Errorf("log does not say the process was kept:\n%s", d.log)
	}

	// A changed environment restarts it.
	d.cfg.Ollama.Parallel = 3
	if err := d.detachedBootstrap(); err != nil {
		t.Fatalf("changed Bootstrap() = %v\nlog:\n%s", err, d.log)
	}
	if newPid := d.pid(t); newPid == pid || processAlive(pid) {
		t.Errorf("changed config: pid %d -> %d, old alive %v; want a restart", pid, newPid, processAlive(pid))
	}
}

func TestNoSystemdOllamaCrashFailsFast(t *testing.T) {
	d := newDetachedEnv(t, "#!/bin/sh\ncase \"$1\" in --version) echo 'ollama version is "+testVersion+"';; *) echo 'cuda init failed' >&2; exit 3;; esac\n")
	start := time.Now()
	wantStepFailure(t, d.detachedBootstrap(), StepStart, "ollama exited before it answered", "exit status 3", OllamaLogFile)
	if time.Since(start) > 10*time.Second {
		t.Errorf("a crashed ollama took %s to notice", time.Since(start))
	}
	logData, _ := os.ReadFile(filepath.Join(d.root, OllamaLogFile))
	if !strings.Contains(string(logData), "cuda init failed") {
		t.Errorf("the crash output is not in the log: %q", logData)
	}
	wantResults(t, d.lc, ResultAbandon)
}

func syscallGetpgid(pid int) (int, error) { return syscall.Getpgid(pid) }

// TestStopProcessGroupStopsEveryMember starts a group whose leader obeys SIGTERM and whose
// other member ignores it (a worker stuck in a handler), and requires StopProcessGroup to
// leave no process of the group, not only to see the leader go; DetachedPid and StopDetached
// follow the pid file.
func TestStopProcessGroupStopsEveryMember(t *testing.T) {
	dir := t.TempDir()
	ignoring := filepath.Join(dir, "ignoring")
	cmd := exec.Command("sh", "-c", `(trap "" TERM; touch "$1"; exec sleep 300) & exec sleep 300`, "sh", ignoring)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	// Wait until the member ignores SIGTERM and both members exist.
	deadline := time.Now().Add(5 * time.Second)
	for _, err := os.Stat(ignoring); err != nil || countGroup(pgid) < 2; _, err = os.Stat(ignoring) {
		if time.Now().After(deadline) {
			t.Fatalf("the group has %d processes, want 2 (%v)", countGroup(pgid), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pidFile := filepath.Join(dir, "server.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pgid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if pid, running := DetachedPid(pidFile); pid != pgid || !running {
		t.Fatalf("DetachedPid = %d, %v; want %d, true", pid, running, pgid)
	}
	start := time.Now()
	if err := StopDetached(pidFile, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if n := countGroup(pgid); n != 0 {
		t.Errorf("%d processes of group %d left after StopDetached", n, pgid)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Errorf("returned after %s, before the grace period let the member that ignores SIGTERM go", time.Since(start))
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file still there: %v", err)
	}
	if _, running := DetachedPid(pidFile); running {
		t.Error("DetachedPid reports a stopped server as running")
	}
}

// countGroup counts the processes of group pgid that are not zombies.
func countGroup(pgid int) int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, group, _, ok := procStat(pid); ok && group == pgid && state != 'Z' {
			n++
		}
	}
	return n
}
