package orchestrate

import (
	"bytes"
	"io"
	"regexp"
	"sync"
)

// lockedWriter serialises whole writes to one stream shared by every stack's output.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// ansi matches terminal escape sequences; the CLI emits a few (cursor and colour codes) even with
// --color never, and a prefixed line must stay readable in a CI log.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// prefixWriter writes complete lines to out, each led by prefix, so that the output of stacks
// running side by side interleaves by line, never inside one. A partial line waits for its end
// (or for Flush).
type prefixWriter struct {
	mu     sync.Mutex
	out    io.Writer
	prefix []byte
	buf    []byte
}

// NewPrefixWriter returns a writer that writes complete lines to out, each led by prefix, as the
// stacks' output is written here: for any command whose concurrent processes share a stream.
func NewPrefixWriter(out io.Writer, prefix string) io.Writer { return newPrefixWriter(out, prefix) }

func newPrefixWriter(out io.Writer, prefix string) *prefixWriter {
	return &prefixWriter{out: out, prefix: []byte(prefix)}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	var lines []byte
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, p.line(p.buf[:i])...)
		p.buf = p.buf[i+1:]
	}
	if len(lines) > 0 {
		if _, err := p.out.Write(lines); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// Flush writes what is left of an unfinished line.
func (p *prefixWriter) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		_, _ = p.out.Write(p.line(p.buf))
		p.buf = nil
	}
}

func (p *prefixWriter) line(text []byte) []byte {
	text = bytes.TrimRight(ansi.ReplaceAll(text, nil), "\r")
	out := make([]byte, 0, len(p.prefix)+len(text)+1)
	out = append(out, p.prefix...)
	out = append(out, text...)
	return append(out, '\n')
}
