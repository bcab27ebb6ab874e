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
			"waived; warnings never do. The stack file's own warnings (as validate prints them) go to\n"+
			"standard error. Exit 0 nothing fails, 1 a failing finding or an invalid\n"+
			"stack file (or waiver), 2 usage error.")
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
	return newCheckResult(stack, plan.Check(), waivers), nil
}

// checkResult is one stack's outcome.
type checkResult struct {
	Stack string `json:"stack"`
	// Waivers are every waiver of the stack file, whether or not a finding matched.
	Waivers  []config.Waiver  `json:"waivers"`
	Findings []policy.Finding `json:"findings"`
	// Failed says whether a finding fails the run: an error that is not waived.
	Failed bool `json:"failed"`
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
			if r.Failed {
				fmt.Fprintf(e.stdout, "FAIL  %s: %d failing findings\n", r.Stack, failing)
				continue
			}
			fmt.Fprintf(e.stdout, "ok    %s: %d rules passed", r.Stack, n)
			if warnings+waived > 0 {
				fmt.Fprintf(e.stdout, " (%d warnings, %d waived findings)", warnings, waived)
			}
			fmt.Fprintln(e.stdout)
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
