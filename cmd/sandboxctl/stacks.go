package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/orchestrate"
	"github.com/llm-sandbox/llm-sandbox/program"
)

// programFor gives the program a stack runs: deployProgram for real, a provider-free one in the
// tests, which drive the same engine path.
type programFor func(project string, spec *config.Spec) pulumi.RunFunc

// deployProgram is the project's one program body, as main.go runs it under `pulumi up`, with
// the Spec that validation already loaded from the stack file. The engine gets the same file's
// config (orchestrate passes it with --config-file), so providers such as aws see the same
// aws:region.
func deployProgram(project string, spec *config.Spec) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error { return program.Run(ctx, spec, project) }
}

func runPreview(e env, project string, args []string) int {
	return runStacks(e, project, args, orchestrate.Preview, deployProgram)
}

func runUp(e env, project string, args []string) int {
	return runStacks(e, project, args, orchestrate.Up, deployProgram)
}

func runDestroy(e env, project string, args []string) int {
	return runStacks(e, project, args, orchestrate.Destroy, deployProgram)
}

func runRefresh(e env, project string, args []string) int {
	return runStacks(e, project, args, orchestrate.Refresh, deployProgram)
}

// stackOpHelp says what each operation does, for its --help.
var stackOpHelp = map[orchestrate.Operation]string{
	orchestrate.Preview: "Shows what `up` would change in each STACK, without changing anything.",
	orchestrate.Up:      "Creates or updates each STACK's resources to match its stack file.",
	orchestrate.Destroy: "Deletes every resource of each STACK (the stack and its history stay in the backend).\n" +
		"A stack whose gateway.deletionProtection is true (the default) is refused unless --force.",
	orchestrate.Refresh: "Reads each STACK's resources back from the cloud and updates the stack's state to match.",
}

const stackOpCommon = `
Runs the project's program inline with the Pulumi Automation API against the backend the
Pulumi CLI is logged in to (PULUMI_BACKEND_URL overrides it), with each stack's config read
from stacks/Pulumi.<stack>.yaml. The stack files are validated first, as "sandboxctl
validate" does; an invalid one stops the command before the engine runs. The Pulumi CLI
(v3.274.1, the version of the SDK) must be on PATH.

Stacks run --parallel at a time; each one's engine output is printed with a "[stack] "
prefix, then a summary table (stack, operation, result, changes, duration), or with
--format json only the summary as JSON on stdout (the output goes to stderr). One stack
failing does not stop the others. Ctrl-C cancels the stacks running the way "pulumi"
does (the operations in flight finish and the state is saved) and still prints the
summary; a second Ctrl-C stops them at once.

Exit 0 every stack succeeded, 1 a stack failed, was cancelled, was refused or is invalid,
2 usage error. docs/orchestration.md has the details.`

// runStacks is preview, up, destroy and refresh: validate, check deletion protection, run the
// engine over the stacks, print the summary.
func runStacks(e env, projectFlag string, args []string, op orchestrate.Operation, programOf programFor) int {
	return exit(e, string(op), stackOperation(e, projectFlag, args, op, programOf))
}

