package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/loadgen/loadgentest"
)

// fakeFailingServer answers /v1/chat/completions with handler: the failures the real LiteLLM
// cannot be made to produce on demand (a cut stream, an error event, a 503, a stall). It binds
// 127.0.0.1 (httptest) and is closed by a cleanup.
func fakeFailingServer(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the request first: the server notices a client going away (and cancels
		// r.Context()) only once the request body has been consumed.
		_, _ = io.Copy(io.Discard, r.Body)
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// writeEvents writes a text/event-stream header and the events, flushing each.
func writeEvents(w http.ResponseWriter, events ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	moreEvents(w, events...)
}

// moreEvents writes more events after writeEvents, flushing each.
func moreEvents(w http.ResponseWriter, events ...string) {
	for _, e := range events {
		_, _ = io.WriteString(w, e)
		w.(http.Flusher).Flush()
	}
}

const (
	textEvent   = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" tok\"}}]}\n\n"
	finishEvent = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n"
	usageEvent  = "data: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\n"
	doneEvent   = "data: [DONE]\n\n"
)

func streamOnce(t *testing.T, url string, timeout time.Duration) StreamResult {
	t.Helper()
	c := NewClient(url, "sk-test", 1)
	defer c.Close()
	return c.NewStreamer().Stream(context.Background(), ChatRequest("m", "hi", 8, true), timeout)
}

func TestStreamComplete(t *testing.T) {
	var auth, path, accept atomic.Value
	srv := fakeFailingServer(t, func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		path.Store(r.URL.Path)
		accept.Store(r.Header.Get("Accept"))
		time.Sleep(20 * time.Millisecond)
		writeEvents(w, ": ping\n\n", textEvent)
		time.Sleep(30 * time.Millisecond)
		moreEvents(w, textEvent, textEvent, finishEvent, usageEvent, doneEvent)
	})
	// The stack output endpointUrl has no /v1; a URL with it works the same.
	for _, base := range []string{srv.URL, srv.URL + "/v1/"} {
		r := streamOnce(t, base, 10*time.Second)
		if r.Kind != "" || r.Err != nil || !r.Done || r.Status != 200 {
			t.Fatalf("%s: want a complete stream, got %+v", base, r)
		}
		if r.Chunks != 3 || !r.HasUsage || r.UsageTokens != 3 || r.Tokens() != 3 || r.FinishReason != "length" {
			t.Errorf("chunks %d, usage %d/%v, tokens %d, finish %q; want 3, 3/true, 3, length", r.Chunks, r.UsageTokens, r.HasUsage, r.Tokens(), r.FinishReason)
		}
		// The server waits 20 ms before the first text and 30 ms before the rest; the bounds
		// leave room for timer and scheduling slack, and check the order of the three marks.
		if r.TTFT < 15*time.Millisecond || r.LastText-r.TTFT < 20*time.Millisecond || r.Total < r.LastText {
			t.Errorf("timings TTFT %v, last text %v, total %v: want TTFT >= 15ms, >= 20ms between first and last text, total after", r.TTFT, r.LastText, r.Total)
		}
		if auth.Load() != "Bearer sk-test" || path.Load() != "/v1/chat/completions" || accept.Load() != "text/event-stream" {
			t.Errorf("request: Authorization %q, path %q, Accept %q", auth.Load(), path.Load(), accept.Load())
		}
	}
}

func TestStreamFailures(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		timeout time.Duration
		kind    string
		errHas  string
		chunks  int
	}{
		{"http status", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":{"message":"no capacity"}}`, http.StatusServiceUnavailable)
		}, 0, "http_503", "HTTP 503: {\"error\":{\"message\":\"no capacity\"}}", 0},
		{"cut before [DONE]", func(w http.ResponseWriter, r *http.Request) {
			writeEvents(w, textEvent, textEvent) // the handler returns: the body ends cleanly
		}, 0, KindStreamCut, "ended before data: [DONE] (2 text chunks)", 2},
		{"cut inside an event", func(w http.ResponseWriter, r *http.Request) {
			writeEvents(w, textEvent, "data: {\"choi")
		}, 0, KindStreamCut, "ended inside an event", 1},
		{"connection dropped mid-stream", func(w http.ResponseWriter, r *http.Request) {
			writeEvents(w, textEvent)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close() // mid-chunk: the client sees an unexpected EOF
			}
		}, 0, KindStreamCut, "", 1},
		{"error event", func(w http.ResponseWriter, r *http.Request) {
			writeEvents(w, textEvent, "event: error\ndata: {\"message\":\"upstream failed\"}\n\n")
		}, 0, KindStreamError, "upstream failed", 1},
		{"error chunk", func(w http.ResponseWriter, r *http.Request) {
			writeEvents(w, textEvent, "data: {\"error\":{\"message\":\"model crashed\",\"code\":\"500\"}}\n\n")
		}, 0, KindStreamError, "model crashed", 1},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) {
			writeEvents(w, "data: not json\n\n")
		}, 0, KindMalformed, "not JSON", 0},
		{"not a stream", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"choices":[]}`)
		}, 0, KindMalformed, "want text/event-stream", 0},
		{"stalls before the first token", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, 300 * time.Millisecond, KindTimeout, "request timeout", 0},
		{"no response headers in time", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, 300 * time.Millisecond, KindTimeout, "request timeout", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := fakeFailingServer(t, c.handler)
			timeout := c.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			start := time.Now()
			r := streamOnce(t, srv.URL, timeout)
			if r.Kind != c.kind || r.Done || r.Err == nil || !strings.Contains(r.Err.Error(), c.errHas) {
				t.Fatalf("kind %q, done %v, err %v; want kind %q, error containing %q", r.Kind, r.Done, r.Err, c.kind, c.errHas)
			}
			if r.Chunks != c.chunks {
				t.Errorf("%d text chunks counted, want %d", r.Chunks, c.chunks)
			}
			if took := time.Since(start); took > timeout+5*time.Second {
				t.Errorf("took %v with a %v timeout", took, timeout)
			}
		})
	}
}

func TestStreamConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := streamOnce(t, "http://"+addr, 5*time.Second)
	if r.Kind != KindConnection || r.Status != 0 || !strings.Contains(r.Err.Error(), "refused") {
		t.Errorf("kind %q, status %d, err %v; want connection, 0, refused", r.Kind, r.Status, r.Err)
	}
}

// The run's end cancels a stream in flight: counted as cancelled, not as an error.
func TestStreamCancelledByTheRun(t *testing.T) {
	srv := fakeFailingServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeEvents(w, textEvent)
		<-r.Context().Done()
	})
	c := NewClient(srv.URL, "k", 1)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := c.NewStreamer().Stream(ctx, ChatRequest("m", "hi", 8, true), time.Minute)
	if r.Kind != KindCancelled || r.Chunks != 1 {
		t.Errorf("kind %q with %d chunks, want cancelled with 1 (err %v)", r.Kind, r.Chunks, r.Err)
	}
}

// One user's requests go over one kept-alive connection: the stream is read to its end and
// the transport reuses the connection, instead of opening one per request.
func TestStreamReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeEvents(w, textEvent, finishEvent, usageEvent, doneEvent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := NewClient(srv.URL, "k", 4)
	defer c.Close()
	s := c.NewStreamer()
	for i := range 20 {
		if r := s.Stream(context.Background(), ChatRequest("m", "hi", 8, true), 5*time.Second); r.Kind != "" {
			t.Fatalf("request %d: %v", i, r.Err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential streams opened %d connections, want 1", n)
	}
}

// Against the load double, a run in requests mode sends exactly that many requests, all
// complete, and the users' streaming speed is the double's rate.
func TestRunRequests(t *testing.T) {
	const rate, tokens = 50.0, 6
	srv, err := loadgentest.Start("127.0.0.1:0", loadgentest.Options{TokensPerSecond: rate, TokensPerAnswer: tokens})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := NewClient(srv.URL, "k", 5)
	defer c.Close()
	var progress atomic.Int32
	res := Run(context.Background(), c, Options{
		Users: 5, Requests: 23, Body: ChatRequest("loadgentest", "hi", tokens, true), Timeout: 10 * time.Second,
		Progress: func(Progress) { progress.Add(1) }, ProgressEvery: 50 * time.Millisecond,
	})
	s := Summarise(res)
	if s.Requests.Sent != 23 || s.Requests.Completed != 23 || s.Requests.Failed != 0 || s.Requests.Unfinished != 0 {
		t.Fatalf("requests %+v, want 23 sent and completed", s.Requests)
	}
	if s.Users != 5 || s.Tokens != 23*tokens || s.TokensFrom != "usage" || s.TTFT.Samples != 23 {
		t.Errorf("users %d, tokens %d from %s, %d TTFT samples; want 5, %d from usage, 23", s.Users, s.Tokens, s.TokensFrom, s.TTFT.Samples, 23*tokens)
	}
	if p := s.UserTokensPerSecond; p.P5 < rate*0.3 || p.P50 < rate*0.3 || p.Max > rate*1.5 {
		t.Errorf("per-user tokens/s %+v for a %g tokens/s double", p, rate)
	}
	if s.AggregateTokensPerSecond <= 0 || progress.Load() == 0 {
		t.Errorf("aggregate %g tokens/s, %d progress reports", s.AggregateTokensPerSecond, progress.Load())
	}
}

// In duration mode the run ends on time; requests in flight then are unfinished, not errors,
// and their tokens still count.
func TestRunDurationCutsInFlightRequests(t *testing.T) {
	srv, err := loadgentest.Start("127.0.0.1:0", loadgentest.Options{TokensPerSecond: 20, TokensPerAnswer: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := NewClient(srv.URL, "k", 3)
	defer c.Close()
	start := time.Now()
	res := Run(context.Background(), c, Options{Users: 3, Duration: 600 * time.Millisecond, Body: ChatRequest("m", "hi", 8, true), Timeout: time.Minute})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a 600ms run took %v", took)
	}
	s := Summarise(res)
	if s.Requests.Sent != 3 || s.Requests.Unfinished != 3 || s.Requests.Completed != 0 || s.Requests.Failed != 0 || len(s.Errors) != 0 {
		t.Fatalf("requests %+v errors %v; want 3 sent, 3 unfinished, no error", s.Requests, s.Errors)
	}
	if s.Tokens < 3*5 || s.TokensFrom != "chunks" || s.DurationSeconds > 0.7 {
		t.Errorf("tokens %d from %s over %.2fs; want at least 15 from chunks over 0.6s", s.Tokens, s.TokensFrom, s.DurationSeconds)
	}
	if v := Judge(s, 1); v.Met || !strings.Contains(strings.Join(v.Reasons, ";"), "no request completed") {
		t.Errorf("verdict %+v, want not met: no request completed", v)
	}
}

func TestRunCountsErrorsByKind(t *testing.T) {
	var n atomic.Int32
	srv := fakeFailingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 3 {
		case 0:
			http.Error(w, "busy", http.StatusTooManyRequests)
		case 1:
			writeEvents(w, textEvent)
		default:
			writeEvents(w, textEvent, textEvent, usageEvent, doneEvent)
		}
	})
	c := NewClient(srv.URL, "k", 2)
	defer c.Close()
	s := Summarise(Run(context.Background(), c, Options{Users: 2, Requests: 9, Body: ChatRequest("m", "hi", 8, true), Timeout: 5 * time.Second}))
	if s.Requests.Completed != 3 || s.Requests.Failed != 6 || s.Errors["http_429"] != 3 || s.Errors[KindStreamCut] != 3 {
		t.Errorf("requests %+v, errors %v; want 3 completed, 3 http_429, 3 stream_cut", s.Requests, s.Errors)
	}
	if !strings.Contains(s.ErrorExamples["http_429"], "HTTP 429: busy") {
		t.Errorf("examples %v", s.ErrorExamples)
	}
	if s.TokensFrom != "usage and chunks" || s.Tokens != 3*3+3*1 {
		t.Errorf("tokens %d from %q, want 12 from usage and chunks", s.Tokens, s.TokensFrom)
	}
	if v := Judge(s, 0); v.Met {
		t.Errorf("verdict met with 6 of 9 requests failed: %+v", v)
	}
}

func TestHTTPErrorMessage(t *testing.T) {
	if got := (&HTTPError{Status: 401}).Error(); got != "HTTP 401" {
		t.Errorf("got %q", got)
	}
	var he *HTTPError
	if !errors.As(fmt.Errorf("x: %w", &HTTPError{Status: 500, Body: "b"}), &he) || he.Status != 500 {
		t.Errorf("HTTPError does not unwrap")
	}
}

// A server that quotes the key back (in an error body, an error chunk or an error event) never
// gets it into a result: the messages end up in reports and CI logs.
func TestKeyIsRedacted(t *testing.T) {
	const key = "sk-secret-0123456789abcdef"
	for name, handler := range map[string]http.HandlerFunc{
		"error body": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bad key "+r.Header.Get("Authorization"), http.StatusForbidden)
		},
		"error chunk": func(w http.ResponseWriter, r *http.Request) {
			writeEvents(w, `data: {"error":{"message":"key `+key+` over budget"}}`+"\n\n")
		},
		"error event": func(w http.ResponseWriter, r *http.Request) {
			writeEvents(w, "event: error\ndata: key "+key+"\n\n")
		},
		"malformed chunk": func(w http.ResponseWriter, r *http.Request) {
			writeEvents(w, "data: "+key+"\n\n")
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := fakeFailingServer(t, handler)
			c := NewClient(srv.URL, key, 1)
			defer c.Close()
			r := c.NewStreamer().Stream(context.Background(), ChatRequest("m", "hi", 8, true), 5*time.Second)
			if r.Err == nil || strings.Contains(r.Err.Error(), key) || !strings.Contains(r.Err.Error(), "[key redacted]") {
				t.Errorf("error %v: want the key replaced by [key redacted]", r.Err)
			}
		})
	}
	if got := NewClient("http://x", key, 1).Redact("a " + key + " b " + key); got != "a [key redacted] b [key redacted]" {
		t.Errorf("Redact: %q", got)
	}
}
