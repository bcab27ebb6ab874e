package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry/keyregistrytest"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// gatewayWorkers are the LiteLLM workers of the two gateway processes in the limits tests:
// several workers and two processes, three counters in all without a shared cache. The second
// process has one worker so that the two starts fit the shared 2-core machine.
var gatewayWorkers = []int{2, 1}

// TestGatewayLimits is the department's limits across the whole gateway: two gateway nodes
// (the pinned LiteLLM, two workers on one, one on the other, each behind the agent's
// accounting proxy as the Gateway component renders it), installed and configured by
// sandbox-node with the department's key registry (a table in the AWS emulator) and the
// rate-limit cache (a real redis-server speaking TLS only, with an AUTH token the nodes read
// from Secrets Manager). Keys issued by the Go registry client are served by both nodes; a
// team's requests-per-minute and concurrent-request limits hold across both nodes and all
// three workers exactly (the stated tolerance is zero); a revoked key is refused by both nodes
// within the revocation window; the cache holds counters, never a prompt or a key; and with
// the cache gone both nodes refuse requests (503) instead of counting alone.
func TestGatewayLimits(t *testing.T) {
	const rpm, parallel = 8, 2
	rig := newLimitsRig(t)
	team := node.LiteLLMTeam{Name: "students", Models: []string{localrun.ModelName}, RequestsPerMinute: rpm, TokensPerMinute: 1000000, ParallelPerKey: parallel}
	gws := rig.gateways(t, gatewayWorkers, []node.LiteLLMTeam{team}, true)

	alice, bob, carol := rig.issue(t, "students", "alice"), rig.issue(t, "students", "bob"), rig.issue(t, "students", "carol")
	marker := "LIMITS-MARKER-" + localrun.RandomAlphanumeric(t, 16)

	// Issue → use: bob's key works on both nodes.
	for i, gw := range gws {
		if code, _, body := chatOnce(t, gw, bob.Key, localrun.ModelName, marker, 4); code != http.StatusOK {
			t.Fatalf("bob on gateway %d: HTTP %d, want 200: %s", i, code, body)
		}
	}
	bobUsed := time.Now()

	// Requests per minute: alice's requests alternate between the nodes, each on a new
	// connection (so the kernel spreads them over the workers, as the load balancer's do):
	// exactly rpm pass, then 429 with Retry-After.
	res := sendSequential(t, gws, alice.Key, marker, 2*rpm)
	t.Logf("requests per minute: %d of %d passed (limit %d), first 429 at request %d", res.passed, 2*rpm, rpm, res.first429)
	if res.passed != rpm || res.first429 != rpm+1 {
		t.Errorf("alice: %d requests passed, the first 429 at request %d; want exactly %d, then 429 (the limit across both nodes)", res.passed, res.first429, rpm)
	}
	if res.retryAfter == "" {
		t.Errorf("alice's 429 carries no Retry-After header")
	}

	// Concurrent requests: carol sends 6 long requests at once, half to each node: exactly
	// `parallel` are admitted; once they finish, her slots are free again on both nodes.
	const burst = 6
	admitted, refused := sendConcurrent(t, gws, carol.Key, marker, burst)
	t.Logf("concurrent requests: %d of %d admitted (limit %d), %d refused with 429", admitted, burst, parallel, refused)
	if admitted != parallel || refused != burst-parallel {
		t.Errorf("carol's %d concurrent requests: %d admitted, %d refused with 429; want %d admitted (the limit across both nodes), %d refused", burst, admitted, refused, parallel, burst-parallel)
	}
	for i, gw := range gws {
		if code, _, body := chatOnce(t, gw, carol.Key, localrun.ModelName, marker, 4); code != http.StatusOK {
			t.Errorf("carol on gateway %d after her requests finished: HTTP %d, want 200 (slots released): %s", i, code, body)
		}
	}

	// Revoke → 401 on both nodes within the window. Each worker trusts a record for
	// node.KeyCacheSeconds after reading it; bob was last read at bobUsed.
	if err := rig.reg.Revoke(context.Background(), bob.Record.KeyID, time.Now()); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	window := time.Duration(node.KeyCacheSeconds+5) * time.Second
	refusedBy := map[int]bool{}
	for len(refusedBy) < len(gws) {
		for i, gw := range gws {
			if refusedBy[i] {
				continue
			}
			code, _, body := chatOnce(t, gw, bob.Key, localrun.ModelName, marker, 4)
			switch code {
			case http.StatusUnauthorized:
				refusedBy[i] = true
				t.Logf("gateway %d refuses bob's key %.1f s after the revoke (%.1f s after his last use)", i, time.Since(revoked).Seconds(), time.Since(bobUsed).Seconds())
			case http.StatusOK, http.StatusTooManyRequests:
			default:
				t.Fatalf("bob on gateway %d after the revoke: HTTP %d: %s", i, code, body)
			}
		}
		if len(refusedBy) < len(gws) {
			if time.Since(revoked) > window {
				t.Fatalf("bob's key still works on gateway(s) other than %v %s after the revoke (window %s)", refusedBy, time.Since(revoked).Round(time.Second), window)
			}
			time.Sleep(time.Second)
		}
	}

	// The cache holds counters, named by key id (LiteLLM's user id here) and team, as the
	// usage metrics are: no prompt, no key, no completion.
	stored := rig.redis.Dump(t)
	if len(stored) == 0 {
		t.Errorf("the rate-limit cache holds no key: the gateways did not count there")
	}
	byKeyID := 0
	for k, v := range stored {
		if strings.Contains(k, alice.Record.KeyID) {
			byKeyID++
		}
		for _, secret := range []string{marker, alice.Key, bob.Key, carol.Key} {
			if strings.Contains(k, secret) || strings.Contains(v, secret) {
				t.Errorf("the rate-limit cache's key %q holds a prompt or a key", k)
			}
		}
	}
	if byKeyID == 0 {
		t.Errorf("no counter of the cache names alice's key id %s: %v", alice.Record.KeyID, stored)
	}
	t.Logf("the cache holds %d keys, %d of them alice's counters", len(stored), byKeyID)

	// The cache gone: both nodes refuse (503), never fall back to counting alone.
	rig.redis.Stop()
	dave := rig.issue(t, "students", "dave")
	for i, gw := range gws {
		start := time.Now()
		code, _, body := chatOnce(t, gw, dave.Key, localrun.ModelName, marker, 4)
		t.Logf("gateway %d without its cache: HTTP %d after %.1f s", i, code, time.Since(start).Seconds())
		if code != http.StatusServiceUnavailable {
			t.Errorf("gateway %d without its rate-limit cache: HTTP %d, want 503 (fail closed): %s", i, code, body)
		}
	}
}

