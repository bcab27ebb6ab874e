package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestReadStatNameWithSpacesAndParens parses a stat line whose command name would shift the
// fields if they were counted from the start of the line.
func TestReadStatNameWithSpacesAndParens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	line := "4242 (py thon) (x)) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 3 0 1 1 1\n"
	if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	pid, ppid, ticks, err := readStat(path)
	if err != nil || pid != 4242 || ppid != 17 || ticks != 281 {
		t.Fatalf("readStat = %d, %d, %d, %v; want 4242, 17, 281, nil", pid, ppid, ticks, err)
	}
}

// TestTreeCPUSecondsCountsChildren burns CPU in a grandchild only, under a shell that just
// waits: the shell's tree must grow by about what the grandchild used, which it cannot if
// descendants are left out.
func TestTreeCPUSecondsCountsChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sh -c 'while :; do :; done' & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := treeCPUSeconds(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if got >= 0.3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tree used %.2f CPU s in 10 s while a grandchild spun; want ≥ 0.3", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTreeCPUSecondsUnknownProcess(t *testing.T) {
	if _, err := treeCPUSeconds(1 << 30); err == nil {
		t.Fatal("want an error for a pid that does not exist")
	}
}