func stackOperation(e env, projectFlag string, args []string, op orchestrate.Operation, programOf programFor) error {
	name := string(op)
	synopsis := name + " [STACK... | --all] [--parallel N] [--format text|json]"
	if op == orchestrate.Destroy {
		synopsis = name + " [STACK... | --all] [--force] [--parallel N] [--format text|json]"
	}
	fs := flagSet(e, name, synopsis, stackOpHelp[op]+"\n"+stackOpCommon)
	all := fs.Bool("all", false, "every stack with a file in stacks/")
	parallel := fs.Int("parallel", orchestrate.DefaultParallel, "run at most `N` stacks at once")
	format := formatFlag(fs)
	var force *bool
	if op == orchestrate.Destroy {
		force = fs.Bool("force", false, "destroy stacks whose gateway.deletionProtection is true")
	}
	named, err := parseArgs(fs, args, format)
	if err != nil {
		return err
	}
	switch {
	case *all && len(named) > 0:
		return usagef("name stacks or pass --all, not both")
	case !*all && len(named) == 0:
		return usagef("name at least one STACK, or pass --all for every stack file")
	case *parallel < 1:
		return usagef("--parallel must be at least 1 (got %d)", *parallel)
	}
	sa, err := findStacks(e, projectFlag, named, *all)
	if err != nil {
		return err
	}
	project, known, stacks := sa.project, sa.all, dedupe(sa.named)

	// Validation first, exactly as `sandboxctl validate` (the cross-department checks
	// included): an invalid stack never reaches the engine.
	results, specs, valid := validateStacks(project, known, stacks)
	if !valid {
		fmt.Fprintf(e.stderr, "sandboxctl %s: invalid stack file(s); nothing was run:\n", name)
		writeValidateText(e.stderr, results)
		return errReported
	}
	writeResultWarnings(e.stderr, results)
	if op == orchestrate.Destroy {
		if err := checkDeletionProtection(e, stacks, specs, *force); err != nil {
			return err
		}
	}

	// Progress goes to stdout with text, to stderr with json so that stdout is one document.
	progress, summary := e.stdout, e.stdout
	if *format == "json" {
		progress = e.stderr
	}
	targets := make([]orchestrate.Target, 0, len(stacks))
	for _, s := range stacks {
		targets = append(targets, orchestrate.Target{
			Stack: s, ConfigFile: filepath.Join(project, config.StackFile(s)), Program: programOf(project, specs[s]),
		})
	}

	ctx, terminate, stop := interrupts(e, name)
	defer stop()
	report, err := orchestrate.Run(ctx, op, targets, orchestrate.Options{
		ProjectDir: project, Parallel: *parallel, Progress: progress, Terminate: terminate,
	})
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	if *format == "json" {
		err = report.WriteJSON(summary)
	} else {
		fmt.Fprintln(summary)
		err = report.WriteText(summary)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "sandboxctl %s: %v\n", name, err)
	}
	if !report.OK() {
		return errReported
	}
	return nil
}

// checkDeletionProtection refuses to destroy a stack whose load balancers are protected, naming
// the key to change; with force it only warns. It refuses before anything runs: a destroy of
// several stacks either goes ahead for all of them or for none.
func checkDeletionProtection(e env, stacks []string, specs map[string]*config.Spec, force bool) error {
	var protected []string
	for _, s := range stacks {
		if specs[s].Gateway.DeletionProtection {
			protected = append(protected, s)
		}
	}
	if len(protected) == 0 {
		return nil
	}
	if force {
		fmt.Fprintf(e.stderr, "sandboxctl destroy: --force: destroying %s despite %s:gateway.deletionProtection "+
			"true; AWS refuses to delete a load balancer whose protection is still on\n",
			strings.Join(protected, ", "), config.Namespace)
		return nil
	}
	for _, s := range protected {
		fmt.Fprintf(e.stderr, "sandboxctl destroy: %s: %s:gateway.deletionProtection is true in %s (true unless set); "+
			"set it to false and run `sandboxctl up %s` to lift the protection, then destroy, or pass --force\n",
			s, config.Namespace, config.StackFile(s), s)
	}
	return errors.New("nothing was destroyed")
}

// interrupts turns the first SIGINT or SIGTERM into cancelling ctx (the engines finish what is in
// flight) and the second into closing terminate (they stop at once). stop releases the signals.
func interrupts(e env, name string) (context.Context, <-chan struct{}, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	terminate := make(chan struct{})
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			case <-signals:
			}
			switch n {
			case 0:
				fmt.Fprintf(e.stderr, "sandboxctl %s: interrupted: cancelling the stacks running "+
					"(their operations in flight finish first); interrupt again to stop them at once\n", name)
				cancel()
			case 1:
				fmt.Fprintf(e.stderr, "sandboxctl %s: interrupted again: stopping the stacks at once\n", name)
				close(terminate)
				return
			}
		}
	}()
	return ctx, terminate, func() {
		signal.Stop(signals)
		close(done)
		cancel()
	}
}

// dedupe drops repeated stack names, keeping the first.
func dedupe(stacks []string) []string {
	var out []string
	for _, s := range stacks {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
