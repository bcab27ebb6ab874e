package main

import (
	"github.com/llm-sandbox/llm-sandbox/program"
)

func runPlan(e env, projectFlag string, args []string) int {
	return exit(e, "plan", plan(e, projectFlag, args))
}

func plan(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "plan", "plan STACK [--format text|json]",
		"Renders what STACK would create by running the program under Pulumi's mocks, with canned\n"+
			"answers for the AWS look-ups (AZ names, AMI ids, account id): no cloud calls and no\n"+
			"credentials. text prints the resource tree, a count per type, the VPC endpoints the\n"+
			"nodes reach AWS through, the mirror's objects (artifacts.mirror) and the vCPU quotas;\n"+
			`json prints {"stack", "resources": [{"type", "name", "parent", "inputs"}], "endpoints",`+"\n"+
			`"mirror"} with secrets as "[secret]".`+"\n"+
			"The stack file's warnings (as validate prints them) go to standard error.\n"+
			"Exit 0 rendered, 1 invalid stack file, 2 usage error.")
	format := formatFlag(fs)
	project, spec, err := parseOneStack(e, fs, args, format, projectFlag)
	if err != nil {
		return err
	}
	writeWarnings(e.stderr, spec)
	p, err := program.PlanStack(spec, project)
	if err != nil {
		return err
	}
	if *format == "json" {
		return p.WriteJSON(e.stdout)
	}
	return p.WriteText(e.stdout)
}
