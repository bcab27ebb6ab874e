package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/inflight"
)

// streamBackend is a loopback server that streams one line per value sent on next, and ends
// the stream when next is closed; /quick answers at once; /health answers ok. It records the
// Host header of each request.
type streamBackend struct {
	next  chan string
	hosts chan string
}

func (b *streamBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case b.hosts <- r.Host:
	default:
	}
	switch r.URL.Path {
	case "/stream":
		w.Header().Set("Content-Type", "application/x-ndjson")
		// Headers first, as Ollama sends them before the first token.
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case line, ok := <-b.next:
				if !ok {
					return
				}
				fmt.Fprintln(w, line)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	default:
		io.WriteString(w, "ok")
	}
}

// newProxyPair starts a streamBackend and a Proxy in front of it, both on loopback.
func newProxyPair(t *testing.T) (*streamBackend, *inflight.Counter, *httptest.Server) {
	t.Helper()
	b := &streamBackend{next: make(chan string), hosts: make(chan string, 16)}
	backend := httptest.NewServer(b)
	t.Cleanup(backend.Close)
	counter := &inflight.Counter{}
	front := httptest.NewServer(NewProxy(strings.TrimPrefix(backend.URL, "http://"), counter))
	t.Cleanup(front.Close)
	return b, counter, front
}

// waitInFlight waits until the counter shows want in flight.
func waitInFlight(t *testing.T, c *inflight.Counter, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Snapshot().InFlight != want {
		if time.Now().After(deadline) {
			t.Fatalf("in flight = %d, want %d", c.Snapshot().InFlight, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A stream counts as in flight from the first byte until its body is fully written, not
// when its headers are sent.
func TestProxyCountsStreamUntilBodyEnds(t *testing.T) {
	b, counter, front := newProxyPair(t)
	resp, err := http.Get(front.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		b.next <- fmt.Sprintf(`{"token": %d}`, i)
		line, err := r.ReadString('\n')
		if err != nil || !strings.Contains(line, fmt.Sprint(i)) {
			t.Fatalf("line %d through the proxy: %q %v (the proxy must flush each chunk)", i, line, err)
		}
		if got := counter.Snapshot().InFlight; got != 1 {
			t.Fatalf("in flight mid-stream = %d, want 1", got)
		}
	}
	close(b.next)
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("end of stream: %q %v", rest, err)
	}
	waitInFlight(t, counter, 0)
	if s := counter.Snapshot(); s.Started != 1 || s.Finished != 1 {
		t.Errorf("after one stream: %+v, want 1 started and finished", s)
	}
}

// A client that goes away mid-stream ends its request: the counter must not leak it.
func TestProxyCountsClientDisconnect(t *testing.T) {
	b, counter, front := newProxyPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b.next <- "first"
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	waitInFlight(t, counter, 1)
	cancel()
	resp.Body.Close()
	waitInFlight(t, counter, 0)
}

// A backend that cannot be reached answers 502 and the request ends.
func TestProxyCountsBackendError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	counter := &inflight.Counter{}
	front := httptest.NewServer(NewProxy(dead, counter))
	defer front.Close()
	resp, err := http.Get(front.URL + "/api/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("dead backend: %d, want 502", resp.StatusCode)
	}
	if s := counter.Snapshot(); s.InFlight != 0 || s.Started != 1 || s.Finished != 1 {
		t.Errorf("after a backend error: %+v, want 1 started, 1 finished, 0 in flight", s)
	}
}

// Ollama on loopback refuses a Host that is not local, and the load balancer names itself in
// Host: the proxy must send the backend's address.
func TestProxySendsBackendHost(t *testing.T) {
	b, _, front := newProxyPair(t)
	req, _ := http.NewRequest(http.MethodGet, front.URL+"/api/version", nil)
	req.Host = "internal-chemistry.elb.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if host := <-b.hosts; !strings.HasPrefix(host, "127.0.0.1:") {
		t.Errorf("backend saw Host %q, want the backend's loopback address", host)
	}
}

// During a drain a stream in flight finishes, and a new request (a health check too) gets
// 503 with Connection: close without reaching the backend.
func TestProxyRefusesNewRequestsWhileDraining(t *testing.T) {
	b, counter, front := newProxyPair(t)
	resp, err := http.Get(front.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitInFlight(t, counter, 1)
	counter.Close()

	refused, err := http.Get(front.URL + "/api/version")
	if err != nil {
		t.Fatal(err)
	}
	refused.Body.Close()
	if refused.StatusCode != http.StatusServiceUnavailable || !refused.Close {
		t.Errorf("new request during the drain: %d, Connection close %v; want 503 and close", refused.StatusCode, refused.Close)
	}
	if n := len(b.hosts); n != 1 {
		t.Errorf("the backend saw %d requests, want only the stream's", n)
	}

	b.next <- "last token"
	close(b.next)
	body, err := io.ReadAll(resp.Body)
	if err != nil || strings.TrimSpace(string(body)) != "last token" {
		t.Errorf("the stream in flight did not finish: %q %v", body, err)
	}
	waitInFlight(t, counter, 0)
	if s := counter.Snapshot(); s.Refused != 1 || s.Started != 1 {
		t.Errorf("after the drain: %+v, want 1 started, 1 refused", s)
	}
}

// BenchmarkProxyOverhead compares a small request straight to a loopback server with the same
// request through the proxy. The difference per request is the proxy's cost; docs/node-agent.md
// reports it (goal: under 1 ms).
func BenchmarkProxyOverhead(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"version":"0.0.0"}`)
	}))
	defer backend.Close()
	front := httptest.NewServer(NewProxy(strings.TrimPrefix(backend.URL, "http://"), &inflight.Counter{}))
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(b *testing.B, url string) {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.Run("direct", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			get(b, backend.URL+"/api/version")
		}
	})
	b.Run("proxy", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			get(b, front.URL+"/api/version")
		}
	})
}

// The load balancer's X-Forwarded-* headers reach the server behind the proxy unchanged, as
// they did before the proxy stood between them.
func TestProxyPassesTheLoadBalancersForwardedHeaders(t *testing.T) {
	seen := make(chan http.Header, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() }))
	t.Cleanup(backend.Close)
	front := httptest.NewServer(NewProxy(strings.TrimPrefix(backend.URL, "http://"), &inflight.Counter{}))
	t.Cleanup(front.Close)
	req, _ := http.NewRequest(http.MethodGet, front.URL+"/health/liveliness", nil)
	req.Header.Set("X-Forwarded-For", "142.103.7.9")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Port", "443")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-seen
	for k, want := range map[string]string{"X-Forwarded-For": "142.103.7.9", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"} {
		if got := h.Values(k); len(got) != 1 || got[0] != want {
			t.Errorf("backend saw %s %q, want %q", k, got, want)
		}
	}
}
