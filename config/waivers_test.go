package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var testRuleIDs = []string{"kms-rotation", "waf-on-public-lb", "log-retention"}

func TestParseWaivers(t *testing.T) {
	values := Values{Namespace + ":waivers": `{"waf-on-public-lb":"  the campus firewall filters this range (security office, until 2027-03-31) ","kms-rotation":"key owned by central IT (j.doe, until 2027-01-01)"}`}
	got, err := ParseWaivers("stacks/Pulumi.x.yaml", values, testRuleIDs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Waiver{
		{Rule: "kms-rotation", Reason: "key owned by central IT (j.doe, until 2027-01-01)"},
		{Rule: "waf-on-public-lb", Reason: "the campus firewall filters this range (security office, until 2027-03-31)"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got, err := ParseWaivers("x", Values{}, testRuleIDs); got != nil || err != nil {
		t.Errorf("no waivers key: %v, %v", got, err)
	}
}

func TestParseWaiversProblems(t *testing.T) {
	for raw, want := range map[string]string{
		`{"kms-rotaton":"reason"}`:   `x.yaml: waivers.kms-rotaton: unknown rule "kms-rotaton" (did you mean "kms-rotation"?)`,
		`{"no-such-thing":"reason"}`: `x.yaml: waivers.no-such-thing: unknown rule "no-such-thing" (sandboxctl check --list shows the rules)`,
		`{"kms-rotation":"  "}`:      `x.yaml: waivers.kms-rotation: must give the reason for the waiver, who decided it and until when`,
		`{"kms-rotation":true}`:      `x.yaml: waivers.kms-rotation: must give the reason`,
		`["kms-rotation"]`:           `x.yaml: waivers: must be a mapping of rule ids to reasons`,
	} {
		_, err := ParseWaivers("x.yaml", Values{Namespace + ":waivers": raw}, testRuleIDs)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", raw, err, want)
		}
	}
}

// A stack file with waivers still validates, and LoadWaivers reads them from it.
func TestWaiversInAStackFile(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("../stacks/Pulumi.dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, []byte("  llm-sandbox:waivers:\n    log-retention: \"audit wants a year (security office, until 2027-06-30)\"\n")...)
	if err := os.MkdirAll(filepath.Join(dir, "stacks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stacks", "Pulumi.dev.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, "dev"); err != nil {
		t.Fatalf("a stack with waivers does not load: %v", err)
	}
	got, err := LoadWaivers(dir, "dev", testRuleIDs)
	if err != nil || len(got) != 1 || got[0].Rule != "log-retention" || !strings.Contains(got[0].Reason, "until 2027-06-30") {
		t.Errorf("got %+v, %v", got, err)
	}
	if _, err := LoadWaivers(dir, "dev", []string{"kms-rotation"}); err == nil || !strings.Contains(err.Error(), "stacks/Pulumi.dev.yaml: waivers.log-retention: unknown rule") {
		t.Errorf("unknown rule in a stack file: %v", err)
	}
}
