package gateway

import (
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/iampolicy"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// SidReadCacheAuthToken is the statement id of the nodes' grant on the cache's AUTH token.
const SidReadCacheAuthToken = "ReadRateLimitCacheAuthToken"

// RateLimitCache is the cache in which every LiteLLM worker of every gateway node keeps its
// rate-limit counters (cache.RateLimitCache), as the gateway's nodes reach it.
type RateLimitCache struct {
	// Host is the cache's primary endpoint. Required.
	Host pulumi.StringInput
	// Port is the cache's TLS port, 1..65535. Required.
	Port int
	// AuthTokenSecretArn is the secret holding the cache's AUTH token (keys.KeyStore
	// CacheAuthTokenSecretArn): the node role may read it, and the node fetches it at boot into
	// its root-only environment file. Required.
	AuthTokenSecretArn pulumi.StringInput
	// SecurityGroupID is the cache's security group, which must have no inline rules: the
	// gateway admits its nodes on Port, and nothing else. Required.
	SecurityGroupID pulumi.StringInput
}

// cacheNodeConfig is the node config's rate-limit cache: the endpoint and the token's secret,
// never the token. ElastiCache's certificates chain to Amazon's public authority, which the
// node's trust store holds, so no CA file is named.
func cacheNodeConfig(c *RateLimitCache, host, secretArn string) *node.RateLimitCache {
	if c == nil {
		return nil
	}
	return &node.RateLimitCache{Host: host, Port: c.Port, AuthTokenSecretArn: secretArn}
}

// cacheRules are the two rules that let the gateway nodes, and only them, reach the cache.
func (b *builder) cacheRules() []sgRule {
	c := b.args.RateLimitCache
	if c == nil {
		return nil
	}
	nodes := b.comp.SecurityGroup.ID()
	return []sgRule{
		{name: b.name + "-nodes-out-cache", group: nodes, port: c.Port, peer: c.SecurityGroupID,
			description: "Rate-limit cache (TLS, AUTH token)"},
		{name: b.name + "-cache-in-nodes", ingress: true, group: c.SecurityGroupID, port: c.Port, peer: nodes,
			description: "Rate-limit cache from the gateway nodes only"},
	}
}

// cacheAccess lets the node role read the cache's AUTH token ("<name>-rate-limit-cache"), that
// secret only. The node role already decrypts with the department key through Secrets Manager
// (for the master key), which is what reading this secret needs too.
func (b *builder) cacheAccess() error {
	c := b.args.RateLimitCache
	if c == nil {
		return nil
	}
	// Only the document is rendered in the ApplyT; no resource is created there.
	document := c.AuthTokenSecretArn.ToStringOutput().ApplyT(func(arn string) (string, error) {
		return iampolicy.JSON(iampolicy.Statement{
			Sid:      SidReadCacheAuthToken,
			Effect:   "Allow",
			Action:   []string{"secretsmanager:GetSecretValue"},
			Resource: arn,
		})
	}).(pulumi.StringOutput)
	policy, err := iam.NewRolePolicy(b.ctx, b.name+"-rate-limit-cache", &iam.RolePolicyArgs{
		Role:   b.comp.Role.Name,
		Policy: document,
	}, b.child())
	if err != nil {
		return err
	}
	b.comp.CachePolicy = policy
	return nil
}
