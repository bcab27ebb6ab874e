package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/llm-sandbox/llm-sandbox/internal/cwclient"
	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// TestInFlightMetricFollowsConcurrency runs a pool node (real Ollama with the tiny model behind
// `sandbox-node serve`) that publishes its in-flight requests to the emulator's CloudWatch
// every second, drives 1, 4, 8 and 16 concurrent streams at it, and reads the node's series
// back: at steady state every published value is the offered concurrency ±1 (answered and
// queued alike: Ollama answers 2 at a time here), and once the clients are gone it falls to 0.
func TestInFlightMetricFollowsConcurrency(t *testing.T) {
	h := localruntest.Require(t)
	d := localruntest.NewDeployment(t, h)
	const group = "chemistry-cpu-scaling"
	n := d.NewMember(t, group, hookName)
	putTerminateHook(t, d.Moto.URL, group)
	cfg := d.OllamaConfig(n, d.Release, localrun.OllamaOptions{})
	cfg.Ollama.BackendPort = localrun.FreePort(t)
	cfg.Lifecycle.TerminateHook, cfg.Lifecycle.DrainSeconds = terminateHook, 30
	config := n.WriteConfig(t, cfg)
	if code := n.Bootstrap(t, config, 5*time.Minute); code != 0 {
		t.Fatalf("sandbox-node bootstrap exited %d, want 0", code)
	}
	n.IMDS.SetTargetLifecycleState("InService")
	logPath := filepath.Join(n.Dir, "serve.log")
	cmd := exec.Command(n.Agent, "serve", "--config", config, "--root", n.Root, "--poll", "1s", "--metrics-interval", "1s")
	cmd.Env = n.Env
	exited := localrun.StartGroup(t, "sandbox-node serve", cmd, logPath)
	api := n.URL()
	localrun.WaitReady(t, "sandbox-node serve", exited, logPath, 30*time.Second, 100*time.Millisecond, func() error {
		code, err := get(api + "/api/version")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET /api/version through the proxy: %d", code)
		}
		return err
	})

	cw := cwclient.New(aws.Config{
		Region:       cfg.Region,
		BaseEndpoint: aws.String(d.Moto.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	// published returns the node's samples with timestamps in [from, to].
	published := func(from, to time.Time) []float64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(from), EndTime: aws.Time(to),
			MetricDataQueries: []cwtypes.MetricDataQuery{{
				Id: aws.String("node"),
				MetricStat: &cwtypes.MetricStat{
					Metric: &cwtypes.Metric{
						Namespace:  aws.String(llmmetrics.Namespace),
						MetricName: aws.String(llmmetrics.MetricInFlightRequests),
						Dimensions: []cwtypes.Dimension{
							{Name: aws.String(llmmetrics.DimensionDepartment), Value: aws.String(cfg.Department)},
							{Name: aws.String(llmmetrics.DimensionPool), Value: aws.String(cfg.Pool)},
							{Name: aws.String(llmmetrics.DimensionInstance), Value: aws.String(n.Instance)},
						},
					},
					Period: aws.Int32(1),
					Stat:   aws.String("Maximum"),
				},
			}},
		})
		if err != nil {
			t.Fatalf("moto GetMetricData: %v", err)
		}
		if len(out.MetricDataResults) != 1 {
			t.Fatalf("moto GetMetricData: %d results, want 1", len(out.MetricDataResults))
		}
		return out.MetricDataResults[0].Values
	}

	// Streams long enough to outlast each step; the test ends them by going away.
	body, _ := json.Marshal(map[string]any{
		"model": modelName, "prompt": "Tell a long story", "stream": true,
		"options": map[string]any{"num_predict": 1000000, "temperature": 0},
	})
	var wg sync.WaitGroup
	var cancels []context.CancelFunc
	stopAll := func() {
		for _, c := range cancels {
			c()
		}
		cancels = nil
		wg.Wait()
	}
	t.Cleanup(stopAll)
	open := 0
	for _, want := range []int{1, 4, 8, 16} {
		for ; open < want; open++ {
			ctx, cancel := context.WithCancel(context.Background())
			cancels = append(cancels, cancel)
			wg.Add(1)
			// A client streams until the test ends it, asking again at once if the random
			// weights end a story early (an end-of-sequence token), as a busy client would.
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/api/generate", strings.NewReader(string(body)))
					req.Header.Set("Content-Type", "application/json")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		// Settle (every stream accepted by the proxy), then read two seconds of samples.
		time.Sleep(1500 * time.Millisecond)
		from := time.Now()
		time.Sleep(2500 * time.Millisecond)
		values := published(from, time.Now())
		if len(values) < 2 {
			t.Fatalf("%d streams: %d samples published in 2.5 s, want one a second", want, len(values))
		}
		for _, v := range values {
			if v < float64(want-1) || v > float64(want+1) {
				t.Fatalf("%d streams: published %v, want each within %d±1", want, values, want)
			}
		}
		t.Logf("%d streams: published %v", want, values)
	}

	stopAll()
	deadline := time.Now().Add(15 * time.Second)
	for {
		from := time.Now()
		time.Sleep(1500 * time.Millisecond)
		values := published(from, time.Now())
		if len(values) > 0 && allZero(values) {
			t.Logf("after the clients left: published %v", values)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("published %v 15 s after every client left, want 0", values)
		}
	}
}