// EnvMeasureLimits, set to 1, runs TestGatewayLimitsSideBySide: four LiteLLM starts, too
// long for every run of the suite.
const EnvMeasureLimits = "LLM_SANDBOX_MEASURE_LIMITS"

// TestGatewayLimitsSideBySide measures, in one run, the limits a key gets across the two
// gateway processes (three workers) with each worker counting alone and with the counters
// shared in the cache: three trials of each variant, each with a fresh key, of the
// requests-per-minute limit (4 x rpm short requests sent one by one, alternating between the
// processes, each on a new connection) and of the concurrent-request limit (burst long
// requests sent at once, spread over the processes). It holds each variant to what
// docs/keys.md states: counted alone, a key passes at least its limit and at most its limit
// once per worker; shared, exactly its limit.
func TestGatewayLimitsSideBySide(t *testing.T) {
	if os.Getenv(EnvMeasureLimits) != "1" {
		t.Skipf("a measurement of four LiteLLM starts: set %s=1 to run it", EnvMeasureLimits)
	}
	const rpm, parallel, burst, trials = 6, 2, 8, 3
	workers := 0
	for _, w := range gatewayWorkers {
		workers += w
	}
	rig := newLimitsRig(t)
	team := node.LiteLLMTeam{Name: "students", Models: []string{localrun.ModelName}, RequestsPerMinute: rpm, TokensPerMinute: 1000000, ParallelPerKey: parallel}
	marker := "LIMITS-MARKER-" + localrun.RandomAlphanumeric(t, 16)
	for _, v := range []struct {
		name  string
		cache bool
	}{{"per-process counters", false}, {"shared counters", true}} {
		gws := rig.gateways(t, gatewayWorkers, []node.LiteLLMTeam{team}, v.cache)
		var passed, first429, admitted []int
		for trial := range trials {
			key := rig.issue(t, "students", fmt.Sprintf("rpm-%t-%d", v.cache, trial))
			res := sendSequential(t, gws, key.Key, marker, 4*rpm)
			passed, first429 = append(passed, res.passed), append(first429, res.first429)
			key = rig.issue(t, "students", fmt.Sprintf("parallel-%t-%d", v.cache, trial))
			a, _ := sendConcurrent(t, gws, key.Key, marker, burst)
			admitted = append(admitted, a)
		}
		t.Logf("%s, %d processes, %d workers: requests per minute (limit %d, %d sent): %v passed, first 429 at %v; concurrent requests (limit %d, %d sent): %v admitted",
			v.name, len(gws), workers, rpm, 4*rpm, passed, first429, parallel, burst, admitted)
		for i := range trials {
			lo, hi, plo, phi := rpm, rpm*workers, parallel, parallel*workers
			if v.cache {
				hi, phi = rpm, parallel
			}
			if passed[i] < lo || passed[i] > hi {
				t.Errorf("%s, trial %d: %d requests passed, want %d..%d", v.name, i+1, passed[i], lo, hi)
			}
			if admitted[i] < plo || admitted[i] > min(phi, burst) {
				t.Errorf("%s, trial %d: %d concurrent requests admitted, want %d..%d", v.name, i+1, admitted[i], plo, min(phi, burst))
			}
		}
		rig.stopGateways(t)
	}
}

