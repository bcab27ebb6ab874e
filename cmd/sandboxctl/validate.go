package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/policy"
	"github.com/llm-sandbox/llm-sandbox/program"
)

// stackResult is one stack's validation, as --format json prints it.
type stackResult struct {
	Stack    string          `json:"stack"`
	File     string          `json:"file"`
	Valid    bool            `json:"valid"`
	Problems []problemRecord `json:"problems"`
	// Warnings are the Spec's warnings (config.Spec.Warnings): never invalid.
	Warnings []problemRecord `json:"warnings"`
}

type problemRecord struct {
	File    string `json:"file"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

func runValidate(e env, projectFlag string, args []string) int {
	return exit(e, "validate", validate(e, projectFlag, args))
}

func validate(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "validate", "validate [STACK...] [--format text|json]",
		"Checks stack files: every key, default and rule of the department Spec, then the rules\n"+
			"across departments (a department deployed twice, overlapping VPC ranges). With no STACK,\n"+
			"every stacks/Pulumi.<stack>.yaml is checked. Warnings (a gateway too small for the pools'\n"+
			"maximum output, a burstable gateway type) go to standard error as\n"+
			"\"warning: <file>: <key>: <message>\" and never change the exit status.\n"+
			"Exit 0 valid, 1 invalid, 2 usage error.")
	format := formatFlag(fs)
	sa, err := parseStacks(e, fs, args, format, projectFlag, true)
	if err != nil {
		return err
	}

	results, _, valid := validateStacks(sa.project, sa.all, sa.named)
	if *format == "json" {
		out, _ := json.MarshalIndent(struct {
			Valid  bool          `json:"valid"`
			Stacks []stackResult `json:"stacks"`
		}{valid, results}, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
	} else {
		writeValidateText(e.stdout, results)
	}
	writeResultWarnings(e.stderr, results)
	if !valid {
		return errReported
	}
	return nil
}

// validateStacks validates the named stacks as validate does: every stack file in all is
// loaded, named or not, so that the checks across departments see them all. It returns each
// named stack's result, the Spec of every file that loads, and whether every named stack is
// valid.
func validateStacks(project string, all, stacks []string) ([]stackResult, map[string]*config.Spec, bool) {
	problems := map[string]config.Problems{}
	specs := map[string]*config.Spec{}
	var loaded []*config.Spec
	for _, s := range all {
		spec, err := config.Load(project, s)
		if err != nil {
			problems[config.StackFile(s)] = asProblems(s, err)
			continue
		}
		// Waivers change no resource, so the Spec does not carry them; check reads them, and
		// validate refuses a waiver of an unknown rule or without a reason first.
		if _, err := config.LoadWaivers(project, s, policy.RuleIDs()); err != nil {
			problems[config.StackFile(s)] = asProblems(s, err)
			continue
		}
		specs[s] = spec
		loaded = append(loaded, spec)
	}
	set := config.CheckSet(loaded)

	results := make([]stackResult, 0, len(stacks))
	valid := true
	for _, s := range stacks {
		file := config.StackFile(s)
		ps := problems[file]
		// A clash between two files is on both of them (CheckSet), named or not.
		for _, p := range set {
			if p.Source == file {
				ps = append(ps, p)
			}
		}
		r := stackResult{Stack: s, File: file, Valid: len(ps) == 0, Problems: records(ps), Warnings: []problemRecord{}}
		if spec, ok := specs[s]; ok {
			r.Warnings = records(spec.Warnings)
		}
		valid = valid && r.Valid
		results = append(results, r)
	}
	return results, specs, valid
}

// records turns problems (or warnings) into what --format json prints; never nil.
func records(ps config.Problems) []problemRecord {
	out := []problemRecord{}
	for _, p := range ps {
		out = append(out, problemRecord{File: p.Source, Path: p.Path, Message: p.Message})
	}
	return out
}

// writeResultWarnings prints the warnings of validated stacks on w (standard error), one a line.
func writeResultWarnings(w io.Writer, results []stackResult) {
	for _, r := range results {
		for _, p := range r.Warnings {
			fmt.Fprintf(w, "warning: %s: %s: %s\n", p.File, p.Path, p.Message)
		}
	}
}

// writeWarnings prints a Spec's warnings on w (standard error), one a line, as validate does.
func writeWarnings(w io.Writer, spec *config.Spec) {
	for _, p := range spec.Warnings {
		fmt.Fprintf(w, "warning: %s\n", p)
	}
}

func writeValidateText(w io.Writer, results []stackResult) {
	var b strings.Builder
	invalid, count := 0, 0
	for _, r := range results {
		if r.Valid {
			fmt.Fprintf(&b, "ok    %s\n", r.File)
			continue
		}
		invalid++
		for _, p := range r.Problems {
			count++
			fmt.Fprintf(&b, "%s: %s: %s\n", p.File, p.Path, p.Message)
		}
	}
	if invalid == 0 {
		fmt.Fprintf(&b, "%d stack file(s) valid\n", len(results))
	} else {
		fmt.Fprintf(&b, "%d of %d stack file(s) invalid, %d problem(s)\n", invalid, len(results), count)
	}
	fmt.Fprint(w, b.String())
}

// asProblems turns a load error into problems for stack s (a non-Problems error becomes one).
func asProblems(s string, err error) config.Problems {
	var ps config.Problems
	if errors.As(err, &ps) {
		return ps
	}
	return config.Problems{{Source: config.StackFile(s), Path: "(file)", Message: err.Error()}}
}

// stackArgs is what a command over stacks works on once its preamble has run.
type stackArgs struct {
	project string   // the project directory
	all     []string // every stack with a file in stacks/
	named   []string // the STACK arguments (every stack when the command defaults to all of them)
}

// parseStacks is the preamble of a command over stacks: it parses fs over args and checks
// --format (parseArgs), then finds the project and its stacks (findStacks). With no STACK
// named, defaultAll means every stack.
func parseStacks(e env, fs *flag.FlagSet, args []string, format *string, projectFlag string, defaultAll bool) (stackArgs, error) {
	named, err := parseArgs(fs, args, format)
	if err != nil {
		return stackArgs{}, err
	}
	return findStacks(e, projectFlag, named, defaultAll)
}

// findStacks finds the project and its stack files, and checks that each stack in named has
// one. With none named, defaultAll means every stack.
func findStacks(e env, projectFlag string, named []string, defaultAll bool) (stackArgs, error) {
	project, err := program.FindProject(e.cwd, projectFlag)
	if err != nil {
		return stackArgs{}, &usageError{msg: err.Error()}
	}
	all, err := config.Stacks(project)
	if err != nil {
		return stackArgs{}, &usageError{msg: err.Error()}
	}
	if len(all) == 0 {
		return stackArgs{}, usagef("no stack files in %s/stacks (want Pulumi.<stack>.yaml)", project)
	}
	if len(named) == 0 && defaultAll {
		named = all
	}
	for _, s := range named {
		if !slices.Contains(all, s) {
			return stackArgs{}, usagef("unknown stack %q: no %s (stacks: %s)", s, config.StackFile(s), strings.Join(all, ", "))
		}
	}
	return stackArgs{project: project, all: all, named: named}, nil
}

// parseOneStack is the preamble of a command that takes exactly one STACK: parseStacks, then
// the stack's Spec loaded (its problems, as validate prints them, when it does not load).
func parseOneStack(e env, fs *flag.FlagSet, args []string, format *string, projectFlag string) (string, *config.Spec, error) {
	named, err := parseArgs(fs, args, format)
	if err != nil {
		return "", nil, err
	}
	if len(named) != 1 {
		return "", nil, usagef("want exactly one STACK (got %d)", len(named))
	}
	sa, err := findStacks(e, projectFlag, named, false)
	if err != nil {
		return "", nil, err
	}
	spec, err := config.LoadChecked(sa.project, named[0])
	if err != nil {
		return "", nil, asProblems(named[0], err)
	}
	return sa.project, spec, nil
}
