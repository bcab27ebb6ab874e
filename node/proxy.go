package node

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/inflight"
)

// OllamaBackendPort is Ollama's own port on 127.0.0.1 on a pool node, behind the accounting
// proxy that owns the pool's port (11434).
const OllamaBackendPort = 11435

// LiteLLMBackendPort is LiteLLM's own port on 127.0.0.1 on a gateway node, behind the
// accounting proxy that owns the gateway's port (4000).
const LiteLLMBackendPort = 4001

// forwardedHeaders are the load balancer's headers about the client (an ALB sets
// X-Forwarded-For, -Proto and -Port, "HTTP headers and Application Load Balancers",
// https://docs.aws.amazon.com/elasticloadbalancing/latest/application/x-forwarded-headers.html).
// ReverseProxy drops them before Rewrite; the proxy passes them on unchanged, so the server
// behind it sees what it saw without the proxy.
var forwardedHeaders = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port"}

// Proxy is the accounting reverse proxy in front of Ollama on a pool node and of LiteLLM on a
// gateway node. Neither can refuse new requests while serving old ones, nor (Ollama) say how
// many it is answering, so the proxy does both: it
// counts every request from the moment it accepts it until the response body is fully written
// (streams included: ServeHTTP returns only then) or the client went away (the request's
// context ends, the backend request is cancelled, ServeHTTP returns), and once the counter is
// closed it answers every new request, health checks included, 503 with Connection: close.
type Proxy struct {
	counter *inflight.Counter
	rp      *httputil.ReverseProxy
}

// NewProxy returns a proxy to the server at backend (host:port, plain HTTP) that counts with
// counter.
func NewProxy(backend string, counter *inflight.Counter) *Proxy {
	target := &url.URL{Scheme: "http", Host: backend}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		// Loopback only: never through an HTTP(S)_PROXY of the environment.
		Proxy:       nil,
		DialContext: dialer.DialContext,
		// Keep a connection per concurrent request: dialling per request would cost more
		// than everything else the proxy does.
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		// Pass bodies through as they are; no header timeout, since a non-streaming
		// generation answers only when it is done.
		DisableCompression: true,
	}
	p := &Proxy{counter: counter}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// SetURL also sets the Host header to the backend's: Ollama on a loopback address
			// answers 403 to any Host that is not local (its allowed-hosts check), and the
			// load balancer's requests name the load balancer.
			pr.SetURL(target)
			for _, h := range forwardedHeaders {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
		},
		Transport: transport,
		// Write every chunk of a stream as soon as Ollama writes it.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// The client went away: there is nobody to answer.
				return
			}
			http.Error(w, "upstream server unavailable", http.StatusBadGateway)
		},
	}
	return p
}

// ServeHTTP counts the request in, proxies it, and counts it out when the response is done;
// after a drain began it refuses the request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	end, ok := p.counter.Begin()
	if !ok {
		refuseDraining(w)
		return
	}
	defer end()
	p.rp.ServeHTTP(w, r)
}

// refuseDraining answers a request that arrived during a drain: 503, so that the load
// balancer's health check fails and a client (LiteLLM) retries elsewhere, and Connection:
// close, so that the client does not send the next request down the same connection.
func refuseDraining(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	w.Header().Set("Retry-After", "1")
	http.Error(w, "this node is draining: send the request to another node", http.StatusServiceUnavailable)
}
