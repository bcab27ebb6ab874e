package node

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Logger writes the agent's log lines to stderr (the journal, when systemd runs the agent) and
// mirrors each one to the console (the EC2 serial console, which `aws ec2 get-console-output`
// reads even when the node is unreachable). Console lines carry a UTC timestamp and the
// program's name because the console has no journal to add them and is shared with the kernel
// and cloud-init. A console that fails to write is ignored: losing the mirror must never fail
// a bootstrap.
type Logger struct {
	mu      sync.Mutex
	out     io.Writer
	console io.Writer
	now     func() time.Time
}

// NewLogger returns a Logger writing to out and mirroring to console (either may be nil).
func NewLogger(out, console io.Writer) *Logger {
	return &Logger{out: out, console: console, now: time.Now}
}

// Printf logs one line (a trailing newline is added when missing).
func (l *Logger) Printf(format string, args ...any) {
	if l == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	line = strings.TrimRight(line, "\n") + "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.out != nil {
		_, _ = io.WriteString(l.out, line)
	}
	if l.console != nil {
		_, _ = io.WriteString(l.console, l.now().UTC().Format(time.RFC3339)+" sandbox-node: "+line)
	}
}
