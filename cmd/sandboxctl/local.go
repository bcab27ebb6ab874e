package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/llm-sandbox/llm-sandbox/components/gateway"
	"github.com/llm-sandbox/llm-sandbox/components/modelpool"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/orchestrate"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// localDefaultPort is where `sandboxctl local` serves the API by default: LiteLLM's port on a
// gateway node.
const localDefaultPort = gateway.LiteLLMPort

// localDifferences is what a local run leaves out of what AWS would run, printed by every run
// and listed in docs/local.md.
var localDifferences = []string{
	"no load balancers: clients reach LiteLLM directly on 127.0.0.1 over plain HTTP (no TLS, no WAF, no allow-listed CIDRs)",
	"no Auto Scaling: one node per pool and one gateway node, no lifecycle hooks, no scaling, no spot or warm pools",
	"no GPU checks: every pool runs Ollama on the CPU, whatever its instance type",
	"no AWS services: the master key is in an owner-only file, not Secrets Manager; the key registry is the run's key store (keys.json in the state directory), not DynamoDB; no KMS, CloudWatch or artifacts bucket",
	"one LiteLLM worker instead of one per vCPU of the gateway's instance type",
}

func runLocal(e env, projectFlag string, args []string) int {
	return exit(e, "local", local(e, projectFlag, args))
}

