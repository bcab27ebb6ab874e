// Command sandboxctl is the operator and CI command of llm-sandbox: it validates department stack
// files, renders what a stack would create and checks it against the project's policy rules
// with no cloud account needed, checks an AWS account before a deploy (preflight), deploys and
// destroys stacks in parallel through the Automation API, verifies and load-tests a deployed
// endpoint, and writes ephemeral copies of stacks for CI.
//
// Exit codes: 0 success, 1 the stacks are invalid (or the command's check failed), 2 usage
// error (unknown command, flag or stack; no project found), 3 status found an alarm in ALARM
// or a group with no healthy node while it should serve.
package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
)

const usage = `sandboxctl: validate, plan, check, deploy and verify llm-sandbox department stacks.

Usage:
  sandboxctl [--project DIR] <command> [arguments]

Commands:
  validate [STACK...]   check stack files (all of stacks/ by default), including
                        checks across departments (duplicates, overlapping CIDRs)
  plan STACK            render what STACK would create, offline under mocks
  check [STACK...]      run the security, privacy and reliability rules over the
                        offline plan of each stack (all by default); --list shows them
  cost STACK            STACK's monthly cost from its offline plan and a dated price table
  preflight STACK       check, read-only against AWS, that the account and region can
                        take STACK: quotas, instance offerings, AMIs, certificate, AZs
  privacy STACK         STACK's privacy-impact report from its offline plan (Markdown, JSON)
  verify STACK          check a deployed endpoint: models listed, a chat and a streamed
                        completion per model, a wrong key refused (or --url, with the
                        key in SANDBOX_API_KEY or --key)
  loadtest STACK        drive --users concurrent streaming users and judge tokens/s per
                        user against a target (or --url, as for verify)
  status STACK          the deployed STACK at a glance: its dashboard's figures over
                        --since, nodes and targets now, alarms (ALARM first); --watch
  preview STACK...      show what up would change in each STACK (--all: every stack),
                        with the Pulumi engine, --parallel N stacks at a time (2)
  up STACK...           create or update each STACK's resources (--all: every stack)
  destroy STACK...      delete each STACK's resources (--all); refuses a stack with
                        gateway.deletionProtection true unless --force
  refresh STACK...      read each STACK's resources back into its state (--all)
  ephemeral TEMPLATE --name NAME
                        write stacks/Pulumi.<NAME>.yaml, an ephemeral copy of TEMPLATE
                        for CI (own CIDR, TTL tags; public in a Route 53 zone with
                        --hosted-zone-id, --domain and --allow-cidr)
  local STACK           run STACK's serving path on this machine (one node per pool and
                        a gateway, real Ollama and LiteLLM) on 127.0.0.1; --tiny serves
                        tiny random-weight models, for machines without a GPU or network
  keys SUBCOMMAND STACK
                        issue, list, show, revoke or rotate per-person API keys of
                        STACK's teams in its key registry, with AWS credentials;
                        usage: requests, tokens, errors and 429s per team and key id
  pin ollama VERSION | model NAME... | wheelhouse
                        record the SHA-256 of what nodes download (the Ollama release,
                        a model's manifest, the LiteLLM wheelhouse) in versions/, for
                        review (needs internet access)
  version               the sandboxctl build, its Go release and the pinned Ollama and
                        LiteLLM releases (also --version)

Global flags:
  --project DIR         the project directory (default: the nearest parent of the
                        working directory that holds Pulumi.yaml)
  -h, --help            show help; "sandboxctl <command> --help" for a command
  --version             the same as "sandboxctl version" (as the first argument)

Exit codes: 0 success, 1 invalid stacks or a failed check or operation, 2 usage error,
3 status: an alarm in ALARM or a group with no healthy node while it should serve.
`

// env is what a command may touch: its output streams and the working directory.
type env struct {
	stdout, stderr io.Writer
	cwd            string
}

// command is one subcommand.
type command struct {
	summary string
	run     func(e env, project string, args []string) int
}

