package main

import (
	"fmt"

	"github.com/llm-sandbox/llm-sandbox/program"
)

func runPlan(e env, projectFlag string, args []string) int {
	fs := flagSet(e, "plan", "plan STACK [--format text|json]",
		"Renders what STACK would create by running the program under Pulumi's mocks, with canned\n"+
			"answers for the AWS look-ups (AZ names, AMI ids, account id): no cloud calls and no\n"+
			"credentials. text prints the resource tree and a count per type; json prints\n"+
			`{"stack", "resources": [{"type", "name", "parent", "inputs"}]} with secrets as "[secret]".`+"\n"+
			"Exit 0 rendered, 1 invalid stack file, 2 usage error.")
	format := formatFlag(fs)
	stacks, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(fs, e, err)
	}
	project, spec, code := loadOneStack(e, projectFlag, "plan", stacks, *format)
	if code != exitOK {
		return code
	}
	plan, err := program.PlanStack(spec, project)
	if err != nil {
		fmt.Fprintf(e.stderr, "sandboxctl plan: %v\n", err)
		return exitInvalid
	}
	if *format == "json" {
		err = plan.WriteJSON(e.stdout)
	} else {
		err = plan.WriteText(e.stdout)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "sandboxctl plan: %v\n", err)
		return exitInvalid
	}
	return exitOK
}
