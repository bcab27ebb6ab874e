// Package loadgentest is a test double for load only: a loopback HTTP server that answers every
// streamed chat completion with fake tokens at a fixed rate, shaped like LiteLLM's chunks
// (one text chunk per token, a finish_reason chunk, a usage chunk, data: [DONE]). It exists to
// measure the load generator itself: with a server whose speed is known, any shortfall in what
// the generator reports is the generator's. It is not a model server and proves nothing about
// one; correctness is checked against the real LiteLLM and Ollama (internal/localrun).
package loadgentest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Options shape every answer.
type Options struct {
	// TokensPerSecond is each stream's rate: every token, the first included, is due one
	// interval (1/TokensPerSecond) after the previous one, so an answer of n tokens takes n
	// intervals and a stream offers exactly TokensPerSecond.
	TokensPerSecond float64
	// TokensPerAnswer is the number of text chunks in every answer.
	TokensPerAnswer int
}

// Server is a running double.
type Server struct {
	// URL is its base URL, http://127.0.0.1:<port>.
	URL string
	srv *http.Server
	ln  net.Listener
}

// Start serves o on addr (use "127.0.0.1:0" for a free loopback port).
func Start(addr string, o Options) (*Server, error) {
	if o.TokensPerSecond <= 0 || o.TokensPerAnswer < 1 {
		return nil, fmt.Errorf("loadgentest: want a positive rate and at least one token (got %g tokens/s, %d tokens)", o.TokensPerSecond, o.TokensPerAnswer)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadgentest: listen on %s: %w", addr, err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), ln: ln}
	s.srv = &http.Server{Handler: Handler(o), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server and its open streams.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}

// The chunks every answer is made of, encoded once.
var (
	textChunk   = []byte(`data: {"id":"loadgentest","object":"chat.completion.chunk","created":1795846818,"model":"loadgentest","choices":[{"index":0,"delta":{"content":" token"}}]}` + "\n\n")
	finishChunk = []byte(`data: {"id":"loadgentest","object":"chat.completion.chunk","created":1795846818,"model":"loadgentest","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}` + "\n\n")
	doneEvent   = []byte("data: [DONE]\n\n")
)

// Handler answers POST /v1/chat/completions with a stream of o.TokensPerAnswer fake tokens
// whatever the request asks, and GET /v1/models with one model, "loadgentest". A request
// without an Authorization header gets 401.
func Handler(o Options) http.Handler {
	interval := time.Duration(float64(time.Second) / o.TokensPerSecond)
	usageChunk := []byte(`data: {"id":"loadgentest","object":"chat.completion.chunk","created":1795846818,"model":"loadgentest","choices":[],"usage":{"completion_tokens":` +
		strconv.Itoa(o.TokensPerAnswer) + `,"prompt_tokens":8,"total_tokens":` + strconv.Itoa(o.TokensPerAnswer+8) + "}}\n\n")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"loadgentest","object":"model"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			http.Error(w, `{"error":{"message":"missing API key","code":"401"}}`, http.StatusUnauthorized)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		if err := rc.Flush(); err != nil {
			return
		}
		// Token i is due at start + (i+1)*interval, so a late wake-up does not slow the rate.
		start := time.Now()
		timer := time.NewTimer(interval)
		defer timer.Stop()
		for i := range o.TokensPerAnswer {
			if i > 0 {
				timer.Reset(time.Until(start.Add(time.Duration(i+1) * interval)))
			}
			select {
			case <-timer.C:
			case <-r.Context().Done():
				return
			}
			if _, err := w.Write(textChunk); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
		for _, c := range [][]byte{finishChunk, usageChunk, doneEvent} {
			if _, err := w.Write(c); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return
		}
	})
	return mux
}
