package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/orchestrate/orchestratetest"
)

// projectRoot is the repository root, which holds Pulumi.yaml and the example stacks.
func projectRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// sandboxctl runs the command in-process from dir and returns its exit code and output.
func sandboxctl(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(env{stdout: &out, stderr: &errOut, cwd: dir}, args)
	return code, out.String(), errOut.String()
}

// tempProject makes a project with the project's Pulumi.yaml and the given stack files (stack
// name → contents).
func tempProject(t *testing.T, stacks map[string]string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(projectRoot(t), "Pulumi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return orchestratetest.ProjectWith(t, string(data), stacks)
}

// helpIsDocumented checks that doc (a path in the project) shows each command's --help in a
// text block exactly as the command prints it.
func helpIsDocumented(t *testing.T, doc string, cmds ...string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(projectRoot(t), filepath.FromSlash(doc)))
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range cmds {
		code, help, _ := sandboxctl(t, projectRoot(t), cmd, "--help")
		if code != exitOK {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		if !strings.Contains(string(data), "```text\n"+help+"```\n") {
			t.Errorf("%s does not show %s's help as printed:\n%s", doc, cmd, help)
		}
	}
}

func TestValidateExampleStacks(t *testing.T) {
	// From a subfolder: the project is found by walking up to Pulumi.yaml.
	code, out, errOut := sandboxctl(t, filepath.Join(projectRoot(t), "config", "testdata"), "validate")
	if code != exitOK {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, s := range []string{"chemistry", "physics", "dev"} {
		if !strings.Contains(out, "ok    stacks/Pulumi."+s+".yaml") {
			t.Errorf("no ok line for %s in:\n%s", s, out)
		}
	}
}

// Each invalid file of the config table, deployed as a stack of its own, is rejected with its
// message and exit 1.
func TestValidateRejectsEachInvalidFile(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(projectRoot(t), "config", "testdata", "invalid", "*.yaml"))
	if err != nil || len(files) < 25 {
		t.Fatalf("want the invalid stack files of config/testdata (got %d, %v)", len(files), err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want := "stacks/Pulumi." + name + ".yaml: " + strings.TrimPrefix(first, "# want: ")
			dir := tempProject(t, map[string]string{name: string(data)})
			code, out, _ := sandboxctl(t, dir, "validate", name)
			if code != exitInvalid {
				t.Errorf("exit %d, want %d", code, exitInvalid)
			}
			if !strings.Contains(out, want) {
				t.Errorf("want %q in:\n%s", want, out)
			}
		})
	}
}

const validStack = `config:
  aws:region: ca-central-1
  llm-sandbox:department: %s
  llm-sandbox:network:
    cidr: %s
  llm-sandbox:access:
    plainHttp: true
  llm-sandbox:pools:
    gpu:
      models: [llama3.1:8b]
`

func stackFile(department, cidr string) string {
	return fmt.Sprintf(validStack, department, cidr)
}

