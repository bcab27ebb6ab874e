package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validStack = `config:
  aws:region: ca-central-1
  llm-sandbox:department: physics
  llm-sandbox:network:
    cidr: 10.30.0.0/20
  llm-sandbox:access:
    plainHttp: true
  llm-sandbox:pools:
    gpu:
      models: [llama3.1:8b]
`

// A misspelt provider key is unknown, and the region it was meant to set is still missing.
func TestMisspeltRegionIsUnknownAndMissing(t *testing.T) {
	values, err := StackFileValues([]byte(strings.Replace(validStack, "aws:region", "aws:regoin", 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("physics", "stacks/Pulumi.physics.yaml", values)
	for _, want := range []string{
		`stacks/Pulumi.physics.yaml: aws:regoin: unknown key "aws:regoin" (did you mean "aws:region"?)`,
		`stacks/Pulumi.physics.yaml: aws:region: required key is missing`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in:\n%v", want, err)
		}
	}
}

// The file-level problems of a stack file: each names the file, and the line where it applies.
func TestStackFileProblems(t *testing.T) {
	lines := strings.Split(validStack, "\n")
	badIndent := strings.Join(append(append([]string{}, lines[:10]...), "   minSize: 1", ""), "\n")
	for _, c := range []struct{ name, data, want string }{
		{"second document", validStack + "---\nconfig:\n  llm-sandbox:department: chemistry\n",
			"test.yaml: (file): line 11: a second YAML document starts here"},
		// yaml.v3 says line 1 here, where the enclosing mapping starts.
		{"bad indent", badIndent, "test.yaml: (file): not valid YAML: line 11: "},
		{"unclosed list", strings.Replace(validStack, "[llama3.1:8b]", "[llama3.1:8b", 1),
			"test.yaml: (file): not valid YAML: line 10: "},
		{"duplicate key", validStack + "  llm-sandbox:department: chemistry\n",
			"test.yaml: (file): not valid YAML: line 11: mapping key \"llm-sandbox:department\" already defined"},
		{"unknown top-level key", "confg:\n  aws:region: ca-central-1\n",
			`test.yaml: confg: unknown key "confg" (did you mean "config"?)`},
		{"not a mapping", "- config\n", "test.yaml: (file): line 1: must be a mapping with a config: key"},
		{"config not a mapping", "config: [a]\n", "test.yaml: config: must be a mapping of keys to values"},
	} {
		path := filepath.Join(t.TempDir(), "test.yaml")
		if err := os.WriteFile(path, []byte(c.data), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadStackFile(path)
		var ps Problems
		if !errors.As(err, &ps) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want Problems with %q", c.name, err, c.want)
		}
	}
	// A lone "---" at the end is no second document.
	if _, err := StackFileValues([]byte(validStack + "---\n")); err != nil {
		t.Errorf("trailing document marker: %v", err)
	}
}

// A flow list over several lines parses while it is open; the broken line is the one after
// the longest prefix that still parses, not the first prefix that does not.
func TestSyntaxErrorLineAfterMultiLineValue(t *testing.T) {
	data := "config:\n  a: [1,\n    2]\n  b: c\n   d: e\n"
	_, err := StackFileValues([]byte(data))
	if err == nil || !strings.Contains(err.Error(), "line 5: ") {
		t.Errorf("got %v, want line 5", err)
	}
}

// writeProject writes stack files into a temporary project and returns its directory.
func writeProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "stacks"), 0o755); err != nil {
		t.Fatal(err)
	}
	for stack, data := range files {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(StackFile(stack))), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A copied stack file clashes with its original: whichever sorts first, the file asked about is
// the one reported, and the message names the other.
func TestCopiedStackFileIsReportedOnItself(t *testing.T) {
	for _, copyName := range []string{"biology", "zoology"} {
		dir := writeProject(t, map[string]string{"physics": validStack, copyName: validStack})
		for asked, other := range map[string]string{copyName: "physics", "physics": copyName} {
			_, err := LoadChecked(dir, asked)
			var ps Problems
			if !errors.As(err, &ps) || len(ps) != 2 {
				t.Fatalf("LoadChecked(%s): got %v, want the department and range clashes", asked, err)
			}
			for _, p := range ps {
				if p.Source != StackFile(asked) || !strings.Contains(p.Message, StackFile(other)) {
					t.Errorf("LoadChecked(%s): %s; want it on %s, naming %s", asked, p, StackFile(asked), StackFile(other))
				}
			}
		}
	}
}

// A sibling that does not load stops nothing: it is invalid on its own.
func TestCheckSiblingsSkipsInvalidFiles(t *testing.T) {
	dir := writeProject(t, map[string]string{"physics": validStack, "broken": "config: [\n"})
	if _, err := LoadChecked(dir, "physics"); err != nil {
		t.Errorf("got %v", err)
	}
}

// A key given twice, also once qualified and once not, or inside a section, is refused with
// both lines.
func TestRepeatedKeys(t *testing.T) {
	for _, c := range []struct{ data, want string }{
		{validStack + "  department: chemistry\n", `line 11: mapping key "llm-sandbox:department" already defined at line 3`},
		{strings.Replace(validStack, "    cidr: 10.30.0.0/20\n", "    cidr: 10.30.0.0/20\n    cidr: 10.31.0.0/20\n", 1), `line 6: mapping key "cidr" already defined at line 5`},
	} {
		if _, err := StackFileValues([]byte(c.data)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}
