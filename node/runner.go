package node

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Runner runs an external command and returns its combined stdout and stderr. It is the seam
// between the agent and the host: unit tests inject a fake that records the exact command
// lines (useradd, systemctl, nvidia-smi) instead of running them.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec. The zero value is ready to use.
type ExecRunner struct{}

// Run runs name with args until it exits or ctx ends. A failure names the command and
// includes the end of its output, which is usually the only useful part of the reason.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// Output pipes held open by a grandchild must not hang the agent past its step timeout.
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w%s", CommandLine(name, args...), err, outputTail(out.Bytes()))
	}
	return out.Bytes(), nil
}

// CommandLine renders a command for logs and test assertions: words joined by spaces.
func CommandLine(name string, args ...string) string {
	return strings.TrimSpace(name + " " + strings.Join(args, " "))
}

// outputTail returns ": <last line(s) of output>" for an error message, or "".
func outputTail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return ""
	}
	const max = 400
	if len(s) > max {
		s = "..." + s[len(s)-max:]
	}
	return ": " + strings.ReplaceAll(s, "\n", " | ")
}
