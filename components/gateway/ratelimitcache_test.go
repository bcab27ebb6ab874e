package gateway

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws/mocktest"
	"github.com/llm-sandbox/llm-sandbox/node"
)

const (
	cacheHost      = "master.chem-limits.abcdef.cac1.cache.amazonaws.com"
	cacheSG        = "sg-cache"
	cacheSecretArn = "arn:aws:secretsmanager:ca-central-1:123456789012:secret:llm-sandbox/chem/rate-limit-cache-auth-token-AbCdEf"
)

func withCache(a *GatewayArgs) {
	a.RateLimitCache = &RateLimitCache{
		Host: pulumi.String(cacheHost), Port: 6379,
		AuthTokenSecretArn: pulumi.String(cacheSecretArn), SecurityGroupID: pulumi.String(cacheSG),
	}
}

// With a rate-limit cache, the node config names its endpoint and its token's secret (never
// the token), the node role may read that secret only, and two rules admit the gateway nodes,
// and nothing else, to the cache's port. Without one, none of these.
func TestRateLimitCache(t *testing.T) {
	m, g, _ := mustRun(t, with(withCache))
	_, cfg := cloudConfig(t, m)
	want := &node.RateLimitCache{Host: cacheHost, Port: 6379, AuthTokenSecretArn: cacheSecretArn}
	if got := cfg.LiteLLM.RateLimitCache; !reflect.DeepEqual(got, want) {
		t.Errorf("node config rateLimitCache = %+v, want %+v", got, want)
	}
	rp := mocktest.Named(t, m, tRolePolicy, "chem-gw-rate-limit-cache")
	if rp["role"] != roleName || g.CachePolicy == nil {
		t.Errorf("cache policy on %v (struct field set: %t), want %s", rp["role"], g.CachePolicy != nil, roleName)
	}
	stmts := mocktest.Policy(t, rp["policy"])
	if len(stmts) != 1 || stmts[0].Sid != SidReadCacheAuthToken || stmts[0].Effect != "Allow" ||
		!reflect.DeepEqual(strs(stmts[0].Action), []string{"secretsmanager:GetSecretValue"}) ||
		!reflect.DeepEqual(strs(stmts[0].Resource), []string{cacheSecretArn}) {
		t.Errorf("cache policy = %+v, want GetSecretValue on the token's secret only", stmts)
	}
	var rules []string
	for _, typ := range []string{tIngress, tEgress} {
		for _, r := range m.ByType(typ) {
			in := mockaws.Plain(r.Inputs)
			if in["securityGroupId"] == cacheSG || in["referencedSecurityGroupId"] == cacheSG {
				rules = append(rules, r.Name+" "+in["securityGroupId"].(string)+" "+in["referencedSecurityGroupId"].(string))
				if in["fromPort"] != 6379.0 || in["toPort"] != 6379.0 || in["ipProtocol"] != "tcp" {
					t.Errorf("%s: %v %v..%v, want TCP 6379", r.Name, in["ipProtocol"], in["fromPort"], in["toPort"])
				}
			}
		}
	}
	wantRules := []string{"chem-gw-cache-in-nodes " + cacheSG + " " + mockID("sg"), "chem-gw-nodes-out-cache " + mockID("sg") + " " + cacheSG}
	if !reflect.DeepEqual(rules, wantRules) {
		t.Errorf("cache rules = %v, want %v", rules, wantRules)
	}

	m, g, _ = mustRun(t, validArgs())
	if _, cfg := cloudConfig(t, m); cfg.LiteLLM.RateLimitCache != nil || g.CachePolicy != nil {
		t.Errorf("a gateway without a cache: node config %+v, policy %v", cfg.LiteLLM.RateLimitCache, g.CachePolicy)
	}
	if _, ok := m.ByName(tRolePolicy, "chem-gw-rate-limit-cache"); ok {
		t.Errorf("a gateway without a cache grants a cache token")
	}
}

// A cache without its endpoint, token secret or group, or with a bad port, is refused.
func TestRateLimitCacheInvalid(t *testing.T) {
	for field, edit := range map[string]func(*RateLimitCache){
		"RateLimitCache.Port":               func(c *RateLimitCache) { c.Port = 0 },
		"RateLimitCache.Host":               func(c *RateLimitCache) { c.Host = nil },
		"RateLimitCache.AuthTokenSecretArn": func(c *RateLimitCache) { c.AuthTokenSecretArn = nil },
		"RateLimitCache.SecurityGroupID":    func(c *RateLimitCache) { c.SecurityGroupID = nil },
	} {
		m, _, _, err := run(t, with(func(a *GatewayArgs) { withCache(a); edit(a.RateLimitCache) }))
		if err == nil || !strings.Contains(err.Error(), field+":") {
			t.Errorf("%s: error %v, want one naming it", field, err)
		}
		if n := len(m.Resources()); n != 0 {
			t.Errorf("%s: %d resources registered, want none", field, n)
		}
	}
}
