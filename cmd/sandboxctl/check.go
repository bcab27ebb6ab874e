package main

import (
	"encoding/json"
	"fmt"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/policy"
	"github.com/llm-sandbox/llm-sandbox/program"
)

func runCheck(e env, projectFlag string, args []string) int {
	return exit(e, "check", check(e, projectFlag, args))
}

func check(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "check", "check [STACK...] [--format text|json] [--list]",
		"Renders each STACK offline (as plan does) and runs the security, privacy and reliability\n"+
			"rules of package policy over it. With no STACK, every stack is checked. --list prints\n"+
			"the rules. Exit 0 no findings, 1 findings or an invalid stack file, 2 usage error.")
	format := formatFlag(fs)
	list := fs.Bool("list", false, "list the rules and exit")
	named, err := parseArgs(fs, args, format)
	if err != nil {
		return err
	}
	if *list {
		for _, r := range policy.Rules() {
			fmt.Fprintf(e.stdout, "%-32s %s\n", r.ID, r.Summary)
		}
		return nil
	}
	sa, err := findStacks(e, projectFlag, named, true)
	if err != nil {
		return err
	}
	type result struct {
		Stack    string           `json:"stack"`
		Findings []policy.Finding `json:"findings"`
	}
	var results []result
	failed := false
	for _, s := range sa.named {
		spec, err := config.LoadChecked(sa.project, s)
		if err != nil {
			return asProblems(s, err)
		}
		fmt.Fprintf(e.stderr, "checking %s...\n", s)
		plan, err := program.PlanStack(spec, sa.project)
		if err != nil {
			return err
		}
		findings := plan.Check()
		if findings == nil {
			findings = []policy.Finding{}
		}
		failed = failed || len(findings) > 0
		results = append(results, result{Stack: s, Findings: findings})
	}
	if *format == "json" {
		out, _ := json.MarshalIndent(results, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
	} else {
		for _, r := range results {
			if len(r.Findings) == 0 {
				fmt.Fprintf(e.stdout, "ok    %s: %d rules passed\n", r.Stack, len(policy.Rules()))
			}
			for _, f := range r.Findings {
				fmt.Fprintf(e.stdout, "%s: %s\n", r.Stack, f)
			}
		}
	}
	if failed {
		return errReported
	}
	return nil
}
