package main

import (
	"encoding/json"
	"fmt"
	"strings"

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
			"each rule's id, severity, rationale and matching Checkov, Trivy and Security Hub controls.\n"+
			"A stack waives a rule only in its own stack file (llm-sandbox:waivers, with a reason);\n"+
			"every waiver is printed on every run. Findings of severity error fail the run unless\n"+
			"waived; warnings never do. Each stack's line is followed by the VPC endpoints its nodes\n"+
			"use and the size of its mirror (artifacts.mirror). The stack file's own warnings (as\n"+
			"validate prints them) go to standard error. Exit 0 nothing fails, 1 a failing finding\n"+
			"or an invalid stack file (or waiver), 2 usage error.")
	format := formatFlag(fs)
	list := fs.Bool("list", false, "list the rules and exit")
	named, err := parseArgs(fs, args, format)
	if err != nil {
		return err
	}
	if *list {
		listRules(e, *format)
		return nil
	}
	sa, err := findStacks(e, projectFlag, named, true)
	if err != nil {
		return err
	}
	var results []checkResult
	for _, s := range sa.named {
		r, err := checkStack(e, sa.project, s)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	return writeCheck(e, *format, results)
}

// checkStack loads a stack file and its waivers, renders its plan and runs the rules over it.
func checkStack(e env, project, stack string) (checkResult, error) {
	spec, err := config.LoadChecked(project, stack)
	var waivers []config.Waiver
	if err == nil {
		waivers, err = config.LoadWaivers(project, stack, policy.RuleIDs())
	}
	if err != nil {
		return checkResult{}, asProblems(stack, err)
	}
	writeWarnings(e.stderr, spec)
	fmt.Fprintf(e.stderr, "checking %s...\n", stack)
	plan, err := program.PlanStack(spec, project)
	if err != nil {
		return checkResult{}, err
	}
	r := newCheckResult(stack, plan.Check(), waivers)
	r.Endpoints = []string{}
	for _, ep := range plan.Endpoints {
		r.Endpoints = append(r.Endpoints, ep.Service)
	}
	for _, a := range plan.Mirror {
		r.Mirror = append(r.Mirror, a.Key)
	}
	return r, nil
}

// checkResult is one stack's outcome.
type checkResult struct {
	Stack string `json:"stack"`
	// Waivers are every waiver of the stack file, whether or not a finding matched.
	Waivers  []config.Waiver  `json:"waivers"`
	Findings []policy.Finding `json:"findings"`
	// Failed says whether a finding fails the run: an error that is not waived.
	Failed bool `json:"failed"`
	// Endpoints are the services of the VPC endpoints the stack's nodes reach AWS through.
	Endpoints []string `json:"endpoints"`
	// Mirror are the keys of the objects the deploy puts into the artifacts bucket for the
	// nodes (artifacts.mirror), as far as known before fetching; none without a mirror.
	Mirror []string `json:"mirror,omitempty"`
}

func newCheckResult(stack string, findings []policy.Finding, waivers []config.Waiver) checkResult {
	reasons := map[string]string{}
	for _, w := range waivers {
		reasons[w.Rule] = w.Reason
	}
	findings = policy.Waive(findings, reasons)
	if findings == nil {
		findings = []policy.Finding{}
	}
	if waivers == nil {
		waivers = []config.Waiver{}
	}
	return checkResult{Stack: stack, Waivers: waivers, Findings: findings, Failed: policy.Failed(findings)}
}

// writeCheck prints the results; it returns errReported when any stack failed.
func writeCheck(e env, format string, results []checkResult) error {
	failed := false
	for _, r := range results {
		failed = failed || r.Failed
	}
	if format == "json" {
		out, _ := json.MarshalIndent(results, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
	} else {
		n := len(policy.Rules())
		for _, r := range results {
			for _, w := range r.Waivers {
				fmt.Fprintf(e.stdout, "waiver %s: %s: %s\n", r.Stack, w.Rule, w.Reason)
			}
			for _, f := range r.Findings {
				fmt.Fprintf(e.stdout, "%s: %s\n", r.Stack, f)
			}
			failing, warnings, waived := 0, 0, 0
			for _, f := range r.Findings {
				switch {
				case f.Fails():
					failing++
				case f.Waived != "":
					waived++
				default:
					warnings++
				}
			}
			needs := fmt.Sprintf("      %s nodes reach AWS through VPC endpoints %s; ", r.Stack, strings.Join(r.Endpoints, ", "))
			if len(r.Mirror) == 0 {
				needs += "no mirror (nodes download from the internet)"
			} else {
				needs += fmt.Sprintf("mirror of %d objects and their model blobs in the artifacts bucket (sandboxctl plan %s lists them)", len(r.Mirror), r.Stack)
			}
			if r.Failed {
				fmt.Fprintf(e.stdout, "FAIL  %s: %d failing findings\n%s\n", r.Stack, failing, needs)
				continue
			}
			fmt.Fprintf(e.stdout, "ok    %s: %d rules passed", r.Stack, n)
			if warnings+waived > 0 {
				fmt.Fprintf(e.stdout, " (%d warnings, %d waived findings)", warnings, waived)
			}
			fmt.Fprintln(e.stdout)
			fmt.Fprintln(e.stdout, needs)
		}
	}
	if failed {
		return errReported
	}
	return nil
}

// listRules prints every rule: id, severity, rationale and controls.
func listRules(e env, format string) {
	rules := policy.Rules()
	if format == "json" {
		for i := range rules {
			if rules[i].Controls == nil {
				rules[i].Controls = []string{}
			}
		}
		out, _ := json.MarshalIndent(rules, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
		return
	}
	for _, r := range rules {
		fmt.Fprintf(e.stdout, "%-34s %-7s %s\n", r.ID, r.Severity, r.Rationale)
		if len(r.Controls) > 0 {
			fmt.Fprintf(e.stdout, "%-34s %-7s controls: %s\n", "", "", strings.Join(r.Controls, ", "))
		}
	}
}
