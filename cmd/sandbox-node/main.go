// Command sandbox-node is the llm-sandbox node agent. Cloud-init starts it on every boot of a
// pool or gateway node; it reads the node config (/etc/llm-sandbox/node.json, no secrets),
// installs and configures the node's role (Ollama on a pool node, LiteLLM on a gateway node),
// proves the node is ready (GPU, models loaded and resident; LiteLLM's /health/liveliness) and
// completes the Auto Scaling launch lifecycle action: CONTINUE, or ABANDON so a broken node never
// takes traffic. The work is done by package node; this is the thin command around it.
//
// Exit codes: 0 ready and CONTINUE sent (or no lifecycle action pending: a reboot), 1
// bootstrap failed and ABANDON sent or attempted, 2 usage error or an unreadable or invalid
// config (ABANDON still attempted when the hook's name can be read).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Exit codes cloud-init, systemd and tests rely on.
const (
	exitReady  = 0
	exitFailed = 1
	exitUsage  = 2
)

// version is set at build time: -ldflags "-X main.version=<version>".
var version = "dev"

// defaultConsole is the EC2 serial console, which `aws ec2 get-console-output` reads.
const defaultConsole = "/dev/ttyS0"

const usage = `sandbox-node: the llm-sandbox node agent.

Usage:
  sandbox-node bootstrap [--config PATH] [--root DIR] [--no-systemd] [--console PATH]
  sandbox-node serve [--config PATH] [--root DIR]
  sandbox-node version
  sandbox-node --help

Commands:
  bootstrap   install, configure and verify this node's role (ollama or litellm), then
              complete the Auto Scaling launch lifecycle action (CONTINUE, or
              ABANDON on any failure); safe to run again on a ready node
  serve       run while the node serves (systemd unit sandbox-node-serve.service,
              written and started by bootstrap): on a pool node the accounting
              proxy in front of Ollama; on every node the drain watcher, which on
              termination or a spot notice refuses new requests, waits for those
              in flight (at most the deregistration delay) and completes the
              terminating lifecycle action with CONTINUE
  version     print the agent's version and the releases it pins: the LiteLLM a
              gateway node installs (from the hash-locked requirements built into
              the agent) and the Ollama release the program pins (a pool node
              installs the release its node config names)

Exit codes: 0 ready (CONTINUE sent, or no lifecycle action pending), 1 bootstrap
failed (ABANDON sent or attempted), 2 usage error or unreadable/invalid config.
"sandbox-node bootstrap --help" lists the bootstrap flags.
`

const bootstrapUsage = `Usage: sandbox-node bootstrap [flags]

Bootstrap this node from its node config. Role ollama: gpu, install, user,
configure, start, models, preload, resident, lifecycle. Role litellm: install,
user, secret, configure, start, lifecycle. Each step is logged as
"step <name>: start|ok|failed: <reason>" to stderr (the journal) and the console.

Flags:
  --config PATH   the node config (default ` + node.ConfigPath + `)
  --root DIR      install everything under DIR instead of / (tests); no system
                  user is created, no package installed, a --no-systemd
                  server listens on 127.0.0.1, and an Ollama release below the
                  0.35.0 floor is accepted with a warning (tests build older ones)
  --no-systemd    start the server (Ollama or LiteLLM) as a detached process (own
                  session and process group, log in
                  <root>/var/log/llm-sandbox/<ollama|litellm>.log, pid in
                  <root>/run/llm-sandbox/<ollama|litellm>.pid) and leave it
                  running; the unit and its files are still written
  --console PATH  mirror the step log to PATH (default ` + defaultConsole + ` when
                  writable; "none" turns the mirror off)
  -h, --help      show this help

Exit codes: 0 ready, 1 bootstrap failed, 2 usage error or invalid config.
`

