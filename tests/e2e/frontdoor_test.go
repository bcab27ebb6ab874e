package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/frontdoor"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/program"
)

// stackFrontDoor renders a stack's offline plan and reads its client listener back: the
// listener (HTTPS, or plain HTTP) whose rules are attached to it, with the stack's hostname.
func stackFrontDoor(t *testing.T, stack string) (frontdoor.Listener, *config.Spec) {
	t.Helper()
	spec, err := config.Load("../..", stack)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := program.PlanStack(spec, "../..")
	if err != nil {
		t.Fatal(err)
	}
	var listener *program.PlannedResource
	rules := map[string]map[string]any{}
	for i, r := range plan.Resources {
		if r.Type == "aws:lb/listenerRule:ListenerRule" {
			rules[r.Name] = r.Inputs
		}
		if r.Type == "aws:lb/listener:Listener" && (r.Name == stack+"-gateway-https" || (r.Name == stack+"-gateway-http" && spec.Access.PlainHTTP)) {
			listener = &plan.Resources[i]
		}
	}
	if listener == nil || len(rules) == 0 {
		t.Fatalf("%s: no client listener or no listener rules in the plan", stack)
	}
	for name, r := range rules {
		if r["listenerArn"] != listener.ARN {
			t.Errorf("%s: rule %s is on %v, not on the client listener %s", stack, name, r["listenerArn"], listener.ARN)
		}
	}
	return frontdoor.Parse(listener.Inputs, rules), spec
}

// liteLLMRoute is one route of the LiteLLM application as its router holds it.
type liteLLMRoute struct {
	Path    string   `json:"path"`
	Methods []string `json:"methods"`
}

// routesScript prints every route of the LiteLLM proxy application, hidden ones included
// (those outside the OpenAPI schema), as JSON. FastAPI 0.165 keeps an included router as one
// entry whose effective_route_contexts are its routes; older releases list the routes.
const routesScript = `
import json, sys
from litellm.proxy.proxy_server import app
out = []
for r in app.routes:
    contexts = r.effective_route_contexts() if hasattr(r, "effective_route_contexts") else [r]
    for c in contexts:
        path = getattr(c, "path", None)
        if not path:
            continue
        route = getattr(c, "original_route", c)
        out.append({"path": path, "methods": sorted(getattr(route, "methods", None) or [])})
json.dump(out, sys.stdout)
`

// liteLLMRoutes lists the routes of the LiteLLM installed on a gateway node, from its venv.
func liteLLMRoutes(t *testing.T, gw *localrun.Node) []liteLLMRoute {
	t.Helper()
	cmd := exec.Command(filepath.Join(gw.Root, node.LiteLLMPython), "-c", routesScript)
	// The service's own environment, which keeps LiteLLM from fetching anything at import.
	cmd.Env = append(gw.Env, "HOME="+gw.Home, "LITELLM_LOG=ERROR")
	for _, v := range node.LiteLLMEnv() {
		cmd.Env = append(cmd.Env, v.Name+"="+v.Value)
	}
	cmd.Dir = gw.Home
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("list LiteLLM's routes: %v\n%s", err, stderr)
	}
	// Import-time messages may precede the JSON on stdout.
	start := strings.Index(string(out), `[{"path"`)
	var routes []liteLLMRoute
	if start < 0 || json.Unmarshal(out[start:], &routes) != nil {
		t.Fatalf("LiteLLM's routes are not JSON:\n%s", out)
	}
	return routes
}

var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// concrete fills a route's path parameters with a value, as a client would.
func concrete(path string) string {
	return pathParam.ReplaceAllStringFunc(path, func(p string) string {
		if strings.HasSuffix(p, ":path}") {
			return "x/y"
		}
		return "llama3.1:8b"
	})
}

