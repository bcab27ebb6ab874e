package node

import (
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
