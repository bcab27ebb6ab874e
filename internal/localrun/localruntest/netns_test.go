package localruntest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestIsolated runs inside a network namespace of its own: loopback serves, no name
// resolves, and a connection to any other address fails with an error ReachOutSigns knows.
func TestIsolated(t *testing.T) {
	if !Isolated(t) {
		return
	}
	if os.Getenv(envIsolated) != t.Name() {
		t.Fatalf("the isolated run has no %s=%s", envIsolated, t.Name())
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("loopback in the namespace: %v", err)
	}
	resp.Body.Close()
	if addrs, err := net.LookupHost("registry.ollama.ai"); err == nil {
		t.Errorf("registry.ollama.ai resolved in the namespace: %v", addrs)
	}
	// 198.51.100.1 is in TEST-NET-2 (RFC 5737), never a real host.
	c, err := net.Dial("tcp", "198.51.100.1:443")
	if err == nil {
		c.Close()
		t.Fatalf("the namespace reached 198.51.100.1:443")
	}
	known := false
	for _, sign := range ReachOutSigns {
		known = known || strings.Contains(err.Error(), sign)
	}
	if !known {
		t.Errorf("the failed connection's error %q shows none of ReachOutSigns %q", err, ReachOutSigns)
	}
}