// rawRequest sends a request whose target is sent exactly as given (no client-side cleaning
// of dots, slashes or escapes) and returns the status and body.
func rawRequest(t *testing.T, base, method, target, host, key string) (int, string) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, host)
	if key != "" {
		req += "Authorization: Bearer " + key + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// albStandIn is the front listener in front of a real LiteLLM: each request is decided by the
// rendered rules (frontdoor.Decide, the documented ALB semantics) on its Host header and its
// request target as sent; forwarded ones go to LiteLLM unchanged, the rest get the rule's
// fixed response.
func albStandIn(t *testing.T, l frontdoor.Listener, liteLLM string) *httptest.Server {
	t.Helper()
	target, err := url.Parse(liteLLM)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := l.Decide(r.Host, r.RequestURI)
		if a.Forward {
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", frontdoor.ContentType)
		w.WriteHeader(a.Status)
		_, _ = io.WriteString(w, a.Body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestFrontDoorOverLiteLLMRoutes runs every route the pinned LiteLLM serves through the client
// listener rules the example stacks render: only the inference paths are forwarded, every
// management route (and every other spelling of any route) is refused by the listener, and
// each forwarded path is one LiteLLM serves. Then, with a stand-in for the load balancer that
// applies those rules in front of the real LiteLLM, a client gets its models and a completion
// while the management routes get the listener's 403 and another host name its 404. Last,
// spellings a normalising load balancer could take for a client path are sent to LiteLLM
// itself: each reaches that path or no route at all, so even then no other route opens.
func TestFrontDoorOverLiteLLMRoutes(t *testing.T) {
	h := localruntest.RequireLiteLLM(t)
	chem, chemSpec := stackFrontDoor(t, "chemistry") // HTTPS, with a hostname
	dev, devSpec := stackFrontDoor(t, "dev")         // plain HTTP by choice, no hostname
	if chemSpec.Access.Hostname == "" || devSpec.Access.Hostname != "" || !devSpec.Access.PlainHTTP {
		t.Fatalf("the example stacks changed: chemistry hostname %q, dev hostname %q plainHttp %v",
			chemSpec.Access.Hostname, devSpec.Access.Hostname, devSpec.Access.PlainHTTP)
	}

	s := localrun.StartGatewayStack(t, h, localrun.OllamaOptions{}, localrun.GatewayOptions{})
	routes := liteLLMRoutes(t, s.Gateway)
	served := map[string]bool{}
	for _, r := range routes {
		served[r.Path] = true
	}
	if len(routes) < 100 {
		t.Fatalf("LiteLLM lists %d routes; want its whole application (hundreds)", len(routes))
	}
	for _, p := range frontdoor.ClientPaths() {
		if !served[p] {
			t.Errorf("client path %s is not a route of the pinned LiteLLM", p)
		}
	}
	for _, p := range []string{"/config/update", "/user/update", "/key/generate", "/model/new", "/team/new"} {
		if !served[p] {
			t.Errorf("management route %s is not in LiteLLM's routes: the enumeration missed it", p)
		}
	}

	allowed := frontdoor.ClientPaths()
	for _, door := range []struct {
		name string
		l    frontdoor.Listener
		host string
	}{
		{"chemistry", chem, chemSpec.Access.Hostname},
		{"dev", dev, "internal-llmgw-0123456789.ca-central-1.elb.amazonaws.com"},
	} {
		denied := 0
		for _, r := range routes {
			p := concrete(r.Path)
			a := door.l.Decide(door.host, p)
			if want := slices.Contains(allowed, p); a.Forward != want {
				t.Errorf("%s: route %s (%s): %v, want forwarded %v", door.name, r.Path, p, a, want)
			}
			if !a.Forward {
				denied++
				if a.Status != frontdoor.DeniedStatus {
					t.Errorf("%s: route %s: %v, want %d", door.name, p, a, frontdoor.DeniedStatus)
				}
			}
			for _, v := range frontdoor.OtherSpellings(p) {
				if a := door.l.Decide(door.host, v); a.Forward {
					t.Errorf("%s: %s (another spelling of route %s) is forwarded", door.name, v, r.Path)
				}
			}
		}
		t.Logf("%s: %d of LiteLLM's %d routes refused at the listener", door.name, denied, len(routes))
	}

	// The rules in front of the real LiteLLM.
	alb := albStandIn(t, chem, s.Gateway.URL())
	host := chemSpec.Access.Hostname
	if code, body := rawRequest(t, alb.URL, http.MethodGet, "/v1/models", host, s.Key); code != http.StatusOK || !strings.Contains(body, localrun.ModelName) {
		t.Errorf("GET /v1/models through the listener: %d %s", code, body)
	}
	if code, body := rawRequest(t, alb.URL, http.MethodGet, "/health/liveliness", host, ""); code != http.StatusOK {
		t.Errorf("GET /health/liveliness through the listener: %d %s", code, body)
	}
	chatBody, _ := json.Marshal(map[string]any{
		"model": localrun.ModelName, "messages": []map[string]string{{"role": "user", "content": "Hello"}}, "max_tokens": 4,
	})
	req, err := http.NewRequest(http.MethodPost, alb.URL+"/v1/chat/completions", strings.NewReader(string(chatBody)))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Authorization", "Bearer "+s.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	chat, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(chat), `"choices"`) {
		t.Errorf("POST /v1/chat/completions through the listener: %d %s", resp.StatusCode, chat)
	}
	for _, p := range []string{"/config/update", "/user/update", "/key/generate", "/v1/models/" + localrun.ModelName, "/", "/openapi.json",
		"/v1/chat/completions/../../config/update", "/V1/models", "/v1/models/"} {
		if code, body := rawRequest(t, alb.URL, http.MethodGet, p, host, s.Key); code != frontdoor.DeniedStatus || body != frontdoor.DeniedBody {
			t.Errorf("GET %s through the listener: %d %s, want the listener's 403", p, code, body)
		}
	}
	// The management routes exist behind the listener: straight to LiteLLM they are routes
	// (a wrong method or no key, never 404).
	for _, p := range []string{"/config/update", "/user/update", "/key/generate"} {
		if code, _ := rawRequest(t, s.Gateway.URL(), http.MethodGet, p, "127.0.0.1", ""); code == http.StatusNotFound {
			t.Errorf("GET %s straight to LiteLLM: 404; the test no longer shows the listener is what refuses it", p)
		}
	}
	if code, body := rawRequest(t, alb.URL, http.MethodGet, "/v1/models", "other.example.edu", s.Key); code != frontdoor.WrongHostStatus || body != frontdoor.WrongHostBody {
		t.Errorf("GET /v1/models for another host: %d %s, want the listener's 404", code, body)
	}

	// Were the load balancer to clean paths before matching (AWS documents no such thing),
	// these spellings would match a client path and reach LiteLLM as sent. LiteLLM answers each
	// as that client path or as no route.
	for p, same := range map[string]func(int, string) bool{
		"/v1/models": func(code int, body string) bool {
			return code == http.StatusOK && strings.Contains(body, localrun.ModelName)
		},
		"/models": func(code int, body string) bool {
			return code == http.StatusOK && strings.Contains(body, localrun.ModelName)
		},
		"/health/liveliness": func(code int, body string) bool { return code == http.StatusOK && strings.Contains(body, "alive") },
	} {
		if code, body := rawRequest(t, s.Gateway.URL(), http.MethodGet, p, "127.0.0.1", s.Key); !same(code, body) {
			t.Fatalf("GET %s straight to LiteLLM: %d %s", p, code, body)
		}
		for _, v := range []string{"/x/.." + p, "/config/update/../.." + p, "/key/generate/../.." + p, "/." + p, "/" + p,
			strings.Replace(p, "/", "/%2e/", 1), strings.Replace(p, "s", "%73", 1)} {
			if code, body := rawRequest(t, s.Gateway.URL(), http.MethodGet, v, "127.0.0.1", s.Key); code != http.StatusNotFound && !same(code, body) {
				t.Errorf("GET %s straight to LiteLLM: %d %s; want 404 or what %s answers", v, code, body, p)
			}
		}
	}
}