func TestValidateAcrossDepartments(t *testing.T) {
	dir := tempProject(t, map[string]string{
		"a": stackFile("chem", "10.20.0.0/16"),
		"b": stackFile("chem", "10.20.128.0/20"),
		"c": stackFile("phys", "10.30.0.0/16"),
	})
	code, out, _ := sandboxctl(t, dir, "validate", "--format", "json")
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d:\n%s", code, exitInvalid, out)
	}
	var result struct {
		Valid  bool
		Stacks []struct {
			Stack    string
			Valid    bool
			Problems []struct{ File, Path, Message string }
		}
	}
	if err := json.Unmarshal([]byte(out), &result); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if result.Valid || len(result.Stacks) != 3 {
		t.Fatalf("want 3 stacks, overall invalid: %+v", result)
	}
	b := result.Stacks[1]
	if b.Stack != "b" || b.Valid || len(b.Problems) != 2 ||
		b.Problems[0].Path != "department" || b.Problems[1].Path != "network.cidr" ||
		!strings.Contains(b.Problems[1].Message, "overlaps 10.20.0.0/16 of stacks/Pulumi.a.yaml") {
		t.Errorf("stack b: %+v", b)
	}
	// A clash concerns both files: a shows the same two problems, on its own file and naming b.
	if a := result.Stacks[0]; a.Stack != "a" || a.Valid || len(a.Problems) != 2 ||
		a.Problems[0].File != "stacks/Pulumi.a.yaml" || a.Problems[1].File != "stacks/Pulumi.a.yaml" ||
		!strings.Contains(a.Problems[1].Message, "overlaps 10.20.128.0/20 of stacks/Pulumi.b.yaml") {
		t.Errorf("stack a should show its clash with b on its own file: %+v", a)
	}
	if !result.Stacks[2].Valid {
		t.Errorf("stack c should be valid: %+v", result.Stacks[2])
	}
	// Naming only the valid stack still checks it against the others, and it passes; naming
	// the earlier file of the clash reports that file, not the other.
	if code, out, _ := sandboxctl(t, dir, "validate", "c"); code != exitOK {
		t.Errorf("validate c: exit %d\n%s", code, out)
	}
	if code, out, _ := sandboxctl(t, dir, "validate", "a"); code != exitInvalid ||
		!strings.Contains(out, "stacks/Pulumi.a.yaml: network.cidr: overlaps 10.20.128.0/20 of stacks/Pulumi.b.yaml") ||
		strings.Contains(out, "stacks/Pulumi.b.yaml:") {
		t.Errorf("validate a: exit %d, want %d with the overlap on a's file only\n%s", code, exitInvalid, out)
	}
	// The text report prints the clash once on each file.
	_, out, _ = sandboxctl(t, dir, "validate")
	if n := strings.Count(out, "network.cidr: overlaps"); n != 2 || !strings.Contains(out, "2 of 3 stack file(s) invalid, 4 problem(s)") {
		t.Errorf("validate (text): the overlap printed %d times, want once per file, and 2 of 3 invalid with 4 problems:\n%s", n, out)
	}
}

