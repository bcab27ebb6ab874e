package orchestrate_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/orchestrate"
	"github.com/llm-sandbox/llm-sandbox/internal/orchestrate/orchestratetest"
)

// testTimeout bounds each engine test; a hung CLI fails the test instead of the whole run.
const testTimeout = 90 * time.Second

// fixture is a project, a backend and the CLI, ready to Run.
type fixture struct {
	bin     string
	backend orchestratetest.Backend
	dir     string
}

func newFixture(t *testing.T, stacks map[string]string) fixture {
	t.Helper()
	return fixture{
		bin:     orchestratetest.Bin(t),
		backend: orchestratetest.NewBackend(t),
		dir:     orchestratetest.Project(t, stacks),
	}
}

func (f fixture) targets(h orchestratetest.Hooks, stacks ...string) []orchestrate.Target {
	var ts []orchestrate.Target
	for _, s := range stacks {
		ts = append(ts, orchestrate.Target{
			Stack: s, ConfigFile: filepath.Join("stacks", "Pulumi."+s+".yaml"), Program: orchestratetest.Program(h),
		})
	}
	return ts
}

func (f fixture) run(t *testing.T, ctx context.Context, op orchestrate.Operation, parallel int,
	targets []orchestrate.Target, progress *orchestratetest.SyncBuffer,
) orchestrate.Report {
	t.Helper()
	report, err := orchestrate.Run(ctx, op, targets, orchestrate.Options{
		ProjectDir: f.dir, Parallel: parallel, Progress: progress, PulumiBin: f.bin, Env: f.backend.Env(),
	})
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	if len(report.Results) != len(targets) {
		t.Fatalf("%s: %d results for %d stacks", op, len(report.Results), len(targets))
	}
	return report
}

// wantResults checks each stack's status and changes.
func wantResults(t *testing.T, report orchestrate.Report, progress string, status orchestrate.Status,
	changes map[string]int, stacks ...string,
) {
	t.Helper()
	for _, s := range stacks {
		var found bool
		for _, r := range report.Results {
			if r.Stack != s {
				continue
			}
			found = true
			if r.Operation != report.Operation {
				t.Errorf("%s: operation %q, want %q", s, r.Operation, report.Operation)
			}
			if r.Status != status {
				t.Errorf("%s %s: %s (%s), want %s; progress:\n%s", report.Operation, s, r.Status, r.Error, status, progress)
			}
			if changes != nil && !reflect.DeepEqual(r.Changes, changes) {
				t.Errorf("%s %s: changes %v, want %v", report.Operation, s, r.Changes, changes)
			}
			if r.Duration <= 0 {
				t.Errorf("%s %s: no duration", report.Operation, s)
			}
		}
		if !found {
			t.Errorf("%s: no result for %s", report.Operation, s)
		}
	}
}

// Every line of the progress belongs to a stack, and every stack has lines, among them one of
// the engine's own that contains text.
func wantPrefixedProgress(t *testing.T, progress, text string, stacks ...string) {
	t.Helper()
	if progress == "" {
		t.Fatal("no progress output")
	}
	for _, line := range strings.Split(strings.TrimSuffix(progress, "\n"), "\n") {
		ok := false
		for _, s := range stacks {
			ok = ok || strings.HasPrefix(line, "["+s+"] ")
		}
		if !ok {
			t.Errorf("progress line without a stack prefix: %q", line)
		}
	}
	for _, s := range stacks {
		if !regexpLine(progress, "["+s+"] ", text) {
			t.Errorf("no line of %s's with %q in:\n%s", s, text, progress)
		}
	}
}

// regexpLine reports whether some line starts with prefix and contains text.
func regexpLine(out, prefix, text string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) && strings.Contains(line, text) {
			return true
		}
	}
	return false
}

// waitFor waits until out contains text, or timeout passes.
func waitFor(out *orchestratetest.SyncBuffer, text string, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(out.String(), text) {
			return
		}
	}
}

// maxGauge records how many programs ran at once. Its hooks hold each program mid-update until
// want programs have been running together (or a timeout passes), so that stacks overlap however
// slowly their CLIs start on a loaded machine.
type maxGauge struct {
	mu       sync.Mutex
	now, max int
	want     int
	reached  chan struct{}
}

func newMaxGauge(want int) *maxGauge {
	return &maxGauge{want: want, reached: make(chan struct{})}
}

func (g *maxGauge) hooks() orchestratetest.Hooks {
	return orchestratetest.Hooks{
		Started: func(string) {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.now++
			if g.now > g.max {
				g.max = g.now
				if g.max == g.want {
					close(g.reached)
				}
			}
		},
		Between: func(string) {
			select {
			case <-g.reached:
			case <-time.After(20 * time.Second):
			}
		},
		Done: func(string) {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.now--
		},
	}
}