func allZero(vs []float64) bool {
	for _, v := range vs {
		if v != 0 {
			return false
		}
	}
	return true
}

// proxiedGateway is a gateway node (the pinned LiteLLM routing to a pool node running the real
// Ollama) with LiteLLM behind the agent's accounting proxy, as the Gateway component renders it,
// and `sandbox-node serve` publishing every second.
type proxiedGateway struct {
	d         *localruntest.Deployment
	gw        *localruntest.Member
	cfg       node.Config
	masterKey string
	// front is the proxy (the load balancer's target), backend LiteLLM itself on loopback.
	front, backend string
}

func startProxiedGateway(t testing.TB, group string) *proxiedGateway {
	t.Helper()
	h := localruntest.RequireLiteLLM(t)
	d := localruntest.NewDeployment(t, h)
	pool := d.StartOllama(t, "chemistry-cpu", localrun.OllamaOptions{})
	masterKey := "sk-" + localrun.RandomAlphanumeric(t, 48)
	arn := d.Moto.CreateSecret(t, "llm-sandbox/"+localrun.Department+"/litellm-master-key", masterKey)
	gw := d.NewMember(t, group, localruntest.GatewayHook)
	putTerminateHook(t, d.Moto.URL, group)
	cfg := d.LiteLLMConfig(gw, localrun.GatewayOptions{MasterKeySecretArn: arn, OllamaURL: pool.URL()})
	cfg.LiteLLM.BackendPort = localrun.FreePort(t)
	cfg.Lifecycle.TerminateHook, cfg.Lifecycle.DrainSeconds = terminateHook, 30
	config := gw.WriteConfig(t, cfg)
	if code := gw.Bootstrap(t, config, localrun.BootstrapLimit); code != 0 {
		t.Fatalf("sandbox-node bootstrap (litellm) exited %d, want 0", code)
	}
	gw.IMDS.SetTargetLifecycleState("InService")
	logPath := filepath.Join(gw.Dir, "serve.log")
	cmd := exec.Command(gw.Agent, "serve", "--config", config, "--root", gw.Root, "--poll", "200ms", "--metrics-interval", "1s")
	cmd.Env = gw.Env
	exited := localrun.StartGroup(t, "sandbox-node serve", cmd, logPath)
	g := &proxiedGateway{d: d, gw: gw, cfg: cfg, masterKey: masterKey,
		front: gw.URL(), backend: fmt.Sprintf("http://127.0.0.1:%d", cfg.LiteLLM.BackendPort)}
	// The load balancer's health check passes through the proxy to LiteLLM.
	localrun.WaitReady(t, "sandbox-node serve", exited, logPath, 30*time.Second, 100*time.Millisecond, func() error {
		code, err := get(g.front + node.LiteLLMHealthPath)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET %s through the proxy: %d", node.LiteLLMHealthPath, code)
		}
		return err
	})
	return g
}

