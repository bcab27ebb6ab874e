package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Paths of the litellm role on a node. With --root the agent puts each under the root
// directory instead of /.
const (
	// LiteLLMVenv is the virtual environment LiteLLM is installed into (root-owned, read-only
	// for the litellm user).
	LiteLLMVenv = "/opt/llm-sandbox/litellm"
	// LiteLLMBinary is the venv's litellm command, the service's ExecStart.
	LiteLLMBinary = "/opt/llm-sandbox/litellm/bin/litellm"
	// LiteLLMPython is the venv's interpreter, which runs pip.
	LiteLLMPython = "/opt/llm-sandbox/litellm/bin/python3"
	// LiteLLMInstalledLock records the SHA-256 of the lock a completed install used: the
	// install is skipped only when it matches the embedded lock and litellm reports the pinned
	// version, so a half-finished install or a changed lock is installed again.
	LiteLLMInstalledLock = "/opt/llm-sandbox/litellm/llm-sandbox-lock.sha256"
	// LiteLLMRequirementsFile is the embedded hash-locked requirements file, written out for
	// pip (and kept, so that what a node installed can be read on the node).
	LiteLLMRequirementsFile = "/opt/llm-sandbox/litellm-requirements.txt"
	// LiteLLMConfigDir holds config.yaml; read-only for the service.
	LiteLLMConfigDir = "/etc/llm-sandbox/litellm"
	// LiteLLMConfigFile is LiteLLM's proxy config (mode 0644, no secrets).
	LiteLLMConfigFile = "/etc/llm-sandbox/litellm/config.yaml"
	// LiteLLMAuthFile is the custom-auth module beside config.yaml (mode 0644, no secrets).
	LiteLLMAuthFile = "/etc/llm-sandbox/litellm/llm_sandbox_auth.py"
	// liteLLMCustomAuth is how config.yaml names the module's function (LiteLLM loads
	// <config dir>/llm_sandbox_auth.py: proxy/types_utils/utils.py get_instance_fn).
	liteLLMCustomAuth = "llm_sandbox_auth.user_api_key_auth"
	// LiteLLMEnvFile holds LITELLM_MASTER_KEY (mode 0600, owned by root: systemd reads it as
	// root before it drops to the litellm user).
	LiteLLMEnvFile = "/etc/llm-sandbox/litellm.env"
	// LiteLLMUnitFile is LiteLLM's systemd unit.
	LiteLLMUnitFile = "/etc/systemd/system/litellm.service"
	// LiteLLMUnit is the unit's name for systemctl.
	LiteLLMUnit = "litellm.service"
	// LiteLLMUser runs LiteLLM: a system user with no home and no login.
	LiteLLMUser = "litellm"
	// LiteLLMLogFile is LiteLLM's output when the agent starts it without systemd.
	LiteLLMLogFile = "/var/log/llm-sandbox/litellm.log"
	// LiteLLMPidFile is LiteLLM's process id when the agent starts it without systemd.
	LiteLLMPidFile = "/run/llm-sandbox/litellm.pid"
	// LiteLLMHealthPath is LiteLLM's liveness endpoint, spelled so: it needs no key and calls no
	// model. Never /health, which makes a real call to every model and needs the master key
	// (https://docs.litellm.ai/docs/proxy/health, "Probe endpoints").
	LiteLLMHealthPath = "/health/liveliness"
	// MasterKeyVar is the environment variable config.yaml reads the master key from.
	MasterKeyVar = "LITELLM_MASTER_KEY"
)

