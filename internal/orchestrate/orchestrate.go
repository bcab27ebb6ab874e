// Package orchestrate runs one Pulumi operation (preview, up, destroy or refresh) over several
// stacks of the project with the Automation API: each stack's program runs inline, in this
// process, against the backend the user is logged in to, several stacks at a time, with each
// stack's engine output prefixed by its name and a result per stack at the end.
//
// The program is a parameter, so that sandboxctl runs the project's program body and the tests
// run a small one that needs no cloud provider, through the same engine.
package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optrefresh"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Operation is an engine operation.
type Operation string

// The operations. Preview shows what up would change; the others change the stack.
const (
	Preview Operation = "preview"
	Up      Operation = "up"
	Destroy Operation = "destroy"
	Refresh Operation = "refresh"
)

// Operations lists every Operation.
func Operations() []Operation { return []Operation{Preview, Up, Destroy, Refresh} }

// Status is how a stack's operation ended.
type Status string

// The statuses.
const (
	// Succeeded: the engine finished the operation.
	Succeeded Status = "succeeded"
	// Failed: the operation, or getting the stack ready for it, failed.
	Failed Status = "failed"
	// Cancelled: interrupted while running; the engine finished the steps in flight and saved
	// the stack's state.
	Cancelled Status = "cancelled"
	// NotStarted: interrupted while waiting for a --parallel slot; the stack was not touched.
	NotStarted Status = "not started"
)

// DefaultParallel is how many stacks run at once unless told otherwise. Two, because every
// running stack is one Pulumi CLI with its own AWS provider plugin (several hundred MB each) and
// the inline program building the node agent (a go build), which is what the two cores of the CI
// machine take without the builds starving the engines; because the departments usually share
// one AWS account, whose API request rates are per account and region, and more concurrent
// updates mean more throttling and retries; and because a fault common to every stack (a quota,
// an expired credential) then fails two stacks, not all of them.
const DefaultParallel = 2

// Target is one stack to run.
type Target struct {
	// Stack is the stack's name, as in stacks/Pulumi.<stack>.yaml.
	Stack string
	// ConfigFile is the stack file the engine reads the stack's config (and a passphrase
	// backend's encryption salt) from; relative to Options.ProjectDir unless absolute.
	ConfigFile string
	// Program is the stack's program, run inline.
	Program pulumi.RunFunc
}

// Options configure a Run.
type Options struct {
	// ProjectDir is the project directory (Pulumi.yaml): the workspace's working directory, so
	// the project name, backend settings and stackConfigDir are the project's own.
	ProjectDir string
	// Parallel is how many stacks run at once; 0 means DefaultParallel.
	Parallel int
	// Progress receives every stack's engine output, one "[stack] " prefixed line at a time.
	// Nil discards it.
	Progress io.Writer
	// PulumiBin is the Pulumi CLI; empty means `pulumi` on PATH.
	PulumiBin string
	// Env is added to the CLI's environment (after the process's own), e.g. PULUMI_BACKEND_URL.
	Env map[string]string
	// Terminate, when closed after ctx is done, asks the CLIs still running to stop at once
	// instead of finishing the steps in flight (a second Ctrl-C).
	Terminate <-chan struct{}
}

// Result is how one stack's operation went.
type Result struct {
	Stack     string    `json:"stack"`
	Operation Operation `json:"operation"`
	Status    Status    `json:"result"`
	// Changes counts the stack's resources by what the operation did (or, for preview, would
	// do) to them: create, update, replace, delete, same, ...
	Changes  map[string]int `json:"changes"`
	Duration time.Duration  `json:"-"`
	// Error says why the operation failed, from the engine's error diagnostics when there are
	// any; the full output is in the prefixed progress.
	Error string `json:"error,omitempty"`
}

// Report is the result of every stack, in the order the targets were given.
type Report struct {
	Operation Operation `json:"operation"`
	Results   []Result  `json:"stacks"`
}

// OK reports whether every stack succeeded.
func (r Report) OK() bool {
	for _, res := range r.Results {
		if res.Status != Succeeded {
			return false
		}
	}
	return true
}

// Run runs op over targets, at most opts.Parallel at a time, and returns every stack's result
// once all have ended. A stack's failure does not stop the others: each runs under its own
// context. When ctx is done (an interrupt), the stacks running are cancelled cleanly (see
// cliCommand) and those still waiting never start; Run still returns every result.
func Run(ctx context.Context, op Operation, targets []Target, opts Options) (Report, error) {
	if !slices.Contains(Operations(), op) {
		return Report{}, fmt.Errorf("unknown operation %q", op)
	}
	if opts.ProjectDir == "" {
		return Report{}, errors.New("no project directory")
	}
	parallel := opts.Parallel
	if parallel == 0 {
		parallel = DefaultParallel
	}
	if parallel < 1 {
		return Report{}, fmt.Errorf("parallel must be at least 1 (got %d)", parallel)
	}
	cli, err := newCLICommand(ctx, opts.PulumiBin, opts.Terminate)
	if err != nil {
		return Report{}, err
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	r := &runner{op: op, opts: opts, cli: cli, progress: &lockedWriter{w: progress}}

	report := Report{Operation: op, Results: make([]Result, len(targets))}
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		// Start in the order given; a cancelled run starts nothing more.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			report.Results[i] = Result{Stack: t.Stack, Operation: op, Status: NotStarted, Changes: map[string]int{}}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			report.Results[i] = r.run(ctx, t)
		}()
	}
	wg.Wait()
	return report, nil
}