// chat posts a chat completion with the master key to base and returns the response.
func (g *proxiedGateway) chat(ctx context.Context, base string, stream bool, maxTokens int) (*http.Response, error) {
	body, _ := json.Marshal(map[string]any{
		"model": modelName, "messages": []map[string]string{{"role": "user", "content": "Tell a long story"}},
		"stream": stream, "max_tokens": maxTokens, "temperature": 0,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+g.masterKey)
	return http.DefaultClient.Do(req)
}

// TestGatewayInFlightMetricFollowsAStream runs a gateway node with LiteLLM behind the agent's
// accounting proxy: LiteLLM listens on loopback only, the health check passes through the
// proxy, the node publishes its in-flight requests with the gateway's Pool value, the figure
// follows one client streaming through the gateway (1 while it streams) and falls back to 0
// when it leaves, and on termination the node drains and completes its terminating hook.
func TestGatewayInFlightMetricFollowsAStream(t *testing.T) {
	const group = "chemistry-gateway"
	g := startProxiedGateway(t, group)
	// LiteLLM itself listens on loopback at the backend port only.
	if code, err := get(g.backend + node.LiteLLMHealthPath); err != nil || code != http.StatusOK {
		t.Fatalf("LiteLLM on its backend port: %d %v", code, err)
	}

	cw := cwclient.New(aws.Config{
		Region:       g.cfg.Region,
		BaseEndpoint: aws.String(g.d.Moto.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	published := func(from, to time.Time) []float64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(from), EndTime: aws.Time(to),
			MetricDataQueries: []cwtypes.MetricDataQuery{{
				Id: aws.String("gateway"),
				MetricStat: &cwtypes.MetricStat{
					Metric: &cwtypes.Metric{
						Namespace:  aws.String(llmmetrics.Namespace),
						MetricName: aws.String(llmmetrics.MetricInFlightRequests),
						Dimensions: []cwtypes.Dimension{
							{Name: aws.String(llmmetrics.DimensionDepartment), Value: aws.String(g.cfg.Department)},
							{Name: aws.String(llmmetrics.DimensionPool), Value: aws.String(llmmetrics.PoolGateway)},
							{Name: aws.String(llmmetrics.DimensionInstance), Value: aws.String(g.gw.Instance)},
						},
					},
					Period: aws.Int32(1),
					Stat:   aws.String("Maximum"),
				},
			}},
		})
		if err != nil || len(out.MetricDataResults) != 1 {
			t.Fatalf("moto GetMetricData: %v", err)
		}
		return out.MetricDataResults[0].Values
	}
	// waitPublished waits up to 15 s for a second of samples that satisfies ok.
	waitPublished := func(what string, ok func([]float64) bool) []float64 {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			from := time.Now()
			time.Sleep(1500 * time.Millisecond)
			values := published(from, time.Now())
			if len(values) > 0 && ok(values) {
				return values
			}
			if time.Now().After(deadline) {
				t.Fatalf("published %v 15 s on, want %s", values, what)
			}
		}
	}
	waitPublished("0 while idle", allZero)

	// One client streams through the gateway, asking again at once when a story ends (the
	// context bounds a stream to a few seconds here), as a busy client would.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	var streams atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			resp, err := g.chat(ctx, g.front, true, 1000)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if resp.StatusCode == http.StatusOK {
				streams.Add(1)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	values := waitPublished("1 with one client streaming", func(vs []float64) bool {
		for _, v := range vs {
			if v != 1 {
				return false
			}
		}
		return true
	})
	t.Logf("one client streaming through the gateway: published %v", values)
	// Two more seconds: never more than the one stream (the gaps between its requests may
	// show as 0).
	from := time.Now()
	time.Sleep(2500 * time.Millisecond)
	if values := published(from, time.Now()); len(values) < 2 || slices.Max(values) != 1 {
		t.Fatalf("one client streaming: published %v, want samples of at most 1, some of them 1", values)
	}
	stop()
	if streams.Load() == 0 {
		t.Fatal("no stream through the gateway was answered 200")
	}
	values = waitPublished("0 after the client left", allZero)
	t.Logf("after the client left: published %v", values)

	// Auto Scaling terminates the node: the proxy refuses the health check, and with nothing
	// in flight the terminating hook is completed.
	g.gw.IMDS.SetTargetLifecycleState("Terminated")
	want := localruntest.LifecycleRecord{Group: group, Hook: terminateHook, Instance: g.gw.Instance, Result: "CONTINUE"}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got []localruntest.LifecycleRecord
		for _, r := range g.d.Moto.Records(t, group) {
			if r.Hook == terminateHook {
				got = append(got, r)
			}
		}
		if len(got) == 1 && got[0] == want {
			break
		}
		if len(got) > 1 || time.Now().After(deadline) {
			t.Fatalf("terminating hook records %+v, want exactly [%+v]", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, err := get(g.front + node.LiteLLMHealthPath); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("the health check after the drain: %d %v, want 503", code, err)
	}
}

// BenchmarkGatewayProxyOverhead measures, side by side on one gateway node, what the accounting
// proxy adds per request on the LiteLLM path: LiteLLM's health check and a one-token chat
// completion (LiteLLM to the real Ollama), each straight to LiteLLM on its loopback port and
// through the proxy. The difference of each pair is the proxy's cost (goal: under 1 ms).
func BenchmarkGatewayProxyOverhead(b *testing.B) {
	g := startProxiedGateway(b, "chemistry-gateway")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	health := func(b *testing.B, base string) {
		resp, err := client.Get(base + node.LiteLLMHealthPath)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s%s: %v", base, node.LiteLLMHealthPath, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	chat := func(b *testing.B, base string) {
		resp, err := g.chat(context.Background(), base, false, 1)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("POST %s/v1/chat/completions: %v", base, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, c := range []struct {
		name string
		do   func(*testing.B, string)
	}{{"health", health}, {"chat", chat}} {
		// Warm both paths (connections, LiteLLM's router) before measuring.
		for range 5 {
			c.do(b, g.backend)
			c.do(b, g.front)
		}
		for _, path := range []struct{ name, base string }{{"direct", g.backend}, {"proxy", g.front}} {
			b.Run(c.name+"/"+path.name, func(b *testing.B) {
				for b.Loop() {
					c.do(b, path.base)
				}
			})
		}
	}
}
