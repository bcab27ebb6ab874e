package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/llm-sandbox/llm-sandbox/components/gateway"
	"github.com/llm-sandbox/llm-sandbox/components/modelpool"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/orchestrate"
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
	"no AWS services: the master key is in an owner-only file, not Secrets Manager; no KMS, CloudWatch or artifacts bucket",
	"one LiteLLM worker instead of one per vCPU of the gateway's instance type",
}

func runLocal(e env, projectFlag string, args []string) int {
	return exit(e, "local", local(e, projectFlag, args))
}

func local(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "local", "local STACK [--tiny] [--port N] [--ollama PATH] [--tinymodel PATH] [--litellm-wheels DIR] [--state DIR]",
		"Runs STACK's serving path on this machine: one pool node per pool and one gateway node, each\n"+
			"a real sandbox-node bootstrapping what it would on AWS (Ollama, the pinned LiteLLM with the\n"+
			"stack's config.yaml), serving the OpenAI-compatible API on 127.0.0.1. Refuses a stack that\n"+
			"does not validate. Prints the base URL, the key to export and a curl example once ready,\n"+
			"then serves until Ctrl-C or SIGTERM, and stops every process it started.\n\n"+
			"Models are pulled from the Ollama registry, unless --tiny serves a tiny random-weight model\n"+
			"under each model name (no network, no GPU; its answers are noise). Ollama is the binary\n"+
			"--ollama names (`make bin/ollama` builds it); LiteLLM installs from --litellm-wheels, the\n"+
			"hash-locked wheels `make local` downloads, or else from PyPI with the lock's hashes.\n"+
			"Exit 0 after a clean stop, 1 when the stack is invalid or the run failed, 2 usage error.")
	tiny := fs.Bool("tiny", false, "serve a tiny random-weight model under each model name (offline; answers are noise)")
	port := fs.Int("port", localDefaultPort, "the API's `port` on 127.0.0.1")
	ollama := fs.String("ollama", "", "the Ollama `binary` (default $"+localrun.EnvOllamaBin+")")
	tinyModel := fs.String("tinymodel", "", "the tiny-model `writer` for --tiny (default $"+localrun.EnvTinyModelBin+")")
	wheels := fs.String("litellm-wheels", "", "a `directory` of the LiteLLM lock's wheels (default $"+localrun.EnvLiteLLMWheels+"; neither: PyPI)")
	state := fs.String("state", "", "the state `directory` (default <user cache>/llm-sandbox/local/STACK)")
	stacks, err := parseArgs(fs, args, nil)
	if err != nil {
		return err
	}
	for flagValue, name := range map[*string]string{ollama: localrun.EnvOllamaBin, tinyModel: localrun.EnvTinyModelBin, wheels: localrun.EnvLiteLLMWheels} {
		if *flagValue == "" {
			*flagValue = os.Getenv(name)
		}
	}
	if len(stacks) != 1 {
		return usagef("want one STACK (got %d)", len(stacks))
	}
	if *port < 1 || *port > 65535 {
		return usagef("--port must be 1-65535 (got %d)", *port)
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
	// A taken port would fail the gateway only after LiteLLM's install: say so now.
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*port))
	if err != nil {
		return usagef("port %d on 127.0.0.1 is taken (pass --port): %v", *port, err)
	}
	l.Close()
	if *state == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return usagef("no cache directory for the state (pass --state): %v", err)
		}
		*state = filepath.Join(cache, "llm-sandbox", "local", stack)
	}

	fmt.Fprintf(e.stderr, "sandboxctl local: %s on this machine, state in %s\n", stack, *state)
	fmt.Fprintln(e.stderr, "Where this differs from AWS:")
	for _, d := range localDifferences {
		fmt.Fprintln(e.stderr, "  - "+d)
	}
	if *tiny {
		fmt.Fprintln(e.stderr, "--tiny: every model is a tiny random-weight model under its name: its answers are NOISE.")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := localrun.NewRunner(e.stderr)
	r.Dir = *state
	defer func() {
		fmt.Fprintln(e.stderr, "sandboxctl local: stopping every process it started")
		r.Close()
	}()
	var s *localrun.Stack
	start := time.Now()
	err = r.Run(func() {
		if err := os.MkdirAll(*state, 0o700); err != nil {
			r.Fatalf("state directory: %v", err)
		}
		d := localrun.NewDeployment(r, h, *state)
		d.Ctx = ctx
		s = localrun.StartStack(r, d, localLayout(spec, *port), func(name string) io.Writer {
			return orchestrate.NewPrefixWriter(e.stderr, "["+name+"] ")
		})
	})
	if err != nil || s == nil {
		return fmt.Errorf("%s did not start", stack)
	}
	fmt.Fprintf(e.stderr, "sandboxctl local: ready in %s\n", time.Since(start).Round(time.Second))
	writeLocalReady(e.stdout, s.URL(), s.MasterKey, spec.Pools[spec.PoolNames()[0]].Models[0], *tiny)
	<-ctx.Done()
	return nil
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
	l.Gateway = localrun.GatewayOptions{
		Port:                  port,
		Workers:               1,
		RequestTimeoutSeconds: gateway.RequestTimeoutSeconds,
		KeepAliveSeconds:      gateway.KeepAliveSeconds,
		NumRetries:            gateway.NumRetries,
	}
	return l
}

// writeLocalReady prints what a client needs: the base URL, the key to export and a streamed
// curl completion of model.
func writeLocalReady(w io.Writer, url, key, model string, tiny bool) {
	fmt.Fprintf(w, "The API is ready at %s/v1 (OpenAI-compatible). In another shell:\n\n", url)
	fmt.Fprintf(w, "  export OPENAI_BASE_URL=%s/v1\n", url)
	fmt.Fprintf(w, "  export OPENAI_API_KEY=%s\n", key)
	fmt.Fprintf(w, "  curl -sN $OPENAI_BASE_URL/chat/completions -H \"Authorization: Bearer $OPENAI_API_KEY\" \\\n")
	fmt.Fprintf(w, "    -H 'Content-Type: application/json' \\\n")
	fmt.Fprintf(w, "    -d '{\"model\": \"%s\", \"stream\": true, \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'\n\n", model)
	if tiny {
		fmt.Fprintln(w, "The models are tiny random-weight stand-ins: their answers are noise.")
	}
	fmt.Fprintln(w, "Ctrl-C (or SIGTERM) stops every process this run started.")
}