// runner holds what the stacks of one Run share.
type runner struct {
	op       Operation
	opts     Options
	cli      *cliCommand
	progress io.Writer
	// selectMu serialises stack creation and selection. `pulumi stack init` and `stack select`
	// rewrite the project's workspace file (~/.pulumi/workspaces/<project>-<hash>-workspace.json,
	// one per project directory, holding the "current" stack) with no lock, and `stack init`
	// on a passphrase backend writes the encryption salt into the stack file; two at once can
	// leave either half-written. The operations themselves name their stack with --stack and
	// touch neither, so they run in parallel.
	selectMu sync.Mutex
}

// run runs the operation on one stack.
func (r *runner) run(parent context.Context, t Target) Result {
	// Its own context: another stack's failure never cancels this one; only the parent (an
	// interrupt) does.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	start := time.Now()
	res := Result{Stack: t.Stack, Operation: r.op, Changes: map[string]int{}}
	out := newPrefixWriter(r.progress, "["+t.Stack+"] ")
	defer out.Flush()

	stack, err := r.stack(ctx, t)
	var log *eventLog
	if err == nil {
		log = newEventLog()
		var changes map[string]int
		changes, err = r.operate(ctx, stack, r.configFile(t), out, log.ch)
		log.wait()
		res.Changes = log.changes()
		if err == nil && len(changes) > 0 {
			res.Changes = changes
		}
	}
	res.Duration = time.Since(start)
	switch {
	case err == nil:
		res.Status = Succeeded
	case parent.Err() != nil:
		res.Status = Cancelled
		res.Error = "interrupted"
	default:
		res.Status = Failed
		res.Error = errorSummary(err, log)
		fmt.Fprintf(out, "error: %s\n", res.Error)
	}
	return res
}

func (r *runner) configFile(t Target) string {
	if filepath.IsAbs(t.ConfigFile) {
		return t.ConfigFile
	}
	return filepath.Join(r.opts.ProjectDir, t.ConfigFile)
}

// stack makes the stack's workspace and selects the stack, creating it for preview and up.
func (r *runner) stack(ctx context.Context, t Target) (auto.Stack, error) {
	if t.Program == nil {
		return auto.Stack{}, errors.New("no program")
	}
	if _, err := os.Stat(r.configFile(t)); err != nil {
		return auto.Stack{}, fmt.Errorf("stack file: %w", err)
	}
	env := map[string]string{
		// The CLI is pinned; checking for a newer one is a network call per command.
		"PULUMI_SKIP_UPDATE_CHECK": "true",
	}
	for k, v := range r.opts.Env {
		env[k] = v
	}
	// No Project option: the workspace reads the project's own Pulumi.yaml and never rewrites it.
	ws, err := auto.NewLocalWorkspace(ctx, auto.WorkDir(r.opts.ProjectDir), auto.Program(t.Program),
		auto.Pulumi(r.cli), auto.EnvVars(env))
	if err != nil {
		return auto.Stack{}, err
	}
	r.selectMu.Lock()
	defer r.selectMu.Unlock()
	if ctx.Err() != nil {
		return auto.Stack{}, ctx.Err()
	}
	switch r.op {
	case Preview, Up:
		return auto.UpsertStack(ctx, t.Stack, ws)
	default:
		// Destroying or refreshing a stack that does not exist is a mistake worth reporting,
		// not a reason to create it.
		s, err := auto.SelectStack(ctx, t.Stack, ws)
		if err != nil {
			return s, fmt.Errorf("no stack %q in the backend (`sandboxctl up %s` creates it): %w", t.Stack, t.Stack, err)
		}
		return s, nil
	}
}

