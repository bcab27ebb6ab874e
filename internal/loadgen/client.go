// Package loadgen is the client side of an OpenAI-compatible endpoint as the operator commands
// use it: `sandboxctl verify` sends single requests through it, `sandboxctl loadtest` drives
// many concurrent streaming users with it. Its parts are a server-sent event reader that never
// buffers a whole response (EventReader), a streaming client that times each request and
// classifies its failure (Streamer), a load run (Run) and the statistics a report and its
// verdict need (Percentile, Summarise).
//
// It is written to drive hundreds of streams from a 2-core machine without becoming the
// bottleneck: one shared http.Transport keeps a connection per user alive, and each user reuses
// its request body, event reader and chunk decoder for every request, so a streamed token costs
// a buffered read and one small JSON decode that allocates nothing. docs/performance.md holds
// the measurements.
package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client talks to one OpenAI-compatible endpoint with one key, over one shared transport.
type Client struct {
	base string // the endpoint up to and including /v1
	key  string
	auth string // "Bearer <key>"
	http *http.Client
}

// NewClient returns a client of the endpoint at baseURL (with or without a trailing /v1) that
// authenticates with key and keeps up to conns connections alive: one per concurrent user.
//
// It speaks HTTP/1.1 only, one connection per concurrent stream, as separate users behind
// separate browsers or scripts do; HTTP/2 would multiplex every user onto one connection and
// measure that connection's flow control instead. Compression is off: a gzip layer over a
// server-sent event stream delays every event until the compressor flushes.
func NewClient(baseURL, key string, conns int) *Client {
	conns = max(conns, 1)
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		// A non-nil empty map turns HTTP/2 off for https:// too.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	return &Client{base: BaseURL(baseURL), key: key, auth: "Bearer " + key, http: &http.Client{Transport: tr}}
}

// BaseURL normalises an endpoint URL to its OpenAI base: no trailing slash, ending in /v1.
// The stack output endpointUrl has no /v1; clients are often given one with it.
func BaseURL(u string) string {
	u = strings.TrimRight(u, "/")
	if !strings.HasSuffix(u, "/v1") {
		u += "/v1"
	}
	return u
}

// Close closes the idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// WithKey returns a client of the same endpoint and transport that sends key instead.
func (c *Client) WithKey(key string) *Client {
	cc := *c
	cc.key, cc.auth = key, "Bearer "+key
	return &cc
}

// Redact replaces the client's key in s: what a server echoes back (an error message quoting
// the key) must never reach the operator's terminal or a CI log.
func (c *Client) Redact(s string) string {
	if len(c.key) < 4 {
		return s
	}
	return strings.ReplaceAll(s, c.key, "[key redacted]")
}

// URL is the full URL of an API path such as "/models".
func (c *Client) URL(path string) string { return c.base + path }

// Key is the key the client sends; HTTP is its HTTP client. An SDK client of the same endpoint
// is built from them (sandboxctl verify drives the endpoint through the official Go SDK).
func (c *Client) Key() string { return c.key }

// HTTP is the client's HTTP client (HTTP/1.1, no compression).
func (c *Client) HTTP() *http.Client { return c.http }

// Kinds of failure, the keys of Summary.Errors. An HTTP status other than 200 is "http_<code>".
const (
	// KindTimeout: the request's own time limit passed (before or during the stream).
	KindTimeout = "timeout"
	// KindConnection: no response: the connection was refused, reset or could not be set up.
	KindConnection = "connection"
	// KindStreamCut: the response started but ended (EOF, reset) before "data: [DONE]".
	KindStreamCut = "stream_cut"
	// KindStreamError: the server sent an error inside the stream (an "error" event or a
	// chunk with an "error" object), as LiteLLM does when the model fails mid-answer.
	KindStreamError = "stream_error"
	// KindMalformed: a 200 answer that is not a chat completion stream (wrong content type, a
	// chunk that is not JSON, an event over MaxEventSize).
	KindMalformed = "malformed"
	// KindCancelled is not a failure: the run ended (duration over, or interrupted) while the
	// request was in flight. Summaries count these apart from errors.
	KindCancelled = "cancelled"
)

// HTTPKind is the kind of a non-200 answer.
func HTTPKind(status int) string { return fmt.Sprintf("http_%d", status) }

// StreamResult is one streamed chat completion as the client saw it. Durations count from the
// moment the request was sent.
type StreamResult struct {
	Status int // the HTTP status, 0 when no response came
	// TTFT is the time to the first chunk that carries generated text; 0 if none came.
	TTFT time.Duration
	// LastText is the time of the last chunk that carried text.
	LastText time.Duration
	// Total is the time to "data: [DONE]", or to the failure.
	Total time.Duration
	// Chunks counts the chunks that carried text.
	Chunks int
	// UsageTokens is usage.completion_tokens when the server sent a usage block (HasUsage).
	UsageTokens int
	HasUsage    bool
	// FinishReason is the finish_reason of the last choice that had one.
	FinishReason string
	// Done is true when the stream ended with "data: [DONE]".
	Done bool
	// Kind is "" for a complete stream, else one of the Kind constants or HTTPKind.
	Kind string
	// Err says what went wrong; nil when Kind is "".
	Err error
}

// Tokens is the request's completion tokens: the server's own count (usage) when the stream
// completed with one, else the text chunks received. A server may pack several tokens into a
// chunk, so its count is preferred; chunks are what is left for cut streams and servers that
// do not send usage.
func (r *StreamResult) Tokens() int {
	if r.HasUsage && r.Done {
		return r.UsageTokens
	}
	return r.Chunks
}