// LiteLLMEnv is the service's environment besides the master key: no outbound call at start or
// at run time, no telemetry, no admin UI. A variable LiteLLM does not read is ignored without a
// word, so each is one the pinned LiteLLM (1.108.7) reads, named with where it reads it:
//   - LITELLM_LOCAL_MODEL_COST_MAP: litellm/litellm_core_utils/get_model_cost_map.py,
//     get_model_cost_map: `os.getenv("LITELLM_LOCAL_MODEL_COST_MAP", "").lower() == "true"` uses
//     the bundled map; otherwise the proxy fetches model_prices_and_context_window.json from
//     raw.githubusercontent.com at start (docs.litellm.ai/docs/proxy/model_cost_map) and, on an
//     air-gapped node, retries before it falls back.
//   - LITELLM_TELEMETRY_DISABLED: litellm/proxy/telemetry/settings.py, TelemetrySettings
//     (env prefix LITELLM_TELEMETRY_, field `disabled`: "the veto"; EnvPolicy.effective then
//     returns OFF whatever consent is stored).
//   - LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS (litellm/anthropic_beta_headers_manager.py),
//     LITELLM_LOCAL_POLICY_TEMPLATES (litellm/proxy/management_endpoints/policy_endpoints/
//     endpoints.py), LITELLM_LOCAL_AUTOROUTER_PRESETS (litellm/proxy/public_endpoints/
//     public_endpoints.py), LITELLM_LOCAL_BLOG_POSTS (litellm/litellm_core_utils/
//     get_blog_posts.py): each "== true" (case-insensitive) makes LiteLLM read its bundled copy
//     instead of fetching the file from GitHub or docs.litellm.ai.
//   - DISABLE_ADMIN_UI: litellm/proxy/common_utils/admin_ui_utils.py, is_admin_ui_disabled,
//     which the UI's sign-in routes check (litellm/proxy/management_endpoints/ui_sso.py); the
//     static pages under /ui still load. Without a database the UI can manage nothing (it asks
//     for DATABASE_URL), so its sign-in is only surface.
//
// DISABLE_SCHEMA_UPDATE is not set: it matters only with a database (replicas must not race
// to migrate it, litellm#14400), and the gateway has none.
func LiteLLMEnv() []EnvVar {
	return []EnvVar{
		{"LITELLM_LOCAL_MODEL_COST_MAP", "True", "Use the model cost map bundled with LiteLLM: never fetch it from GitHub at start."},
		{"LITELLM_TELEMETRY_DISABLED", "true", "Veto LiteLLM's telemetry, whatever consent a database might hold."},
		{"LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True", "Read Anthropic's beta-header table from LiteLLM's bundled copy, not GitHub."},
		{"LITELLM_LOCAL_POLICY_TEMPLATES", "True", "Read the guardrail policy templates from the bundled copy, not GitHub."},
		{"LITELLM_LOCAL_AUTOROUTER_PRESETS", "True", "Read the auto-router presets from the bundled copy, not GitHub."},
		{"LITELLM_LOCAL_BLOG_POSTS", "True", "Read the UI's news feed from the bundled copy, not docs.litellm.ai."},
		{"DISABLE_ADMIN_UI", "True", "No admin UI sign-in (its static pages still load): without a database the UI manages\nnothing, and it would face the public load balancer."},
	}
}

// WorkerHealthcheckSeconds is how long uvicorn's supervisor waits for a LiteLLM worker to
// answer its health check before it kills the worker and starts another. uvicorn's default, 5 s,
// is shorter than a worker's start on a busy 2-vCPU node: a worker is a spawned process that
// imports litellm before it starts the thread that answers (uvicorn 0.54.0,
// uvicorn/supervisors/multiprocess.py: Process.target starts always_pong, and
// Multiprocess.keep_subprocess_alive kills a worker whose ping times out and logs "Child
// process [...] died"). Under load every new worker was killed the same way and LiteLLM never
// became ready. The thread answers even while a worker's event loop is busy, so the longer
// wait only delays replacing a worker whose interpreter is wedged.
const WorkerHealthcheckSeconds = 120

