package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A stack whose gateway cannot carry its pools' maximum output: 12 nodes × 16 parallel × 10
// tokens/s = 1,920 tokens/s against 2 × c7i.large carrying 1,647.
const undersizedGateway = `config:
  aws:region: ca-central-1
  llm-sandbox:department: busy
  llm-sandbox:network:
    cidr: 10.60.0.0/16
  llm-sandbox:access:
    plainHttp: true
  llm-sandbox:pools:
    gpu:
      models: [llama3.1:8b]
      maxSize: 12
      parallel: 16
      contextLength: 4096
  llm-sandbox:gateway:
    instanceType: c7i.large
    minSize: 2
    maxSize: 2
`

const maxSizeWarning = "warning: stacks/Pulumi.busy.yaml: gateway.maxSize: 2 x c7i.large carry about 1647 tokens/s"

// validate prints a stack's warnings on standard error with file and key, and still succeeds;
// a sized stack prints none.
func TestValidateWarningsNeverFail(t *testing.T) {
	dir := tempProject(t, map[string]string{"busy": undersizedGateway, "calm": stackFile("calm", "10.70.0.0/16")})
	for _, args := range [][]string{{"validate"}, {"validate", "busy"}, {"validate", "busy", "--format", "json"}} {
		code, out, errOut := sandboxctl(t, dir, args...)
		if code != exitOK {
			t.Errorf("%v: exit %d, want %d (warnings never fail)\nstdout:\n%s\nstderr:\n%s", args, code, exitOK, out, errOut)
		}
		if !strings.Contains(errOut, maxSizeWarning) || !strings.Contains(errOut, "set gateway.maxSize to 3") {
			t.Errorf("%v: stderr lacks the warning %q:\n%s", args, maxSizeWarning, errOut)
		}
		if strings.Contains(out, "warning: ") {
			t.Errorf("%v: the warning is on stdout too:\n%s", args, out)
		}
	}
	// docs/config.md shows this warning as printed.
	_, _, errOut := sandboxctl(t, dir, "validate", "busy")
	data, err := os.ReadFile(filepath.Join(projectRoot(t), "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimPrefix(strings.TrimSpace(errOut), "warning: ")
	if flat := strings.Join(strings.Fields(string(data)), " "); !strings.Contains(flat, "`"+line+"`") {
		t.Errorf("docs/config.md, Gateway sizing, does not show the warning as printed:\n%s", line)
	}
	if _, _, errOut := sandboxctl(t, dir, "validate", "calm"); strings.Contains(errOut, "warning:") {
		t.Errorf("a sized stack warns:\n%s", errOut)
	}
	// --format json carries them per stack, beside the problems.
	code, out, _ := sandboxctl(t, dir, "validate", "--format", "json")
	var result struct {
		Valid  bool
		Stacks []struct {
			Stack    string
			Warnings []struct{ File, Path, Message string }
		}
	}
	if err := json.Unmarshal([]byte(out), &result); err != nil || code != exitOK || !result.Valid || len(result.Stacks) != 2 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	busy, calm := result.Stacks[0], result.Stacks[1]
	if len(busy.Warnings) != 1 || busy.Warnings[0].File != "stacks/Pulumi.busy.yaml" || busy.Warnings[0].Path != "gateway.maxSize" {
		t.Errorf("busy: warnings %+v, want one at gateway.maxSize", busy.Warnings)
	}
	if calm.Warnings == nil || len(calm.Warnings) != 0 {
		t.Errorf("calm: warnings %+v, want an empty list", calm.Warnings)
	}
}

// The example stacks warn as config pins them: chemistry and dev about their t3.large gateway.
func TestValidateExampleStacksWarnings(t *testing.T) {
	code, out, errOut := sandboxctl(t, projectRoot(t), "validate")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, s := range []string{"chemistry", "dev"} {
		if !strings.Contains(errOut, "warning: stacks/Pulumi."+s+".yaml: gateway.instanceType: t3.large is burstable") {
			t.Errorf("no burstable warning for %s in:\n%s", s, errOut)
		}
	}
	if n := strings.Count(errOut, "warning: "); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, errOut)
	}
}

// plan and check print the stack file's warnings on standard error as validate does, and
// still succeed; nothing of it reaches standard output (plan --format json stays JSON).
func TestPlanAndCheckPrintWarnings(t *testing.T) {
	root := projectRoot(t)
	const want = "warning: stacks/Pulumi.chemistry.yaml: gateway.instanceType: t3.large is burstable"
	for _, args := range [][]string{{"plan", "chemistry", "--format", "json"}, {"check", "chemistry"}} {
		code, out, errOut := sandboxctl(t, root, args...)
		if code != exitOK || !strings.Contains(errOut, want) || strings.Contains(out, "warning: stacks/") {
			t.Errorf("%v: exit %d, stderr:\n%s", args, code, errOut)
		}
	}
	if code, _, errOut := sandboxctl(t, root, "plan", "physics"); code != exitOK || strings.Contains(errOut, "warning:") {
		t.Errorf("plan physics: exit %d, want 0 and no warning:\n%s", code, errOut)
	}
}
