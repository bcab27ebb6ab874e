package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/orchestrate"
	"github.com/llm-sandbox/llm-sandbox/internal/orchestrate/orchestratetest"
)

// unprotected is a stack file whose load balancers may be deleted.
func unprotected(department, cidr string) string {
	return stackFile(department, cidr) + "  llm-sandbox:gateway:\n    deletionProtection: false\n"
}

// stackOp runs preview/up/destroy/refresh in-process with the given program in place of the
// project's (which needs the AWS provider), through the same validation, protection check,
// engine and summary.
func stackOp(t *testing.T, dir string, op orchestrate.Operation, programOf programFor, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runStacks(env{stdout: &out, stderr: &errOut, cwd: dir}, "", args, op, programOf)
	return code, out.String(), errOut.String()
}

// providerFree runs orchestratetest.Program for every stack but the department named failing,
// whose program fails.
func providerFree(failing string, h orchestratetest.Hooks) programFor {
	return func(_ string, spec *config.Spec) pulumi.RunFunc {
		if spec.Department == failing {
			return func(*pulumi.Context) error { return errors.New("the " + failing + " program failed") }
		}
		return orchestratetest.Program(h)
	}
}

// engineEnv points the process at bin/pulumi and a file backend of the test's own.
func engineEnv(t *testing.T) orchestratetest.Backend {
	t.Helper()
	bin := orchestratetest.Bin(t)
	backend := orchestratetest.NewBackend(t)
	backend.Setenv(t)
	t.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	return backend
}

// summaryRow finds the summary table's row for stack.
func summaryRow(out, stack string) []string {
	for _, line := range strings.Split(out, "\n") {
		fields := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
		if len(fields) == 5 && fields[0] == stack {
			return fields
		}
	}
	return nil
}

func TestStackOpsUsageErrors(t *testing.T) {
	dir := tempProject(t, map[string]string{"a": stackFile("chem", "10.20.0.0/16")})
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"up"}, "name at least one STACK, or pass --all"},
		{[]string{"preview", "--all", "a"}, "name stacks or pass --all, not both"},
		{[]string{"refresh", "a", "--parallel", "0"}, "--parallel must be at least 1 (got 0)"},
		{[]string{"up", "a", "--format", "yaml"}, "--format must be text or json"},
		{[]string{"destroy", "nosuch"}, `unknown stack "nosuch"`},
		{[]string{"up", "a", "--force"}, "flag provided but not defined: -force"},
	}
	for _, c := range cases {
		code, out, errOut := sandboxctl(t, dir, c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, want %d and %q in stderr:\n%s%s", c.args, code, exitUsage, c.want, out, errOut)
		}
	}
	code, out, _ := sandboxctl(t, dir, "--help")
	for _, op := range orchestrate.Operations() {
		if code != exitOK || !strings.Contains(out, "\n  "+string(op)+" STACK...") {
			t.Errorf("sandboxctl --help does not list %s:\n%s", op, out)
		}
		code, help, _ := sandboxctl(t, dir, string(op), "--help")
		if code != exitOK || !strings.Contains(help, "Usage: sandboxctl [--project DIR] "+string(op)+" [STACK... | --all]") {
			t.Errorf("%s --help: exit %d:\n%s", op, code, help)
		}
	}
}

// An invalid stack file, or stacks that clash across departments, stop the command before the
// engine: no Pulumi CLI is even looked for (PATH is empty here).
func TestStackOpsValidateFirst(t *testing.T) {
	t.Setenv("PATH", "")
	dir := tempProject(t, map[string]string{
		"a":    stackFile("chem", "10.20.0.0/16"),
		"bad":  stackFile("Bad_Name", "10.30.0.0/16"),
		"twin": stackFile("chem", "10.40.0.0/16"),
	})
	called := false
	programOf := func(string, *config.Spec) pulumi.RunFunc {
		called = true
		return nil
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--all"}, "stacks/Pulumi.bad.yaml: department:"},
		{[]string{"bad"}, "stacks/Pulumi.bad.yaml: department:"},
		// twin is valid on its own, but deploys department chem again, as a does.
		{[]string{"twin"}, `stacks/Pulumi.twin.yaml: department: department "chem" is also deployed by stacks/Pulumi.a.yaml`},
	} {
		code, out, errOut := stackOp(t, dir, orchestrate.Up, programOf, c.args...)
		if code != exitInvalid || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "nothing was run") {
			t.Errorf("up %v: exit %d, want %d and %q in:\n%s%s", c.args, code, exitInvalid, c.want, out, errOut)
		}
		if out != "" {
			t.Errorf("up %v printed a summary or progress:\n%s", c.args, out)
		}
	}
	if called {
		t.Error("a program was made for an invalid stack")
	}
}