// liteLLMArgs are LiteLLM's command-line arguments after the executable. --keepalive_timeout
// is uvicorn's timeout_keep_alive ("Set the uvicorn keepalive timeout in seconds", `litellm
// --help` of 1.108.7; added by BerriAI/litellm#11594). With more than one worker,
// --timeout_worker_healthcheck is uvicorn's timeout_worker_healthcheck (litellm/proxy/
// proxy_cli.py of 1.108.7: "Only applies when running uvicorn directly with --num_workers>1"),
// WorkerHealthcheckSeconds.
// Behind the accounting proxy (a backendPort) LiteLLM listens on 127.0.0.1:backendPort
// whatever host says: only the proxy reaches it.
func liteLLMArgs(configFile, host string, l *LiteLLMConfig) []string {
	if l.BackendPort != 0 {
		host = "127.0.0.1"
	}
	args := []string{
		"--config", configFile,
		"--host", host,
		"--port", strconv.Itoa(l.ListenPort()),
		"--num_workers", strconv.Itoa(l.Workers),
		"--keepalive_timeout", strconv.Itoa(l.KeepAliveSeconds),
	}
	if l.Workers > 1 {
		args = append(args, "--timeout_worker_healthcheck", strconv.Itoa(WorkerHealthcheckSeconds))
	}
	return args
}

