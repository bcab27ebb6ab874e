package node

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLiteLLMConfigValid(t *testing.T) {
	if err := liteLLMGoldenConfig().Validate(); err != nil {
		t.Fatalf("golden litellm config: %v", err)
	}
	// Role ollama configs are unaffected.
	if err := goldenConfig(true).Validate(); err != nil {
		t.Errorf("ollama config: %v", err)
	}
}

func TestLiteLLMConfigValidationNamesEveryBadKey(t *testing.T) {
	for name, c := range map[string]struct {
		mutate func(*LiteLLMConfig)
		want   string
	}{
		"wheelhouse no hash":   {func(l *LiteLLMConfig) { l.Wheelhouse = &Artifact{URL: "s3://b/w.tar.zst"} }, "litellm.wheelhouse: sha256 must be 64"},
		"wheelhouse not zst":   {func(l *LiteLLMConfig) { l.Wheelhouse = &Artifact{URL: "s3://b/w.zip", SHA256: strings.Repeat("a", 64)} }, "litellm.wheelhouse.url: must name a .tar.zst"},
		"port":                 {func(l *LiteLLMConfig) { l.Port = 0 }, "litellm.port: must be 1-65535"},
		"workers":              {func(l *LiteLLMConfig) { l.Workers = 0 }, "litellm.workers: must be 1-64"},
		"secret name, not ARN": {func(l *LiteLLMConfig) { l.MasterKeySecretArn = "llm-sandbox/chemistry/litellm-master-key" }, "litellm.masterKeySecretArn: must be a Secrets Manager secret ARN"},
		"secret elsewhere": {func(l *LiteLLMConfig) {
			l.MasterKeySecretArn = strings.Replace(goldenSecretArn, "ca-central-1", "us-east-1", 1)
		}, "litellm.masterKeySecretArn: names a secret in region us-east-1, but the node is in ca-central-1"},
		"no models":          {func(l *LiteLLMConfig) { l.Models = nil }, "litellm.models: must list at least one model"},
		"model name":         {func(l *LiteLLMConfig) { l.Models[0].Name = "library/llama3" }, "litellm.models[0].name: must be an Ollama tag"},
		"duplicate model":    {func(l *LiteLLMConfig) { l.Models[1].Name = l.Models[0].Name }, "litellm.models[1].name: repeats models[0]"},
		"api base scheme":    {func(l *LiteLLMConfig) { l.Models[1].APIBase = "internal-alb:21234" }, "litellm.models[1].apiBase: must be http://"},
		"api base path":      {func(l *LiteLLMConfig) { l.Models[1].APIBase = "http://alb:21234/api/chat" }, "litellm.models[1].apiBase: must be http://<internal load balancer DNS>:<port>, with no credentials, path"},
		"api base port":      {func(l *LiteLLMConfig) { l.Models[1].APIBase = "http://alb:99999" }, "litellm.models[1].apiBase"},
		"request timeout":    {func(l *LiteLLMConfig) { l.RequestTimeoutSeconds = 0 }, "litellm.requestTimeoutSeconds: must be 1-4000"},
		"request too long":   {func(l *LiteLLMConfig) { l.RequestTimeoutSeconds = 7200 }, "litellm.requestTimeoutSeconds: must be 1-4000"},
		"stream timeout":     {func(l *LiteLLMConfig) { l.StreamTimeoutSeconds = -1 }, "litellm.streamTimeoutSeconds"},
		"keep-alive":         {func(l *LiteLLMConfig) { l.KeepAliveSeconds = 0 }, "litellm.keepAliveSeconds: must be 1-86400"},
		"retries":            {func(l *LiteLLMConfig) { l.NumRetries = 2 }, "litellm.numRetries: must be 0 or 1"},
		"negative retries":   {func(l *LiteLLMConfig) { l.NumRetries = -1 }, "litellm.numRetries: must be 0 or 1"},
		"newline in a model": {func(l *LiteLLMConfig) { l.Models[0].Name = "llama3\n:8b" }, "litellm.models[0].name"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := liteLLMGoldenConfig()
			c.mutate(cfg.LiteLLM)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate() = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func TestLiteLLMConfigReportsEveryProblemAtOnce(t *testing.T) {
	cfg := liteLLMGoldenConfig()
	cfg.Region = ""
	cfg.LiteLLM.Port, cfg.LiteLLM.Workers, cfg.LiteLLM.NumRetries, cfg.LiteLLM.KeepAliveSeconds = -1, 0, 5, 0
	err := cfg.Validate()
	var n int
	for _, key := range []string{"region:", "litellm.port:", "litellm.workers:", "litellm.numRetries:", "litellm.keepAliveSeconds:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate() does not report %s: %v", key, err)
		}
		n++
	}
	if got := len(strings.Split(err.Error(), "\n")); got != n {
		t.Errorf("Validate() reports %d problems, want %d:\n%v", got, n, err)
	}
}

func TestRoleSectionsMustMatchTheRole(t *testing.T) {
	lite := liteLLMGoldenConfig()
	lite.Ollama = goldenConfig(true).Ollama
	if err := lite.Validate(); err == nil || !strings.Contains(err.Error(), `ollama: is only for role ollama (role is "litellm")`) {
		t.Errorf("litellm role with an ollama section: %v", err)
	}
	ollama := goldenConfig(true)
	ollama.LiteLLM = liteLLMGoldenConfig().LiteLLM
	if err := ollama.Validate(); err == nil || !strings.Contains(err.Error(), `litellm: is only for role litellm (role is "ollama")`) {
		t.Errorf("ollama role with a litellm section: %v", err)
	}
	none := liteLLMGoldenConfig()
	none.LiteLLM = nil
	if err := none.Validate(); err == nil || !strings.Contains(err.Error(), "litellm: is required for role litellm") {
		t.Errorf("litellm role without its section: %v", err)
	}
	web := &Config{Role: "web"}
	if err := web.Validate(); err == nil || !strings.Contains(err.Error(), `role: must be "ollama" or "litellm" (got "web")`) {
		t.Errorf("unknown role: %v", err)
	}
}

// The node config travels as JSON: the litellm section round-trips through Marshal and
// LoadConfig under its documented keys, and unknown keys are refused.
func TestLiteLLMConfigJSON(t *testing.T) {
	cfg := liteLLMGoldenConfig()
	cfg.LiteLLM.Wheelhouse = &Artifact{URL: "s3://chemistry-artifacts/litellm/wheelhouse.tar.zst", SHA256: strings.Repeat("b", 64)}
	cfg.LiteLLM.StreamTimeoutSeconds = 900
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		LiteLLM map[string]any `json:"litellm"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range raw.LiteLLM {
		keys = append(keys, k)
	}
	for _, k := range []string{"wheelhouse", "port", "workers", "masterKeySecretArn", "models", "requestTimeoutSeconds", "streamTimeoutSeconds", "keepAliveSeconds", "numRetries"} {
		if _, ok := raw.LiteLLM[k]; !ok {
			t.Errorf("the litellm section has no %q key (has %v)", k, keys)
		}
	}
	file := filepath.Join(t.TempDir(), "node.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := LoadConfig(file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Errorf("round trip changed the config:\n%s", data)
	}
	bad := strings.Replace(string(data), `"numRetries"`, `"num_retries"`, 1)
	if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(file, Options{}); err == nil || !strings.Contains(err.Error(), "num_retries") {
		t.Errorf("LoadConfig accepted an unknown key: %v", err)
	}
	// The agent installs the LiteLLM it embeds: a config that names a version asks for
	// something the agent cannot choose, and is refused rather than ignored.
	versioned := strings.Replace(string(data), `"port"`, `"version":"1.108.7","port"`, 1)
	if err := os.WriteFile(file, []byte(versioned), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(file, Options{}); err == nil || !strings.Contains(err.Error(), `"version"`) {
		t.Errorf("LoadConfig accepted a LiteLLM version: %v", err)
	}
	if strings.Contains(string(data), "sk-") {
		t.Errorf("the node config holds a key")
	}
}

func TestCheckMasterKey(t *testing.T) {
	for key, ok := range map[string]bool{
		testMasterKey:            true,
		"sk-abc_DEF.123~+/=-xyz": true,
		"sk-":                    false,
		"SK-abc":                 false,
		"abc":                    false,
		"sk-abc def":             false,
		"sk-abc\"def":            false,
		"sk-abc$HOME":            false,
		"sk-abc#def":             false,
		"sk-abc\\n":              false,
	} {
		problem := checkMasterKey(key)
		if (problem == "") != ok {
			t.Errorf("checkMasterKey(%q) = %q, want ok=%v", key, problem, ok)
		}
		if problem != "" && strings.Contains(problem, strings.TrimPrefix(key, "sk-")) && len(key) > 3 {
			t.Errorf("checkMasterKey quotes the key: %q", problem)
		}
	}
}