// destroy refuses stacks whose load balancers are protected, naming the key, and touches none of
// the stacks named with them.
func TestDestroyRefusesProtectedStacks(t *testing.T) {
	t.Setenv("PATH", "")
	dir := tempProject(t, map[string]string{
		"a": stackFile("chem", "10.20.0.0/16"), // deletionProtection defaults to true
		"b": unprotected("phys", "10.30.0.0/16"),
	})
	code, out, errOut := stackOp(t, dir, orchestrate.Destroy, providerFree("", orchestratetest.Hooks{}), "--all")
	want := "sandboxctl destroy: a: llm-sandbox:gateway.deletionProtection is true in stacks/Pulumi.a.yaml"
	if code != exitInvalid || !strings.Contains(errOut, want) || !strings.Contains(errOut, "nothing was destroyed") {
		t.Errorf("destroy --all: exit %d, want %d and %q in:\n%s", code, exitInvalid, want, errOut)
	}
	if strings.Contains(errOut, "b:") || out != "" {
		t.Errorf("destroy --all: b is not protected, and nothing should have run:\n%s%s", out, errOut)
	}
}

// The commands end to end on a file backend: stacks up in parallel with one failing, preview
// and refresh, destroy refused then forced, text and JSON summaries.
func TestStackOpsOnTheEngine(t *testing.T) {
	backend := engineEnv(t)
	bin := orchestratetest.Bin(t)
	dir := tempProject(t, map[string]string{
		"chemistry": stackFile("chemistry", "10.20.0.0/16"),
		"physics":   unprotected("physics", "10.30.0.0/16"),
		"broken":    unprotected("broken", "10.40.0.0/16"),
	})
	programs := providerFree("broken", orchestratetest.Hooks{})

	// up: the failing stack fails alone, exit 1.
	code, out, errOut := stackOp(t, dir, orchestrate.Up, programs, "--all", "--parallel", "3")
	if code != exitInvalid {
		t.Fatalf("up --all: exit %d, want %d:\n%s%s", code, exitInvalid, out, errOut)
	}
	for stack, want := range map[string]string{
		"chemistry": "up succeeded 4 create", "physics": "up succeeded 4 create", "broken": "up failed",
	} {
		row := summaryRow(out, stack)
		if row == nil || !strings.HasPrefix(strings.Join(row[1:4], " "), want) || !regexp.MustCompile(`^\d+\.\ds$`).MatchString(row[4]) {
			t.Errorf("up: summary row for %s is %q, want %q and a duration:\n%s", stack, row, want, out)
		}
		if !strings.Contains(out, "\n["+stack+"] ") {
			t.Errorf("up: no progress lines for %s:\n%s", stack, out)
		}
	}
	if !regexp.MustCompile(`(?m)^broken: .*the broken program failed$`).MatchString(out) ||
		!strings.Contains(out, "up: 3 stack(s): 2 succeeded, 1 failed") {
		t.Errorf("up: the summary does not give broken's error and the counts:\n%s", out)
	}
	if got := backend.Outputs(t, bin, dir, "chemistry")["department"]; got != "chemistry" {
		t.Errorf("chemistry's department output %v, want chemistry", got)
	}

	// preview --format json: stdout is the summary alone; no changes for the stacks that are up.
	code, out, errOut = stackOp(t, dir, orchestrate.Preview, programs, "chemistry", "physics", "--format", "json")
	if code != exitOK {
		t.Fatalf("preview: exit %d:\n%s%s", code, out, errOut)
	}
	var summary struct {
		Operation string
		OK        bool
		Stacks    []struct {
			Stack, Operation, Result string
			Changes                  map[string]int
			DurationSeconds          float64
		}
	}
	if err := json.Unmarshal([]byte(out), &summary); err != nil {
		t.Fatalf("preview --format json: %v:\n%s", err, out)
	}
	if summary.Operation != "preview" || !summary.OK || len(summary.Stacks) != 2 {
		t.Errorf("preview summary: %+v", summary)
	}
	for _, s := range summary.Stacks {
		if s.Result != "succeeded" || len(s.Changes) != 1 || s.Changes["same"] != orchestratetest.Resources || s.DurationSeconds <= 0 {
			t.Errorf("preview %s: %+v, want succeeded with only %d same", s.Stack, s, orchestratetest.Resources)
		}
	}
	if !strings.Contains(errOut, "[chemistry] ") || !strings.Contains(errOut, "[physics] ") {
		t.Errorf("preview --format json: the progress is not on stderr:\n%s", errOut)
	}

	// refresh
	code, out, errOut = stackOp(t, dir, orchestrate.Refresh, programs, "chemistry", "physics")
	if code != exitOK || !strings.Contains(out, "refresh: 2 stack(s): 2 succeeded") {
		t.Errorf("refresh: exit %d:\n%s%s", code, out, errOut)
	}

	// destroy: chemistry is protected, so nothing is destroyed...
	code, out, errOut = stackOp(t, dir, orchestrate.Destroy, programs, "--all")
	if code != exitInvalid || !strings.Contains(errOut, "chemistry: llm-sandbox:gateway.deletionProtection is true") {
		t.Errorf("destroy --all: exit %d:\n%s%s", code, out, errOut)
	}
	if got := backend.Outputs(t, bin, dir, "physics")["department"]; got != "physics" {
		t.Errorf("physics was touched by a refused destroy: outputs department %v", got)
	}
	// ...unless forced.
	code, out, errOut = stackOp(t, dir, orchestrate.Destroy, programs, "--all", "--force")
	if code != exitOK {
		t.Fatalf("destroy --all --force: exit %d:\n%s%s", code, out, errOut)
	}
	for _, s := range []string{"chemistry", "physics"} {
		if row := summaryRow(out, s); row == nil || strings.Join(row[1:4], " ") != "destroy succeeded 4 delete" {
			t.Errorf("destroy --force: row for %s is %q:\n%s", s, row, out)
		}
		if outputs := backend.Outputs(t, bin, dir, s); len(outputs) != 0 {
			t.Errorf("%s has outputs after destroy: %v", s, outputs)
		}
	}
	if !strings.Contains(errOut, "--force: destroying chemistry") {
		t.Errorf("destroy --force does not warn about chemistry's protection:\n%s", errOut)
	}
}