// RenderLiteLLMConfig renders LiteLLM's proxy config, config.yaml, from the litellm section of a
// node config. The output is deterministic (models in the config's order). It checks, and
// needs, only the fields it renders: models, requestTimeoutSeconds, streamTimeoutSeconds and
// numRetries.
//
// LiteLLM ignores a setting it does not know (router_settings only logs a warning), so a
// misspelt privacy or timeout setting would silently not apply. Each name below is one the
// pinned LiteLLM (1.108.7) reads, named with where it reads it (the settings are listed at
// https://docs.litellm.ai/docs/proxy/config_settings):
//   - model_list[].litellm_params: model, api_base, timeout, stream_timeout are fields of
//     GenericLiteLLMParams (litellm/types/router.py); "timeout → maximum time for the complete
//     response", "stream_timeout → maximum time to wait for the first chunk"
//     (docs.litellm.ai/docs/proxy/timeout). The ollama_chat provider is LlmProviders.OLLAMA_CHAT
//     (litellm/types/utils.py), which LiteLLM recommends over ollama/ "for better responses"
//     (https://docs.litellm.ai/docs/providers/ollama), and which passes tools, tool_choice and
//     response_format on (llms/ollama/chat/transformation.py, get_supported_openai_params). It
//     cannot embed: embedding() knows only the ollama provider (litellm/main.py, embedding:
//     custom_llm_provider == "ollama" → ollama_embeddings, which POSTs <api_base>/api/embed,
//     llms/ollama/completion/handler.py), so embedding models are ollama/<tag>.
//   - model_list[].model_info: mode, supports_function_calling and max_input_tokens are fields
//     of ModelInfo (litellm/types/router.py), reported by /v1/model/info; max_input_tokens is
//     also what llm_sandbox_openai.py checks a prompt against.
//   - litellm_settings.callbacks: "<module>.<instance>" names loaded from the config's
//     directory (proxy/common_utils/callback_utils.py, initialize_callbacks_on_proxy).
//   - litellm_settings: ProxyConfig.load_config (litellm/proxy/proxy_server.py) sets each key as
//     an attribute of the litellm module: turn_off_message_logging (litellm/__init__.py: keep
//     messages and responses out of every logging callback), request_timeout (also marks
//     request_timeout_explicitly_set; the default is litellm/constants.py's 6000 s),
//     num_retries (litellm/__init__.py), drop_params (parsed by drop_params_flag).
//   - router_settings: load_config passes a key to litellm.Router only if it is one of
//     Router.get_valid_args() (and warns "not a valid argument" otherwise): routing_strategy
//     (RoutingStrategyName, litellm/types/litellm_params.py, default "simple-shuffle"),
//     num_retries and timeout (Router.__init__, litellm/router.py).
//   - general_settings: master_key (load_config: general_settings.get("master_key"), an
//     "os.environ/NAME" value resolved with get_secret), disable_spend_logs
//     (general_settings.get("disable_spend_logs")), store_prompts_in_spend_logs
//     (ConfigGeneralSettings, litellm/proxy/_types.py: "If True, stores request messages and
//     responses in spend logs"), disable_error_logs (litellm/proxy/hooks/
//     proxy_track_cost_callback.py: general_settings.get("disable_error_logs") is True).
//
// The end-to-end tests (tests/e2e) start the pinned LiteLLM on a rendered config and send
// requests through it.
func RenderLiteLLMConfig(cfg *LiteLLMConfig) ([]byte, error) {
	if cfg == nil {
		return nil, errors.New("render litellm config.yaml: no litellm section")
	}
	if errs := cfg.validateRendered(); len(errs) > 0 {
		return nil, fmt.Errorf("render litellm config.yaml: %w", errors.Join(errs...))
	}
	var b bytes.Buffer
	line := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("  ", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteString("\n")
	}
	comment := func(indent int, text string) {
		for _, l := range strings.Split(text, "\n") {
			line(indent, "# %s", l)
		}
	}
	comment(0, "LiteLLM proxy config, rendered by sandbox-node from the node config on every boot:\n"+
		"change the stack, not this file. No secrets: the master key comes from the environment\n"+
		"("+MasterKeyVar+", which systemd reads from the root-only "+LiteLLMEnvFile+").\n"+
		"Setting names checked against the pinned LiteLLM (docs.litellm.ai/docs/proxy/config_settings).")
	line(0, "model_list:")
	comment(1, "One entry per model: clients ask for the Ollama tag; ollama_chat/ (chat) or\n"+
		"ollama/ (embeddings) sends it to the pool's listener on the internal load balancer,\n"+
		"which spreads it over the pool's nodes. timeout bounds the whole call; stream_timeout\n"+
		"the wait for a streamed call's first chunk (Ollama's queue and the prompt evaluation).\n"+
		"model_info.max_input_tokens is the pool's context: a longer prompt gets 400\n"+
		"context_length_exceeded (llm_sandbox_openai.py).")
	for _, m := range cfg.Models {
		line(1, "- model_name: %s", yamlString(m.Name))
		line(2, "litellm_params:")
		line(3, "model: %s", yamlString(liteLLMProvider(m)+"/"+m.Name))
		line(3, "api_base: %s", yamlString(strings.TrimSuffix(m.APIBase, "/")))
		line(3, "timeout: %d", cfg.RequestTimeoutSeconds)
		if !m.Embedding {
			line(3, "stream_timeout: %d", cfg.streamTimeout())
		}
		line(2, "model_info:")
		if m.Embedding {
			line(3, "mode: %s", yamlString("embedding"))
		} else {
			line(3, "mode: %s", yamlString("chat"))
			line(3, "supports_function_calling: %t", m.Tools)
		}
		if m.ContextLength > 0 {
			line(3, "max_input_tokens: %d", m.ContextLength)
		}
	}
	line(0, "litellm_settings:")
	comment(1, "Privacy: no message or response reaches any logging callback.")
	line(1, "turn_off_message_logging: true")
	comment(1, "The longest generation any pool runs; at least the front load balancer's idle\n"+
		"timeout, so LiteLLM never drops a request the client still waits for.")
	line(1, "request_timeout: %d", cfg.RequestTimeoutSeconds)
	comment(1, "At most one retry: a retry re-runs a whole generation on the pool.")
	line(1, "num_retries: %d", cfg.NumRetries)
	comment(1, "OpenAI parameters Ollama does not take are dropped, not refused.")
	line(1, "drop_params: true")
	comment(1, "Errors as OpenAI answers them: 404 model_not_found, 400 context_length_exceeded,\n"+
		"503 with Retry-After when a pool's queue is full (llm_sandbox_openai.py). Usage\n"+
		"counts per team and key id to CloudWatch, never text (llm_sandbox_usage.py).")
	line(1, "callbacks: [%s, %s]", yamlString(liteLLMErrorsCallback), yamlString(liteLLMUsageCallback))
	line(0, "router_settings:")
	comment(1, "One deployment per model (its pool's load balancer does the balancing): the\n"+
		"default strategy, which needs no Redis and keeps no per-request state.")
	line(1, "routing_strategy: %s", yamlString("simple-shuffle"))
	line(1, "num_retries: %d", cfg.NumRetries)
	line(1, "timeout: %d", cfg.RequestTimeoutSeconds)
	line(0, "general_settings:")
	comment(1, "LiteLLM needs a master key to start; llm_sandbox_auth.py decides every request (there\n"+
		"is no database for virtual keys): per-person keys of the department's key registry\n"+
		"on a gateway node, the master key only on the local platform.")
	line(1, "master_key: %s", yamlString("os.environ/"+MasterKeyVar))
	line(1, "custom_auth: %s", yamlString(liteLLMCustomAuth))
	comment(1, "Privacy: no spend or error logs, and never prompts in them.")
	line(1, "disable_spend_logs: true")
	line(1, "store_prompts_in_spend_logs: false")
	line(1, "disable_error_logs: true")
	renderRateLimitCache(cfg.RateLimitCache, line, comment)
	return b.Bytes(), nil
}