func local(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "local", "local STACK [--tiny] [--detach] [--port N] [--ollama PATH | --ollama-mirror URL] [--tinymodel PATH] [--litellm-wheels DIR] [--state DIR]\n"+
		"       sandboxctl [--project DIR] local --stop|--status [STACK] [--state DIR]",
		"Runs STACK's serving path on this machine: one pool node per pool and one gateway node, each\n"+
			"a real sandbox-node bootstrapping what it would on AWS (Ollama, the pinned LiteLLM with the\n"+
			"stack's config.yaml), serving the OpenAI-compatible API on 127.0.0.1. Refuses a stack that\n"+
			"does not validate. Prints the base URL, the key to export and a curl example once ready,\n"+
			"then serves until Ctrl-C or SIGTERM, and stops every process it started. With --detach it\n"+
			"returns once ready and the run serves on; --stop stops it (every run when STACK is left\n"+
			"out) and --status lists what runs.\n\n"+
			"Models are pulled from the Ollama registry, with progress, unless --tiny serves a tiny\n"+
			"random-weight model under each model name (no network, no GPU; its answers are noise).\n"+
			"Ollama is the pinned release (versions/versions.go), downloaded once into the user cache\n"+
			"and checked against its SHA-256 on every run, from Ollama's releases or --ollama-mirror;\n"+
			"offline, --ollama names a binary instead (`make bin/ollama` builds it). LiteLLM is the\n"+
			"hash-locked versions/litellm-requirements.txt, installed from --litellm-wheels (the\n"+
			"lock's wheels, which `make local` downloads) or else from PyPI, with the lock's hashes.\n"+
			"Exit 0 after a clean stop (or once a detached run is ready), 1 when the stack is invalid\n"+
			"or the run failed, 2 usage error.\n\n"+
			"Keys: the gateway accepts per-person keys only, from the run's key store (keys.json in the\n"+
			"state directory, hashes only). Each start issues one key per team of the stack (owner\n"+
			"\"local\"; a team \"local\" when the stack declares none) and prints them once; more with\n"+
			"`sandboxctl keys issue STACK --local` (keys --help).")
	tiny := fs.Bool("tiny", false, "serve a tiny random-weight model under each model name (offline; answers are noise)")
	detach := fs.Bool("detach", false, "return once ready and leave the run serving (stop it with --stop)")
	stopRun := fs.Bool("stop", false, "stop the detached run of STACK (of every stack when STACK is left out)")
	status := fs.Bool("status", false, "list the detached runs (of STACK) and their servers")
	port := fs.Int("port", localDefaultPort, "the API's `port` on 127.0.0.1")
	ollama := fs.String("ollama", "", "an Ollama `binary` to install instead of the pinned release (default $"+localrun.EnvOllamaBin+")")
	mirror := fs.String("ollama-mirror", "", "a `URL` laid out as Ollama's releases (URL/vX.Y.Z/"+versions.OllamaAsset+") to download\nthe pinned release from, for a department's mirror (default $"+localrun.EnvOllamaMirror+")")
	tinyModel := fs.String("tinymodel", "", "the tiny-model `writer` for --tiny (default $"+localrun.EnvTinyModelBin+")")
	wheels := fs.String("litellm-wheels", "", "a `directory` of the LiteLLM lock's wheels (default $"+localrun.EnvLiteLLMWheels+"; neither: PyPI)")
	state := fs.String("state", "", "the state `directory` (default <user cache>/llm-sandbox/local/STACK)")
	stacks, err := parseArgs(fs, args, nil)
	if err != nil {
		return err
	}
	for flagValue, name := range map[*string]string{ollama: localrun.EnvOllamaBin, tinyModel: localrun.EnvTinyModelBin, wheels: localrun.EnvLiteLLMWheels, mirror: localrun.EnvOllamaMirror} {
		if *flagValue == "" {
			*flagValue = os.Getenv(name)
		}
	}
	if *stopRun && *status {
		return usagef("--stop and --status exclude each other")
	}
	if *stopRun || *status {
		if len(stacks) > 1 {
			return usagef("want at most one STACK with --stop or --status (got %d)", len(stacks))
		}
		if *detach || *tiny {
			return usagef("--detach and --tiny start a run; --stop and --status take only STACK and --state")
		}
		return localControl(e, stacks, *state, *stopRun)
	}
	if len(stacks) != 1 {
		return usagef("want one STACK (got %d)", len(stacks))
	}
	if *port < 1 || *port > 65535 {
		return usagef("--port must be 1-65535 (got %d)", *port)
	}
	if *ollama != "" && *mirror != "" {
		return usagef("--ollama (a binary) and --ollama-mirror (where the pinned release is) exclude each other")
	}
	if *mirror != "" {
		if u, err := url.Parse(*mirror); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--ollama-mirror must be an http(s) URL (got %q)", *mirror)
		}
	}
	if !*tiny {
		*tinyModel = "" // models come from the registry
	} else if *tinyModel == "" {
		return usagef("--tiny needs the tiny-model writer: build it with `make bin/tinymodel` and pass --tinymodel or set %s", localrun.EnvTinyModelBin)
	}
	stack := stacks[0]
	sa, err := findStacks(e, projectFlag, stacks, false)
	if err != nil {
		return err
	}
	results, specs, valid := validateStacks(sa.project, sa.all, stacks)
	if !valid {
		fmt.Fprintf(e.stderr, "sandboxctl local: %s does not validate; fix it first:\n", config.StackFile(stack))
		writeValidateText(e.stderr, results)
		return errReported
	}
	spec := specs[stack]
	h, err := localrun.NewHelpers(sa.project, *ollama, *tinyModel, *wheels)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	stopCommand := "sandboxctl local --stop " + stack
	if *state == "" {
		if *state, err = localStateDir(stack); err != nil {
			return err
		}
	} else {
		stopCommand += " --state " + *state
	}
	for _, s := range localrun.Services(*state) {
		if s.Running {
			return usagef("a detached run of %s is running in %s (%s of %s, pid %d): stop it with `%s` first", stack, *state, s.Name, s.Node, s.Pid, stopCommand)
		}
	}
	// A taken port would fail the gateway only after LiteLLM's install: say so now.
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*port))
	if err != nil {
		return usagef("port %d on 127.0.0.1 is taken (pass --port): %v", *port, err)
	}
	l.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if h.Ollama == "" {
		if err := localPinnedOllama(ctx, e, &h, *mirror); err != nil {
			return err
		}
	}

	fmt.Fprintf(e.stderr, "sandboxctl local: %s on this machine, state in %s\n", stack, *state)
	fmt.Fprintln(e.stderr, "Where this differs from AWS:")
	for _, d := range localDifferences {
		fmt.Fprintln(e.stderr, "  - "+d)
	}
	if *tiny {
		fmt.Fprintln(e.stderr, "--tiny: every model is a tiny random-weight model under its name: its answers are NOISE.")
	}
	if *wheels == "" {
		fmt.Fprintln(e.stderr, "LiteLLM: the lock versions/litellm-requirements.txt from PyPI, hash-checked (offline: --litellm-wheels DIR).")
	}

	r := localrun.NewRunner(e.stderr)
	r.Dir = *state
	detached := false
	defer func() {
		if !detached {
			fmt.Fprintln(e.stderr, "sandboxctl local: stopping every process it started")
			r.Close()
		}
	}()
	var s *localrun.Stack
	var gatewayLog lineWatch
	start := time.Now()
	err = r.Run(func() {
		if err := os.MkdirAll(*state, 0o700); err != nil {
			r.Fatalf("state directory: %v", err)
		}
		d := localrun.NewDeployment(r, h, *state)
		d.Ctx = ctx
		s = localrun.StartStack(r, d, localLayout(spec, *port), func(name string) io.Writer {
			w := orchestrate.NewPrefixWriter(e.stderr, "["+name+"] ")
			if name == "gateway" {
				gatewayLog.w = w
				return &gatewayLog
			}
			return w
		})
	})
	if err != nil || s == nil {
		if *wheels == "" && gatewayLog.saw("step install: failed") {
			fmt.Fprintln(e.stderr, "sandboxctl local: LiteLLM could not be installed from PyPI. Offline, pass --litellm-wheels DIR: the wheels of versions/litellm-requirements.txt, which `make local` downloads into .cache/litellm-wheels.")
		}
		return fmt.Errorf("%s did not start", stack)
	}
	model := spec.Pools[spec.PoolNames()[0]].Models[0]
	fmt.Fprintf(e.stderr, "sandboxctl local: ready in %s\n", time.Since(start).Round(time.Second))
	if *detach {
		if err := localrun.WriteRunRecord(*state, localrun.RunRecord{Stack: stack, URL: s.URL(), Model: model, Tiny: *tiny, Started: time.Now().UTC()}); err != nil {
			return fmt.Errorf("%s did not start: %w", stack, err)
		}
		// The nodes' servers run on their own; only the mirror they installed from goes.
		s.Mirror.Close()
		detached = true
		writeLocalKeys(e.stdout, s.Keys, stack)
		writeLocalReady(e.stdout, s.URL(), s.Key, model, *tiny, stopCommand)
		return nil
	}
	writeLocalKeys(e.stdout, s.Keys, stack)
	writeLocalReady(e.stdout, s.URL(), s.Key, model, *tiny, "")
	<-ctx.Done()
	return nil
}

