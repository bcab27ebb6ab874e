package verify

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/loadgen"
)

// DefaultWaitInterval is how long Wait pauses between attempts: a load balancer marks a target
// healthy after a few health checks some seconds apart, and a new DNS record takes about a
// minute to reach every Route 53 name server.
const DefaultWaitInterval = 10 * time.Second

// WaitOptions bound Wait.
type WaitOptions struct {
	// Within is how long Wait keeps trying: no attempt starts after it, and the last one may
	// take up to Timeout per request beyond it. Required (positive).
	Within time.Duration
	// Interval is the pause between attempts. Optional. Defaults to DefaultWaitInterval.
	Interval time.Duration
	// Timeout bounds each request. Required (positive).
	Timeout time.Duration
	// Models must answer a chat completion. Optional. Defaults to every model listed.
	Models []string
	// Progress, when set, is told of each attempt that was not ready yet.
	Progress func(msg string)
}

// Readiness is what Wait saw.
type Readiness struct {
	// Ready is true when the endpoint listed its models and each answered a chat completion.
	Ready bool
	// Attempts is how many times Wait tried.
	Attempts int
	// Waited is the time from the first attempt to the last answer.
	Waited time.Duration
	// Last is the last answer that was not ready, "" when the first attempt was.
	Last string
	// Settled is true when Wait stopped on an answer that waiting cannot change (a refused
	// key, a model the gateway does not know), before Within was up.
	Settled bool
}

// Wait tries, every Interval until Within has passed, what a freshly deployed endpoint needs to
// serve: GET /v1/models lists the models, and each answers a short chat completion. It keeps
// trying while the answers are the ones a deployment still coming up gives: no answer at all
// (a name not yet in DNS, a connection refused or timed out) or HTTP 500, 502, 503 or 504 (a
// load balancer with no healthy target yet, or LiteLLM relaying one). Any other answer is
// final, and Wait returns at once so the checks report it. Wait never fails the checks itself:
// the caller runs them after it either way.
func Wait(ctx context.Context, c *loadgen.Client, o WaitOptions) Readiness {
	interval := o.Interval
	if interval <= 0 {
		interval = DefaultWaitInterval
	}
	start := time.Now()
	deadline := start.Add(o.Within)
	var r Readiness
	for {
		r.Attempts++
		last, transient := attempt(ctx, c, o)
		r.Waited = time.Since(start)
		if last == "" {
			r.Ready = true
			return r
		}
		r.Last = last
		if !transient {
			r.Settled = true
			return r
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return r
		}
		pause := min(interval, left)
		if o.Progress != nil {
			o.Progress(fmt.Sprintf("not ready after %s: %s; next try in %s (waiting up to %s)",
				r.Waited.Round(time.Second), last, pause.Round(time.Second), o.Within))
		}
		select {
		case <-ctx.Done():
			return r
		case <-time.After(pause):
		}
	}
}

// attempt is one try: "" when ready, else what was not, and whether waiting may change it.
func attempt(ctx context.Context, c *loadgen.Client, o WaitOptions) (string, bool) {
	l := listing(ctx, c, Options{Models: o.Models, Timeout: o.Timeout})
	if !l.OK {
		return "listing: " + l.Detail, transient(l.Status)
	}
	models := o.Models
	if len(models) == 0 {
		models = l.Listed
	}
	for _, m := range models {
		if IsEmbedding(m) {
			if e := embedding(ctx, c, m, o.Timeout); !e.OK {
				return m + " embedding: " + e.Detail, transient(e.Status)
			}
		} else if ch := chat(ctx, c, m, o.Timeout); !ch.OK {
			return m + " chat: " + ch.Detail, transient(ch.Status)
		}
	}
	return "", false
}

// transient reports whether an answer's status is one a deployment coming up gives: none at
// all (status 0), or a server error of the load balancer or of LiteLLM relaying an upstream
// that is not there yet.
func transient(status int) bool {
	switch status {
	case 0, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