func TestUsageErrors(t *testing.T) {
	root := projectRoot(t)
	cases := []struct {
		name string
		dir  string
		args []string
		want string
	}{
		{"no command", root, nil, "Usage:"},
		{"unknown command", root, []string{"deploy"}, `unknown command "deploy"`},
		{"unknown flag", root, []string{"validate", "--colour"}, "flag provided but not defined: -colour"},
		{"unknown stack", root, []string{"validate", "nosuch"}, `unknown stack "nosuch": no stacks/Pulumi.nosuch.yaml`},
		{"bad format", root, []string{"plan", "dev", "--format", "yaml"}, "--format must be text or json"},
		{"plan needs one stack", root, []string{"plan"}, "want exactly one STACK (got 0)"},
		{"no project", t.TempDir(), []string{"validate"}, "no Pulumi.yaml in the working directory or any parent"},
		{"bad --project", root, []string{"--project", t.TempDir(), "validate"}, "no Pulumi.yaml there"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := sandboxctl(t, c.dir, c.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(out+errOut, c.want) {
				t.Errorf("want %q in:\n%s%s", c.want, out, errOut)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	root := projectRoot(t)
	for _, args := range [][]string{{"--help"}, {"help", "plan"}, {"plan", "--help"}, {"validate", "-h"}} {
		code, out, _ := sandboxctl(t, root, args...)
		if code != exitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d, output:\n%s", args, code, out)
		}
	}
}

func TestProjectFlag(t *testing.T) {
	code, out, errOut := sandboxctl(t, t.TempDir(), "--project", projectRoot(t), "validate", "dev")
	if code != exitOK || !strings.Contains(out, "ok    stacks/Pulumi.dev.yaml") {
		t.Errorf("exit %d:\n%s%s", code, out, errOut)
	}
}

func TestPlanJSON(t *testing.T) {
	code, out, errOut := sandboxctl(t, projectRoot(t), "plan", "chemistry", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var plan struct {
		Stack     string
		Resources []struct {
			Type, Name, Parent string
			Inputs             map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if plan.Stack != "chemistry" {
		t.Errorf("stack %q", plan.Stack)
	}
	count := map[string]int{}
	for _, r := range plan.Resources {
		count[r.Type]++
		if r.Type == "aws:secretsmanager/secretVersion:SecretVersion" && r.Inputs["secretString"] != "[secret]" {
			t.Errorf("secret value not masked: %v", r.Inputs["secretString"])
		}
		if r.Type == "aws:ec2/vpc:Vpc" && r.Inputs["cidrBlock"] != "10.20.0.0/16" {
			t.Errorf("VPC cidrBlock %v", r.Inputs["cidrBlock"])
		}
	}
	for typ, n := range map[string]int{
		"aws:ec2/vpc:Vpc": 1, "aws:ec2/subnet:Subnet": 4, "aws:ec2/natGateway:NatGateway": 1,
		"aws:ec2/vpcEndpoint:VpcEndpoint": 2, "aws:ec2/flowLog:FlowLog": 1, "aws:kms/key:Key": 1,
		// The master key, and the AUTH token of the gateway's rate-limit cache.
		"aws:secretsmanager/secret:Secret": 2, "aws:elasticache/replicationGroup:ReplicationGroup": 1,
	} {
		if count[typ] != n {
			t.Errorf("%s: %d, want %d", typ, count[typ], n)
		}
	}
}

func TestPlanTextAndInvalidStack(t *testing.T) {
	code, out, _ := sandboxctl(t, projectRoot(t), "plan", "dev")
	if code != exitOK || !strings.Contains(out, "Plan for stack dev") || !strings.Contains(out, "Resources by type:") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	dir := tempProject(t, map[string]string{"bad": strings.Replace(stackFile("bad", "10.20.0.0/16"), "llama3.1:8b", "nope:1b", 1)})
	code, out, errOut := sandboxctl(t, dir, "plan", "bad")
	if code != exitInvalid || out != "" || !strings.Contains(errOut, `stacks/Pulumi.bad.yaml: pools.gpu.models[0]: unknown model "nope:1b"`) {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

func TestCheckEveryExampleStack(t *testing.T) {
	code, out, errOut := sandboxctl(t, projectRoot(t), "check")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	for _, s := range []string{"chemistry", "dev", "linguistics", "physics"} {
		if !strings.Contains(out, "ok    "+s+": ") {
			t.Errorf("no ok line for %s:\n%s", s, out)
		}
	}
	code, out, _ = sandboxctl(t, projectRoot(t), "check", "--list")
	if code != exitOK || !strings.Contains(out, "ollama-only-from-internal-alb") {
		t.Errorf("check --list: exit %d\n%s", code, out)
	}
	code, out, _ = sandboxctl(t, projectRoot(t), "check", "dev", "--format", "json")
	var results []struct {
		Stack    string
		Findings []any
	}
	if code != exitOK || json.Unmarshal([]byte(out), &results) != nil || len(results) != 1 || results[0].Stack != "dev" || results[0].Findings == nil {
		t.Errorf("check dev --format json: exit %d\n%s", code, out)
	}
}

// Help goes to stdout once; a flag error goes to stderr once, with the usage.
func TestHelpAndFlagErrorsArePrintedOnce(t *testing.T) {
	code, out, errOut := sandboxctl(t, projectRoot(t), "plan", "--help")
	if code != exitOK || strings.Count(out, "Usage:") != 1 || errOut != "" {
		t.Errorf("plan --help: exit %d, stdout %d usages, stderr %q", code, strings.Count(out, "Usage:"), errOut)
	}
	code, out, errOut = sandboxctl(t, projectRoot(t), "validate", "--colour")
	if code != exitUsage || out != "" || strings.Count(errOut, "Usage:") != 1 || strings.Count(errOut, "-colour") != 1 {
		t.Errorf("validate --colour: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// Every command's help spells its flags --name, as its usage line does, and its usage line names
// no flag that its list of flags lacks.
func TestHelpSpellsFlagsWithTwoDashes(t *testing.T) {
	singleDash := regexp.MustCompile(`(?m)(^|[\s\[(|,])-[a-zA-Z][a-zA-Z0-9-]+`)
	longFlag := regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	for name := range commands {
		code, help, _ := sandboxctl(t, projectRoot(t), name, "--help")
		if code != exitOK {
			t.Errorf("%s --help: exit %d", name, code)
			continue
		}
		if m := singleDash.FindString(help); m != "" {
			t.Errorf("%s --help spells a flag with one dash, %q:\n%s", name, strings.TrimSpace(m), help)
		}
		usageLine, _, _ := strings.Cut(help, "\n\n")
		_, listed, _ := strings.Cut(help, "\nFlags:\n")
		defined := map[string]bool{"project": true, "help": true}
		for _, m := range regexp.MustCompile(`(?m)^  --([a-z][a-z0-9-]*)`).FindAllStringSubmatch(listed, -1) {
			defined[m[1]] = true
		}
		for _, m := range longFlag.FindAllStringSubmatch(usageLine, -1) {
			if !defined[m[1]] {
				t.Errorf("%s: the usage line names --%s, which the help does not list", name, m[1])
			}
		}
	}
	_, top, _ := sandboxctl(t, projectRoot(t), "--help")
	if m := regexp.MustCompile(`(?m)(^|\s)-[a-zA-Z][a-zA-Z0-9-]+`).FindString(top); m != "" {
		t.Errorf("sandboxctl --help spells a flag with one dash, %q", strings.TrimSpace(m))
	}
}

// exit is the one place an error becomes an exit code, and says where it is printed.
func TestExitCodes(t *testing.T) {
	fs := flagSet(env{}, "demo", "demo [--n N]", "A demo command.")
	fs.Int("n", 0, "a `N`")
	cases := []struct {
		name           string
		err            error
		code           int
		stdout, stderr string
	}{
		{"success", nil, exitOK, "", ""},
		{"help", &flagError{fs: fs, err: flag.ErrHelp}, exitOK, "Usage: sandboxctl [--project DIR] demo [--n N]\n\nA demo command.\n\nFlags:\n  --n N\n    \ta N\n", ""},
		{"flag error", &flagError{fs: fs, err: errors.New("flag provided but not defined: -m")}, exitUsage, "",
			"sandboxctl demo: flag provided but not defined: -m\nUsage: sandboxctl [--project DIR] demo [--n N]\n\nA demo command.\n\nFlags:\n  --n N\n    \ta N\n"},
		{"usage error", usagef("want exactly one STACK (got %d)", 2), exitUsage, "", "sandboxctl demo: want exactly one STACK (got 2)\n"},
		{"wrapped usage error", fmt.Errorf("context: %w", usagef("no region")), exitUsage, "", "sandboxctl demo: context: no region\n"},
		{"stack file problems", config.Problems{{Source: "stacks/Pulumi.x.yaml", Path: "network.cidr", Message: "bad"}}, exitInvalid, "",
			"stacks/Pulumi.x.yaml: network.cidr: bad\n"},
		{"reported failure", errReported, exitInvalid, "", ""},
		{"needs attention", errAttention, exitAttention, "", ""},
		{"failed operation", errors.New("GetSecretValue: denied"), exitInvalid, "", "sandboxctl demo: GetSecretValue: denied\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := exit(env{stdout: &out, stderr: &errOut}, "demo", c.err)
			if code != c.code || out.String() != c.stdout || errOut.String() != c.stderr {
				t.Errorf("exit %d (want %d)\nstdout %q\n  want %q\nstderr %q\n  want %q", code, c.code, out.String(), c.stdout, errOut.String(), c.stderr)
			}
		})
	}

	// And through the command, one of each: 0 valid, 1 invalid, 2 usage.
	dir := tempProject(t, map[string]string{"good": stackFile("good", "10.20.0.0/16"),
		"bad": strings.Replace(stackFile("bad", "10.30.0.0/16"), "llama3.1:8b", "nope:1b", 1)})
	for _, c := range []struct {
		args []string
		code int
	}{{[]string{"validate", "good"}, exitOK}, {[]string{"validate", "bad"}, exitInvalid}, {[]string{"validate", "nosuch"}, exitUsage}} {
		if code, out, errOut := sandboxctl(t, dir, c.args...); code != c.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", c.args, code, c.code, out, errOut)
		}
	}
}