// localStateDir is the default state directory of stack's local run, in the user's cache.
func localStateDir(stack string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", usagef("no cache directory for the state (pass --state): %v", err)
	}
	return filepath.Join(cache, "llm-sandbox", "local", stack), nil
}

// localPinnedOllama makes h install the pinned Ollama release, downloaded (from mirror when
// set) into the user's cache once and checked against the pin on every run. It fails closed,
// saying what to do offline.
func localPinnedOllama(ctx context.Context, e env, h *localrun.Helpers, mirror string) error {
	cache, err := os.UserCacheDir()
	if err != nil {
		return usagef("no cache directory for the Ollama release (pass --ollama PATH): %v", err)
	}
	rel := localrun.OllamaReleaseFrom(mirror)
	file, err := localrun.CachedRelease(ctx, node.DownloadClient(), rel, filepath.Join(cache, "llm-sandbox", "downloads"), e.stderr)
	var rerr *localrun.ReleaseError
	switch {
	case err == nil:
		h.UseRelease(file, rel)
		return nil
	case errors.As(err, &rerr) && rerr.Offline:
		return fmt.Errorf("%w\nThe pinned Ollama release cannot be downloaded from here. Offline, pass --ollama PATH, an Ollama binary "+
			"(`make bin/ollama` builds one from the Go module proxy); with a mirror of the release, pass --ollama-mirror URL", err)
	case errors.As(err, &rerr):
		return fmt.Errorf("%w\nRefusing it: the file served is not the release pinned in versions/versions.go, and nothing was installed. "+
			"Check the mirror (--ollama-mirror, $%s), or pass --ollama PATH, an Ollama binary", err, localrun.EnvOllamaMirror)
	default:
		return err
	}
}