// env is what the command may touch; tests swap the streams and tune the agent (fast
// retries) without touching the command line a node uses.
type env struct {
	stdout, stderr io.Writer
	tune           func(*node.Options)
	tuneServe      func(*node.ServeOptions)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, env{stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run is the whole command without the process around it, so tests can drive it.
func run(ctx context.Context, e env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(e.stdout, usage)
		return exitReady
	case "version", "--version":
		printVersion(e.stdout)
		return exitReady
	case "bootstrap":
		return runBootstrap(ctx, e, args[1:])
	case "serve":
		return runServe(ctx, e, args[1:])
	default:
		fmt.Fprintf(e.stderr, "sandbox-node: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}

func runBootstrap(ctx context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", node.ConfigPath, "node config")
	root := fs.String("root", "", "install root")
	noSystemd := fs.Bool("no-systemd", false, "start the server without systemd")
	consolePath := fs.String("console", "", "console to mirror the log to")
	if code, ok := parseFlags(e, fs, args, bootstrapUsage); !ok {
		return code
	}

	console, closeConsole := openConsole(*consolePath, e.stderr)
	defer closeConsole()
	log := node.NewLogger(e.stderr, console)
	log.Printf("sandbox-node %s: bootstrap from %s", version, *configPath)

	opts := node.Options{Root: *root, NoSystemd: *noSystemd, Log: log}
	if e.tune != nil {
		e.tune(&opts)
	}

	cfg, err := node.LoadConfig(*configPath, opts)
	if err != nil {
		log.Printf("config: %v", err)
		abandonInvalidConfig(ctx, log, *configPath, opts)
		return exitUsage
	}
	agent, err := node.New(ctx, cfg, opts)
	if err != nil {
		// Only AWS configuration can fail here, so no completer exists to ABANDON with;
		// the hook's heartbeat timeout and default result (ABANDON) take over.
		log.Printf("bootstrap failed: %v", err)
		return exitFailed
	}
	if err := agent.Bootstrap(ctx); err != nil {
		log.Printf("bootstrap failed: %v", err)
		return exitFailed
	}
	return exitReady
}

const serveUsage = `Usage: sandbox-node serve [flags]

Run until stopped (SIGTERM). With ollama.backendPort in the node config, listen on
ollama.port and proxy to Ollama on 127.0.0.1:backendPort (with litellm.backendPort:
on litellm.port, to LiteLLM), counting the requests in flight, and publish that count
to CloudWatch every 60 s (LLMSandbox/InFlightRequests, Pool=gateway on a gateway
node; on a GPU pool also GPUUtilization and GPUMemoryUsed from nvidia-smi; see
docs/node-agent.md). Every 5 s read the instance metadata: autoscaling/target-lifecycle-state
and spot/instance-action. On "Terminated" or a spot notice, drain: answer every new
request (the health check too) 503 with Connection: close, wait for the requests in
flight, at most lifecycle.drainSeconds (for a spot notice, at most until 10 s before
EC2's time), then complete lifecycle.terminateHook with CONTINUE once Auto Scaling
holds the instance on it.

Flags:
  --config PATH   the node config (default ` + node.ConfigPath + `)
  --root DIR      tests: listen on 127.0.0.1 only
  --poll DURATION how often to read the instance metadata (default 5s, as AWS
                  recommends for the spot notice; tests poll faster)
  --metrics-interval DURATION
                  tests only (needs --root): publish every DURATION instead of 60s
  -h, --help      show this help

Exit codes: 0 stopped, 1 failed (cannot listen, no AWS configuration), 2 usage
error or unreadable/invalid config.
`

func runServe(ctx context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", node.ConfigPath, "node config")
	root := fs.String("root", "", "test root")
	every := fs.Duration("poll", node.DefaultDrainPoll, "metadata poll interval")
	metricsEvery := fs.Duration("metrics-interval", 0, "tests: metrics publish interval")
	if code, ok := parseFlags(e, fs, args, serveUsage); !ok {
		return code
	}
	if *metricsEvery != 0 && (*root == "" || *metricsEvery < 0) {
		// A node publishes every 60 s: the scaling policy's period and the documented cost
		// depend on it.
		fmt.Fprintf(e.stderr, "sandbox-node serve: --metrics-interval is for tests: it needs --root and a positive duration (got %s)\n\n%s", *metricsEvery, serveUsage)
		return exitUsage
	}
	log := node.NewLogger(e.stderr, nil)
	log.Printf("sandbox-node %s: serve from %s", version, *configPath)
	cfg, err := node.LoadConfig(*configPath, node.Options{Root: *root})
	if err != nil {
		log.Printf("config: %v", err)
		return exitUsage
	}
	opts := node.ServeOptions{Root: *root, Log: log, Poll: *every, MetricsInterval: *metricsEvery}
	if e.tuneServe != nil {
		e.tuneServe(&opts)
	}
	if err := node.Serve(ctx, cfg, opts); err != nil {
		log.Printf("%v", err)
		return exitFailed
	}
	return exitReady
}

// parseFlags parses a subcommand's flags. ok is false when the command must end with code:
// after --help (0, the usage on stdout), or on a bad flag or a stray argument (2, the error and
// the usage on stderr).
func parseFlags(e env, fs *flag.FlagSet, args []string, usage string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, usage)
			return exitReady, false
		}
		fmt.Fprintf(e.stderr, "sandbox-node %s: %v\n\n%s", fs.Name(), err, usage)
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "sandbox-node %s: unexpected arguments %q\n\n%s", fs.Name(), fs.Args(), usage)
		return exitUsage, false
	}
	return 0, true
}

