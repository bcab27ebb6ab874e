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
	n, cfg, config := bootProxiedPoolNode(t, d, "chemistry-cpu-scaling", 30)
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

	// published returns the node's samples with timestamps in [from, to].
	published := func(from, to time.Time) []float64 {
		t.Helper()
		return publishedInFlight(t, d.Moto.URL, cfg.Region, cfg.Department, cfg.Pool, n.Instance, from, to)
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

// behindProxy puts a gateway node's LiteLLM behind the agent's accounting proxy, as the
// Gateway component renders it (LiteLLM on a loopback backend port, the proxy on the gateway's
// port), with the terminating hook the proxy's drain completes; it adds the hook to group in
// the emulator.
func behindProxy(t testing.TB, motoURL, group string, cfg *node.Config) {
	t.Helper()
	putTerminateHook(t, motoURL, group)
	cfg.LiteLLM.BackendPort = localrun.FreePort(t)
	cfg.Lifecycle.TerminateHook, cfg.Lifecycle.DrainSeconds = terminateHook, 30
}

// serveGateway runs `sandbox-node serve` on a bootstrapped gateway node whose config is
// behindProxy's, publishing every second, and waits until the load balancer's health check
// passes through the proxy to LiteLLM. It returns a function that stops serve (the test's
// end does too), for a test that stops the node's services itself.
func serveGateway(t testing.TB, gw *localruntest.Member, config string) (stop func()) {
	t.Helper()
	gw.IMDS.SetTargetLifecycleState("InService")
	logPath := filepath.Join(gw.Dir, "serve.log")
	cmd := exec.Command(gw.Agent, "serve", "--config", config, "--root", gw.Root, "--poll", "200ms", "--metrics-interval", "1s")
	cmd.Env = gw.Env
	exited := localrun.StartGroup(t, "sandbox-node serve", cmd, logPath)
	localrun.WaitReady(t, "sandbox-node serve", exited, logPath, 30*time.Second, 100*time.Millisecond, func() error {
		code, err := get(gw.URL() + node.LiteLLMHealthPath)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET %s through the proxy: %d", node.LiteLLMHealthPath, code)
		}
		return err
	})
	return func() {
		t.Helper()
		if err := node.StopProcessGroup(cmd.Process.Pid, 15*time.Second); err != nil {
			t.Errorf("sandbox-node serve: %v", err)
		}
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Errorf("sandbox-node serve (pid %d) was not reaped after its group stopped", cmd.Process.Pid)
		}
	}
}

// streamChat posts a streaming chat completion of up to maxTokens to base with key, reads it
// to the end and returns its status.
func streamChat(ctx context.Context, base, key string, maxTokens int) (int, error) {
	body, _ := json.Marshal(map[string]any{
		"model": modelName, "messages": []map[string]string{{"role": "user", "content": "Tell a long story"}},
		"stream": true, "max_tokens": maxTokens, "temperature": 0,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(string(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// checkGatewayInFlight is the gateway's half of the in-flight metric, on a gateway node that
// serveGateway serves: LiteLLM listens on loopback at its backend port only, and the node's
// published in-flight requests (Pool = gateway) are 0 while idle, 1 while one client streams
// through the gateway with key (stream after stream, as long as it is answered 200: at most
// the key's requests per minute), and 0 again once it left. Then Auto Scaling terminates the
// node: with nothing in flight the proxy completes the terminating hook at once and answers
// the health check 503.
func checkGatewayInFlight(t *testing.T, moto *localruntest.Moto, gw *localruntest.Member, cfg node.Config, key string) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("gateway: the in-flight checks took %s", time.Since(start).Round(100*time.Millisecond)) }()
	backend := fmt.Sprintf("http://127.0.0.1:%d", cfg.LiteLLM.BackendPort)
	if code, err := get(backend + node.LiteLLMHealthPath); err != nil || code != http.StatusOK {
		t.Fatalf("LiteLLM on its backend port: %d %v", code, err)
	}
	if addrs := listeners(t, cfg.LiteLLM.BackendPort); len(addrs) == 0 || !allLoopback(addrs) {
		t.Errorf("LiteLLM listens on %v; want 127.0.0.1 only", addrs)
	}
	published := func(from, to time.Time) []float64 {
		t.Helper()
		return publishedInFlight(t, moto.URL, cfg.Region, cfg.Department, llmmetrics.PoolGateway, gw.Instance, from, to)
	}
	// waitPublished waits up to 15 s for a second and a half of samples that satisfies ok.
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
				t.Fatalf("gateway: published %v 15 s on, want %s", values, what)
			}
		}
	}
	waitPublished("0 while idle", allZero)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	var streams atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			// As long as the context allows (the pool's 2,048 tokens): a few seconds each.
			code, err := streamChat(ctx, gw.URL(), key, 1800)
			if err == nil && code != http.StatusOK {
				return
			}
			streams.Add(1)
		}
	}()
	values := waitPublished("1 with one client streaming", func(vs []float64) bool { return slices.Min(vs) == 1 && slices.Max(vs) == 1 })
	t.Logf("gateway: one client streaming: published %v", values)
	from := time.Now()
	time.Sleep(1500 * time.Millisecond)
	// Never more than the one stream (the gap between two of its requests may show as 0).
	if values := published(from, time.Now()); len(values) == 0 || slices.Max(values) != 1 {
		t.Fatalf("gateway: one client streaming: published %v, want samples of at most 1, some of them 1", values)
	}
	stop()
	if streams.Load() == 0 {
		t.Fatal("gateway: no stream was answered 200")
	}
	values = waitPublished("0 after the client left", allZero)
	t.Logf("gateway: after the client left: published %v", values)

	gw.IMDS.SetTargetLifecycleState("Terminated")
	want := localruntest.LifecycleRecord{Group: gw.Group, Hook: terminateHook, Instance: gw.Instance, Result: "CONTINUE"}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got []localruntest.LifecycleRecord
		for _, r := range moto.Records(t, gw.Group) {
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
	if code, err := get(gw.URL() + node.LiteLLMHealthPath); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("the health check after the drain: %d %v, want 503", code, err)
	}
}

