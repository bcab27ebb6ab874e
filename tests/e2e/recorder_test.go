package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// ollamaRecorder stands between LiteLLM and a real Ollama: it forwards every request and keeps
// its body in memory, so a test can see what reached Ollama (tools, format) without Ollama's
// request logging, which would write prompts to disk. When busy, it answers model calls as
// Ollama does when its queue is full (server/routes.go, handleScheduleError with ErrMaxQueue:
// 503, {"error": "server busy, please try again.  maximum pending requests exceeded"}): a
// state a loaded Ollama does not reach on this machine, because requests beyond
// OLLAMA_NUM_PARALLEL wait in the runner rather than in the bounded queue.
type ollamaRecorder struct {
	URL  string
	busy atomic.Bool

	mu       sync.Mutex
	requests []recordedRequest
}

type recordedRequest struct {
	Path string
	Body map[string]any
}

// ollamaBusy is Ollama's body for a full queue (ErrMaxQueue, server/sched.go).
const ollamaBusy = `{"error":"server busy, please try again.  maximum pending requests exceeded"}`

func newOllamaRecorder(t *testing.T, ollama string) *ollamaRecorder {
	t.Helper()
	target, err := url.Parse(ollama)
	if err != nil {
		t.Fatal(err)
	}
	r := &ollamaRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var decoded map[string]any
		_ = json.Unmarshal(body, &decoded)
		r.mu.Lock()
		r.requests = append(r.requests, recordedRequest{Path: req.URL.Path, Body: decoded})
		r.mu.Unlock()
		if r.busy.Load() && req.Method == http.MethodPost && (req.URL.Path == "/api/chat" || req.URL.Path == "/api/embed") {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, ollamaBusy)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// take returns the requests recorded since the last take and forgets them.
func (r *ollamaRecorder) take() []recordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.requests
	r.requests = nil
	return out
}
