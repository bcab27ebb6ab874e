// Package workflows checks the GitHub Actions workflows for what actionlint does not: the rules
// docs/ci.md promises of every workflow, which a new step or workflow could otherwise break
// without any run on GitHub showing it.
package workflows

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// workflow is the part of a workflow file the rules read.
type workflow struct {
	Permissions yaml.Node `yaml:"permissions"`
	Defaults    struct {
		Run struct {
			Shell string `yaml:"shell"`
		} `yaml:"run"`
	} `yaml:"defaults"`
	Jobs map[string]struct {
		Steps []struct {
			Name  string `yaml:"name"`
			Uses  string `yaml:"uses"`
			Run   string `yaml:"run"`
			Shell string `yaml:"shell"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// pinned is an action reference by full commit SHA, e.g. actions/checkout@<40 hex>.
var pinned = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$`)

func workflows(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../../.github/workflows/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflows found: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = data
	}
	return out
}

func TestWorkflowRules(t *testing.T) {
	for name, data := range workflows(t) {
		t.Run(name, func(t *testing.T) {
			var w workflow
			if err := yaml.Unmarshal(data, &w); err != nil {
				t.Fatal(err)
			}
			// Without an explicit shell a run step is `bash -e {0}`: no pipefail, so
			// `sandboxctl verify | tee` would pass when verify fails.
			if w.Defaults.Run.Shell != "bash" {
				t.Errorf("defaults.run.shell is %q, want bash (which runs steps with -eo pipefail)", w.Defaults.Run.Shell)
			}
			// Jobs ask for what they need; the workflow grants nothing by default.
			if w.Permissions.Kind != yaml.MappingNode || len(w.Permissions.Content) != 0 {
				t.Errorf("top-level permissions must be {} (each job names its own)")
			}
			steps := 0
			for job, j := range w.Jobs {
				for i, s := range j.Steps {
					steps++
					where := job + " step " + s.Name
					if s.Name == "" {
						where = job + " step #" + strconv.Itoa(i+1)
					}
					if s.Uses != "" && !pinned.MatchString(s.Uses) {
						t.Errorf("%s: uses %q, want an action pinned by its full commit SHA", where, s.Uses)
					}
					if s.Run != "" && s.Shell != "" && s.Shell != "bash" {
						t.Errorf("%s: shell %q overrides bash -eo pipefail", where, s.Shell)
					}
					// A pipe's left side must not be cut off early: under pipefail,
					// `... | head` fails when the writer gets SIGPIPE.
					if strings.Contains(s.Run, "| head") {
						t.Errorf("%s: pipes into head, which fails the step under pipefail when the writer is cut off", where)
					}
				}
			}
			if steps == 0 {
				t.Error("no steps read: the workflow's shape changed and this test reads nothing")
			}
		})
	}
}

// Every `uses:` line carries the version its SHA is, as docs/ci.md lists them.
func TestPinnedActionsNameTheirVersion(t *testing.T) {
	line := regexp.MustCompile(`(?m)^\s*(?:- )?uses: (\S+)(.*)$`)
	for name, data := range workflows(t) {
		for _, m := range line.FindAllStringSubmatch(string(data), -1) {
			if !regexp.MustCompile(`^ # v\d+\.\d+\.\d+$`).MatchString(m[2]) {
				t.Errorf("%s: uses %s without a `# vX.Y.Z` comment naming the pinned version", name, m[1])
			}
		}
	}
}
