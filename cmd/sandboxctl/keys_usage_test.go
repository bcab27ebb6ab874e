package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry/keyregistrytest"
	usagemetrics "github.com/llm-sandbox/llm-sandbox/internal/usage"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/node/usagetest"
)

// publishUsage runs the gateway's usage module, with the settings the chem stack's gateway
// renders, on events, publishing to the emulator at endpoint.
func publishUsage(t *testing.T, endpoint string, events []usagetest.Event) {
	t.Helper()
	settings, err := node.RenderLiteLLMUsageSettings(&node.Config{Department: "chem", Region: "ca-central-1", LiteLLM: &node.LiteLLMConfig{
		KeyRegistry: &node.KeyRegistry{Table: keyregistry.TableName("chem"), Teams: []node.LiteLLMTeam{{Name: "staff"}, {Name: "students"}}},
		Usage:       &node.LiteLLMUsage{FlushSeconds: 60},
	}})
	if err != nil {
		t.Fatal(err)
	}
	usagetest.Run(t, usagetest.Options{Python: os.Getenv(keyregistrytest.EnvMotoPython), Endpoint: endpoint, Settings: settings}, events)
}

// keys usage prints, per team and key id, what the gateway's usage module published:
// requests, tokens, errors and 429s, as text and JSON, for one team or one key; a key issued
// but never used shows zeros.
func TestKeysUsage(t *testing.T) {
	dir, _ := keysEmulator(t)
	alice := issue(t, dir, "--team", "students", "--owner", "alice")
	carol := issue(t, dir, "--team", "students", "--owner", "carol")
	bob := issue(t, dir, "--team", "staff", "--owner", "bob")
	publishUsage(t, os.Getenv("AWS_ENDPOINT_URL"), []usagetest.Event{
		{Kind: "success", Team: "students", KeyID: alice.KeyID, PromptTokens: 12, CompletionTokens: 8},
		{Kind: "success", Team: "students", KeyID: alice.KeyID, PromptTokens: 30, CompletionTokens: 16},
		{Kind: "failure", Team: "students", KeyID: alice.KeyID, Status: 429},
		{Kind: "success", Team: "staff", KeyID: bob.KeyID, PromptTokens: 5, CompletionTokens: 4},
		{Kind: "failure", Team: "staff", KeyID: bob.KeyID, Status: 403, OnException: true},
	})

	code, out, errOut := sandboxctl(t, dir, "keys", "usage", "chem", "--format", "json")
	if code != exitOK {
		t.Fatalf("keys usage: exit %d\n%s%s", code, out, errOut)
	}
	var got usageJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("keys usage --format json: %v\n%s", err, out)
	}
	want := []usagemetrics.Team{
		{Team: "staff", Counts: usagemetrics.Counts{Requests: 2, PromptTokens: 5, CompletionTokens: 4, Errors: 1},
			Keys: []usagemetrics.Key{{KeyID: bob.KeyID, Counts: usagemetrics.Counts{Requests: 2, PromptTokens: 5, CompletionTokens: 4, Errors: 1}}}},
		{Team: "students", Counts: usagemetrics.Counts{Requests: 3, PromptTokens: 42, CompletionTokens: 24, Throttles: 1}},
	}
	keys := map[string]usagemetrics.Counts{alice.KeyID: {Requests: 3, PromptTokens: 42, CompletionTokens: 24, Throttles: 1}, carol.KeyID: {}}
	for id, c := range keys {
		want[1].Keys = append(want[1].Keys, usagemetrics.Key{KeyID: id, Counts: c})
	}
	if want[1].Keys[0].KeyID > want[1].Keys[1].KeyID {
		want[1].Keys[0], want[1].Keys[1] = want[1].Keys[1], want[1].Keys[0]
	}
	gotTeams, _ := json.Marshal(got.Teams)
	wantTeams, _ := json.Marshal(want)
	if string(gotTeams) != string(wantTeams) || got.Stack != "chem" || got.Department != "chem" ||
		got.Total != (usagemetrics.Counts{Requests: 5, PromptTokens: 47, CompletionTokens: 28, Errors: 1, Throttles: 1}) {
		t.Errorf("keys usage:\n got  %s (total %+v)\n want %s", gotTeams, got.Total, wantTeams)
	}
	if d := time.Since(got.Start); d < 24*time.Hour || d > 24*time.Hour+2*time.Minute {
		t.Errorf("the default range starts %s ago, want 24h", d)
	}

	code, out, errOut = sandboxctl(t, dir, "keys", "usage", "chem", "--team", "students")
	rowOf := func(id string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^students\s+` + regexp.QuoteMeta(id) + `\s+3\s+42\s+24\s+0\s+1$`)
	}
	if code != exitOK || !rowOf(alice.KeyID).MatchString(out) || !regexp.MustCompile(`(?m)^students\s+\(2 keys\)\s+3\s+42\s+24\s+0\s+1$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^students\s+`+carol.KeyID+`\s+0\s+0\s+0\s+0\s+0$`).MatchString(out) || strings.Contains(out, bob.KeyID) ||
		!strings.Contains(out, "TEAM  ") {
		t.Errorf("keys usage --team students: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = sandboxctl(t, dir, "keys", "usage", "chem", "--key", bob.KeyID, "--format", "json")
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || len(got.Teams) != 1 || len(got.Teams[0].Keys) != 1 || got.Teams[0].Keys[0].Requests != 2 {
		t.Errorf("keys usage --key bob: exit %d %v\n%s", code, err, out)
	}
	// Everything was published within the last minute: --since a minute ago finds all of it.
	code, out, _ = sandboxctl(t, dir, "keys", "usage", "chem", "--since", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "--format", "json")
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || got.Total.Requests != 5 {
		t.Errorf("keys usage --since a minute ago: exit %d %v\n%s", code, err, out)
	}
}

// Bad flags are refused before any AWS call.
func TestKeysUsageRefusals(t *testing.T) {
	dir, _ := keysEmulator(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--team", "alumni"}, `declares no team "alumni"`},
		{[]string{"--key", "sk-lsb-x"}, "--key must be a key id"},
		{[]string{"--since", "yesterday"}, "--since: want a duration"},
		{[]string{"--since", "2030-01-01"}, "is not in the past"},
		{[]string{"--since", "500d"}, "beyond what CloudWatch keeps"},
		{[]string{"--format", "csv"}, "--format must be text or json"},
	} {
		code, _, errOut := sandboxctl(t, dir, append([]string{"keys", "usage", "chem"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("keys usage %q: exit %d, want 2 and %q:\n%s", tc.args, code, tc.want, errOut)
		}
	}
}
