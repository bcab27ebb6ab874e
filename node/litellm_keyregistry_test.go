package node

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// registryConfig is the golden gateway config with a key registry of two teams.
func registryConfig() *Config {
	c := liteLLMGoldenConfig()
	c.LiteLLM.KeyRegistry = &KeyRegistry{Table: "llm-sandbox-chemistry-keys", Teams: []LiteLLMTeam{
		{Name: "staff", Models: []string{"llama3.1:8b", "qwen2.5:1.5b"}, RequestsPerMinute: 60, TokensPerMinute: 100000, ParallelPerKey: 2},
		{Name: "students", Models: []string{"qwen2.5:1.5b"}, RequestsPerMinute: 10, TokensPerMinute: 20000, ParallelPerKey: 1},
	}}
	return c
}

func TestKeyRegistryConfigValidation(t *testing.T) {
	if err := registryConfig().Validate(); err != nil {
		t.Fatalf("valid registry config: %v", err)
	}
	for name, tc := range map[string]struct {
		mutate func(*KeyRegistry)
		want   string
	}{
		"table":          {func(k *KeyRegistry) { k.Table = "keys" }, "litellm.keyRegistry.table: must be the department's registry table"},
		"team name":      {func(k *KeyRegistry) { k.Teams[0].Name = "Staff" }, "litellm.keyRegistry.teams[0].name: team name must be a lowercase DNS label"},
		"team twice":     {func(k *KeyRegistry) { k.Teams[1].Name = "staff" }, `litellm.keyRegistry.teams[1].name: repeats team "staff"`},
		"no models":      {func(k *KeyRegistry) { k.Teams[1].Models = nil }, "litellm.keyRegistry.teams[1].models: must list at least one model"},
		"unserved model": {func(k *KeyRegistry) { k.Teams[1].Models = []string{"mistral:7b"} }, `litellm.keyRegistry.teams[1].models[0]: "mistral:7b" is not a model of litellm.models`},
		"rpm":            {func(k *KeyRegistry) { k.Teams[0].RequestsPerMinute = 0 }, "litellm.keyRegistry.teams[0].requestsPerMinute: must be at least 1"},
		"tpm":            {func(k *KeyRegistry) { k.Teams[0].TokensPerMinute = -1 }, "litellm.keyRegistry.teams[0].tokensPerMinute: must be at least 1"},
		"parallel":       {func(k *KeyRegistry) { k.Teams[0].ParallelPerKey = 0 }, "litellm.keyRegistry.teams[0].parallelPerKey: must be at least 1"},
		"file on AWS":    {func(k *KeyRegistry) { k.File = "/var/lib/keys.json" }, `litellm.keyRegistry.file: is only for platform local (got "/var/lib/keys.json")`},
	} {
		c := registryConfig()
		tc.mutate(c.LiteLLM.KeyRegistry)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if _, err := RenderLiteLLMAuthSettings(c); err == nil {
			t.Errorf("%s: rendered the settings of an invalid registry", name)
		}
	}
}

// localRegistryConfig is registryConfig on the local platform: the master key and the keys
// from files of the local run.
func localRegistryConfig() *Config {
	c := registryConfig()
	c.Platform = PlatformLocal
	c.Lifecycle = Lifecycle{}
	c.LiteLLM.MasterKeySecretArn, c.LiteLLM.MasterKeyFile = "", "/home/u/.cache/llm-sandbox/local/chemistry/master-key"
	c.LiteLLM.KeyRegistry.Table, c.LiteLLM.KeyRegistry.File = "", "/home/u/.cache/llm-sandbox/local/chemistry/keys.json"
	return c
}

