package main

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/versions"
)

func TestVersion(t *testing.T) {
	code, out, errOut := sandboxctl(t, t.TempDir(), "version", "--format", "json")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var r versionReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if r.Ollama != versions.Ollama.Version || r.LiteLLM != versions.LiteLLM.Version || r.Go != runtime.Version() || r.Sandboxctl.Version == "" {
		t.Errorf("got %+v, want ollama %s, litellm %s, go %s and a sandboxctl version",
			r, versions.Ollama.Version, versions.LiteLLM.Version, runtime.Version())
	}

	// Outside any project, as text, and as --version.
	code, text, _ := sandboxctl(t, t.TempDir(), "version")
	for _, want := range []string{"sandboxctl  " + r.Sandboxctl.Version, "go          " + runtime.Version(),
		"ollama      " + versions.Ollama.Version, "litellm     " + versions.LiteLLM.Version} {
		if code != exitOK || !strings.Contains(text, want+"\n") && !strings.Contains(text, want+" ") {
			t.Errorf("version: exit %d, want %q in:\n%s", code, want, text)
		}
	}
	if code, same, _ := sandboxctl(t, t.TempDir(), "--version"); code != exitOK || same != text {
		t.Errorf("--version: exit %d, printed %q, want what version prints, %q", code, same, text)
	}
	if code, same, _ := sandboxctl(t, t.TempDir(), "--version", "--format", "json"); code != exitOK || same != out {
		t.Errorf("--version --format json: exit %d, printed %q, want %q", code, same, out)
	}

	for _, args := range [][]string{{"version", "extra"}, {"version", "--format", "yaml"}, {"version", "--short"}} {
		if code, out, errOut := sandboxctl(t, t.TempDir(), args...); code != exitUsage || out != "" || errOut == "" {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q", args, code, exitUsage, out, errOut)
		}
	}
}

// The build information the toolchain stamps (module version, VCS settings) is what version
// reports; without any, it says so rather than inventing one.
func TestReadVersion(t *testing.T) {
	got := readVersion(&debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/llm-sandbox/llm-sandbox", Version: "v0.0.0-20261204150000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "-buildmode", Value: "exe"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-04T15:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	})
	want := versionReport{
		Sandboxctl: buildVersion{Version: "v0.0.0-20261204150000-0123456789ab+dirty", Revision: "0123456789abcdef0123456789abcdef01234567",
			Time: "2026-12-04T15:00:00Z", Modified: true},
		Go: "go1.99.1", Ollama: versions.Ollama.Version, LiteLLM: versions.LiteLLM.Version,
	}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got := readVersion(nil); got.Sandboxctl != (buildVersion{Version: "(devel)"}) || got.Go != "unknown" || got.Ollama != versions.Ollama.Version {
		t.Errorf("without build information: %+v", got)
	}
}
