package preflight

import (
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/versions"
)

// A release nodes would refuse fails preflight, with the command that pins one; the project's
// own pin passes.
func TestOllamaReleaseCheck(t *testing.T) {
	if r := checkOllamaRelease(versions.Ollama); r.Status != OK {
		t.Errorf("the project's pin: %+v", r)
	}
	unpinned := versions.Ollama
	unpinned.SHA256 = ""
	old := versions.Ollama
	old.Version = "0.34.9"
	for _, rel := range []versions.Release{unpinned, old} {
		r := checkOllamaRelease(rel)
		if r.Status != Fail || !strings.Contains(r.Detail+r.Advice, "sandboxctl pin ollama") {
			t.Errorf("%+v: got %+v, want a failure that says how to pin", rel, r)
		}
	}
}