var commands = map[string]command{
	"validate":  {"check stack files", runValidate},
	"plan":      {"render a stack offline", runPlan},
	"check":     {"run the policy rules over stacks' offline plans", runCheck},
	"cost":      {"estimate a stack's monthly cost from its offline plan", runCost},
	"preflight": {"check an AWS account and region can take a stack", runPreflight},
	"privacy":   {"generate a stack's privacy-impact report from its offline plan", runPrivacy},
	"verify":    {"check a deployed endpoint answers as its clients need", runVerify},
	"loadtest":  {"load a deployed endpoint with concurrent streaming users", runLoadtest},
	"preview":   {"show what up would change in stacks", runPreview},
	"up":        {"deploy stacks", runUp},
	"destroy":   {"delete stacks' resources", runDestroy},
	"refresh":   {"read stacks' resources back into their state", runRefresh},
	"ephemeral": {"write an ephemeral copy of a stack file for CI", runEphemeral},
	"pin":       {"record the SHA-256 of what nodes download in versions/", runPin},
	"version":   {"print the sandboxctl build and the pinned Ollama and LiteLLM releases", runVersion},
	"local":     {"run a stack's serving path on this machine", runLocal},
	"keys":      {"issue, list, show, revoke and rotate the department's per-person API keys", runKeys},
	"status":    {"show a deployed stack's dashboard figures, nodes and alarms", runStatus},
}

func main() {
	cwd, err := os.Getwd()
	e := env{stdout: os.Stdout, stderr: os.Stderr, cwd: cwd}
	if err != nil {
		os.Exit(exit(e, "", usagef("%v", err)))
	}
	os.Exit(run(e, os.Args[1:]))
}

// run is the whole command without the process around it, so tests can drive it.
func run(e env, args []string) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		return runVersion(e, "", args[1:])
	}
	global := flag.NewFlagSet("sandboxctl", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	project := global.String("project", "", "project directory")
	help := global.Bool("help", false, "show help")
	global.BoolVar(help, "h", false, "show help")
	if err := global.Parse(args); err != nil {
		return exit(e, "", usagef("%v\n\n%s", err, strings.TrimSuffix(usage, "\n")))
	}
	rest := global.Args()
	if *help || len(rest) == 0 || rest[0] == "help" {
		if len(rest) > 1 && rest[0] == "help" {
			return run(e, append([]string{rest[1], "--help"}, rest[2:]...))
		}
		fmt.Fprint(e.stdout, usage)
		if len(rest) == 0 && !*help {
			return exit(e, "", usagef("want a command (commands above)"))
		}
		return exitOK
	}
	cmd, ok := commands[rest[0]]
	if !ok {
		return exit(e, "", usagef("unknown command %q (commands: %s)", rest[0], strings.Join(slices.Sorted(maps.Keys(commands)), ", ")))
	}
	return cmd.run(e, *project, rest[1:])
}

// parseArgs parses a command's flags wherever they stand among its arguments, checks --format
// when the command has one (format is nil otherwise), and returns the positional arguments.
// -h/--help ends it with a flagError wrapping flag.ErrHelp, which exit prints as the help.
func parseArgs(fs *flag.FlagSet, args []string, format *string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, &flagError{fs: fs, err: err}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if format != nil && *format != "text" && *format != "json" {
		return nil, usagef("--format must be text or json (got %q)", *format)
	}
	return positional, nil
}

// flagSet makes a command's flag set whose help and errors go to stderr in the same shape.
func flagSet(e env, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("sandboxctl "+name, flag.ContinueOnError)
	// The flag package prints its errors and the usage itself while parsing; exit prints them
	// once, where they belong (help on stdout, errors on stderr).
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sandboxctl [--project DIR] %s\n\n%s\n", synopsis, description)
		printFlags(fs.Output(), fs)
	}
	return fs
}

// printFlags lists fs's flags under "Flags:" the way the usage lines spell them, --name: the
// flag package's PrintDefaults spells them -name. The layout is PrintDefaults' otherwise.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		arg, help := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if arg != "" {
			head += " " + arg
		}
		fmt.Fprintf(w, "%s\n    \t%s", head, strings.ReplaceAll(help, "\n", "\n    \t"))
		if d := defaultText(f); d != "" {
			fmt.Fprintf(w, " (default %s)", d)
		}
		fmt.Fprintln(w)
	})
}

// defaultText is a flag's default as help shows it: nothing for a zero value, a string quoted.
func defaultText(f *flag.Flag) string {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return ""
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if _, isString := g.Get().(string); isString {
			return strconv.Quote(f.DefValue)
		}
	}
	return f.DefValue
}

// formatFlag adds --format, the output format of a command that has a JSON one.
func formatFlag(fs *flag.FlagSet) *string {
	return fs.String("format", "text", "output `format`: text or json")
}
