package localrun_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// TestStopRunStopsOnlyTheRunsProcesses lays out a detached run's state directory: a pool
// node's server running from under it, a gateway pid file that names an unrelated process
// (a stale file whose pid was reused), and a stray process under the state directory with no
// pid file. StopRun must stop the server and the stray, leave the unrelated process alone and
// remove every pid file and the run record.
func TestStopRunStopsOnlyTheRunsProcesses(t *testing.T) {
	state := t.TempDir()
	poolRoot := filepath.Join(state, "nodes", "pool-gpu", "root")
	gatewayRoot := filepath.Join(state, "nodes", "gateway", "root")
	server := localruntest.DetachedServer(t, poolRoot, node.OllamaPidFile)
	unrelated := localruntest.DetachedServer(t, t.TempDir(), "unrelated.pid")
	if err := os.MkdirAll(filepath.Dir(filepath.Join(gatewayRoot, node.LiteLLMPidFile)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gatewayRoot, node.LiteLLMPidFile), []byte(fmt.Sprintf("%d\n", unrelated)), 0o644); err != nil {
		t.Fatal(err)
	}
	stray := exec.Command(filepath.Join(poolRoot, "bin", "server"), "300")
	stray.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = stray.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-stray.Process.Pid, syscall.SIGKILL) })
	if err := localrun.WriteRunRecord(state, localrun.RunRecord{Stack: "chemistry", URL: "http://127.0.0.1:4000", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}

	services := localrun.Services(state)
	if len(services) != 2 || services[0].Node != "gateway" || services[0].Running || services[1].Node != "pool-gpu" || !services[1].Running || services[1].Pid != server {
		t.Fatalf("Services = %+v; want the gateway's stale pid not running, the pool's server %d running", services, server)
	}
	stopped, err := localrun.StopRun(state)
	if err != nil {
		t.Fatalf("StopRun: %v", err)
	}
	if len(stopped) != 1 || stopped[0].Pid != server {
		t.Errorf("stopped %+v, want only the pool's server %d", stopped, server)
	}
	if left := localrun.ProcessesUnder(state); len(left) != 0 {
		t.Errorf("processes left under the state directory: %v", left)
	}
	if syscall.Kill(unrelated, 0) != nil {
		t.Errorf("the unrelated process %d named by a stale pid file was stopped", unrelated)
	}
	for _, f := range []string{filepath.Join(poolRoot, node.OllamaPidFile), filepath.Join(gatewayRoot, node.LiteLLMPidFile), filepath.Join(state, localrun.RunRecordFile)} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", f, err)
		}
	}
	if _, ok, _ := localrun.ReadRunRecord(state); ok {
		t.Error("the run record survived StopRun")
	}
}
