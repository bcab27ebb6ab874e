package vm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
)

// awsFront stands in for the AWS endpoints a node reaches by name (the VPC endpoints' private
// DNS names on AWS): one TLS server whose certificate, issued by a CA made for the test, names
// each host, passing every request on to the emulator. The bucket's virtual-hosted addresses
// (<bucket>.s3.<region>.amazonaws.com/<key>, which the fetch script's curl and the agent's S3
// client use) become path-style requests, the only style the emulator on loopback takes; every
// other request keeps its path, and the emulator tells the service from the request's
// signature.
type awsFront struct {
	// Port is the front's port on 127.0.0.1.
	Port int
	// CAPEM is the CA certificate the VM trusts.
	CAPEM string
	// Hosts are the names the certificate covers, each of which the VM resolves to the front.
	Hosts []string

	mu       sync.Mutex
	requests []string
}

// newAWSFront serves the front for hosts until the test ends, in front of the emulator at
// motoURL; bucketSuffix is ".s3.<region>.amazonaws.com".
func newAWSFront(t *testing.T, motoURL, bucketSuffix string, hosts []string) *awsFront {
	t.Helper()
	target, err := url.Parse(motoURL)
	if err != nil {
		t.Fatal(err)
	}
	pki := localruntest.NewPKI(t, "llm-sandbox VM test CA", hosts...)
	f := &awsFront{CAPEM: string(pki.CAPEM), Hosts: hosts}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		host := r.In.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		r.SetURL(target)
		if bucket, ok := strings.CutSuffix(host, bucketSuffix); ok && bucket != "" && !strings.Contains(bucket, ".") {
			r.Out.URL.Path = "/" + bucket + r.In.URL.Path
			r.Out.URL.RawPath = ""
		}
		f.mu.Lock()
		f.requests = append(f.requests, r.In.Method+" "+host+r.In.URL.Path)
		f.mu.Unlock()
	}}
	srv := httptest.NewUnstartedServer(proxy)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.Cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.Port = srv.Listener.Addr().(*net.TCPAddr).Port
	return f
}

// Requests lists what the front passed on: "METHOD host/path".
func (f *awsFront) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// The front is a real TLS endpoint for each name, trusted through the CA alone, and turns a
// virtual-hosted bucket address into a path-style request.
func TestAWSFrontServesEachNameAndPathStyleBuckets(t *testing.T) {
	var mu sync.Mutex
	var got []string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path)
		mu.Unlock()
	}))
	defer backend.Close()
	hosts := []string{"b1.s3.ca-central-1.amazonaws.com", "autoscaling.ca-central-1.amazonaws.com"}
	f := newAWSFront(t, backend.URL, ".s3.ca-central-1.amazonaws.com", hosts)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(f.CAPEM)) {
		t.Fatal("the CA PEM does not parse")
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		// Every name resolves to the front, as /etc/hosts makes it in the VM.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(f.Port))
		},
	}}
	for _, u := range []string{"https://b1.s3.ca-central-1.amazonaws.com/agent/x", "https://autoscaling.ca-central-1.amazonaws.com/"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		resp.Body.Close()
	}
	if _, err := client.Get("https://other.example.com/"); err == nil {
		t.Error("a name the certificate does not cover was trusted")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/b1/agent/x", "/"}; !slices.Equal(got, want) {
		t.Errorf("paths passed on: %v, want %v", got, want)
	}
}