// Ctrl-C (here SIGINT to this process) cancels the stack running and the summary is still
// printed, with exit 1.
func TestInterruptStillPrintsTheSummary(t *testing.T) {
	engineEnv(t)
	dir := tempProject(t, map[string]string{
		"chemistry": unprotected("chemistry", "10.20.0.0/16"),
		"physics":   unprotected("physics", "10.30.0.0/16"),
	})
	// The signal is sent from inside the update, when sandboxctl's handler is surely installed;
	// the program then holds until the engine has taken it.
	var stdout, stderr orchestratetest.SyncBuffer
	programs := providerFree("", orchestratetest.Hooks{Between: func(string) {
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			t.Error(err)
		}
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if strings.Contains(stdout.String(), "^C received; cancelling") {
				return
			}
		}
	}})
	code := runStacks(env{stdout: &stdout, stderr: &stderr, cwd: dir}, "", []string{"--all", "--parallel", "1"},
		orchestrate.Up, programs)
	out, errOut := stdout.String(), stderr.String()
	if code != exitInvalid {
		t.Errorf("exit %d, want %d", code, exitInvalid)
	}
	if row := summaryRow(out, "chemistry"); row == nil || row[2] != "cancelled" {
		t.Errorf("chemistry row %q, want cancelled:\n%s", row, out)
	}
	if row := summaryRow(out, "physics"); row == nil || row[2] != "not started" {
		t.Errorf("physics row %q, want not started:\n%s", row, out)
	}
	if !strings.Contains(errOut, "interrupted: cancelling the stacks running") {
		t.Errorf("no word of the interrupt on stderr:\n%s", errOut)
	}
}

// docs/orchestration.md shows the help of up and destroy as the commands print it.
func TestStackOpsHelpIsDocumented(t *testing.T) {
	helpIsDocumented(t, "docs/orchestration.md", "up", "destroy")
}
