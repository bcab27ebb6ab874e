package orchestrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
)

// killAfter is how long a CLI that was told to terminate (a second interrupt) may take before its
// process group is killed.
const killAfter = 10 * time.Second

// minVersion is the oldest CLI the Automation API of this SDK accepts (auto's minimumVersion).
var minVersion = semver.MustParse("3.2.0-alpha")

// pipeGrace bounds the wait for the CLI's output pipes after it exits: a plugin it started and
// left behind could otherwise hold them open, and Wait with them.
const pipeGrace = 5 * time.Second

// cliCommand runs the Pulumi CLI for the auto package in place of its own runner, for one reason:
// cancellation. auto's runner sends SIGINT when the context ends, as we want, but kills the CLI
// 10 seconds later (exec.Cmd.WaitDelay), which cuts off an engine that is still waiting for an
// AWS operation in flight (a NAT gateway or load balancer takes minutes): the stack keeps
// pending operations and, on a file backend, its lock. Here the context's end sends SIGINT once
// (the engine's own graceful cancel: no new steps, the steps in flight finish, the checkpoint
// and lock are written and released) and waits as long as that takes; terminate (a second
// interrupt) sends SIGINT again, which the CLI takes as "terminate now", and killAfter later the
// process group is killed. The CLI runs in its own process group so that a terminal's Ctrl-C
// reaches sandboxctl only, which forwards exactly one signal per interrupt: otherwise the CLI
// would see the terminal's SIGINT and ours, two in a row, and terminate at once.
//
// Everything else matches auto's runner: --non-interactive, PULUMI_AUTOMATION_API=true, and the
// binary's folder first on PATH (where the CLI looks for plugins shipped beside it).
type cliCommand struct {
	bin       string
	version   semver.Version
	terminate <-chan struct{}
}

var _ auto.PulumiCommand = (*cliCommand)(nil)

// newCLICommand finds the CLI (bin, or `pulumi` on PATH when bin is empty) and reads its version,
// which auto checks against the SDK's minimum.
func newCLICommand(ctx context.Context, bin string, terminate <-chan struct{}) (*cliCommand, error) {
	if bin == "" {
		found, err := exec.LookPath("pulumi")
		if err != nil {
			return nil, errors.New("no `pulumi` on PATH: install the Pulumi CLI (v3.274.1, the version go.mod pins " +
				"the SDK at; `make bin/pulumi` builds it into bin/) and put it on PATH")
		}
		bin = found
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, abs, "version")
	cmd.Env = append(os.Environ(), "PULUMI_SKIP_UPDATE_CHECK=true")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("run `%s version`: %w", abs, err)
	}
	// The same floor as auto's own runner; a CLI built without its version stamped (-ldflags -X
	// .../sdk/v3/go/common/version.Version) prints no version and is refused here.
	v, err := semver.ParseTolerant(strings.TrimSpace(string(out)))
	if err != nil || v.Major != minVersion.Major || v.LT(minVersion) {
		return nil, fmt.Errorf("`%s version` printed %q: want a Pulumi CLI v3 of at least %s "+
			"(a CLI built from source needs -ldflags -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=vX.Y.Z)",
			abs, bytes.TrimSpace(out), minVersion)
	}
	return &cliCommand{bin: abs, version: v, terminate: terminate}, nil
}

// Version is the CLI's version.
func (c *cliCommand) Version() semver.Version { return c.version }

// Run runs the CLI with args in workdir, teeing its output into the extra writers, and returns
// its stdout, stderr and exit code.
func (c *cliCommand) Run(ctx context.Context, workdir string, stdin io.Reader,
	additionalOutput, additionalErrorOutput []io.Writer, additionalEnv []string, args ...string,
) (string, string, int, error) {
	if !slices.Contains(args, "--non-interactive") {
		args = append([]string{"--non-interactive"}, args...)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = workdir
	cmd.Env = withPathFirst(append(append(os.Environ(), additionalEnv...), "PULUMI_AUTOMATION_API=true"),
		filepath.Dir(c.bin))
	var stdout, stderr bytes.Buffer
	cmd.Stdout = io.MultiWriter(append(additionalOutput, &stdout)...)
	cmd.Stderr = io.MultiWriter(append(additionalErrorOutput, &stderr)...)
	cmd.Stdin = stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = pipeGrace
	if err := cmd.Start(); err != nil {
		return "", "", -1, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err = <-done:
		case <-c.terminate:
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case err = <-done:
			case <-time.After(killAfter):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				err = <-done
			}
		}
	}
	code := -1
	var exit *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &exit):
		code = exit.ExitCode()
	}
	return stdout.String(), stderr.String(), code, err
}

// withPathFirst returns env with dir at the front of PATH.
func withPathFirst(env []string, dir string) []string {
	out := make([]string, 0, len(env)+1)
	path := dir
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			if v != "" {
				path = dir + string(os.PathListSeparator) + v
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PATH="+path)
}
