package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/policy"
)

func TestCheckList(t *testing.T) {
	code, out, _ := sandboxctl(t, projectRoot(t), "check", "--list")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, r := range policy.Rules() {
		if !strings.Contains(out, fmt.Sprintf("%-34s %-7s %s\n", r.ID, r.Severity, r.Rationale)) {
			t.Errorf("check --list does not show %s with its severity and rationale", r.ID)
		}
	}
	if !strings.Contains(out, "controls: CKV_AWS_79, AVD-AWS-0130, EC2.8, AutoScaling.3") {
		t.Errorf("check --list does not show imdsv2-only's controls:\n%s", out)
	}
	code, out, _ = sandboxctl(t, projectRoot(t), "check", "--list", "--format", "json")
	var rules []struct {
		ID, Severity, Rationale string
		Controls                []string
	}
	if code != exitOK || json.Unmarshal([]byte(out), &rules) != nil || len(rules) != len(policy.Rules()) {
		t.Fatalf("check --list --format json: exit %d\n%s", code, out)
	}
	for i, r := range policy.Rules() {
		got := rules[i]
		if got.ID != r.ID || got.Severity != string(r.Severity) || got.Rationale != r.Rationale || got.Controls == nil || len(got.Controls) != len(r.Controls) {
			t.Errorf("rule %d: %+v, want %+v", i, got, r)
		}
	}
}

// brokenPlan is the offline plan of chemistry (policy's fixture) with the department key's
// deletion window shortened (a warning) and, when rotationOff, its rotation off (an error).
func brokenPlan(t *testing.T, rotationOff bool) []policy.Finding {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(projectRoot(t), "policy", "testdata", "plan-chemistry.json"))
	if err != nil {
		t.Fatal(err)
	}
	p := &policy.Plan{}
	if err := json.Unmarshal(data, p); err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Resources {
		if r.Type == "aws:kms/key:Key" {
			r.Inputs["deletionWindowInDays"] = 7.0
			if rotationOff {
				r.Inputs["enableKeyRotation"] = false
			}
		}
	}
	return policy.Check(p)
}

func writeCheckOutput(t *testing.T, format string, r checkResult) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := exit(env{stdout: &out, stderr: &out}, "check", writeCheck(env{stdout: &out, stderr: &out}, format, []checkResult{r}))
	return code, out.String()
}

// Warnings never fail a run; errors do unless waived; every waiver is printed.
func TestCheckSeveritiesAndWaivers(t *testing.T) {
	code, out := writeCheckOutput(t, "text", newCheckResult("chemistry", brokenPlan(t, false), nil))
	if code != exitOK || !strings.Contains(out, "chemistry: warning kms-deletion-window: aws:kms/key:Key chemistry-keys-key: deletionWindowInDays 7") ||
		!strings.Contains(out, "ok    chemistry: ") || !strings.Contains(out, "(1 warnings, 0 waived findings)") {
		t.Errorf("a warning: exit %d\n%s", code, out)
	}

	code, out = writeCheckOutput(t, "text", newCheckResult("chemistry", brokenPlan(t, true), nil))
	if code != exitInvalid || !strings.Contains(out, "chemistry: error kms-rotation: ") || !strings.Contains(out, "FAIL  chemistry: 1 failing findings") {
		t.Errorf("an error: exit %d\n%s", code, out)
	}

	reason := "rotation is done by the key's owner (central IT, until 2027-01-01)"
	waivers := []config.Waiver{{Rule: "kms-rotation", Reason: reason}, {Rule: "waf-on-public-lb", Reason: "campus firewall (security office, until 2027-03-31)"}}
	code, out = writeCheckOutput(t, "text", newCheckResult("chemistry", brokenPlan(t, true), waivers))
	for _, want := range []string{
		"waiver chemistry: kms-rotation: " + reason,
		"waiver chemistry: waf-on-public-lb: campus firewall (security office, until 2027-03-31)",
		"(waived: " + reason + ")",
		"(1 warnings, 1 waived findings)",
	} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("a waived error: exit %d, want %q in\n%s", code, want, out)
		}
	}

	code, out = writeCheckOutput(t, "json", newCheckResult("chemistry", brokenPlan(t, true), waivers))
	var results []struct {
		Stack    string
		Waivers  []config.Waiver
		Findings []policy.Finding
		Failed   bool
	}
	if code != exitOK || json.Unmarshal([]byte(out), &results) != nil || len(results) != 1 {
		t.Fatalf("json: exit %d\n%s", code, out)
	}
	r := results[0]
	if r.Failed || len(r.Waivers) != 2 || len(r.Findings) != 2 {
		t.Errorf("json: %+v", r)
	}
	for _, f := range r.Findings {
		if (f.Rule == "kms-rotation") != (f.Waived == reason) {
			t.Errorf("json finding %+v", f)
		}
	}
	code, out = writeCheckOutput(t, "json", newCheckResult("chemistry", brokenPlan(t, true), nil))
	if code != exitInvalid || !strings.Contains(out, `"failed": true`) {
		t.Errorf("json, an error: exit %d\n%s", code, out)
	}
}

// A waiver of a rule that does not exist, or without a reason, makes the stack invalid.
func TestCheckRefusesBadWaivers(t *testing.T) {
	for waiver, want := range map[string]string{
		`kms-rotaton: "reason (me, until 2027)"`: `stacks/Pulumi.bad.yaml: waivers.kms-rotaton: unknown rule "kms-rotaton" (did you mean "kms-rotation"?)`,
		`kms-rotation: ""`:                       `stacks/Pulumi.bad.yaml: waivers.kms-rotation: must give the reason`,
	} {
		stack := stackFile("bad", "10.20.0.0/16") + "  llm-sandbox:waivers:\n    " + waiver + "\n"
		dir := tempProject(t, map[string]string{"bad": stack})
		code, out, errOut := sandboxctl(t, dir, "check", "bad")
		if code != exitInvalid || out != "" || !strings.Contains(errOut, want) {
			t.Errorf("%s: exit %d, stdout %q, stderr:\n%s", waiver, code, out, errOut)
		}
		// validate refuses it first, as it refuses anything the other commands would.
		if code, out, _ := sandboxctl(t, dir, "validate", "bad"); code != exitInvalid || !strings.Contains(out, want) {
			t.Errorf("validate with %s: exit %d:\n%s", waiver, code, out)
		}
	}
}
