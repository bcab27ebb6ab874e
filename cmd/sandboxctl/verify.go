package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/loadgen"
	"github.com/llm-sandbox/llm-sandbox/internal/verify"
)

// modelList is a repeatable flag that also takes comma-separated names.
type modelList []string

func (m *modelList) String() string { return strings.Join(*m, ",") }

func (m *modelList) Set(v string) error {
	for _, name := range strings.Split(v, ",") {
		if name = strings.TrimSpace(name); name != "" {
			*m = append(*m, name)
		}
	}
	return nil
}

func runVerify(e env, projectFlag string, args []string) int {
	return exit(e, "verify", verifyEndpoint(e, projectFlag, args))
}

func verifyEndpoint(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "verify", "verify STACK | --url URL [--key KEY] [--model M]... [--wait D] [--format text|json] [--timeout D]",
		"Checks a deployed endpoint as its clients use it:\n"+
			"  listing  GET /v1/models answers with the key and lists at least one model (and\n"+
			"           every --model)\n"+
			"  auth     a chat completion with a wrong key is refused with HTTP 401\n"+
			"  chat     per model: a short chat completion answers with text and a finish_reason\n"+
			"  stream   per model: a streamed completion sends text in chunks of one id, a\n"+
			"           finish_reason and ends with data: [DONE]; reports the time to first token\n"+
			"           and the total time\n"+
			"  embedding  per embedding model (the catalog says which), instead of chat and\n"+
			"           stream: two inputs get two vectors of one size\n"+
			"Every check goes through the official OpenAI Go SDK (openai-go), as a client's would.\n"+
			"With STACK, the endpoint is the stack output endpointUrl and the key is "+apiKeyEnv+"\n"+
			"(a team key: a gateway with a key registry refuses the master key) or, when that is\n"+
			"unset, the master key, read from the Secrets Manager secret its output\n"+
			"masterKeySecretArn names (`pulumi stack output` and the standard AWS credentials;\n"+
			"AWS_ENDPOINT_URL is honoured), which only a local gateway accepts. With --url, the key is\n"+
			"--key or, without it, the environment variable "+apiKeyEnv+" (which, unlike --key, does\n"+
			"not show in ps or the shell's history). The key is never printed.\n"+
			"Without --model every listed model is checked. With --wait, first waits up to D\n"+
			"for a deployment still coming up: it retries the listing and a chat (an embedding\n"+
			"for an embedding model) per model every 10s while they get no answer or HTTP 500,\n"+
			"502, 503 or 504, printing each try to stderr, and stops waiting at any other\n"+
			"answer; the checks then run either way.\n"+
			`text prints one line per check; json prints {"url", "ok", "listing", "auth",`+"\n"+
			`"models": [{"model", "ok", "listed", "chat", "stream" | "embedding"}]} (docs/verify-loadtest.md).`+"\n"+
			"Exit 0 every check passed, 1 a check failed, 2 usage error or no endpoint or key.")
	format := formatFlag(fs)
	timeout := fs.Duration("timeout", time.Minute, "bound on each request (`duration`)")
	wait := fs.Duration("wait", 0, "wait up to `D` for the endpoint to come up before checking (e.g. 10m right after a deploy); 0 checks at once")
	var models modelList
	fs.Var(&models, "model", "a `model` that must be listed and answer (repeatable, or comma-separated); default every listed model")
	ef := addEndpointFlags(fs)
	positional, err := parseArgs(fs, args, format)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive (got %s)", *timeout)
	}
	if *wait < 0 {
		return usagef("--wait must be 0 or more (got %s)", *wait)
	}
	ep, err := resolveEndpoint(e, projectFlag, positional, ef)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "verifying %s (from %s)\n", loadgen.BaseURL(ep.url), ep.source)

	c := loadgen.NewClient(ep.url, ep.key, 2)
	defer c.Close()
	if *wait > 0 {
		waitReady(e, c, models, *wait, *timeout)
	}
	report := verify.Run(context.Background(), c, verify.Options{Models: models, Timeout: *timeout})
	if *format == "json" {
		out, _ := json.MarshalIndent(report, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
	} else {
		writeVerifyText(e, report)
	}
	if !report.OK {
		return errReported
	}
	return nil
}

// waitReady waits for the endpoint to come up, telling stderr how it goes.
func waitReady(e env, c *loadgen.Client, models []string, within, timeout time.Duration) {
	fmt.Fprintf(e.stderr, "waiting up to %s for the endpoint to serve\n", within)
	r := verify.Wait(context.Background(), c, verify.WaitOptions{
		Within: within, Timeout: timeout, Models: models,
		Progress: func(msg string) { fmt.Fprintln(e.stderr, msg) },
	})
	switch {
	case r.Ready:
		fmt.Fprintf(e.stderr, "ready after %s (%d attempt(s))\n", r.Waited.Round(time.Second), r.Attempts)
	case r.Settled:
		fmt.Fprintf(e.stderr, "stopped waiting after %s: %s is an answer waiting does not change\n", r.Waited.Round(time.Second), r.Last)
	default:
		fmt.Fprintf(e.stderr, "not ready within %s (%d attempt(s)); last: %s\n", within, r.Attempts, r.Last)
	}
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

func writeVerifyText(e env, r verify.Report) {
	var b strings.Builder
	total, failed := 0, 0
	line := func(ok bool, name, detail string) {
		total++
		if !ok {
			failed++
		}
		fmt.Fprintf(&b, "%-5s %s: %s\n", okWord(ok), name, detail)
	}
	line(r.Listing.OK, "listing", r.Listing.Detail)
	line(r.Auth.OK, "auth", r.Auth.Detail)
	for _, m := range r.Models {
		if !m.Listed && r.Listing.Status == 200 {
			line(false, m.Model, "not listed by GET /v1/models")
		}
		if m.Chat != nil {
			line(m.Chat.OK, m.Model+" chat", m.Chat.Detail)
		}
		if m.Stream != nil {
			line(m.Stream.OK, m.Model+" stream", m.Stream.Detail)
		}
		if m.Embedding != nil {
			line(m.Embedding.OK, m.Model+" embedding", m.Embedding.Detail)
		}
	}
	if len(r.Models) == 0 {
		line(false, "models", "no model to check: the listing failed and no --model was given")
	}
	fmt.Fprintf(&b, "%s: %d check(s), %d ok, %d failed", r.URL, total, total-failed, failed)
	if r.OK {
		b.WriteString(": the endpoint serves\n")
	} else {
		b.WriteString("\n")
	}
	fmt.Fprint(e.stdout, b.String())
}

// Ensure modelList satisfies flag.Value.
var _ flag.Value = (*modelList)(nil)
