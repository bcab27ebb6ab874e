package node

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const goldenSecretArn = "arn:aws:secretsmanager:ca-central-1:123456789012:secret:llm-sandbox/chemistry/litellm-master-key-AbCdEf"

// liteLLMGoldenConfig is a fixed two-model gateway config, so the golden files do not depend on
// test ports.
func liteLLMGoldenConfig() *Config {
	return &Config{
		Role: RoleLiteLLM, Department: "chemistry", Pool: "gateway", Region: "ca-central-1",
		Lifecycle: Lifecycle{Hook: "llm-sandbox-launch", HeartbeatSeconds: 600},
		LiteLLM: &LiteLLMConfig{
			Port: 4000, Workers: 2, MasterKeySecretArn: goldenSecretArn,
			Models: []LiteLLMModel{
				NewLiteLLMModel("llama3.1:8b", "http://internal-chemistry-pools-123456.ca-central-1.elb.amazonaws.com:21234", 8192),
				{Name: "qwen2.5:1.5b", APIBase: "http://internal-chemistry-pools-123456.ca-central-1.elb.amazonaws.com:25678"},
				NewLiteLLMModel("nomic-embed-text", "http://internal-chemistry-pools-123456.ca-central-1.elb.amazonaws.com:25678", 8192),
			},
			RequestTimeoutSeconds: 3600, KeepAliveSeconds: 960, NumRetries: 1,
		},
	}
}

func TestLiteLLMRenderGolden(t *testing.T) {
	cfg := liteLLMGoldenConfig()
	config, err := RenderLiteLLMConfig(cfg.LiteLLM)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "litellm.config.yaml.golden", config)
	unit, err := RenderLiteLLMUnit(cfg, DefaultLiteLLMUnitPaths())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "litellm.service.golden", unit)
	// Deterministic: the same config renders the same bytes.
	again, _ := RenderLiteLLMConfig(liteLLMGoldenConfig().LiteLLM)
	if !bytes.Equal(config, again) {
		t.Errorf("two renders of one config differ")
	}
}

// liteLLMYAML is the part of config.yaml the tests read back with a YAML parser.
type liteLLMYAML struct {
	ModelList []struct {
		ModelName     string         `yaml:"model_name"`
		LiteLLMParams map[string]any `yaml:"litellm_params"`
		ModelInfo     map[string]any `yaml:"model_info"`
	} `yaml:"model_list"`
	LiteLLMSettings map[string]any `yaml:"litellm_settings"`
	RouterSettings  map[string]any `yaml:"router_settings"`
	GeneralSettings map[string]any `yaml:"general_settings"`
}

// TestLiteLLMConfigSettings reads the rendered config.yaml back with a YAML parser (as LiteLLM
// does), so the privacy, timeout and retry settings are checked as values, not as text.
func TestLiteLLMConfigSettings(t *testing.T) {
	cfg := liteLLMGoldenConfig().LiteLLM
	cfg.StreamTimeoutSeconds = 900
	data, err := RenderLiteLLMConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got liteLLMYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("config.yaml does not parse as the four sections: %v\n%s", err, data)
	}
	if len(got.ModelList) != 3 {
		t.Fatalf("model_list has %d entries, want 3", len(got.ModelList))
	}
	// Chat models through ollama_chat/ with their context and tools; the embedding model
	// through ollama/, the provider that embeds (no stream timeout: embeddings do not stream).
	wantParams := []map[string]any{
		{"model": "ollama_chat/llama3.1:8b", "api_base": cfg.Models[0].APIBase, "timeout": 3600, "stream_timeout": 900},
		{"model": "ollama_chat/qwen2.5:1.5b", "api_base": cfg.Models[1].APIBase, "timeout": 3600, "stream_timeout": 900},
		{"model": "ollama/nomic-embed-text", "api_base": cfg.Models[2].APIBase, "timeout": 3600},
	}
	wantInfo := []map[string]any{
		{"mode": "chat", "supports_function_calling": true, "max_input_tokens": 8192},
		{"mode": "chat", "supports_function_calling": false},
		{"mode": "embedding", "max_input_tokens": 2048},
	}
	for i, m := range cfg.Models {
		e := got.ModelList[i]
		if e.ModelName != m.Name || fmt.Sprint(e.LiteLLMParams) != fmt.Sprint(wantParams[i]) || fmt.Sprint(e.ModelInfo) != fmt.Sprint(wantInfo[i]) {
			t.Errorf("model_list[%d] = %s %v %v, want %s %v %v", i, e.ModelName, e.LiteLLMParams, e.ModelInfo, m.Name, wantParams[i], wantInfo[i])
		}
	}
	wantSections := map[string]struct {
		got, want map[string]any
	}{
		"litellm_settings": {got.LiteLLMSettings, map[string]any{"turn_off_message_logging": true, "request_timeout": 3600, "num_retries": 1, "drop_params": true, "callbacks": []any{"llm_sandbox_openai.handler", "llm_sandbox_usage.handler"}}},
		"router_settings":  {got.RouterSettings, map[string]any{"routing_strategy": "simple-shuffle", "num_retries": 1, "timeout": 3600}},
		"general_settings": {got.GeneralSettings, map[string]any{
			"master_key": "os.environ/LITELLM_MASTER_KEY", "disable_spend_logs": true,
			"store_prompts_in_spend_logs": false, "disable_error_logs": true,
			"custom_auth": "llm_sandbox_auth.user_api_key_auth",
		}},
	}
	for name, s := range wantSections {
		if fmt.Sprint(s.got) != fmt.Sprint(s.want) {
			t.Errorf("%s = %v\nwant exactly %v", name, s.got, s.want)
		}
	}
	if strings.Contains(string(data), "sk-") {
		t.Errorf("config.yaml holds something like a key:\n%s", data)
	}
	// Without a stream timeout of its own, a streamed call waits as long as any call.
	cfg.StreamTimeoutSeconds = 0
	data, _ = RenderLiteLLMConfig(cfg)
	if !strings.Contains(string(data), "      stream_timeout: 3600\n") {
		t.Errorf("stream_timeout does not default to requestTimeoutSeconds:\n%s", data)
	}
}

