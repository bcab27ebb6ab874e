package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/internal/inflight"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// A variant is one way to the model the benchmark measures beside direct Ollama: "direct" or
// "litellm" (the gateway exactly as the agent renders and starts it), optionally followed by
// modifiers joined with "+", each a LiteLLM setting the benchmark changes on a copy of the
// agent's gateway. Every variant keeps the rendered privacy settings
// (turn_off_message_logging, no spend or error logs).
type modifier struct {
	name string
	help string
	// measureOnly: the modifier drops something the gateway needs (authentication, the
	// error mapping), so it only bounds what that part costs; it is never a default candidate.
	measureOnly bool
	apply       func(*gatewaySpec)
}

// gatewaySpec is how a LiteLLM variant is started.
type gatewaySpec struct {
	route      string // "ollama_chat" (native /api/chat) or "openai" (Ollama's /v1)
	workers    int
	server     string // "uvicorn" (litellm's CLI: uvloop), "asyncio" (uvicorn with the asyncio loop), "granian"
	quietLogs  bool
	noCallback bool
	noAuth     bool
}

// openAIRouteKey is the api_key of the openai/ route: LiteLLM's OpenAI client refuses to start
// without one, and Ollama ignores it ("required but ignored", Ollama's OpenAI compatibility
// docs, docs/openai.mdx). It is not a secret.
const openAIRouteKey = "ollama"

var modifiers = []modifier{
	{name: "openai", help: "route openai/<tag> to Ollama's OpenAI-compatible /v1 instead of ollama_chat/<tag> to its /api/chat",
		apply: func(g *gatewaySpec) { g.route = "openai" }},
	{name: "workers2", help: "LiteLLM --num_workers 2 instead of the rendered count",
		apply: func(g *gatewaySpec) { g.workers = 2 }},
	{name: "asyncio", help: "uvicorn with the asyncio event loop (litellm's CLI always asks uvicorn for uvloop: proxy_cli.py get_loop_type)",
		apply: func(g *gatewaySpec) { g.server = "asyncio" }},
	{name: "granian", help: "litellm --run_granian: the Rust ASGI server (granian is in the lock) instead of uvicorn",
		apply: func(g *gatewaySpec) { g.server = "granian" }},
	{name: "quietlogs", help: "LITELLM_LOG=ERROR and a uvicorn log config without the access log line per request",
		apply: func(g *gatewaySpec) { g.quietLogs = true }},
	{name: "nocallbacks", measureOnly: true, help: "without the error-mapping and usage callbacks (measurement only: bounds their cost)",
		apply: func(g *gatewaySpec) { g.noCallback = true }},
	{name: "noauth", measureOnly: true, help: "without the custom-auth module, master key only (measurement only: bounds its cost)",
		apply: func(g *gatewaySpec) { g.noAuth = true }},
	{name: "proxy", help: "the node agent's accounting proxy (node.Proxy) in front, run inside the benchmark process as on a node in sandbox-node serve",
		apply: func(*gatewaySpec) {}},
}

// defaultVariants is what one run measures beside direct Ollama when -variants is not given.
const defaultVariants = "litellm,litellm+openai,litellm+workers2,litellm+asyncio,litellm+granian,litellm+quietlogs,litellm+nocallbacks+noauth,litellm+proxy,direct+proxy"

func variantsHelp() string {
	var b strings.Builder
	b.WriteString("comma-separated variants measured beside direct Ollama, each \"direct\" or \"litellm\" (the gateway as the agent renders it) with modifiers joined by \"+\":\n")
	for _, m := range modifiers {
		fmt.Fprintf(&b, "  %-12s %s\n", m.name, m.help)
	}
	return b.String()
}

// variantPlan is a parsed variant name.
type variantPlan struct {
	name        string
	base        string // "direct" or "litellm"
	spec        gatewaySpec
	custom      bool // litellm with a setting changed: started by the benchmark, not the agent
	proxy       bool
	measureOnly bool
}

