package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/program"
)

// stackResult is one stack's validation, as --format json prints it.
type stackResult struct {
	Stack    string          `json:"stack"`
	File     string          `json:"file"`
	Valid    bool            `json:"valid"`
	Problems []problemRecord `json:"problems"`
}

type problemRecord struct {
	File    string `json:"file"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

func runValidate(e env, projectFlag string, args []string) int {
	fs := flagSet(e, "validate", "validate [STACK...] [--format text|json]",
		"Checks stack files: every key, default and rule of the department Spec, then the rules\n"+
			"across departments (a department deployed twice, overlapping VPC ranges). With no STACK,\n"+
			"every stacks/Pulumi.<stack>.yaml is checked. Exit 0 valid, 1 invalid, 2 usage error.")
	format := formatFlag(fs)
	stacks, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(fs, e, err)
	}
	if code := checkFormat(e, "validate", *format); code != exitOK {
		return code
	}
	project, all, code := projectStacks(e, projectFlag, "validate")
	if code != exitOK {
		return code
	}
	if len(stacks) == 0 {
		stacks = all
	}
	if code := checkKnown(e, "validate", stacks, all); code != exitOK {
		return code
	}

	results, _, valid := validateStacks(project, all, stacks)
	if *format == "json" {
		out, _ := json.MarshalIndent(struct {
			Valid  bool          `json:"valid"`
			Stacks []stackResult `json:"stacks"`
		}{valid, results}, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
	} else {
		writeValidateText(e.stdout, results)
	}
	if !valid {
		return exitInvalid
	}
	return exitOK
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
		specs[s] = spec
		loaded = append(loaded, spec)
	}
	set := config.CheckSet(loaded)

	results := make([]stackResult, 0, len(stacks))
	valid := true
	for _, s := range stacks {
		file := config.StackFile(s)
		ps := problems[file]
		// A clash between two files is shown with either of them, named or not.
		for _, p := range set {
			if p.Concerns(file) {
				ps = append(ps, p)
			}
		}
		r := stackResult{Stack: s, File: file, Valid: len(ps) == 0, Problems: []problemRecord{}}
		for _, p := range ps {
			r.Problems = append(r.Problems, problemRecord{File: p.Source, Path: p.Path, Message: p.Message})
		}
		valid = valid && r.Valid
		results = append(results, r)
	}
	return results, specs, valid
}

func writeValidateText(w io.Writer, results []stackResult) {
	var b strings.Builder
	invalid, count := 0, 0
	printed := map[problemRecord]bool{}
	for _, r := range results {
		if r.Valid {
			fmt.Fprintf(&b, "ok    %s\n", r.File)
			continue
		}
		invalid++
		for _, p := range r.Problems {
			// A clash between two files belongs to both; print it once.
			if printed[p] {
				continue
			}
			printed[p] = true
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

// projectStacks finds the project and its stacks, printing why not on failure.
func projectStacks(e env, projectFlag, cmd string) (string, []string, int) {
	project, err := program.FindProject(e.cwd, projectFlag)
	if err != nil {
		fmt.Fprintf(e.stderr, "sandboxctl %s: %v\n", cmd, err)
		return "", nil, exitUsage
	}
	all, err := config.Stacks(project)
	if err != nil {
		fmt.Fprintf(e.stderr, "sandboxctl %s: %v\n", cmd, err)
		return "", nil, exitUsage
	}
	if len(all) == 0 {
		fmt.Fprintf(e.stderr, "sandboxctl %s: no stack files in %s/stacks (want Pulumi.<stack>.yaml)\n", cmd, project)
		return "", nil, exitUsage
	}
	return project, all, exitOK
}

// checkKnown reports stacks that have no stack file.
func checkKnown(e env, cmd string, stacks, all []string) int {
	for _, s := range stacks {
		if !slices.Contains(all, s) {
			fmt.Fprintf(e.stderr, "sandboxctl %s: unknown stack %q: no %s (stacks: %s)\n",
				cmd, s, config.StackFile(s), strings.Join(all, ", "))
			return exitUsage
		}
	}
	return exitOK
}

// loadOneStack is the preamble of a command that takes exactly one STACK and a --format: it
// checks the arguments, finds the project and loads the stack's Spec, printing why not and
// returning the exit code when it cannot.
func loadOneStack(e env, projectFlag, cmd string, stacks []string, format string) (string, *config.Spec, int) {
	if len(stacks) != 1 {
		fmt.Fprintf(e.stderr, "sandboxctl %s: want exactly one STACK (got %d)\n", cmd, len(stacks))
		return "", nil, exitUsage
	}
	if code := checkFormat(e, cmd, format); code != exitOK {
		return "", nil, code
	}
	project, all, code := projectStacks(e, projectFlag, cmd)
	if code != exitOK {
		return "", nil, code
	}
	if code := checkKnown(e, cmd, stacks, all); code != exitOK {
		return "", nil, code
	}
	spec, err := config.Load(project, stacks[0])
	if err != nil {
		for _, p := range asProblems(stacks[0], err) {
			fmt.Fprintln(e.stderr, p)
		}
		return "", nil, exitInvalid
	}
	return project, spec, exitOK
}
