package keys

import (
	"crypto/rand"
	"regexp"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws/mocktest"
)

var cacheTokenPattern = regexp.MustCompile(`^[A-Za-z0-9]{64}$`)

// With RateLimitCacheToken, the KeyStore keeps a generated AUTH token for the rate-limit cache
// in a secret of its own, encrypted with the department key; the token is a secret output
// for the cache. Without it, no such secret.
func TestCacheAuthTokenSecret(t *testing.T) {
	m := mockaws.New(region)
	var arn, tok string
	var tokSecret bool
	err := m.Run("llm-sandbox", "test", nil, func(ctx *pulumi.Context) error {
		ks, err := NewKeyStore(ctx, "chem", &KeyStoreArgs{Department: "chem", Region: region, RateLimitCacheToken: true})
		if err != nil {
			return err
		}
		pulumi.All(ks.CacheAuthTokenSecretArn, ks.CacheAuthToken).ApplyT(func(v []any) error {
			arn, tok = v[0].(string), v[1].(string)
			return nil
		})
		tokSecret = pulumi.IsSecret(ks.CacheAuthToken)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sec := mocktest.Named(t, m, secType, "chem-cache-auth-token")
	if sec["name"] != "llm-sandbox/chem/rate-limit-cache-auth-token" || sec["kmsKeyId"] != mockKeyArn || sec["recoveryWindowInDays"] != float64(DefaultWindowDays) {
		t.Errorf("cache token secret inputs = %v, want its name, the department key and the recovery window", sec)
	}
	ver, ok := m.ByName(verType, "chem-cache-auth-token-value")
	if !ok {
		t.Fatalf("no secret version chem-cache-auth-token-value")
	}
	raw := ver.Inputs["secretString"]
	value, secret := secretText(raw)
	if !raw.IsSecret() || !secret || !cacheTokenPattern.MatchString(value) {
		t.Errorf("cache token value: secret %t, %d characters; want a secret of 64 letters and digits", raw.IsSecret(), len(value))
	}
	if arn != "arn:aws:secretsmanager:"+region+":"+account+":secret:chem-cache-auth-token-id-AbCdEf" {
		t.Errorf("CacheAuthTokenSecretArn = %q", arn)
	}
	if tok != value || !tokSecret {
		t.Errorf("CacheAuthToken is not the stored value marked secret (secret %t)", tokSecret)
	}
	m, _ = mustRun(t, &KeyStoreArgs{Department: "chem", Region: region})
	if _, ok := m.ByName(secType, "chem-cache-auth-token"); ok {
		t.Errorf("a KeyStore without RateLimitCacheToken has a cache token secret")
	}
}

func TestGenerateCacheToken(t *testing.T) {
	a, err := generateCacheToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := generateCacheToken(rand.Reader)
	if !cacheTokenPattern.MatchString(a) || a == b {
		t.Errorf("tokens %q and %q: want two different strings of 64 letters and digits", a, b)
	}
}
