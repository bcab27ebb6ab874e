package main

import (
	"fmt"

	"github.com/llm-sandbox/llm-sandbox/internal/privacy"
	"github.com/llm-sandbox/llm-sandbox/program"
)

func runPrivacy(e env, projectFlag string, args []string) int {
	fs := flagSet(e, "privacy", "privacy STACK [--format text|json]",
		"Generates STACK's privacy-impact report from its offline plan and the node configs in its\n"+
			"launch templates: which data (prompts and completions, API keys, request metadata,\n"+
			"models, node software, logs, usage records) passes where and is stored where, for how\n"+
			"long, encrypted with which key and readable by which IAM principals; which network hops\n"+
			"are plain HTTP; and the rendered settings that keep prompts out of every log and store,\n"+
			"with the policy rules behind each statement. text is Markdown; json is the same report.\n"+
			"Exit 0 no prompt can be stored and no policy finding, 1 a setting lets prompts into a\n"+
			"log or store, a finding, or an invalid stack file, 2 usage error.")
	format := formatFlag(fs)
	stacks, err := parseFlags(fs, args)
	if err != nil {
		return flagExit(fs, e, err)
	}
	project, spec, code := loadOneStack(e, projectFlag, "privacy", stacks, *format)
	if code != exitOK {
		return code
	}
	plan, err := program.PlanStack(spec, project)
	if err != nil {
		fmt.Fprintf(e.stderr, "sandboxctl privacy: %v\n", err)
		return exitInvalid
	}
	report, err := privacy.New(plan)
	if err != nil {
		fmt.Fprintf(e.stderr, "sandboxctl privacy: %v\n", err)
		return exitInvalid
	}
	if *format == "json" {
		err = report.WriteJSON(e.stdout)
	} else {
		err = report.WriteMarkdown(e.stdout)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "sandboxctl privacy: %v\n", err)
		return exitInvalid
	}
	if len(report.FailedSettings()) > 0 || len(report.Findings) > 0 {
		return exitInvalid
	}
	return exitOK
}
