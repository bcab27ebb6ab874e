package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// localLite turns the litellm test environment into a local-platform one: no lifecycle hook,
// the master key in an owner-only file of the given mode.
func localLite(t *testing.T, mode os.FileMode) *liteEnv {
	t.Helper()
	e := newLiteEnv(t)
	keyFile := filepath.Join(t.TempDir(), "master-key")
	if err := os.WriteFile(keyFile, []byte(testMasterKey+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	e.cfg.Platform = PlatformLocal
	e.cfg.Lifecycle = Lifecycle{}
	e.cfg.LiteLLM.MasterKeySecretArn = ""
	e.cfg.LiteLLM.MasterKeyFile = keyFile
	e.cfg.LiteLLM.KeyRegistry = &KeyRegistry{File: filepath.Join(filepath.Dir(keyFile), "keys.json"), Teams: []LiteLLMTeam{
		{Name: "staff", Models: []string{"llama3.1:8b", "phi3:mini"}, RequestsPerMinute: 60, TokensPerMinute: 100000, ParallelPerKey: 2},
	}}
	return e
}

// localKeyRegistry is registryConfig's teams with their keys in the local store file.
func localKeyRegistry(file string) *KeyRegistry {
	k := registryConfig().LiteLLM.KeyRegistry
	k.Table, k.File = "", file
	return k
}

func TestLocalLiteLLMBootstrapReadsTheKeyFileAndCompletesNoLifecycleAction(t *testing.T) {
	e := localLite(t, 0o600)
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	var want []string
	for _, s := range []string{StepInstall, StepUser, StepSecret, StepConfigure, StepStart} {
		want = append(want, s+" start", s+" ok")
	}
	if got := stepLines(e.log.String()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("step log = %v\nwant %v (no lifecycle step on the local platform)", got, want)
	}
	if sent := e.lc.sent(); len(sent) != 0 {
		t.Errorf("lifecycle results sent on the local platform: %v", sent)
	}
	if calls := e.sm.Calls(); len(calls) != 0 {
		t.Errorf("Secrets Manager called on the local platform: %v", calls)
	}
	env, err := readEnvFile(filepath.Join(e.root, LiteLLMEnvFile))
	if err != nil || fmt.Sprint(env) != "["+MasterKeyVar+"="+testMasterKey+"]" {
		t.Errorf("%s holds %v (%v), want exactly %s=<the key from the file>", LiteLLMEnvFile, env, err, MasterKeyVar)
	}
	e.keyContained()
}

func TestLocalKeyFileReadableByOthersFailsWithoutAbandon(t *testing.T) {
	e := localLite(t, 0o644)
	err := e.bootstrap()
	wantStepFailure(t, err, StepSecret, "readable or writable by others", e.cfg.LiteLLM.MasterKeyFile)
	if sent := e.lc.sent(); len(sent) != 0 {
		t.Errorf("lifecycle results sent on the local platform: %v", sent)
	}
	if strings.Contains(e.log.String(), "ABANDON") {
		t.Errorf("the log speaks of ABANDON on the local platform:\n%s", e.log)
	}
	if _, err := os.Stat(filepath.Join(e.root, LiteLLMEnvFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an environment file was written from a key file others can read: %v", err)
	}
}

func TestLocalPlatformValidation(t *testing.T) {
	local := func(mutate func(*Config)) *Config {
		c := liteLLMGoldenConfig()
		c.Platform = PlatformLocal
		c.Lifecycle = Lifecycle{}
		c.LiteLLM.MasterKeySecretArn = ""
		c.LiteLLM.MasterKeyFile = "/home/u/.cache/llm-sandbox/local/chemistry/master-key"
		c.LiteLLM.KeyRegistry = localKeyRegistry("/home/u/.cache/llm-sandbox/local/chemistry/keys.json")
		if mutate != nil {
			mutate(c)
		}
		return c
	}
	if err := local(nil).Validate(); err != nil {
		t.Fatalf("local gateway config: %v", err)
	}
	pool := goldenConfig(false)
	pool.Platform, pool.Lifecycle = PlatformLocal, Lifecycle{}
	if err := pool.Validate(); err != nil {
		t.Errorf("local pool config: %v", err)
	}
	for name, tc := range map[string]struct {
		c    *Config
		want string
	}{
		"hook on local":      {local(func(c *Config) { c.Lifecycle.Hook = "llm-sandbox-launch" }), "lifecycle: must be absent on platform local"},
		"ARN on local":       {local(func(c *Config) { c.LiteLLM.MasterKeySecretArn = goldenSecretArn }), "litellm.masterKeySecretArn: must be absent on platform local"},
		"relative key file":  {local(func(c *Config) { c.LiteLLM.MasterKeyFile = "master-key" }), "litellm.masterKeyFile: must be an absolute path"},
		"no key file":        {local(func(c *Config) { c.LiteLLM.MasterKeyFile = "" }), "litellm.masterKeyFile: must be an absolute path"},
		"key file on AWS":    {func() *Config { c := liteLLMGoldenConfig(); c.LiteLLM.MasterKeyFile = "/k"; return c }(), "litellm.masterKeyFile: is only for platform local"},
		"unknown platform":   {func() *Config { c := liteLLMGoldenConfig(); c.Platform = "gcp"; return c }(), `platform: must be "aws" or "local", or absent (got "gcp")`},
		"no hook on AWS too": {func() *Config { c := liteLLMGoldenConfig(); c.Platform = PlatformAWS; c.Lifecycle.Hook = ""; return c }(), "lifecycle.hook: is required"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want %q", name, err, tc.want)
		}
	}
}