// limitsRig is what the limits tests share: the emulator with the key registry, the master
// key and the cache's AUTH token in Secrets Manager, a pool node, the cache, and the venv the
// first gateway node installed, which later nodes start from.
type limitsRig struct {
	d                   *localruntest.Deployment
	reg                 *keyregistry.Registry
	pool                *localruntest.Member
	redis               *localruntest.Redis
	masterArn, cacheArn string
	venv                string
	members             []*localruntest.Member
	stops               []func()
}

func newLimitsRig(t *testing.T) *limitsRig {
	t.Helper()
	h := localruntest.RequireLiteLLM(t)
	redis := localruntest.StartRedis(t)
	d := localruntest.NewDeployment(t, h)
	rig := &limitsRig{d: d, redis: redis}
	// Ollama queues what its two slots cannot take; LiteLLM counts a queued request as in
	// flight, which is what the concurrency checks need.
	rig.pool = d.StartOllama(t, "chemistry-cpu", localrun.OllamaOptions{Parallel: 2, MaxQueue: 64})
	cfg := aws.Config{
		Region:       localrun.Region,
		BaseEndpoint: aws.String(d.Moto.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	}
	keyregistrytest.CreateTable(t, cfg, localrun.Department)
	rig.reg = keyregistry.New(dynamodb.NewFromConfig(cfg), keyregistry.TableName(localrun.Department))
	rig.masterArn = d.Moto.CreateSecret(t, "llm-sandbox/"+localrun.Department+"/litellm-master-key", "sk-"+localrun.RandomAlphanumeric(t, 48))
	rig.cacheArn = d.Moto.CreateSecret(t, "llm-sandbox/"+localrun.Department+"/rate-limit-cache-auth-token", redis.Token)
	return rig
}

// gateways bootstraps a gateway node per entry of workers, one after the other (two LiteLLM
// starts at once on a shared 2-core machine each take several times as long), each in an
// Auto Scaling group of its own with that many LiteLLM workers, the teams and (when cache) the
// rate-limit cache, behind the agent's accounting proxy served by `sandbox-node serve`. The
// first node the rig starts installs LiteLLM; later ones start from a copy of its venv, as
// from an image that carries it, so that their bootstrap skips the install. It returns each
// node's chat completions URL.
func (r *limitsRig) gateways(t *testing.T, workers []int, teams []node.LiteLLMTeam, cache bool) []string {
	t.Helper()
	var urls []string
	for _, w := range workers {
		gw := r.d.NewMember(t, fmt.Sprintf("chemistry-gateway-%d", len(r.members)+1), localruntest.GatewayHook)
		r.members = append(r.members, gw)
		if r.venv != "" {
			dst := filepath.Join(gw.Root, node.LiteLLMVenv)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("cp", "-a", r.venv, dst).CombinedOutput(); err != nil {
				t.Fatalf("copy the venv: %v: %s", err, out)
			}
		}
		conf := r.d.LiteLLMConfig(gw, localrun.GatewayOptions{
			MasterKeySecretArn: r.masterArn,
			OllamaURL:          r.pool.URL(),
			Workers:            w,
			KeyRegistry:        &node.KeyRegistry{Table: keyregistry.TableName(localrun.Department), Teams: teams},
		})
		if cache {
			conf.LiteLLM.RateLimitCache = &node.RateLimitCache{Host: "127.0.0.1", Port: r.redis.Port, AuthTokenSecretArn: r.cacheArn, CACertFile: r.redis.CAFile}
		}
		behindProxy(t, r.d.Moto.URL, gw.Group, &conf)
		path := gw.WriteConfig(t, conf)
		if code := gw.Bootstrap(t, path, localrun.BootstrapLimit); code != 0 {
			gw.DumpLogs(t)
			t.Fatalf("sandbox-node bootstrap of gateway %d (%d workers) exited %d, want 0", len(r.members), w, code)
		}
		r.stops = append(r.stops, serveGateway(t, gw, path))
		if r.venv == "" {
			r.venv = filepath.Join(gw.Root, node.LiteLLMVenv)
		}
		urls = append(urls, gw.URL()+"/v1/chat/completions")
	}
	return urls
}

// stopGateways stops every gateway node the rig started: its serve, then its services.
func (r *limitsRig) stopGateways(t *testing.T) {
	t.Helper()
	for _, stop := range r.stops {
		stop()
	}
	// Latest first, as the cleanups would: a later node's LiteLLM runs from a copy of the
	// first node's venv, whose scripts name the first node's interpreter, so the first node's
	// StopAll would take that process for one of its own.
	for _, gw := range slices.Backward(r.members) {
		gw.StopAll(t)
	}
	r.stops, r.members = nil, nil
}

// issue issues a key of team for owner, valid for an hour.
func (r *limitsRig) issue(t *testing.T, team, owner string) keyregistry.Issued {
	t.Helper()
	now := time.Now()
	k, err := r.reg.Issue(context.Background(), team, owner, now, now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// freshConn is a client that opens a new connection for every request: the kernel then hands
// each to whichever of a node's workers accepts it first, as the load balancer's many
// connections spread over them.
var freshConn = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}

// chatOnce sends one chat completion of model, at most maxTokens tokens, with prompt to url on
// a connection of its own, as a load balancer opens them: each goes to whichever worker
// accepts it first.
func chatOnce(t *testing.T, url, key, model, prompt string, maxTokens int) (int, http.Header, string) {
	t.Helper()
	data, _ := json.Marshal(map[string]any{
		"model": model, "messages": []map[string]string{{"role": "user", "content": prompt}},
		"temperature": 0, "max_tokens": maxTokens,
	})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := freshConn.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// sequentialResult is what sendSequential saw.
type sequentialResult struct {
	passed, first429 int
	retryAfter       string
}

// sendSequential sends n short requests for key one after the other, alternating between the
// gateways, and counts those that passed; any answer but 200 or 429 fails the test.
func sendSequential(t *testing.T, gws []string, key, prompt string, n int) sequentialResult {
	t.Helper()
	var r sequentialResult
	for i := range n {
		code, h, body := chatOnce(t, gws[i%len(gws)], key, localrun.ModelName, prompt, 1)
		switch code {
		case http.StatusOK:
			r.passed++
		case http.StatusTooManyRequests:
			if r.first429 == 0 {
				r.first429, r.retryAfter = i+1, h.Get("Retry-After")
			}
		default:
			t.Fatalf("request %d: HTTP %d: %s", i+1, code, body)
		}
	}
	return r
}

// sendConcurrent sends n long requests for key at once, spread over the gateways, and counts
// those admitted (200) and refused (429); any other answer fails the test.
func sendConcurrent(t *testing.T, gws []string, key, prompt string, n int) (admitted, refused int) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	var other []string
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, _, body := chatOnce(t, gws[i%len(gws)], key, localrun.ModelName, prompt, 256)
			mu.Lock()
			defer mu.Unlock()
			switch code {
			case http.StatusOK:
				admitted++
			case http.StatusTooManyRequests:
				refused++
			default:
				other = append(other, fmt.Sprintf("HTTP %d: %s", code, body))
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("concurrent requests answered neither 200 nor 429: %s", strings.Join(other, "; "))
	}
	return admitted, refused
}