// Streamer sends streamed chat completions one after another, reusing its buffers: one per
// concurrent user. It is not safe for concurrent use.
type Streamer struct {
	c      *Client
	events *EventReader
	chunk  chunk
	body   bytes.Reader
	// OnText, when set, is called for every chunk that carries text (a progress counter).
	OnText func()
}

// NewStreamer returns a streamer over the client's shared transport.
func (c *Client) NewStreamer() *Streamer {
	return &Streamer{c: c, events: NewEventReader(nil)}
}

var doneMarker = []byte("[DONE]")

// Stream posts body (a chat completion request with "stream": true) to /chat/completions and
// reads the answer to its end. timeout bounds the whole request; cancelling ctx ends it as
// KindCancelled.
func (s *Streamer) Stream(ctx context.Context, body []byte, timeout time.Duration) StreamResult {
	var r StreamResult
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s.body.Reset(body)
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, s.c.base+"/chat/completions", &s.body)
	if err != nil {
		r.Kind, r.Err = KindMalformed, err
		return r
	}
	req.ContentLength = int64(len(body))
	req.Header["Content-Type"] = contentTypeJSON
	req.Header["Accept"] = acceptEventStream
	req.Header["Authorization"] = []string{s.c.auth}
	start := time.Now()
	resp, err := s.c.http.Do(req)
	if err != nil {
		r.Total = time.Since(start)
		r.Kind, r.Err = failure(ctx, reqCtx, KindConnection, err)
		return r
	}
	defer resp.Body.Close()
	r.Status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		r.Total = time.Since(start)
		r.Kind, r.Err = HTTPKind(resp.StatusCode), &HTTPError{Status: resp.StatusCode, Body: s.c.Redact(string(bytes.TrimSpace(msg)))}
		return r
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		r.Total = time.Since(start)
		r.Kind, r.Err = KindMalformed, fmt.Errorf("Content-Type %q, want text/event-stream (is \"stream\": true in the request?)", ct)
		return r
	}

	s.events.Reset(resp.Body)
	defer s.events.Reset(nil) // drop the reference to the body
	for {
		ev, err := s.events.Next()
		if err != nil {
			r.Total = time.Since(start)
			if err == io.EOF || err == ErrIncompleteEvent {
				err = fmt.Errorf("the stream ended before data: [DONE] (%d text chunks): %w", r.Chunks, err)
			}
			kind := KindStreamCut
			if errors.Is(err, ErrEventTooLarge) {
				kind = KindMalformed
			}
			r.Kind, r.Err = failure(ctx, reqCtx, kind, err)
			return r
		}
		if string(ev.Type) == "error" {
			r.Total = time.Since(start)
			r.Kind, r.Err = KindStreamError, fmt.Errorf("error event: %s", s.c.Redact(excerpt(ev.Data)))
			return r
		}
		if bytes.Equal(ev.Data, doneMarker) {
			r.Total = time.Since(start)
			r.Done = true
			// Read the body's end so the connection goes back to the pool for the next request.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			return r
		}
		if err := s.chunk.decode(ev.Data); err != nil {
			r.Total = time.Since(start)
			r.Kind, r.Err = KindMalformed, fmt.Errorf("chunk is not JSON (%v): %s", err, s.c.Redact(excerpt(ev.Data)))
			return r
		}
		if s.chunk.hasError() {
			r.Total = time.Since(start)
			r.Kind, r.Err = KindStreamError, fmt.Errorf("error in the stream: %s", s.c.Redact(excerpt(s.chunk.errRaw)))
			return r
		}
		if s.chunk.hasText() {
			t := time.Since(start)
			if r.Chunks == 0 {
				r.TTFT = t
			}
			r.LastText = t
			r.Chunks++
			if s.OnText != nil {
				s.OnText()
			}
		}
		if reason := s.chunk.finishReason(); reason != "" {
			r.FinishReason = reason
		}
		if n, ok := s.chunk.usageTokens(); ok {
			r.UsageTokens, r.HasUsage = n, true
		}
	}
}

var (
	contentTypeJSON   = []string{"application/json"}
	acceptEventStream = []string{"text/event-stream"}
)

// failure classifies an error: the run's end (ctx) makes it KindCancelled, the request's own
// deadline (reqCtx) KindTimeout, anything else kind.
func failure(ctx, reqCtx context.Context, kind string, err error) (string, error) {
	switch {
	case ctx.Err() != nil:
		return KindCancelled, err
	case errors.Is(reqCtx.Err(), context.DeadlineExceeded):
		return KindTimeout, fmt.Errorf("no complete answer within the request timeout: %w", err)
	}
	return kind, err
}

// HTTPError is an answer with a status other than 200.
type HTTPError struct {
	Status int
	Body   string // the first 512 bytes
}

func (e *HTTPError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body)
}

// excerpt is data shortened for a message.
func excerpt(data []byte) string {
	const n = 300
	if len(data) > n {
		return string(data[:n]) + "..."
	}
	return string(data)
}

// Do sends one non-streamed request (body nil for a GET) and returns the status and at most
// limit bytes of the body.
func (c *Client) Do(ctx context.Context, method, path string, body []byte, limit int64) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", c.auth)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	return resp.StatusCode, out, err
}

// ChatRequest returns the JSON body of a chat completion of one user message. A streamed one
// asks for the usage block (stream_options.include_usage), so the server's token count is
// there when it supports it.
func ChatRequest(model, prompt string, maxTokens int, stream bool) []byte {
	req := map[string]any{
		"model":       model,
		"messages":    []map[string]string{{"role": "user", "content": prompt}},
		"max_tokens":  maxTokens,
		"temperature": 0,
	}
	if stream {
		req["stream"] = true
		req["stream_options"] = map[string]any{"include_usage": true}
	}
	body, _ := json.Marshal(req) // maps of strings and numbers always marshal
	return body
}
