package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRateLimitCacheRendersSharedCountersFailClosed(t *testing.T) {
	cfg := &LiteLLMConfig{
		Port: 4000, Workers: 2, RequestTimeoutSeconds: 600, KeepAliveSeconds: 75,
		Models: []LiteLLMModel{{Name: "llama3.1:8b", APIBase: "http://internal:11434"}},
		RateLimitCache: &RateLimitCache{Host: "master.cache.example", Port: 6379,
			AuthTokenSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:llm-sandbox/x/rate-limit-cache-auth-token"},
	}
	out, err := RenderLiteLLMConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  coordination_redis:\n    host: \"master.cache.example\"\n    port: 6379\n    password: \"os.environ/" + CacheAuthTokenVar + "\"\n    ssl: true\n",
		"    ssl_cert_reqs: \"required\"\n    ssl_check_hostname: true\n",
		"  fail_closed_rate_limit_enforcement: true\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config.yaml lacks %q:\n%s", want, out)
		}
	}
	cfg.RateLimitCache = nil
	out, _ = RenderLiteLLMConfig(cfg)
	if strings.Contains(string(out), "coordination_redis") || strings.Contains(string(out), "fail_closed") {
		t.Errorf("config.yaml without a cache names one:\n%s", out)
	}
}

func TestRateLimitCacheValidation(t *testing.T) {
	good := RateLimitCache{Host: "127.0.0.1", Port: 6379, AuthTokenSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:t"}
	if errs := good.validate(false); len(errs) != 0 {
		t.Fatalf("good cache: %v", errs)
	}
	for name, c := range map[string]RateLimitCache{
		"host":               {Host: "redis://x", Port: 6379, AuthTokenSecretArn: good.AuthTokenSecretArn},
		"port":               {Host: "x", Port: 0, AuthTokenSecretArn: good.AuthTokenSecretArn},
		"authTokenSecretArn": {Host: "x", Port: 6379, AuthTokenSecretArn: "token"},
		"caCertFile":         {Host: "x", Port: 6379, AuthTokenSecretArn: good.AuthTokenSecretArn, CACertFile: "ca.pem"},
	} {
		errs := c.validate(false)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "litellm.rateLimitCache."+name+":") {
			t.Errorf("bad %s: got %v, want one error naming it", name, errs)
		}
	}
	if errs := good.validate(true); len(errs) != 1 {
		t.Errorf("a cache on the local platform: got %v, want one error", errs)
	}
}

const testCacheSecretArn = "arn:aws:secretsmanager:ca-central-1:123456789012:secret:llm-sandbox/chemistry/rate-limit-cache-auth-token-AbCdEf"

// With a rate-limit cache, the secret step reads the cache's AUTH token too and writes it
// beside the master key into the root-only environment file, never into config.yaml or the
// log; a token of the wrong shape, or none, stops the boot (ABANDON) before LiteLLM starts.
func TestRateLimitCacheTokenIntoTheEnvironmentFile(t *testing.T) {
	const token = "Zq7Xw2Lr9Vb4Nc1Md8Kf3Hj6Gt5Ps0Ya2Ue7Wi4Ro9TyQxAbCdEfGhIjKlMnOpQr"
	e := newLiteEnv(t)
	e.cfg.LiteLLM.RateLimitCache = &RateLimitCache{Host: "master.chemistry-limits.abcdef.cac1.cache.amazonaws.com", Port: 6379, AuthTokenSecretArn: testCacheSecretArn}
	e.sm.Put(testCacheSecretArn, token)
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	env, err := os.ReadFile(filepath.Join(e.root, LiteLLMEnvFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "\n"+CacheAuthTokenVar+"="+token+"\n") || !strings.Contains(string(env), MasterKeyVar+"=") {
		t.Errorf("environment file lacks the token beside the master key:\n%s", env)
	}
	if fi, _ := os.Stat(filepath.Join(e.root, LiteLLMEnvFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("environment file mode %s, want 0600", fi.Mode().Perm())
	}
	config, _ := os.ReadFile(filepath.Join(e.root, LiteLLMConfigFile))
	if strings.Contains(string(config), token) || strings.Contains(e.log.String(), token) {
		t.Errorf("the token reached config.yaml or the log")
	}
	if !strings.Contains(string(config), "os.environ/"+CacheAuthTokenVar) {
		t.Errorf("config.yaml does not read the token from the environment:\n%s", config)
	}

	for name, value := range map[string]string{"too short": "Zq7Xw2Lr9Vb4", "a quote": "Zq7Xw2Lr9Vb4Nc1Md8Kf3\"Hj6Gt5Ps0Ya2"} {
		t.Run(name, func(t *testing.T) {
			e := newLiteEnv(t)
			e.cfg.LiteLLM.RateLimitCache = &RateLimitCache{Host: "master.x", Port: 6379, AuthTokenSecretArn: testCacheSecretArn}
			e.sm.Put(testCacheSecretArn, value)
			err := e.bootstrap()
			wantStepFailure(t, err, StepSecret, "the AUTH token in "+testCacheSecretArn)
			if strings.Contains(err.Error(), "Zq7Xw2") || strings.Contains(e.log.String(), "Zq7Xw2") {
				t.Errorf("the token reached the error or the log: %v", err)
			}
			wantResults(t, e.lc, ResultAbandon)
		})
	}
	t.Run("missing", func(t *testing.T) {
		e := newLiteEnv(t)
		e.cfg.LiteLLM.RateLimitCache = &RateLimitCache{Host: "master.x", Port: 6379, AuthTokenSecretArn: testCacheSecretArn}
		wantStepFailure(t, e.bootstrap(), StepSecret, "read the rate-limit cache's AUTH token", "ResourceNotFoundException")
		wantResults(t, e.lc, ResultAbandon)
	})
}
