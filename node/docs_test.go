package node

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDocsMatchTheAgent keeps docs/node-agent.md true: the steps table lists every step in
// the order the agent runs them with its default timeout, and the files table names every
// file the agent writes.
func TestDocsMatchTheAgent(t *testing.T) {
	data, err := os.ReadFile("../docs/node-agent.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	rows := regexp.MustCompile("(?m)^\\| (\\d+) \\| `(\\w+)` \\|.*\\| ([^|]+) \\| [^|]+ \\|$").FindAllStringSubmatch(doc, -1)
	a := docsAgent(t)
	steps := a.Steps()
	if len(rows) != len(steps) {
		t.Fatalf("docs list %d steps, the agent runs %d", len(rows), len(steps))
	}
	for i, s := range steps {
		if rows[i][1] != fmt.Sprint(i+1) || rows[i][2] != s.Name {
			t.Errorf("docs row %d is %s %q, want %d %q", i, rows[i][1], rows[i][2], i+1, s.Name)
		}
		if want := minutes(s.Timeout); strings.TrimSpace(rows[i][3]) != want {
			t.Errorf("docs give step %s a timeout of %q, the agent %q", s.Name, rows[i][3], want)
		}
	}
	for _, f := range []string{OllamaBinary, OllamaHome, OllamaModelsDir, OllamaEnvFile, OllamaUnitFile, CacheDir, OllamaLogFile, OllamaPidFile, ConfigPath} {
		if !strings.Contains(doc, "`"+f) {
			t.Errorf("docs do not name %s", f)
		}
	}
	for _, v := range OllamaEnv(goldenConfig(true).Ollama) {
		if !strings.Contains(doc, "`"+v.Name) {
			t.Errorf("docs do not mention %s", v.Name)
		}
	}
	p := DefaultRetry()
	if !strings.Contains(doc, fmt.Sprintf("%d attempts, waiting %s, %s, %s, %s", p.Attempts, secs(p.Initial), secs(2*p.Initial), secs(4*p.Initial), secs(8*p.Initial))) {
		t.Errorf("docs do not state the retry policy %+v", p)
	}
}

func docsAgent(t *testing.T) *Agent {
	t.Helper()
	a, err := New(t.Context(), goldenConfig(true), Options{Lifecycle: &fakeLifecycle{}, Runner: &fakeRunner{}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func minutes(d time.Duration) string { return fmt.Sprintf("%d min", int(d.Minutes())) }

func secs(d time.Duration) string { return fmt.Sprintf("%d s", int(d.Seconds())) }