// localControl stops (stop) or lists the detached runs: of the stacks named (at most one), in
// state when given, else of every stack with a state directory in the user's cache.
func localControl(e env, stacks []string, state string, stop bool) error {
	dirs := map[string]string{} // stack (or state directory) to its state directory
	switch {
	case state != "":
		name := state
		if len(stacks) == 1 {
			name = stacks[0]
		}
		dirs[name] = state
	case len(stacks) == 1:
		dir, err := localStateDir(stacks[0])
		if err != nil {
			return err
		}
		dirs[stacks[0]] = dir
	default:
		root, err := localStateDir("")
		if err != nil {
			return err
		}
		entries, _ := os.ReadDir(root)
		for _, d := range entries {
			if d.IsDir() {
				dirs[d.Name()] = filepath.Join(root, d.Name())
			}
		}
	}
	var errs []error
	found := false
	for _, name := range slices.Sorted(maps.Keys(dirs)) {
		dir := dirs[name]
		services := localrun.Services(dir)
		if !stop {
			rec, ok, err := localrun.ReadRunRecord(dir)
			if err != nil {
				errs = append(errs, err)
			}
			running := 0
			for _, s := range services {
				if s.Running {
					running++
				}
			}
			if running == 0 {
				continue
			}
			found = true
			fmt.Fprintf(e.stdout, "%s: %d server(s) running, state in %s\n", name, running, dir)
			if ok {
				fmt.Fprintf(e.stdout, "  API %s/v1 since %s (keys: sandboxctl keys list %s --local)\n", rec.URL, rec.Started.Format(time.RFC3339), name)
			}
			for _, s := range services {
				what := "not running"
				if s.Running {
					what = "running as pid " + strconv.Itoa(s.Pid)
				}
				fmt.Fprintf(e.stdout, "  %s of %s: %s\n", s.Name, s.Node, what)
			}
			continue
		}
		stopped, err := localrun.StopRun(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		if len(stopped) == 0 {
			continue
		}
		found = true
		fmt.Fprintf(e.stdout, "%s: stopped", name)
		for _, s := range stopped {
			fmt.Fprintf(e.stdout, " %s of %s (pid %d)", s.Name, s.Node, s.Pid)
		}
		fmt.Fprintln(e.stdout)
	}
	if !found && len(errs) == 0 {
		fmt.Fprintln(e.stdout, "no detached run is running")
	}
	return errors.Join(errs...)
}

// localLayout maps the stack onto a local run: each pool's models, parallelism, context and
// queue as its nodes get them on AWS, and the gateway's timeouts; the gateway on port.
func localLayout(spec *config.Spec, port int) localrun.Layout {
	var l localrun.Layout
	for _, name := range spec.PoolNames() {
		p := spec.Pools[name]
		l.Pools = append(l.Pools, localrun.OllamaOptions{
			Pool:          name,
			Models:        p.Models,
			Parallel:      p.Parallel,
			ContextLength: p.ContextLength,
			MaxQueue:      modelpool.MaxQueue(p.Parallel, len(p.Models)),
		})
	}
	l.Teams = localTeams(spec)
	l.Gateway = localrun.GatewayOptions{
		Port:                  port,
		Workers:               1,
		RequestTimeoutSeconds: gateway.RequestTimeoutSeconds,
		KeepAliveSeconds:      gateway.KeepAliveSeconds,
		NumRetries:            gateway.NumRetries,
	}
	return l
}

// localTeams are the teams a local run issues keys of at start, one key each: the stack's
// teams with their models, limits and longest key lifetime, or, when the stack declares none,
// one team "local" with the defaults of a team declared without settings. The first is the
// team whose key the run prints to export: the one whose models cover most of the stack's,
// then the longest key lifetime, then by name; the rest follow by name.
func localTeams(spec *config.Spec) []localrun.Team {
	teams := localSpecTeams(spec)
	names := slices.Sorted(maps.Keys(teams))
	best := names[0]
	for _, n := range names[1:] {
		t, b := teams[n], teams[best]
		if len(t.Models) > len(b.Models) || (len(t.Models) == len(b.Models) && t.MaxKeyLifetimeDays > b.MaxKeyLifetimeDays) {
			best = n
		}
	}
	var out []localrun.Team
	for _, n := range append([]string{best}, slices.DeleteFunc(names, func(n string) bool { return n == best })...) {
		t := teams[n]
		out = append(out, localrun.Team{
			LiteLLMTeam: node.LiteLLMTeam{Name: n, Models: slices.Clone(t.Models), RequestsPerMinute: t.RequestsPerMinute,
				TokensPerMinute: t.TokensPerMinute, ParallelPerKey: t.ParallelPerKey},
			KeyLifetime: time.Duration(t.MaxKeyLifetimeDays) * 24 * time.Hour,
		})
	}
	return out
}

// writeLocalKeys prints the keys a run issued at start, once: the store keeps only their
// SHA-256.
func writeLocalKeys(w io.Writer, keys []keyregistry.Issued, stack string) {
	fmt.Fprintf(w, "Keys issued for this run, one per team (owner %q), shown this once; the run's key store keeps only their SHA-256:\n\n", localrun.LocalOwner)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-12s %s  (key id %s, expires %s)\n", k.Record.Team, k.Key, k.Record.KeyID, k.Record.Expires.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "\nMore: sandboxctl keys issue %s --local --team TEAM --owner LABEL (and keys list|show|revoke|rotate %s --local).\n\n", stack, stack)
}

// writeLocalReady prints what a client needs: the base URL, the key to export and a streamed
// curl completion of model; then how to stop the run: Ctrl-C, or for a detached run its
// stopCommand.
func writeLocalReady(w io.Writer, url, key, model string, tiny bool, stopCommand string) {
	fmt.Fprintf(w, "The API is ready at %s/v1 (OpenAI-compatible). In another shell:\n\n", url)
	fmt.Fprintf(w, "  export OPENAI_BASE_URL=%s/v1\n", url)
	fmt.Fprintf(w, "  export OPENAI_API_KEY=%s\n", key)
	fmt.Fprintf(w, "  curl -sN $OPENAI_BASE_URL/chat/completions -H \"Authorization: Bearer $OPENAI_API_KEY\" \\\n")
	fmt.Fprintf(w, "    -H 'Content-Type: application/json' \\\n")
	fmt.Fprintf(w, "    -d '{\"model\": \"%s\", \"stream\": true, \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'\n\n", model)
	if tiny {
		fmt.Fprintln(w, "The models are tiny random-weight stand-ins: their answers are noise.")
	}
	if stopCommand != "" {
		fmt.Fprintf(w, "The run serves on in the background: `%s` stops every process it started.\n", stopCommand)
		return
	}
	fmt.Fprintln(w, "Ctrl-C (or SIGTERM) stops every process this run started.")
}

// lineWatch passes what is written to it on to w and keeps it, so that the command can tell
// afterwards whether a node's log said something (a step that failed).
type lineWatch struct {
	w io.Writer

	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lineWatch) Write(b []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(b)
	l.mu.Unlock()
	return l.w.Write(b)
}

// saw reports whether s was written.
func (l *lineWatch) saw(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Contains(l.buf.Bytes(), []byte(s))
}
