package main

import (
	"strings"
	"testing"
)

// Every command that acts on one stack runs the checks across departments first, as validate
// does: a stack that is valid alone but overlaps another is refused, on its own file.
func TestOneStackCommandsCheckTheOtherStacks(t *testing.T) {
	dir := tempProject(t, map[string]string{
		"a":    stackFile("chem", "10.20.0.0/16"),
		"copy": stackFile("chem", "10.20.0.0/16"),
	})
	want := "stacks/Pulumi.copy.yaml: department: department \"chem\" is also deployed by stacks/Pulumi.a.yaml"
	for _, args := range [][]string{{"plan", "copy"}, {"check", "copy"}, {"preflight", "copy"}} {
		code, out, errOut := sandboxctl(t, dir, args...)
		if code != exitInvalid || !strings.Contains(errOut, want) {
			t.Errorf("%v: exit %d, want %d and %q in:\n%s%s", args, code, exitInvalid, want, out, errOut)
		}
	}
}