func TestRenderLiteLLMConfigRefusesWhatItCannotRender(t *testing.T) {
	for name, c := range map[string]struct {
		mutate func(*LiteLLMConfig)
		want   []string
	}{
		"no models":        {func(l *LiteLLMConfig) { l.Models = nil }, []string{"litellm.models: must list at least one model"}},
		"retries":          {func(l *LiteLLMConfig) { l.NumRetries = 3 }, []string{"litellm.numRetries: must be 0 or 1"}},
		"bad model + base": {func(l *LiteLLMConfig) { l.Models[1] = LiteLLMModel{Name: "a b", APIBase: "ftp://x"} }, []string{"litellm.models[1].name", "litellm.models[1].apiBase"}},
		"stream > request": {func(l *LiteLLMConfig) { l.StreamTimeoutSeconds = 4000 }, []string{"litellm.streamTimeoutSeconds"}},
	} {
		cfg := liteLLMGoldenConfig().LiteLLM
		c.mutate(cfg)
		_, err := RenderLiteLLMConfig(cfg)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: RenderLiteLLMConfig() = %v, want it to name %q", name, err, w)
			}
		}
	}
	// It needs only what it renders: the program renders config.yaml before a secret exists.
	cfg := liteLLMGoldenConfig().LiteLLM
	cfg.MasterKeySecretArn, cfg.Port, cfg.Workers = "", 0, 0
	if _, err := RenderLiteLLMConfig(cfg); err != nil {
		t.Errorf("RenderLiteLLMConfig() needs fields it does not render: %v", err)
	}
	if _, err := RenderLiteLLMConfig(nil); err == nil {
		t.Errorf("RenderLiteLLMConfig(nil) succeeded")
	}
}

func TestLiteLLMUnitSettings(t *testing.T) {
	unit, err := RenderLiteLLMUnit(liteLLMGoldenConfig(), DefaultLiteLLMUnitPaths())
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	for _, want := range []string{
		"\nUser=litellm\n", "\nGroup=litellm\n",
		"\nEnvironmentFile=/etc/llm-sandbox/litellm.env\n",
		"\nExecStart=/opt/llm-sandbox/litellm/bin/litellm --config /etc/llm-sandbox/litellm/config.yaml --host 0.0.0.0 --port 4000 --num_workers 2 --keepalive_timeout 960 --timeout_worker_healthcheck 120\n",
		"\nNoNewPrivileges=yes\n", "\nProtectSystem=strict\n", "\nProtectHome=yes\n", "\nPrivateTmp=yes\n",
		"\nReadOnlyPaths=/etc/llm-sandbox/litellm\n", "\nRestart=always\n",
		"\nEnvironment=LITELLM_LOCAL_MODEL_COST_MAP=True\n", "\nEnvironment=LITELLM_TELEMETRY_DISABLED=true\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
	// No database, so nothing to migrate and nothing writable.
	for _, bad := range []string{"DISABLE_SCHEMA_UPDATE", "StateDirectory", "CacheDirectory", "ReadWritePaths", "sk-", "/health\n"} {
		if strings.Contains(text, bad) {
			t.Errorf("unit has %q", bad)
		}
	}
	for _, v := range LiteLLMEnv() {
		if !strings.Contains(text, "\nEnvironment="+v.Name+"="+v.Value+"\n") || v.Why == "" {
			t.Errorf("unit does not set %s with a reason", v.Name)
		}
	}
}

// TestLiteLLMUnitPassesSystemdAnalyze runs the real validator on the unit, as for Ollama's:
// stand-in executables at the unit's paths in a temporary directory, and any output fails.
func TestLiteLLMUnitPassesSystemdAnalyze(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (%v): install systemd (apt-get install systemd) to validate the rendered unit", err)
	}
	dir := t.TempDir()
	p := LiteLLMUnitPaths{
		Binary:     filepath.Join(dir, "opt/llm-sandbox/litellm/bin/litellm"),
		ConfigFile: filepath.Join(dir, "etc/llm-sandbox/litellm/config.yaml"),
		ConfigDir:  filepath.Join(dir, "etc/llm-sandbox/litellm"),
		EnvFile:    filepath.Join(dir, "etc/llm-sandbox/litellm.env"),
	}
	for file, body := range map[string]string{p.Binary: "#!/bin/sh\nexit 0\n", p.ConfigFile: "model_list: []\n", p.EnvFile: "LITELLM_MASTER_KEY=sk-x\n"} {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	unit, err := RenderLiteLLMUnit(liteLLMGoldenConfig(), p)
	if err != nil {
		t.Fatal(err)
	}
	onNode, _ := RenderLiteLLMUnit(liteLLMGoldenConfig(), DefaultLiteLLMUnitPaths())
	replaced := strings.NewReplacer(p.Binary, LiteLLMBinary, p.ConfigFile, LiteLLMConfigFile, p.EnvFile, LiteLLMEnvFile, p.ConfigDir, LiteLLMConfigDir).Replace(string(unit))
	if replaced != string(onNode) {
		t.Fatalf("the verified copy differs from the node's unit beyond its paths")
	}
	file := filepath.Join(dir, "litellm.service")
	if err := os.WriteFile(file, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	analyzeUnit(t, analyze, file)
}