// BenchmarkGatewayProxyOverhead measures, side by side on one gateway node, what the accounting
// proxy adds per request on the LiteLLM path: LiteLLM's health check and a one-token chat
// completion (LiteLLM to the real Ollama), each straight to LiteLLM on its loopback port and
// through the proxy. The difference of each pair is the proxy's cost (goal: under 1 ms).
func BenchmarkGatewayProxyOverhead(b *testing.B) {
	h := localruntest.RequireLiteLLM(b)
	d := localruntest.NewDeployment(b, h)
	pool := d.StartOllama(b, "chemistry-cpu", localrun.OllamaOptions{})
	masterKey := "sk-" + localrun.RandomAlphanumeric(b, 48)
	arn := d.Moto.CreateSecret(b, "llm-sandbox/"+localrun.Department+"/litellm-master-key", masterKey)
	const group = "chemistry-gateway"
	gw := d.NewMember(b, group, localruntest.GatewayHook)
	cfg := d.LiteLLMConfig(gw, localrun.GatewayOptions{MasterKeySecretArn: arn, OllamaURL: pool.URL()})
	behindProxy(b, d.Moto.URL, group, &cfg)
	config := gw.WriteConfig(b, cfg)
	if code := gw.Bootstrap(b, config, localrun.BootstrapLimit); code != 0 {
		b.Fatalf("sandbox-node bootstrap (litellm) exited %d, want 0", code)
	}
	serveGateway(b, gw, config)
	front, backend := gw.URL(), fmt.Sprintf("http://127.0.0.1:%d", cfg.LiteLLM.BackendPort)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	do := func(b *testing.B, req *http.Request) {
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	health := func(b *testing.B, base string) {
		req, _ := http.NewRequest(http.MethodGet, base+node.LiteLLMHealthPath, nil)
		do(b, req)
	}
	chat := func(b *testing.B, base string) {
		body, _ := json.Marshal(map[string]any{
			"model": modelName, "messages": []map[string]string{{"role": "user", "content": "hello"}}, "max_tokens": 1, "temperature": 0,
		})
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+masterKey)
		do(b, req)
	}
	for _, c := range []struct {
		name string
		do   func(*testing.B, string)
	}{{"health", health}, {"chat", chat}} {
		// Warm both paths (connections, LiteLLM's router) before measuring.
		for range 5 {
			c.do(b, backend)
			c.do(b, front)
		}
		for _, path := range []struct{ name, base string }{{"direct", backend}, {"proxy", front}} {
			b.Run(c.name+"/"+path.name, func(b *testing.B) {
				for b.Loop() {
					c.do(b, path.base)
				}
			})
		}
	}
}

// publishedInFlight returns the in-flight samples one node published to the emulator at
// motoURL with timestamps in [from, to]: the highest of each second.
func publishedInFlight(t testing.TB, motoURL, region, department, pool, instance string, from, to time.Time) []float64 {
	t.Helper()
	cw := cwclient.New(aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(motoURL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
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
						{Name: aws.String(llmmetrics.DimensionDepartment), Value: aws.String(department)},
						{Name: aws.String(llmmetrics.DimensionPool), Value: aws.String(pool)},
						{Name: aws.String(llmmetrics.DimensionInstance), Value: aws.String(instance)},
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
