package gateway

import "github.com/llm-sandbox/llm-sandbox/components/internal/nodegroup"

// The timeout chain, outside in: client → front ALB (idle timeout) → LiteLLM (keep-alive,
// request timeout) → internal ALB (idle timeout) → Ollama (the pool target group's
// deregistration delay). Each link is sized so that it never ends a request the link before it
// still allows; docs/gateway.md explains each value.
//
// An ALB's idle timeout bounds silence, not length: it closes a connection on which no byte
// has moved, either way, for that long. A stream that keeps producing tokens is never idle;
// what must fit in the idle timeout is the wait for the first byte: for a streaming request,
// the time in Ollama's queue plus the prompt evaluation; for a non-streaming request, the whole
// generation, since nothing is sent until it is done. The ALB default of 60 s cuts both
// (Elastic Load Balancing, "Connection idle timeout",
// https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout;
// seen cutting LiteLLM streams in BerriAI/litellm#34819 and #7518).
const (
	// FrontIdleTimeoutSeconds is the front ALB's idle timeout: the longest a client waits for
	// a first byte. 900 s holds a non-streaming answer of a full 8192-token context (the
	// project's default) at the slowest planned 10 tokens/s (820 s), and a streaming request's
	// first token behind a full Ollama queue (four rounds per slot, MaxQueue). Longer would
	// mostly keep dead clients' connections open.
	FrontIdleTimeoutSeconds = 900
	// KeepAliveSeconds is LiteLLM's HTTP keep-alive (its --keepalive_timeout, uvicorn's): longer
	// than the front ALB's idle timeout, so LiteLLM never closes a connection the ALB is about
	// to reuse (which the ALB answers with a 502). AWS gives the same rule for every target.
	KeepAliveSeconds = FrontIdleTimeoutSeconds + 60
	// RequestTimeoutSeconds is LiteLLM's request timeout: the whole upstream call. It is at
	// least the front idle timeout (LiteLLM never gives up on a request the client may still
	// wait for) and as long as the longest generation any pool can run (a stream that keeps
	// flowing must not be cut by LiteLLM either): the largest deregistration delay, 3600 s.
	RequestTimeoutSeconds = nodegroup.MaxDeregistrationDelaySeconds
	// InternalIdleTimeoutSeconds is the internal ALB's idle timeout: at least the front's, so
	// the hop to Ollama never cuts a silence the client is still allowed; only 60 s more, so
	// that once the front ALB has given up on a client the internal ALB closes the upstream
	// connection soon after, and Ollama stops generating for no one. (Ollama's Go HTTP server
	// closes no idle connection itself: server/routes.go builds an http.Server with no
	// IdleTimeout or ReadTimeout; and LiteLLM's HTTP client drops idle pooled connections
	// after seconds, so no keep-alive race on this hop.)
	InternalIdleTimeoutSeconds = FrontIdleTimeoutSeconds + 60
	// DeregistrationDelaySeconds is the LiteLLM target group's deregistration delay: a leaving
	// gateway node finishes the streams it carries. It carries every pool's, so it is the
	// largest any pool target group can have (nodegroup.DeregistrationDelaySeconds of any context
	// length); a node with nothing in flight leaves at once.
	DeregistrationDelaySeconds = nodegroup.MaxDeregistrationDelaySeconds
	// NumRetries is LiteLLM's retries of a failed upstream call: one, so a node that answers
	// 503 with a full queue, or one that is going away, costs a retry through the internal
	// ALB (to the node with the fewest requests in flight) rather than the client's request.
	NumRetries = 1
)