// printVersion prints the agent's build and the releases it pins. The node config names no
// LiteLLM version, so this is where an operator learns which LiteLLM a gateway node gets.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "sandbox-node %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "litellm %s (installed from the embedded lock %s, sha256 %s)\n",
		versions.LiteLLM.Version, versions.LiteLLM.Lock, node.LiteLLMLockSHA256())
	fmt.Fprintf(w, "ollama %s (pinned release; a pool node installs the release its node config names)\n", versions.Ollama.Version)
}

// abandonInvalidConfig ABANDONs the launch when the config cannot be used but still names its
// lifecycle hook: a node that cannot even read its config must not wait out the heartbeat.
func abandonInvalidConfig(ctx context.Context, log *node.Logger, path string, opts node.Options) {
	region, lc, ok := node.LifecycleHint(path)
	if !ok {
		log.Printf("lifecycle: no lifecycle hook can be read from the config: nothing to ABANDON (the hook's heartbeat timeout applies)")
		return
	}
	completer := opts.Lifecycle
	if completer == nil {
		c, err := node.NewAWSCompleter(ctx, region, lc)
		if err != nil {
			log.Printf("lifecycle: cannot ABANDON: %v", err)
			return
		}
		completer = c
	}
	policy := node.DefaultRetry()
	if opts.Retry != nil {
		policy = *opts.Retry
	}
	_ = node.Abandon(ctx, completer, log, policy, node.DefaultTimeouts()[node.StepLifecycle], "the node config is unreadable or invalid")
}

// openConsole opens the console mirror. The default, the serial console, is used only when it
// can be opened for writing; a missing or unwritable console is never an error. O_NONBLOCK
// keeps the open from waiting on a serial line's carrier; Fd() then puts the descriptor back
// into blocking mode so lines are not dropped when the UART's buffer is full.
func openConsole(path string, stderr io.Writer) (io.Writer, func()) {
	if path == "none" {
		return nil, func() {}
	}
	explicit := path != ""
	if !explicit {
		path = defaultConsole
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if explicit {
			fmt.Fprintf(stderr, "sandbox-node: console %s unavailable, logging to stderr only: %v\n", path, err)
		}
		return nil, func() {}
	}
	_ = f.Fd()
	return f, func() { _ = f.Close() }
}
