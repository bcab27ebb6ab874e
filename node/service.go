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

	"github.com/llm-sandbox/llm-sandbox/internal/atomicfile"
)

// service starts a role's server (Ollama, LiteLLM): through systemd on a node, as a detached
// process otherwise.
type service interface {
	// start makes the server run with the current unit and environment, restarting it when
	// changed says they (or a file they read) were rewritten.
	start(ctx context.Context, changed bool) error
	// exited yields the exit of a process the agent started itself, so that the health wait
	// fails fast on a crash. It is nil under systemd.
	exited() <-chan error
	// logHint says where the server's output is, for error messages.
	logHint() string
}

// systemdService starts a unit with systemctl.
type systemdService struct {
	run  Runner
	unit string
}

// start reloads units, then enables and starts the unit, or enables and restarts it when the
// unit or its environment changed (a running server keeps the old environment otherwise).
func (s systemdService) start(ctx context.Context, changed bool) error {
	cmds := [][]string{{"systemctl", "daemon-reload"}}
	if changed {
		cmds = append(cmds, []string{"systemctl", "enable", s.unit}, []string{"systemctl", "restart", s.unit})
	} else {
		cmds = append(cmds, []string{"systemctl", "enable", "--now", s.unit})
	}
	for _, c := range cmds {
		if _, err := s.run.Run(ctx, c[0], c[1:]...); err != nil {
			return permanent(fmt.Errorf("%w (see %s)", err, s.logHint()))
		}
	}
	return nil
}

func (systemdService) exited() <-chan error { return nil }

func (s systemdService) logHint() string {
	return "journalctl -u " + strings.TrimSuffix(s.unit, ".service")
}

// processService runs a server as a detached process: a new session and process group, output
// appended to a log file, its pid in a pid file. It outlives the agent; whoever ran the agent
// with --no-systemd stops it (kill the process group named in the pid file, or StopDetached).
type processService struct {
	// name is the server's name in log lines ("ollama", "litellm").
	name string
	bin  string
	args []string
	// match is an argument of the command line that identifies the server in
	// /proc/<pid>/cmdline, so a recycled pid is never mistaken for it.
	match string
	// env builds the environment at start: LiteLLM's includes the master key, which the
	// secret step writes after the agent is built.
	env     func() ([]string, error)
	dir     string
	logFile string
	pidFile string
	log     *Logger
	// serving asks the running server for an answer (start bounds it to 5 s).
	serving func(context.Context) error
	done    chan error
}

func (p *processService) exited() <-chan error { return p.done }

func (p *processService) logHint() string { return p.logFile }

func (p *processService) start(ctx context.Context, changed bool) error {
	if pid, ok := readPid(p.pidFile); ok && isOurProcess(pid, p.match) {
		if !changed && p.answers(ctx) {
			p.log.Printf("step start: %s already running as pid %d and serving; keeping it", p.name, pid)
			return nil
		}
		p.log.Printf("step start: stopping %s pid %d (configuration changed or not serving)", p.name, pid)
		if err := StopProcessGroup(pid, 10*time.Second); err != nil {
			return permanent(err)
		}
	}
	env, err := p.env()
	if err != nil {
		return permanent(err)
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
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = env
	cmd.Dir = p.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	// A new session is also a new process group whose id is the pid: the caller can stop the
	// server and anything it spawned (LiteLLM's uvicorn workers) with one kill of -pid, and a
	// signal to the agent's group (Ctrl-C in a terminal) does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return permanent(fmt.Errorf("start %s: %w", CommandLine(p.bin, p.args...), err))
	}
	pid := cmd.Process.Pid
	if err := atomicfile.Write(p.pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = StopProcessGroup(pid, 5*time.Second)
		return permanent(fmt.Errorf("write %s: %w", p.pidFile, err))
	}
	done := make(chan error, 1)
	// Reap the child if it exits while the agent still runs; once the agent exits the child
	// is re-parented and keeps running.
	go func() { done <- cmd.Wait() }()
	p.done = done
	p.log.Printf("step start: started %s as pid %d (log %s, pid file %s)", CommandLine(p.bin, p.args...), pid, p.logFile, p.pidFile)
	return nil
}

// answers reports whether the running server answers within 5 s.
func (p *processService) answers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return p.serving(ctx) == nil
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

// isOurProcess reports whether pid is alive (not a zombie), leads its own session as the agent
// starts its servers, and has match among its arguments ("serve" for Ollama, the config file
// for LiteLLM): enough that a pid recycled by an unrelated process is not mistaken for the
// server and killed.
func isOurProcess(pid int, match string) bool {
	state, _, session, ok := procStat(pid)
	if !ok || state == 'Z' || session != pid {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	for _, a := range args[1:] {
		if string(a) == match {
			return true
		}
	}
	return false
}

// procStat reads a process's state letter, process group id and session id from
// /proc/<pid>/stat (proc(5)).
func procStat(pid int) (state byte, pgid, session int, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name is in parentheses and may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	// state, ppid, pgrp, session, ...
	if len(f) < 4 || len(f[0]) != 1 {
		return 0, 0, 0, false
	}
	pgid, err1 := strconv.Atoi(f[2])
	session, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return 0, 0, 0, false
	}
	return f[0][0], pgid, session, true
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, _, _, ok := procStat(pid)
	return ok && state != 'Z'
}

// StopProcessGroup sends SIGTERM to the process group pgid (a server the agent started in a
// session of its own, or any process started as a group leader), waits up to grace for every
// process of the group to go, then sends SIGKILL and waits up to 5 s more. It returns an error
// when the group could not be signalled or survived SIGKILL. A group already gone is no error.
func StopProcessGroup(pgid int, grace time.Duration) error {
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("stop process group %d: %w", pgid, err)
	}
	if waitGroupGone(pgid, grace) {
		return nil
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", pgid, err)
	}
	if !waitGroupGone(pgid, 5*time.Second) {
		return fmt.Errorf("process group %d survived SIGKILL", pgid)
	}
	return nil
}

// waitGroupGone waits up to limit for the process group pgid to have no process left but
// zombies (whose parent has yet to reap them) and reports whether it has.
func waitGroupGone(pgid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		if !groupAlive(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// groupAlive reports whether a process of group pgid other than a zombie exists. kill(-pgid,
// 0) also succeeds for zombies, so each member's state is read from /proc.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, group, _, ok := procStat(pid); ok && group == pgid && state != 'Z' {
			return true
		}
	}
	return false
}

// StopDetached stops a server (Ollama or LiteLLM) the agent started with --no-systemd, given
// its pid file (OllamaPidFile, LiteLLMPidFile under the root), with its whole process group,
// and removes the pid file. It is for the callers of --no-systemd (`sandboxctl local`, tests).
func StopDetached(pidFile string, grace time.Duration) error {
	pid, ok := readPid(pidFile)
	if !ok {
		return nil
	}
	if processAlive(pid) || groupAlive(pid) {
		if err := StopProcessGroup(pid, grace); err != nil {
			return err
		}
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// DetachedPid reads the pid file of a server the agent started with --no-systemd and reports
// the pid and whether that process still runs.
func DetachedPid(pidFile string) (pid int, running bool) {
	pid, ok := readPid(pidFile)
	if !ok {
		return 0, false
	}
	return pid, processAlive(pid)
}
