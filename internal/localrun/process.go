package localrun

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llm-sandbox/llm-sandbox/node"
)

// StartGroup starts cmd in a process group of its own (so a stop reaches every process it
// forks, and killed with the test binary should that die before the cleanup runs), with its
// output in the file logPath. A cleanup stops the group and, when the test failed, logs the
// log's tail. The returned channel closes once the process has exited.
func StartGroup(t T, name string, cmd *exec.Cmd, logPath string) <-chan struct{} {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()
	t.Cleanup(func() {
		if err := node.StopProcessGroup(cmd.Process.Pid, 15*time.Second); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Errorf("%s (pid %d) was not reaped after its group stopped", name, cmd.Process.Pid)
		}
		if t.Failed() {
			if out, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log (last 4000 bytes):\n%s", name, Tail(out, 4000))
			}
		}
	})
	return exited
}

// WaitReady calls ready every interval until it returns nil. It fails the test when the process
// exits first (with its log's tail) or when within has passed.
func WaitReady(t T, name string, exited <-chan struct{}, logPath string, within, interval time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited before it answered:\n%s", name, Tail(out, 4000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer within %s: %v", name, within, err)
		}
		time.Sleep(interval)
	}
}

// ProcessesUnder lists the live processes (pid and command line) whose executable or command
// line names a path under dir: what a node root leaves running. Zombies are skipped.
func ProcessesUnder(dir string) map[int]string {
	found := map[int]string{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return found
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The state follows the parenthesised command name, which may itself hold spaces.
		if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		args := strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		if strings.HasPrefix(exe, dir+"/") || strings.Contains(args, dir+"/") {
			found[pid] = args
		}
	}
	return found
}

// RunCommand runs a helper with a time limit and fails with its output on error.
func RunCommand(t T, limit time.Duration, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// FreePort returns a loopback port that was free a moment ago, below the kernel's ephemeral
// range. A port the kernel hands out itself (listening on port 0) lies inside that range, where
// any outgoing connection on the machine may take it as its local port before the server that
// was meant to bind it starts: a gateway node binds its port only after installing LiteLLM,
// tens of seconds later, while downloads on loopback open connection after connection. Below
// the range only another listener can take it.
func FreePort(t T) int {
	t.Helper()
	low := ephemeralLow()
	for i := 0; i < 200; i++ {
		port := freePortFloor + rand.IntN(low-freePortFloor)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	// Everything tried was taken: fall back to a port the kernel picks.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freePortFloor is the lowest port FreePort picks: above the well-known and most registered
// service ports.
const freePortFloor = 20000

// ephemeralLow is the first port of the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range; Linux's default 32768), at least freePortFloor+1000.
func ephemeralLow() int {
	low := 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	return max(low, freePortFloor+1000)
}

// SHA256Hex is the lowercase hex SHA-256 of data.
func SHA256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Tail returns the last n lines of out.
func Tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
