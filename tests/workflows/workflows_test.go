// Package workflows checks the GitHub Actions workflows for what actionlint does not: the rules
// docs/ci.md promises of every workflow, which a new step or workflow could otherwise break
// without any run on GitHub showing it.
package workflows

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// workflow is the part of a workflow file the rules read.
type workflow struct {
	// On is the trigger: a name, a list of names or a mapping of names to settings.
	On          yaml.Node `yaml:"on"`
	Permissions yaml.Node `yaml:"permissions"`
	Defaults    struct {
		Run struct {
			Shell string `yaml:"shell"`
		} `yaml:"run"`
	} `yaml:"defaults"`
	Jobs map[string]job `yaml:"jobs"`
}

// job is the part of a job the rules read.
type job struct {
	Permissions map[string]string `yaml:"permissions"`
	Environment yaml.Node         `yaml:"environment"`
	Env         map[string]string `yaml:"env"`
	Steps       []step            `yaml:"steps"`
}

// step is the part of a step the rules read.
type step struct {
	Name  string            `yaml:"name"`
	Uses  string            `yaml:"uses"`
	With  map[string]string `yaml:"with"`
	Env   map[string]string `yaml:"env"`
	Run   string            `yaml:"run"`
	Shell string            `yaml:"shell"`
}

// triggers lists the events a workflow runs on.
func (w workflow) triggers() []string {
	switch w.On.Kind {
	case yaml.ScalarNode:
		return []string{w.On.Value}
	case yaml.SequenceNode:
		var out []string
		for _, n := range w.On.Content {
			out = append(out, n.Value)
		}
		return out
	case yaml.MappingNode:
		var out []string
		for i := 0; i < len(w.On.Content); i += 2 {
			out = append(out, w.On.Content[i].Value)
		}
		return out
	}
	return nil
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

// parse reads a workflow file for the rules.
func parse(t *testing.T, data []byte) workflow {
	t.Helper()
	var w workflow
	if err := yaml.Unmarshal(data, &w); err != nil {
		t.Fatal(err)
	}
	if len(w.triggers()) == 0 || len(w.Jobs) == 0 {
		t.Fatal("no trigger or no jobs read: the workflow's shape changed and the rules read nothing")
	}
	return w
}

// secretRef is a use of a repository or environment secret in an expression.
var secretRef = regexp.MustCompile(`\$\{\{[^}]*\bsecrets\.`)

// A pull_request run executes the pull request's own code (sandboxctl runs the program
// in-process, and the Makefile and tests are the branch's): anyone who can push a branch
// controls it. So it gets no secret, no OIDC token (no cloud role) and no environment.
func TestPullRequestCodeGetsNoSecrets(t *testing.T) {
	seen := 0
	for name, data := range workflows(t) {
		w := parse(t, data)
		if !slices.Contains(w.triggers(), "pull_request") {
			continue
		}
		seen++
		if secretRef.Match(data) {
			t.Errorf("%s runs on pull_request and references a secret", name)
		}
		for id, j := range w.Jobs {
			if j.Permissions["id-token"] == "write" {
				t.Errorf("%s: job %s runs on pull_request with id-token: write (a cloud role for the branch's code)", name, id)
			}
			if !j.Environment.IsZero() {
				t.Errorf("%s: job %s runs on pull_request in an environment (its secrets would reach the branch's code)", name, id)
			}
		}
	}
	if seen == 0 {
		t.Error("no workflow runs on pull_request: the offline checks of a pull request are gone")
	}
}

// A pull_request_target run has the secrets, so it must never run the pull request's code: it
// checks out only the base branch (no checkout `ref` or `repository`, no git fetch or checkout
// of other commits), every job waits for an environment's reviewers, and secrets are given to
// the steps that need them, never to a whole job.
func TestPullRequestTargetRunsNoPullRequestCode(t *testing.T) {
	seen := 0
	fetch := regexp.MustCompile(`\bgit\s+(fetch|checkout|switch|pull|worktree)\b|\bgh\s+pr\s+checkout\b|refs/pull/`)
	for name, data := range workflows(t) {
		w := parse(t, data)
		if !slices.Contains(w.triggers(), "pull_request_target") {
			continue
		}
		seen++
		for id, j := range w.Jobs {
			if j.Environment.IsZero() {
				t.Errorf("%s: job %s runs on pull_request_target without an environment whose reviewers approve it", name, id)
			}
			for k, v := range j.Env {
				if secretRef.MatchString(v) {
					t.Errorf("%s: job %s gives the secret %s to every step; give it to the step that needs it", name, id, k)
				}
			}
			for _, s := range j.Steps {
				if strings.HasPrefix(s.Uses, "actions/checkout@") && (s.With["ref"] != "" || s.With["repository"] != "") {
					t.Errorf("%s: job %s checks out ref %q of %q: only the base branch may be checked out", name, id, s.With["ref"], s.With["repository"])
				}
				if fetch.MatchString(s.Run) {
					t.Errorf("%s: job %s step %q fetches or checks out other commits: only the base branch's code may run", name, id, s.Name)
				}
			}
		}
	}
	if seen == 0 {
		t.Error("no workflow previews pull requests (pull_request_target): the reviewed preview is gone")
	}
}

// The Pulumi CLI comes from the module pins of tools/pulumi (`make bin/pulumi`, go.sum checked),
// never from an install script fetched and run unverified.
func TestNoInstallScripts(t *testing.T) {
	pipeToShell := regexp.MustCompile(`\b(curl|wget)\b[^\n|]*\|\s*(sudo\s+)?(ba|z)?sh\b`)
	engine := regexp.MustCompile(`\bsandboxctl\s+(preview|up|destroy|refresh)\b|(^|\s)pulumi\s`)
	for name, data := range workflows(t) {
		w := parse(t, data)
		for id, j := range w.Jobs {
			usesEngine, builds := false, false
			for _, s := range j.Steps {
				if pipeToShell.MatchString(s.Run) {
					t.Errorf("%s: job %s step %q pipes a download into a shell", name, id, s.Name)
				}
				usesEngine = usesEngine || engine.MatchString(s.Run)
				builds = builds || strings.Contains(s.Run, "make bin/pulumi")
			}
			if usesEngine && !builds {
				t.Errorf("%s: job %s runs the Pulumi engine without building the pinned CLI (make bin/pulumi)", name, id)
			}
		}
	}
}
