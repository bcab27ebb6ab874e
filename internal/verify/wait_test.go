package verify

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/loadgen"
)

const waitKey = "sk-wait-test-0123456789"

// comingUpGateway is a stand-in for a deployment that is not serving yet, a state the local
// LiteLLM and Ollama cannot be put in on cue: its first listings answer listingFails in turn,
// then the first chat completions answer chatFails in turn, and after that it serves like the
// gateway. It answers 401 to any other key.
type comingUpGateway struct {
	mu                        sync.Mutex
	listingFails, chatFails   []int
	listings, chats, refusals int
}

func (g *comingUpGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+waitKey {
		g.refusals++
		http.Error(w, `{"error":"invalid key"}`, http.StatusUnauthorized)
		return
	}
	// As LiteLLM answers; the SDK refuses a success that is not JSON.
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/models":
		g.listings++
		if len(g.listingFails) > 0 {
			code := g.listingFails[0]
			g.listingFails = g.listingFails[1:]
			http.Error(w, "<html>"+http.StatusText(code)+"</html>", code)
			return
		}
		fmt.Fprint(w, `{"data":[{"id":"tiny:1b"}]}`)
	case "/v1/chat/completions":
		g.chats++
		if len(g.chatFails) > 0 {
			code := g.chatFails[0]
			g.chatFails = g.chatFails[1:]
			http.Error(w, `{"error":"no healthy upstream"}`, code)
			return
		}
		fmt.Fprint(w, `{"choices":[{"message":{"content":"yes"},"finish_reason":"stop"}],"usage":{"completion_tokens":1}}`)
	default:
		http.NotFound(w, r)
	}
}

func startGateway(t *testing.T, g *comingUpGateway) *loadgen.Client {
	t.Helper()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	c := loadgen.NewClient(srv.URL, waitKey, 1)
	t.Cleanup(c.Close)
	return c
}

func waitOptions(progress *[]string) WaitOptions {
	return WaitOptions{
		Within: 5 * time.Second, Interval: 10 * time.Millisecond, Timeout: time.Second,
		Progress: func(msg string) { *progress = append(*progress, msg) },
	}
}

func TestWaitRetriesWhileTheDeploymentComesUp(t *testing.T) {
	g := &comingUpGateway{listingFails: []int{503, 502, 504}, chatFails: []int{500, 503}}
	c := startGateway(t, g)
	var progress []string
	r := Wait(t.Context(), c, waitOptions(&progress))
	// Three failed listings, then two listings whose chat fails, then one that passes.
	if !r.Ready || r.Settled || r.Attempts != 6 || g.listings != 6 || g.chats != 3 {
		t.Fatalf("readiness %+v after %d listings and %d chats; want ready on attempt 6 after 6 listings and 3 chats", r, g.listings, g.chats)
	}
	if r.Last != "tiny:1b chat: HTTP 503: {\"error\":\"no healthy upstream\"}" {
		t.Errorf("last answer before ready: %q", r.Last)
	}
	if len(progress) != 5 {
		t.Fatalf("%d progress lines, want one per attempt that was not ready (5):\n%s", len(progress), strings.Join(progress, "\n"))
	}
	for i, want := range []string{"listing: GET /v1/models: HTTP 503", "HTTP 502", "HTTP 504", "tiny:1b chat: HTTP 500", "tiny:1b chat: HTTP 503"} {
		if !strings.Contains(progress[i], want) || !strings.HasPrefix(progress[i], "not ready after ") ||
			!strings.Contains(progress[i], "(waiting up to 5s)") {
			t.Errorf("progress %d: %q, want %q in a 'not ready after ...' line", i, progress[i], want)
		}
	}
}

func TestWaitReadyAtOnce(t *testing.T) {
	g := &comingUpGateway{}
	c := startGateway(t, g)
	var progress []string
	r := Wait(t.Context(), c, waitOptions(&progress))
	if !r.Ready || r.Attempts != 1 || r.Last != "" || len(progress) != 0 {
		t.Errorf("readiness %+v, progress %q: want ready on the first attempt, silently", r, progress)
	}
}

// An answer waiting cannot change ends the wait at once: the checks report it.
func TestWaitStopsOnAFinalAnswer(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    *comingUpGateway
		opts func(*WaitOptions)
		last string
	}{
		{"a refused key", &comingUpGateway{}, nil, "listing: GET /v1/models: HTTP 401 (the key was refused)"},
		{"a model the gateway does not list", &comingUpGateway{}, func(o *WaitOptions) { o.Models = []string{"llama3.1:8b"} },
			"listing: llama3.1:8b not listed (listed: tiny:1b)"},
		{"a chat refused as bad", &comingUpGateway{chatFails: []int{400}}, nil, `tiny:1b chat: HTTP 400: {"error":"no healthy upstream"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startGateway(t, tc.g)
			if tc.name == "a refused key" {
				c = loadgen.NewClient(strings.TrimSuffix(c.URL(""), "/v1"), "sk-not-the-key-0123456789", 1)
				t.Cleanup(c.Close)
			}
			var progress []string
			o := waitOptions(&progress)
			if tc.opts != nil {
				tc.opts(&o)
			}
			r := Wait(t.Context(), c, o)
			if r.Ready || !r.Settled || r.Attempts != 1 || r.Last != tc.last || len(progress) != 0 {
				t.Errorf("readiness %+v, progress %q: want settled on attempt 1 with %q", r, progress, tc.last)
			}
		})
	}
}

// Nothing listening (a load balancer not yet in DNS, or not yet accepting): Wait keeps trying
// until Within is up, and says it was never ready.
func TestWaitGivesUpAfterWithin(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // a port nobody listens on: connections are refused
	c := loadgen.NewClient("http://"+addr, waitKey, 1)
	t.Cleanup(c.Close)
	var progress []string
	o := waitOptions(&progress)
	o.Within, o.Interval = 300*time.Millisecond, 40*time.Millisecond
	start := time.Now()
	r := Wait(t.Context(), c, o)
	if r.Ready || r.Settled || r.Attempts < 3 || !strings.Contains(r.Last, "connection refused") {
		t.Errorf("readiness %+v: want not ready, not settled, several attempts, the last refused", r)
	}
	if len(progress) != r.Attempts-1 {
		t.Errorf("%d progress lines for %d attempts; want one fewer", len(progress), r.Attempts)
	}
	if took := time.Since(start); took < o.Within {
		t.Errorf("gave up after %s, before Within (%s)", took, o.Within)
	}
}