// operate runs the operation. It returns the change counts the result reports, when the
// operation succeeded.
//
// The stack's config reaches the engine as --config-file stacks/Pulumi.<stack>.yaml, read-only.
// Not SetAllConfig: auto's LocalWorkspace ignores stackConfigDir in its own StackSettings and
// SaveStackSettings (pulumi#10305), but the CLI it runs honours it, so `pulumi config set-all` in
// the project directory writes into the department's checked-in stack file; and with objects
// passed as JSON strings (Path false) it stores them as strings, which Pulumi.yaml's declared
// `type: object` then rejects ("must be of type 'object'"; both seen with the pinned CLI). Nor a
// Pulumi.<stack>.yaml written where the workspace looks (the project root): a second copy of
// each department's config, free to drift from the first.
func (r *runner) operate(ctx context.Context, s auto.Stack, configFile string, out io.Writer,
	evs chan events.EngineEvent,
) (map[string]int, error) {
	switch r.op {
	case Preview:
		res, err := s.Preview(ctx, optpreview.ConfigFile(configFile), optpreview.Color("never"),
			optpreview.ProgressStreams(out), optpreview.ErrorProgressStreams(out), optpreview.EventStreams(evs))
		return opCounts(res.ChangeSummary), err
	case Up:
		res, err := s.Up(ctx, optup.ConfigFile(configFile), optup.Color("never"),
			optup.ProgressStreams(out), optup.ErrorProgressStreams(out), optup.EventStreams(evs))
		return summaryCounts(res.Summary), err
	case Destroy:
		res, err := s.Destroy(ctx, optdestroy.ConfigFile(configFile), optdestroy.Color("never"),
			optdestroy.ProgressStreams(out), optdestroy.ErrorProgressStreams(out), optdestroy.EventStreams(evs))
		return summaryCounts(res.Summary), err
	default:
		res, err := s.Refresh(ctx, optrefresh.ConfigFile(configFile), optrefresh.Color("never"),
			optrefresh.ProgressStreams(out), optrefresh.ErrorProgressStreams(out), optrefresh.EventStreams(evs))
		return summaryCounts(res.Summary), err
	}
}

func opCounts(m map[apitype.OpType]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v != 0 {
			out[string(k)] = v
		}
	}
	return out
}

func summaryCounts(s auto.UpdateSummary) map[string]int {
	out := map[string]int{}
	if s.ResourceChanges != nil {
		for k, v := range *s.ResourceChanges {
			if v != 0 {
				out[k] = v
			}
		}
	}
	return out
}

// eventLog keeps what the result needs from a stack's engine events: the summary (change counts,
// also when the operation failed) and the error diagnostics.
type eventLog struct {
	ch   chan events.EngineEvent
	done chan struct{}

	mu      sync.Mutex
	summary map[string]int
	errs    []string
}

// eventGrace bounds the wait for the end of the event stream after the CLI exits. auto closes the
// channel when the CLI closes its stream, which a CLI that failed before opening one never does.
const eventGrace = 2 * time.Second

func newEventLog() *eventLog {
	l := &eventLog{ch: make(chan events.EngineEvent), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for ev := range l.ch {
			l.record(ev)
		}
	}()
	return l
}

func (l *eventLog) record(ev events.EngineEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case ev.SummaryEvent != nil:
		l.summary = opCounts(ev.SummaryEvent.ResourceChanges)
	case ev.DiagnosticEvent != nil && ev.DiagnosticEvent.Severity == "error":
		msg := strings.TrimSpace(ansi.ReplaceAllString(ev.DiagnosticEvent.Message, ""))
		if msg != "" && !slices.Contains(l.errs, msg) {
			l.errs = append(l.errs, msg)
		}
	}
}

func (l *eventLog) wait() {
	select {
	case <-l.done:
	case <-time.After(eventGrace):
	}
}

func (l *eventLog) changes() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.summary {
		out[k] = v
	}
	return out
}

func (l *eventLog) errors() []string {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// errorSummary says in a line or two why a stack failed: the engine's error diagnostics when it
// reported any, else the first line of the error (auto's errors carry the CLI's whole output,
// which the progress stream has already shown).
func errorSummary(err error, log *eventLog) string {
	if auto.IsConcurrentUpdateError(err) {
		return "another update holds the stack's lock; wait for it, or `pulumi cancel` it if it is dead"
	}
	if errs := log.errors(); len(errs) > 0 {
		for i, e := range errs {
			errs[i] = oneLine(e)
		}
		return strings.Join(errs, "; ")
	}
	first, _, _ := strings.Cut(strings.TrimSpace(err.Error()), "\n")
	return first
}

// oneLine joins a multi-line message, such as the Go SDK's "1 error occurred:\n\t* ...", into one
// line for the summary.
func oneLine(msg string) string {
	fields := strings.Fields(strings.ReplaceAll(msg, "\n\t* ", " "))
	return strings.Join(fields, " ")
}

// ChangeKinds orders change kinds for display: what the operation does first, "same" last.
func ChangeKinds(changes map[string]int) []string {
	rank := map[string]int{"create": 0, "update": 1, "replace": 2, "delete": 3, "same": 9}
	kinds := make([]string, 0, len(changes))
	for k := range changes {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		ri, ok := rank[kinds[i]]
		if !ok {
			ri = 5
		}
		rj, ok := rank[kinds[j]]
		if !ok {
			rj = 5
		}
		if ri != rj {
			return ri < rj
		}
		return kinds[i] < kinds[j]
	})
	return kinds
}