// liteLLMProvider is the LiteLLM provider a model's requests go through: ollama for an
// embedding model (ollama_chat cannot embed), ollama_chat otherwise.
func liteLLMProvider(m LiteLLMModel) string {
	if m.Embedding {
		return "ollama"
	}
	return "ollama_chat"
}

// yamlString quotes s as a YAML double-quoted scalar: a JSON string is one, and no tag such as
// llama3.1:8b is then read as a mapping or a number.
func yamlString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// LiteLLMUnitPaths are the files the LiteLLM unit refers to. A node uses
// DefaultLiteLLMUnitPaths; the systemd-analyze test renders a copy whose paths exist in a
// temporary directory.
type LiteLLMUnitPaths struct {
	Binary     string
	ConfigFile string
	ConfigDir  string
	EnvFile    string
}

// DefaultLiteLLMUnitPaths are the paths on a node.
func DefaultLiteLLMUnitPaths() LiteLLMUnitPaths {
	return LiteLLMUnitPaths{Binary: LiteLLMBinary, ConfigFile: LiteLLMConfigFile, ConfigDir: LiteLLMConfigDir, EnvFile: LiteLLMEnvFile}
}

// RenderLiteLLMUnit renders LiteLLM's systemd unit: the venv's litellm as the litellm user,
// listening on every interface (the master key authenticates every model route, and the gateway
// security group admits only the load balancer), or on 127.0.0.1:backendPort behind the
// accounting proxy, hardened with a read-only file system: LiteLLM
// without a database writes nothing (seen by running it as an unprivileged user with no home),
// so there is no StateDirectory or CacheDirectory, and PrivateTmp gives it a /tmp of its own.
func RenderLiteLLMUnit(c *Config, p LiteLLMUnitPaths) ([]byte, error) {
	if c.LiteLLM == nil {
		return nil, errors.New("render litellm.service: the config has no litellm section")
	}
	u := unitFile{
		Title:           "LiteLLM",
		Description:     fmt.Sprintf("LiteLLM gateway (llm-sandbox department %s, pool %s)", c.Department, c.Pool),
		Documentation:   "https://docs.litellm.ai/docs/proxy/configs",
		User:            LiteLLMUser,
		EnvironmentFile: p.EnvFile,
		EnvironmentFileWhy: []string{
			MasterKeyVar + ", from Secrets Manager: a root-only file that systemd reads as root",
			"before it drops to User=.",
		},
		Environment: LiteLLMEnv(),
		ExecStart:   CommandLine(p.Binary, liteLLMArgs(p.ConfigFile, "0.0.0.0", c.LiteLLM)...),
		HardeningWhy: []string{
			"Sandbox (systemd.exec(5)): LiteLLM without a database writes nothing, so the whole file",
			"system is read-only to it (its /tmp is private), its config explicitly so; no devices,",
			"no capabilities, IPv4/IPv6/Unix sockets only, the @system-service system calls, no",
			"writable and executable memory (LiteLLM served chat, streaming and 401s under the same",
			"seccomp rule; a cffi callback would need such memory, and none is on its path).",
		},
		Hardening: append(sandboxing(),
			"ProtectSystem=strict",
			"ReadOnlyPaths="+p.ConfigDir,
			"PrivateDevices=yes",
			"MemoryDenyWriteExecute=yes"),
	}
	return u.render(), nil
}
