package node

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
)

// CacheAuthTokenVar is the environment variable config.yaml reads the rate-limit cache's AUTH
// token from; the agent writes it into the root-only LiteLLMEnvFile beside the master key.
const CacheAuthTokenVar = "LLM_SANDBOX_CACHE_AUTH_TOKEN"

// RateLimitCache is the Redis-compatible cache (ElastiCache for Valkey on AWS) in which every
// LiteLLM worker of every gateway node keeps its rate-limit counters, so that a key's limits
// hold for the whole gateway instead of once per worker. It is reached over TLS only, with an
// AUTH token; the node config names the token's secret, never the token.
type RateLimitCache struct {
	// Host is the cache's primary endpoint (a DNS name, or an IP address in tests). Required.
	Host string `json:"host"`
	// Port is the cache's TLS port (6379 on ElastiCache). Required.
	Port int `json:"port"`
	// AuthTokenSecretArn is the Secrets Manager secret holding the cache's AUTH token, in the
	// node's region. The agent reads it at boot into the root-only environment file, like the
	// master key. Required.
	AuthTokenSecretArn string `json:"authTokenSecretArn"`
	// CACertFile, optional, is an absolute path of a PEM file with the certificate authority
	// that signed the cache's certificate. Absent (on AWS), the system's trust store is used:
	// ElastiCache's certificates are issued by Amazon's public certificate authority.
	CACertFile string `json:"caCertFile,omitempty"`
}

// cacheHost is a DNS name or an IP address.
var cacheHost = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// cacheTokenChars is the shape of an AUTH token the agent accepts: ElastiCache takes 16 to 128
// printable characters (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth.html,
// "Authenticating with the Valkey and Redis OSS AUTH command"); the KeyStore generates
// alphanumeric ones, which an environment file carries unquoted.
var cacheTokenChars = regexp.MustCompile(`^[A-Za-z0-9]{16,128}$`)

// validate names each bad field under litellm.rateLimitCache.
func (c *RateLimitCache) validate(local bool) []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("litellm.rateLimitCache.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if local {
		add("host", "is only for AWS: platform %s runs one gateway process, whose own counters are exact (got %q)", PlatformLocal, c.Host)
	}
	if net.ParseIP(c.Host) == nil && !cacheHost.MatchString(c.Host) {
		add("host", "must be the cache's endpoint, a DNS name or an IP address (got %q)", c.Host)
	}
	if c.Port < 1 || c.Port > 65535 {
		add("port", "must be 1-65535 (got %d)", c.Port)
	}
	if !secretARN.MatchString(c.AuthTokenSecretArn) {
		add("authTokenSecretArn", "must be a Secrets Manager secret ARN, arn:aws:secretsmanager:<region>:<account>:secret:<name> (got %q)", c.AuthTokenSecretArn)
	}
	if c.CACertFile != "" && !filepath.IsAbs(c.CACertFile) {
		add("caCertFile", "must be an absolute path, or absent for the system's trust store (got %q)", c.CACertFile)
	}
	return errs
}

// renderRateLimitCache writes the general_settings lines that put LiteLLM's rate-limit
// counters in the cache, and fail closed when it does not answer. Names and behaviour as the
// pinned LiteLLM (1.108.7) reads them:
//   - general_settings.coordination_redis: ProxyConfig._init_coordination_redis
//     (litellm/proxy/proxy_server.py) validates the block as CoordinationRedisParams
//     (litellm/proxy/_types.py: host, port, password, username, ssl, ...; extra keys are passed
//     on), resolves "os.environ/NAME" values, builds a RedisCache and publishes it as the
//     proxy's redis_usage_cache, which ProxyLogging.update_values (litellm/proxy/utils.py) makes
//     the rate limiter's internal_usage_cache.dual_cache.redis_cache. This block, unlike
//     litellm_settings.cache, turns on no response cache: nothing of a prompt or a completion
//     is written to the cache, only counters named by the key's id (the user the custom-auth
//     module returns) and the team, as the usage metrics are.
//   - With a Redis, the v3 limiter (litellm/proxy/hooks/parallel_request_limiter_v3.py,
//     should_rate_limit) increments the requests-per-minute and tokens-per-minute windows with
//     one Lua script on the server's clock, and max_parallel_requests with a sorted set of
//     in-flight slots (_check_parallel_request_gauges), shared by every worker and node.
//   - ssl: true makes the connection pool use redis.asyncio.SSLConnection (litellm/_redis.py,
//     get_redis_connection_pool); ssl_cert_reqs and ssl_check_hostname are redis-py's
//     (redis/asyncio/connection.py, SSLConnection: defaults "required" and True, set here so a
//     change of default cannot loosen them); ssl_ca_certs names the CA file.
//   - general_settings.fail_closed_rate_limit_enforcement: true: when a counter cannot be
//     read or incremented in Redis, the limiter answers 503 ("Rate limit enforcement
//     unavailable") instead of falling back to per-process counters
//     (parallel_request_limiter_v3.py, _reject_if_rate_limit_unverifiable and
//     _execute_redis_batch_rate_limiter_script).
func renderRateLimitCache(c *RateLimitCache, line func(indent int, format string, args ...any), comment func(indent int, text string)) {
	if c == nil {
		return
	}
	comment(1, "Rate limits shared by every worker of every gateway node: the counters live in the\n"+
		"department's cache (TLS and an AUTH token only; counters named by key id and team, never a\n"+
		"prompt or a completion). The token comes from the environment ("+CacheAuthTokenVar+").")
	line(1, "coordination_redis:")
	line(2, "host: %s", yamlString(c.Host))
	line(2, "port: %d", c.Port)
	line(2, "password: %s", yamlString("os.environ/"+CacheAuthTokenVar))
	line(2, "ssl: true")
	line(2, "ssl_cert_reqs: %s", yamlString("required"))
	line(2, "ssl_check_hostname: true")
	if c.CACertFile != "" {
		line(2, "ssl_ca_certs: %s", yamlString(c.CACertFile))
	}
	comment(1, "A cache that does not answer refuses requests with 503: never per-process counters,\n"+
		"which would let a key reach its limit once per worker.")
	line(1, "fail_closed_rate_limit_enforcement: true")
}

// cacheAuthTokenLines reads the rate-limit cache's AUTH token, when the config has a cache,
// and returns the environment-file lines that carry it. The token is never logged.
func (r *liteLLMRole) cacheAuthTokenLines(ctx context.Context, getter SecretGetter) (string, error) {
	c := r.litellm.RateLimitCache
	if c == nil {
		return "", nil
	}
	var token string
	if err := r.retry(ctx, StepSecret, "GetSecretValue", func(ctx context.Context) error {
		v, err := getter.GetSecretString(ctx, c.AuthTokenSecretArn)
		token = v
		return err
	}); err != nil {
		return "", fmt.Errorf("read the rate-limit cache's AUTH token: %w", err)
	}
	if !cacheTokenChars.MatchString(token) {
		return "", permanent(fmt.Errorf("the AUTH token in %s must be 16-128 letters and digits (the secret holds %d characters)", c.AuthTokenSecretArn, len(token)))
	}
	var b strings.Builder
	b.WriteString("# The rate-limit cache's AUTH token, from " + c.AuthTokenSecretArn + ".\n")
	b.WriteString(CacheAuthTokenVar + "=" + token + "\n")
	return b.String(), nil
}