func (g *maxGauge) peak() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.max
}

// Three stacks through their whole life on one backend, two at a time: up creates each one's
// resources with its own config, preview then finds nothing to change, refresh finds the state
// as it is, and destroy deletes everything.
func TestLifecycleOfSeveralStacksInParallel(t *testing.T) {
	stacks := []string{"chemistry", "linguistics", "physics"}
	cidrs := map[string]string{"chemistry": "10.20.0.0/16", "linguistics": "10.40.0.0/16", "physics": "10.30.0.0/16"}
	files := map[string]string{}
	for _, s := range stacks {
		files[s] = orchestratetest.StackYAML(s, cidrs[s], false)
	}
	f := newFixture(t, files)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	// up: two programs run at once (the first holds mid-update until the second has started),
	// never three.
	gauge := newMaxGauge(2)
	var progress orchestratetest.SyncBuffer
	report := f.run(t, ctx, orchestrate.Up, 2, f.targets(gauge.hooks(), stacks...), &progress)
	wantResults(t, report, progress.String(), orchestrate.Succeeded,
		map[string]int{"create": orchestratetest.Resources}, stacks...)
	wantPrefixedProgress(t, progress.String(), "+  llmsandbox:test:Department", stacks...)
	wantPrefixedProgress(t, progress.String(), "+ 4 created", stacks...)
	if !report.OK() {
		t.Error("report not OK after every stack succeeded")
	}
	if got := gauge.peak(); got != 2 {
		t.Errorf("at most %d programs ran at once, want 2 (--parallel 2, three stacks)", got)
	}
	// The config each program read is its own stack file's: a string and an object.
	for _, s := range stacks {
		out := f.backend.Outputs(t, f.bin, f.dir, s)
		if out["department"] != s || out["cidr"] != cidrs[s] {
			t.Errorf("%s outputs %v, want department %s and cidr %s from its stack file", s, out, s, cidrs[s])
		}
	}

	// preview after up: no changes.
	progress = orchestratetest.SyncBuffer{}
	report = f.run(t, ctx, orchestrate.Preview, 2, f.targets(orchestratetest.Hooks{}, stacks...), &progress)
	wantResults(t, report, progress.String(), orchestrate.Succeeded,
		map[string]int{"same": orchestratetest.Resources}, stacks...)
	wantPrefixedProgress(t, progress.String(), "4 unchanged", stacks...)

	// refresh: reads the state back, nothing changed.
	progress = orchestratetest.SyncBuffer{}
	report = f.run(t, ctx, orchestrate.Refresh, 2, f.targets(orchestratetest.Hooks{}, stacks...), &progress)
	wantResults(t, report, progress.String(), orchestrate.Succeeded,
		map[string]int{"same": orchestratetest.Resources}, stacks...)

	// A changed stack file shows in the next preview of that stack only.
	files["physics"] = orchestratetest.StackYAML("physics", "10.31.0.0/16", false)
	if err := os.WriteFile(filepath.Join(f.dir, "stacks", "Pulumi.physics.yaml"), []byte(files["physics"]), 0o644); err != nil {
		t.Fatal(err)
	}
	progress = orchestratetest.SyncBuffer{}
	report = f.run(t, ctx, orchestrate.Up, 2, f.targets(orchestratetest.Hooks{}, "physics"), &progress)
	wantResults(t, report, progress.String(), orchestrate.Succeeded, nil, "physics")
	if out := f.backend.Outputs(t, f.bin, f.dir, "physics"); out["cidr"] != "10.31.0.0/16" {
		t.Errorf("physics cidr %v after editing its stack file, want 10.31.0.0/16", out["cidr"])
	}

	// destroy: every resource deleted, no outputs left.
	progress = orchestratetest.SyncBuffer{}
	report = f.run(t, ctx, orchestrate.Destroy, 2, f.targets(orchestratetest.Hooks{}, stacks...), &progress)
	wantResults(t, report, progress.String(), orchestrate.Succeeded,
		map[string]int{"delete": orchestratetest.Resources}, stacks...)
	for _, s := range stacks {
		if out := f.backend.Outputs(t, f.bin, f.dir, s); len(out) != 0 {
			t.Errorf("%s still has outputs after destroy: %v", s, out)
		}
	}

	// The stack files were read, never rewritten with the config (a passphrase backend adds its
	// encryption salt when the stack is created, as `pulumi stack init` does).
	for _, s := range stacks {
		data, err := os.ReadFile(filepath.Join(f.dir, "stacks", "Pulumi."+s+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(withoutSalt(string(data)), "\n")
		if want := strings.TrimSuffix(files[s], "\n"); got != want {
			t.Errorf("stacks/Pulumi.%s.yaml changed:\n%s\nwant:\n%s", s, got, want)
		}
	}
}

func withoutSalt(file string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(file, "\n"), "\n") {
		if !strings.HasPrefix(l, "encryptionsalt:") {
			lines = append(lines, l)
		}
	}
	return lines
}

// A stack whose program fails fails alone: it is reported with the program's error while the
// others, still mid-update when it fails, run to the end.
func TestFailingStackDoesNotStopTheOthers(t *testing.T) {
	f := newFixture(t, map[string]string{
		"chemistry": orchestratetest.StackYAML("chemistry", "10.20.0.0/16", false),
		"broken":    orchestratetest.StackYAML("broken", "10.50.0.0/16", true),
		"physics":   orchestratetest.StackYAML("physics", "10.30.0.0/16", false),
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	// The healthy stacks hold mid-update until the broken one has failed.
	brokenDone := make(chan struct{})
	hooks := orchestratetest.Hooks{
		Between: func(stack string) {
			select {
			case <-brokenDone:
			case <-time.After(30 * time.Second):
			}
		},
		Done: func(stack string) {
			if stack == "broken" {
				close(brokenDone)
			}
		},
	}
	var progress orchestratetest.SyncBuffer
	report := f.run(t, ctx, orchestrate.Up, 3, f.targets(hooks, "broken", "chemistry", "physics"), &progress)
	wantResults(t, report, progress.String(), orchestrate.Succeeded,
		map[string]int{"create": orchestratetest.Resources}, "chemistry", "physics")
	wantResults(t, report, progress.String(), orchestrate.Failed, nil, "broken")
	if report.OK() {
		t.Error("report OK with a failed stack")
	}
	for _, r := range report.Results {
		if r.Stack == "broken" && !strings.Contains(r.Error, "failing as its stack file asks") {
			t.Errorf("broken's error %q does not carry the program's error", r.Error)
		}
	}
	if !regexpLine(progress.String(), "[broken] ", "failing as its stack file asks") {
		t.Errorf("the program's error is not in broken's progress:\n%s", progress.String())
	}
}

// An interrupt cancels the running stack through the engine's own cancellation, which saves the
// state and releases the lock: the stack's next up succeeds. Stacks still waiting for a slot
// are not started.
func TestInterruptCancelsCleanly(t *testing.T) {
	f := newFixture(t, map[string]string{
		"chemistry": orchestratetest.StackYAML("chemistry", "10.20.0.0/16", false),
		"physics":   orchestratetest.StackYAML("physics", "10.30.0.0/16", false),
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	runCtx, interrupt := context.WithCancel(ctx)
	defer interrupt()

	// chemistry interrupts the run from inside its update, then holds until the engine has
	// taken the cancellation, before the program registers anything more.
	var progress orchestratetest.SyncBuffer
	hooks := orchestratetest.Hooks{
		Between: func(stack string) {
			interrupt()
			waitFor(&progress, "^C received; cancelling", 20*time.Second)
		},
	}
	report := f.run(t, runCtx, orchestrate.Up, 1, f.targets(hooks, "chemistry", "physics"), &progress)
	wantResults(t, report, progress.String(), orchestrate.Cancelled, nil, "chemistry")
	if r := report.Results[1]; r.Stack != "physics" || r.Status != orchestrate.NotStarted {
		t.Errorf("physics: %+v, want not started", r)
	}
	if report.OK() {
		t.Error("report OK after an interrupt")
	}

	// The lock is free and the state consistent: up finishes the job.
	progress = orchestratetest.SyncBuffer{}
	report = f.run(t, ctx, orchestrate.Up, 1, f.targets(orchestratetest.Hooks{}, "chemistry"), &progress)
	wantResults(t, report, progress.String(), orchestrate.Succeeded, nil, "chemistry")
	if out := f.backend.Outputs(t, f.bin, f.dir, "chemistry"); out["department"] != "chemistry" {
		t.Errorf("chemistry outputs after the second up: %v", out)
	}
}

// destroy and refresh name an existing stack; they do not create one.
func TestDestroyUnknownStackFails(t *testing.T) {
	f := newFixture(t, map[string]string{"chemistry": orchestratetest.StackYAML("chemistry", "10.20.0.0/16", false)})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var progress orchestratetest.SyncBuffer
	report := f.run(t, ctx, orchestrate.Destroy, 1, f.targets(orchestratetest.Hooks{}, "chemistry"), &progress)
	wantResults(t, report, progress.String(), orchestrate.Failed, nil, "chemistry")
	if !strings.Contains(report.Results[0].Error, `no stack "chemistry" in the backend`) {
		t.Errorf("error %q does not say the stack does not exist", report.Results[0].Error)
	}
}
