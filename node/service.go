package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ollamaService starts Ollama: through systemd on a node, as a detached process otherwise.
type ollamaService interface {
	// start makes Ollama run with the current unit and environment, restarting it when
	// changed says they were rewritten.
	start(ctx context.Context, changed bool) error
	// exited yields the exit of a process the agent started itself, so that the health wait
	// fails fast on a crash. It is nil under systemd.
	exited() <-chan error
}

// systemdService starts the ollama unit with systemctl.
type systemdService struct {
	run Runner
}

// start reloads units, then enables and starts the unit, or enables and restarts it when the
// unit or its environment changed (a running Ollama keeps the old environment otherwise).
func (s systemdService) start(ctx context.Context, changed bool) error {
	cmds := [][]string{{"systemctl", "daemon-reload"}}
	if changed {
		cmds = append(cmds, []string{"systemctl", "enable", OllamaUnit}, []string{"systemctl", "restart", OllamaUnit})
	} else {
		cmds = append(cmds, []string{"systemctl", "enable", "--now", OllamaUnit})
	}
	for _, c := range cmds {
		if _, err := s.run.Run(ctx, c[0], c[1:]...); err != nil {
			return permanent(fmt.Errorf("%w (see journalctl -u ollama)", err))
		}
	}
	return nil
}

func (systemdService) exited() <-chan error { return nil }

// processService runs `ollama serve` as a detached process: a new session and process group,
// output appended to a log file, its pid in a pid file. It outlives the agent; whoever ran
// the agent with --no-systemd stops it (kill the process group named in the pid file).
type processService struct {
	bin     string
	env     []string
	dir     string
	logFile string
	pidFile string
	log     *Logger
	serving func(context.Context) bool
	done    chan error
}

func (p *processService) exited() <-chan error { return p.done }

func (p *processService) start(ctx context.Context, changed bool) error {
	if pid, ok := readPid(p.pidFile); ok && isOurOllama(pid) {
		if !changed && p.serving(ctx) {
			p.log.Printf("step start: ollama already running as pid %d and serving; keeping it", pid)
			return nil
		}
		p.log.Printf("step start: stopping ollama pid %d (configuration changed or not serving)", pid)
		if err := stopProcessGroup(pid, 10*time.Second); err != nil {
			return permanent(err)
		}
	}
	for _, dir := range []string{filepath.Dir(p.logFile), filepath.Dir(p.pidFile), p.dir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return permanent(fmt.Errorf("create %s: %w", dir, err))
		}
	}
	logf, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return permanent(fmt.Errorf("open %s: %w", p.logFile, err))
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(p.bin, "serve")
	cmd.Env = p.env
	cmd.Dir = p.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	// A new session is also a new process group whose id is the pid: the caller can stop
	// Ollama and anything it spawned with one kill of -pid, and a signal to the agent's
	// group (Ctrl-C in a terminal) does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return permanent(fmt.Errorf("start %s serve: %w", p.bin, err))
	}
	pid := cmd.Process.Pid
	if err := writeFileAtomic(p.pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = stopProcessGroup(pid, 5*time.Second)
		return permanent(fmt.Errorf("write %s: %w", p.pidFile, err))
	}
	done := make(chan error, 1)
	// Reap the child if it exits while the agent still runs; once the agent exits the child
	// is re-parented and keeps running.
	go func() { done <- cmd.Wait() }()
	p.done = done
	p.log.Printf("step start: started %s serve as pid %d (log %s, pid file %s)", p.bin, pid, p.logFile, p.pidFile)
	return nil
}

// readPid reads a pid file.
func readPid(file string) (int, bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid, err == nil && pid > 0
}

// isOurOllama reports whether pid is alive (not a zombie), leads its own session as the
// agent starts Ollama, and runs with the "serve" argument: enough that a pid recycled by an
// unrelated process is not mistaken for Ollama and killed.
func isOurOllama(pid int) bool {
	state, session, ok := procStat(pid)
	if !ok || state == 'Z' || session != pid {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	for _, a := range args[1:] {
		if string(a) == "serve" {
			return true
		}
	}
	return false
}

// procStat reads a process's state letter and session id from /proc/<pid>/stat (proc(5)).
func procStat(pid int) (state byte, session int, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	// state, ppid, pgrp, session, ...
	if len(f) < 4 || len(f[0]) != 1 {
		return 0, 0, false
	}
	session, err = strconv.Atoi(f[3])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], session, true
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, _, ok := procStat(pid)
	return ok && state != 'Z'
}

// stopProcessGroup sends SIGTERM to the process group pid leads, waits up to grace for pid to
// go, then sends SIGKILL.
func stopProcessGroup(pid int, grace time.Duration) error {
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop process group %d: %w", pid, err)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !processAlive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", pid, err)
	}
	return nil
}

// StopDetached stops an Ollama the agent started with --no-systemd, given its pid file, and
// removes the pid file. It is for the callers of --no-systemd (tests, a debugging session).
func StopDetached(pidFile string, grace time.Duration) error {
	pid, ok := readPid(pidFile)
	if !ok {
		return nil
	}
	if processAlive(pid) {
		if err := stopProcessGroup(pid, grace); err != nil {
			return err
		}
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
