package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPrivacyEveryExampleStack(t *testing.T) {
	root := projectRoot(t)
	for _, s := range []string{"chemistry", "dev", "linguistics", "physics"} {
		code, out, errOut := sandboxctl(t, root, "privacy", s)
		if code != exitOK {
			t.Errorf("%s: exit %d:\n%s%s", s, code, out, errOut)
			continue
		}
		for _, want := range []string{"# Privacy-impact report: " + s, "Prompts and completions are stored nowhere", "`litellm_settings.turn_off_message_logging` | `true` | yes"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: report lacks %q", s, want)
			}
		}
		// Only dev chose plain HTTP: its report names it, as a warning that does not fail.
		if plain := strings.Contains(out, "warning plain-http:"); plain != (s == "dev") {
			t.Errorf("%s: plain-http warning listed %v, want %v", s, plain, s == "dev")
		}
	}
}

func TestPrivacyJSONAndUsage(t *testing.T) {
	root := projectRoot(t)
	code, out, errOut := sandboxctl(t, root, "privacy", "dev", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	var r struct {
		Stack string
		Hops  []struct {
			Protocol  string
			Encrypted bool
		}
		Settings []struct{ Name, Value string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Stack != "dev" || len(r.Hops) == 0 || len(r.Settings) == 0 {
		t.Errorf("json %v: %+v", err, r)
	}
	for _, args := range [][]string{{"privacy"}, {"privacy", "dev", "physics"}, {"privacy", "nope"}, {"privacy", "dev", "--format", "html"}} {
		if code, _, _ := sandboxctl(t, root, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestPrivacyHelpIsDocumented(t *testing.T) {
	helpIsDocumented(t, "docs/privacy.md", "privacy")
}
