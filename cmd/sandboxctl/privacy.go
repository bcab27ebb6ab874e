package main

import (
	"github.com/llm-sandbox/llm-sandbox/internal/privacy"
	"github.com/llm-sandbox/llm-sandbox/policy"
	"github.com/llm-sandbox/llm-sandbox/program"
)

func runPrivacy(e env, projectFlag string, args []string) int {
	return exit(e, "privacy", privacyReport(e, projectFlag, args))
}

func privacyReport(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "privacy", "privacy STACK [--format text|json]",
		"Generates STACK's privacy-impact report from its offline plan and the node configs in its\n"+
			"launch templates: which data (prompts and completions, API keys, request metadata,\n"+
			"models, node software, logs, usage records) passes where and is stored where, for how\n"+
			"long, encrypted with which key and readable by which IAM principals; which network hops\n"+
			"are plain HTTP; and the rendered settings that keep prompts out of every log and store,\n"+
			"with the policy rules behind each statement. text is Markdown; json is the same report.\n"+
			"Exit 0 no prompt can be stored and no policy error, 1 a setting lets prompts into a\n"+
			"log or store, an error finding (warnings are reported only), or an invalid stack\n"+
			"file, 2 usage error.")
	format := formatFlag(fs)
	project, spec, err := parseOneStack(e, fs, args, format, projectFlag)
	if err != nil {
		return err
	}
	plan, err := program.PlanStack(spec, project)
	if err != nil {
		return err
	}
	report, err := privacy.New(plan)
	if err != nil {
		return err
	}
	if *format == "json" {
		err = report.WriteJSON(e.stdout)
	} else {
		err = report.WriteMarkdown(e.stdout)
	}
	if err != nil {
		return err
	}
	if len(report.FailedSettings()) > 0 || policy.Failed(report.Findings) {
		return errReported
	}
	return nil
}