func parseVariants(list string) ([]variantPlan, error) {
	var plans []variantPlan
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		parts := strings.Split(name, "+")
		p := variantPlan{name: name, base: parts[0], spec: gatewaySpec{route: "ollama_chat", server: "uvicorn"}}
		if p.base != "direct" && p.base != "litellm" {
			return nil, fmt.Errorf("-variants: %q: starts with %q, want direct or litellm", name, p.base)
		}
		if seen[name] || name == "direct" {
			return nil, fmt.Errorf("-variants: %q: named twice (direct Ollama is always measured)", name)
		}
		seen[name] = true
		used := map[string]bool{}
		for _, mod := range parts[1:] {
			i := slices.IndexFunc(modifiers, func(m modifier) bool { return m.name == mod })
			if i < 0 || used[mod] {
				return nil, fmt.Errorf("-variants: %q: %q is not a modifier, or is repeated (see -h)", name, mod)
			}
			used[mod] = true
			m := modifiers[i]
			if mod == "proxy" {
				p.proxy = true
				continue
			}
			if p.base == "direct" {
				return nil, fmt.Errorf("-variants: %q: direct takes only the proxy modifier", name)
			}
			m.apply(&p.spec)
			p.custom = true
			p.measureOnly = p.measureOnly || m.measureOnly
		}
		if used["asyncio"] && used["granian"] {
			return nil, fmt.Errorf("-variants: %q: asyncio and granian are two servers; pick one", name)
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// startedGateway is a LiteLLM the benchmark started from a copy of the agent's gateway.
type startedGateway struct {
	url string
	pid int
	cmd *exec.Cmd
	log string
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startGateway copies the agent's gateway config directory (config.yaml and the modules beside
// it) into dir, changes what spec changes, and starts the agent's venv LiteLLM on it with the
// environment the agent gives its own (the service variables, the environment file with the
// master key, HOME=/nonexistent), in its own process group. It waits until LiteLLM answers its
// liveness probe.
func startGateway(ctx context.Context, gwRoot, dir, ollamaURL string, workers, keepAlive int, spec gatewaySpec) (*startedGateway, error) {
	if spec.workers == 0 {
		spec.workers = workers
	}
	confDir := filepath.Join(dir, "litellm")
	if err := copyDir(filepath.Join(gwRoot, node.LiteLLMConfigDir), confDir); err != nil {
		return nil, err
	}
	confFile := filepath.Join(confDir, filepath.Base(node.LiteLLMConfigFile))
	if err := editConfig(confFile, ollamaURL, spec); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	env, err := gatewayEnv(gwRoot, spec)
	if err != nil {
		return nil, err
	}
	host, portS := "127.0.0.1", strconv.Itoa(port)
	bin := filepath.Join(gwRoot, node.LiteLLMBinary)
	args := []string{"--config", confFile, "--host", host, "--port", portS,
		"--num_workers", strconv.Itoa(spec.workers), "--keepalive_timeout", strconv.Itoa(keepAlive)}
	switch spec.server {
	case "granian":
		args = append(args, "--run_granian")
	case "asyncio":
		// litellm's CLI has no loop option: run uvicorn on LiteLLM's app itself, which then reads
		// its config from CONFIG_FILE_PATH (proxy_server.py, proxy_startup_event), as litellm's CLI
		// does through WORKER_CONFIG. --no-server-header as the CLI (server_header False).
		bin = filepath.Join(gwRoot, node.LiteLLMPython)
		args = []string{"-m", "uvicorn", "litellm.proxy.proxy_server:app", "--host", host, "--port", portS,
			"--workers", strconv.Itoa(spec.workers), "--timeout-keep-alive", strconv.Itoa(keepAlive),
			"--loop", "asyncio", "--no-server-header"}
		env = append(env, "CONFIG_FILE_PATH="+confFile, "NUM_WORKERS="+strconv.Itoa(spec.workers))
	}
	if spec.quietLogs {
		logConf := filepath.Join(dir, "uvicorn-log.json")
		if err := os.WriteFile(logConf, []byte(quietUvicornLogConfig), 0o644); err != nil {
			return nil, err
		}
		if spec.server == "asyncio" {
			args = append(args, "--log-config", logConf)
		} else {
			args = append(args, "--log_config", logConf)
		}
	}
	logPath := filepath.Join(dir, "litellm.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = gwRoot, env, logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &startedGateway{url: "http://" + net.JoinHostPort(host, portS), pid: cmd.Process.Pid, cmd: cmd, log: logPath}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(8 * time.Minute)
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("LiteLLM exited before it answered (%v); its log: %s", err, logPath)
		case <-ctx.Done():
			g.stop()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if live(g.url) {
			// Wait keeps running in its goroutine; stop signals the group and the Wait ends.
			g.cmd = nil
			return g, nil
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("LiteLLM did not answer %s within 8 minutes; its log: %s", node.LiteLLMHealthPath, logPath)
		}
	}
}

func live(base string) bool {
	resp, err := http.Get(base + node.LiteLLMHealthPath)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop ends the gateway's process group (the supervisor and its workers): SIGTERM, then
// SIGKILL after 15 s.
func (g *startedGateway) stop() {
	if g == nil || g.pid == 0 {
		return
	}
	_ = syscall.Kill(-g.pid, syscall.SIGTERM)
	for range 30 {
		if syscall.Kill(-g.pid, 0) != nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	_ = syscall.Kill(-g.pid, syscall.SIGKILL)
}

// quietUvicornLogConfig is a logging.config.dictConfig (the form uvicorn's --log-config takes
// as .json) with uvicorn's default formatters and handlers but without the access log: one
// line per request, which holds no prompt but costs a write per request.
const quietUvicornLogConfig = `{
  "version": 1,
  "disable_existing_loggers": false,
  "formatters": {"default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"}},
  "handlers": {"default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
  "loggers": {
    "uvicorn": {"handlers": ["default"], "level": "WARNING", "propagate": false},
    "uvicorn.error": {"level": "WARNING"},
    "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": false}
  }
}
`

// gatewayEnv is the environment the agent gives its LiteLLM (node's processEnv): the service
// variables, then the environment file's lines, HOME and PATH.
func gatewayEnv(gwRoot string, spec gatewaySpec) ([]string, error) {
	var env []string
	for _, v := range node.LiteLLMEnv() {
		env = append(env, v.Name+"="+v.Value)
	}
	data, err := os.ReadFile(filepath.Join(gwRoot, node.LiteLLMEnvFile))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			env = append(env, line)
		}
	}
	if spec.quietLogs {
		env = append(env, "LITELLM_LOG=ERROR")
	}
	return append(env, "HOME=/nonexistent", "PATH="+os.Getenv("PATH")), nil
}

// editConfig rewrites config.yaml for spec. It changes only routing, callbacks and
// authentication: the privacy settings stay as rendered, and editConfig fails if they are not
// there.
func editConfig(path, ollamaURL string, spec gatewaySpec) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	ls, _ := cfg["litellm_settings"].(map[string]any)
	gs, _ := cfg["general_settings"].(map[string]any)
	if ls == nil || gs == nil || ls["turn_off_message_logging"] != true || gs["disable_spend_logs"] != true ||
		gs["store_prompts_in_spend_logs"] != false || gs["disable_error_logs"] != true {
		return fmt.Errorf("%s: the rendered privacy settings are not all on; refusing to measure", path)
	}
	if spec.route == "openai" {
		models, _ := cfg["model_list"].([]any)
		for _, m := range models {
			params, _ := m.(map[string]any)["litellm_params"].(map[string]any)
			model, _ := params["model"].(string)
			tag, ok := strings.CutPrefix(model, "ollama_chat/")
			if !ok {
				continue
			}
			params["model"] = "openai/" + tag
			params["api_base"] = strings.TrimSuffix(ollamaURL, "/") + "/v1"
			params["api_key"] = openAIRouteKey
		}
	}
	if spec.noCallback {
		delete(ls, "callbacks")
	}
	if spec.noAuth {
		delete(gs, "custom_auth")
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

// copyDir copies the regular files of src (one level: the config directory has no
// subdirectories) into dst.
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startProxy serves node.Proxy (the accounting proxy of `sandbox-node serve`) on a free port of
// 127.0.0.1 in front of backend (a base URL) and returns its base URL and a stop function.
func startProxy(backend string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: node.NewProxy(strings.TrimPrefix(backend, "http://"), &inflight.Counter{}),
		ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			_ = srv.Close()
		}
	}, nil
}