// On the local platform the registry is the local run's key store and is required: a local
// gateway never falls back to the master key.
func TestLocalKeyRegistryConfigValidation(t *testing.T) {
	if err := localRegistryConfig().Validate(); err != nil {
		t.Fatalf("valid local registry config: %v", err)
	}
	for name, tc := range map[string]struct {
		mutate func(*LiteLLMConfig)
		want   string
	}{
		"no registry":   {func(l *LiteLLMConfig) { l.KeyRegistry = nil }, "litellm.keyRegistry: is required on platform local"},
		"no file":       {func(l *LiteLLMConfig) { l.KeyRegistry.File = "" }, `litellm.keyRegistry.file: must be the absolute path of the local run's key store on platform local (got "")`},
		"relative file": {func(l *LiteLLMConfig) { l.KeyRegistry.File = "keys.json" }, `litellm.keyRegistry.file: must be the absolute path`},
		"a table":       {func(l *LiteLLMConfig) { l.KeyRegistry.Table = "llm-sandbox-chemistry-keys" }, "litellm.keyRegistry.table: must be absent on platform local"},
	} {
		c := localRegistryConfig()
		tc.mutate(c.LiteLLM)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// The settings hold the table, the node's region, the cache times and each team's models and
// limits under the names the module reads; without a registry there are none.
func TestRenderLiteLLMAuthSettings(t *testing.T) {
	data, err := RenderLiteLLMAuthSettings(registryConfig())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"table": "llm-sandbox-chemistry-keys", "region": "ca-central-1",
		"models":       []any{"llama3.1:8b", "qwen2.5:1.5b", "nomic-embed-text"},
		"cacheSeconds": float64(KeyCacheSeconds), "staleSeconds": float64(KeyStaleSeconds),
		"teams": map[string]any{
			"staff":    map[string]any{"models": []any{"llama3.1:8b", "qwen2.5:1.5b"}, "rpm": 60.0, "tpm": 100000.0, "parallel": 2.0},
			"students": map[string]any{"models": []any{"qwen2.5:1.5b"}, "rpm": 10.0, "tpm": 20000.0, "parallel": 1.0},
		},
	}
	if g, w := mustJSON(got), mustJSON(want); g != w {
		t.Errorf("settings:\n got  %s\n want %s", g, w)
	}
	if KeyCacheSeconds >= 60 || KeyStaleSeconds > 60 {
		t.Errorf("cache %d s, stale %d s: a revoke must take effect within 60 s", KeyCacheSeconds, KeyStaleSeconds)
	}
	// On the local platform the store's file takes the table's and the region's place; the
	// rest is the same.
	data, err = RenderLiteLLMAuthSettings(localRegistryConfig())
	if err != nil {
		t.Fatal(err)
	}
	var local map[string]any
	if err := json.Unmarshal(data, &local); err != nil {
		t.Fatal(err)
	}
	delete(want, "table")
	delete(want, "region")
	want["file"] = "/home/u/.cache/llm-sandbox/local/chemistry/keys.json"
	if g, w := mustJSON(local), mustJSON(want); g != w {
		t.Errorf("local settings:\n got  %s\n want %s", g, w)
	}
	if data, err := RenderLiteLLMAuthSettings(liteLLMGoldenConfig()); data != nil || err != nil {
		t.Errorf("without a registry: %q, %v; want nothing", data, err)
	}
}

// The configure step writes the settings beside the module with a registry, and removes a
// stale one without: the module would otherwise refuse the master key it should accept.
func TestConfigureWritesAndRemovesAuthSettings(t *testing.T) {
	e := newAgentEnv(t)
	c := registryConfig()
	e.cfg = c
	r := newLiteLLMRole(e.agent(), c.LiteLLM, e.options())
	if _, err := r.stepConfigure(context.Background(), &runState{}); err != nil {
		t.Fatal(err)
	}
	file := r.path(LiteLLMAuthSettingsFile)
	want, _ := RenderLiteLLMAuthSettings(c)
	if got, err := os.ReadFile(file); err != nil || string(got) != string(want) {
		t.Fatalf("settings file: %v\n%s", err, got)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o644 {
		t.Errorf("settings file mode %s, want 0644 (no secrets)", fi.Mode().Perm())
	}
	c.LiteLLM.KeyRegistry = nil
	msg, err := r.stepConfigure(context.Background(), &runState{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(msg, "(removed)") {
		t.Errorf("without a registry the settings file is still there (%v), step said %q", err, msg)
	}
}
