package node

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/inflight"
	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
	"github.com/llm-sandbox/llm-sandbox/node/awstest"
)

// drainEnv is a serving pool node: a streaming backend in Ollama's place, Serve's proxy in
// front of it, and the IMDS and Auto Scaling fakes.
type drainEnv struct {
	backend *streamBackend
	counter *inflight.Counter
	imds    *awstest.IMDS
	asg     *awstest.AutoScaling
	url     string
	log     *syncBuffer
	done    chan error
	cancel  context.CancelFunc
}

func startServe(t *testing.T, drainSeconds int, mutate ...func(*ServeOptions)) *drainEnv {
	t.Helper()
	return startServeIn(t, "InService", drainSeconds, mutate...)
}

// startServeIn starts Serve on a node whose target lifecycle state is state.
func startServeIn(t *testing.T, state string, drainSeconds int, mutate ...func(*ServeOptions)) *drainEnv {
	t.Helper()
	return startServeConfig(t, state, drainSeconds, nil, mutate...)
}

// startServeConfig is startServeIn with the node config changed by cfgMutate (when not nil).
func startServeConfig(t *testing.T, state string, drainSeconds int, cfgMutate func(*Config), mutate ...func(*ServeOptions)) *drainEnv {
	t.Helper()
	e := &drainEnv{
		backend: &streamBackend{next: make(chan string), hosts: make(chan string, 16)},
		counter: &inflight.Counter{},
		imds:    &awstest.IMDS{InstanceID: "i-0123456789abcdef0", Group: "chemistry-gpu", Region: "ca-central-1"},
		log:     &syncBuffer{},
		done:    make(chan error, 1),
	}
	e.imds.SetTargetLifecycleState(state)
	e.asg, _ = awstest.Serve(t, e.imds)
	backend := httptest.NewServer(e.backend)
	t.Cleanup(backend.Close)
	backendPort, _ := strconv.Atoi(backend.URL[strings.LastIndex(backend.URL, ":")+1:])
	cfg := &Config{
		Role: RoleOllama, Department: "chemistry", Pool: "gpu", Region: "ca-central-1",
		Lifecycle: Lifecycle{Hook: "llm-sandbox-launch", TerminateHook: "llm-sandbox-terminate", DrainSeconds: drainSeconds},
		Ollama:    &OllamaConfig{Port: freePort(t), BackendPort: backendPort},
	}
	if cfgMutate != nil {
		cfgMutate(cfg)
	}
	listening := make(chan string, 1)
	opts := ServeOptions{
		Root: t.TempDir(), Log: NewLogger(e.log, nil), Counter: e.counter, Poll: 20 * time.Millisecond,
		Listening: func(addr string) { listening <- addr },
	}
	for _, m := range mutate {
		m(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- Serve(ctx, cfg, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-e.done:
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	select {
	case addr := <-listening:
		e.url = "http://" + addr
	case err := <-e.done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy never listened")
	}
	return e
}

// status GETs path through the proxy on a new connection.
func (e *drainEnv) status(t *testing.T, path string) int {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPolled waits until the node has read its target lifecycle state once more: a state set
// before the call has then been seen. A return to the warm pool drains only a node that has
// seen itself InService, so a test that changes the state must not outrun the node's polls
// (on a loaded machine the first poll can come after the test's next step).
func (e *drainEnv) waitPolled(t *testing.T) {
	t.Helper()
	reads := func() int { return strings.Count(e.imds.Served(), TargetLifecycleStatePath) }
	n := reads()
	waitFor(t, "the node to read its target lifecycle state", func() bool { return reads() > n })
}

// openStream starts a stream through the proxy and reads its first line.
func (e *drainEnv) openStream(t *testing.T) *bufio.Reader {
	t.Helper()
	resp, err := http.Get(e.url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	r := bufio.NewReader(resp.Body)
	e.backend.next <- "first"
	if line, err := r.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first line: %q %v", line, err)
	}
	return r
}

var terminateCall = awstest.Call{Group: "chemistry-gpu", Hook: "llm-sandbox-terminate", InstanceID: "i-0123456789abcdef0", Result: "CONTINUE"}

// Auto Scaling terminates the node: new requests (the health check too) are refused at once,
// the stream in flight finishes, and only then is CONTINUE sent on the terminating hook.
func TestServeDrainsOnTerminationThenContinues(t *testing.T) {
	e := startServe(t, 60)
	if code := e.status(t, "/api/version"); code != http.StatusOK {
		t.Fatalf("health check through the proxy before the drain: %d", code)
	}
	stream := e.openStream(t)
	e.imds.SetTargetLifecycleState("Terminated")
	waitFor(t, "new requests to be refused", func() bool { return e.status(t, "/api/version") == http.StatusServiceUnavailable })

	time.Sleep(100 * time.Millisecond) // several polls: the drain must still be waiting
	if calls := e.asg.Calls(); len(calls) != 0 {
		t.Fatalf("lifecycle action completed with a stream in flight: %v", calls)
	}
	e.backend.next <- "last"
	close(e.backend.next)
	rest, err := io.ReadAll(stream)
	if err != nil || string(rest) != "last\n" {
		t.Fatalf("the stream in flight did not finish: %q %v", rest, err)
	}
	waitFor(t, "CONTINUE on the terminating hook", func() bool { return len(e.asg.Calls()) > 0 })
	time.Sleep(100 * time.Millisecond)
	if calls := e.asg.Calls(); len(calls) != 1 || calls[0] != terminateCall {
		t.Errorf("lifecycle calls = %v, want exactly [%v]", calls, terminateCall)
	}
	if s := e.counter.Snapshot(); s.InFlight != 0 || s.Refused < 1 {
		t.Errorf("counter after the drain: %+v", s)
	}
}

// A pool that reuses instances on scale-in sends a serving node back to the warm pool: it
// drains as a terminated one does and completes the terminating hook, on which Auto Scaling
// holds it in Warmed:Pending:Wait.
func TestServeDrainsOnReturnToTheWarmPool(t *testing.T) {
	e := startServe(t, 60)
	stream := e.openStream(t)
	e.waitPolled(t)
	e.imds.SetTargetLifecycleState("Warmed:Stopped")
	waitFor(t, "new requests to be refused", func() bool { return e.status(t, "/api/version") == http.StatusServiceUnavailable })
	time.Sleep(100 * time.Millisecond)
	if calls := e.asg.Calls(); len(calls) != 0 {
		t.Fatalf("lifecycle action completed with a stream in flight: %v", calls)
	}
	e.backend.next <- "last"
	close(e.backend.next)
	if rest, err := io.ReadAll(stream); err != nil || string(rest) != "last\n" {
		t.Fatalf("the stream in flight did not finish: %q %v", rest, err)
	}
	waitFor(t, "CONTINUE on the terminating hook", func() bool { return len(e.asg.Calls()) > 0 })
	if calls := e.asg.Calls(); len(calls) != 1 || calls[0] != terminateCall {
		t.Errorf("lifecycle calls = %v, want exactly [%v]", calls, terminateCall)
	}
}

// A node that launches into the warm pool has a warm-pool target state before it ever serves:
// that is not a return to the pool, so nothing drains and the terminating hook is left alone
// (the launch hook is the bootstrap's to complete).
func TestServeLaunchingIntoTheWarmPoolDoesNotDrain(t *testing.T) {
	e := startServeIn(t, "Warmed:Stopped", 60)
	time.Sleep(200 * time.Millisecond) // ten polls
	if code := e.status(t, "/api/version"); code != http.StatusOK {
		t.Errorf("a node launching into the warm pool refused a request: %d", code)
	}
	if calls := e.asg.Calls(); len(calls) != 0 {
		t.Errorf("lifecycle calls = %v, want none", calls)
	}
	// Out of the pool and into service, then back: now it drains.
	e.imds.SetTargetLifecycleState("InService")
	e.waitPolled(t)
	e.imds.SetTargetLifecycleState("Warmed:Stopped")
	waitFor(t, "CONTINUE on the terminating hook", func() bool { return len(e.asg.Calls()) > 0 })
}

// The drain is bounded: a stream that outlives drainSeconds does not hold the node.
func TestServeDrainIsBoundedByDrainSeconds(t *testing.T) {
	e := startServe(t, 1)
	e.openStream(t)
	start := time.Now()
	e.imds.SetTargetLifecycleState("Terminated")
	waitFor(t, "CONTINUE despite the stream", func() bool { return len(e.asg.Calls()) > 0 })
	if took := time.Since(start); took < time.Second || took > 5*time.Second {
		t.Errorf("CONTINUE after %s, want after the 1 s bound and soon after it", took)
	}
	if !strings.Contains(e.log.String(), "1 request(s) still in flight") {
		t.Errorf("log does not say the drain gave up on a request:\n%s", e.log.String())
	}
}

// Auto Scaling may change the target state before it holds the instance on the hook: "no
// active lifecycle action" is tried again, not given up.
func TestServeRetriesUntilHeldOnTheHook(t *testing.T) {
	e := startServe(t, 60)
	e.asg.SetNoActiveAction(true)
	e.imds.SetTargetLifecycleState("Terminated")
	waitFor(t, "three refused attempts", func() bool { return len(e.asg.Calls()) >= 3 })
	e.asg.SetNoActiveAction(false)
	n := len(e.asg.Calls())
	waitFor(t, "the accepted attempt", func() bool { return len(e.asg.Calls()) > n })
	time.Sleep(100 * time.Millisecond)
	if calls := e.asg.Calls(); len(calls) != n+1 {
		t.Errorf("%d calls after the accepted one, want it to be the last", len(calls)-n)
	}
}

// A spot notice alone drains the node (refuses, waits for the stream) but completes nothing:
// there is no lifecycle action until Auto Scaling terminates the instance, and then CONTINUE
// is sent at once.
func TestServeSpotNoticeDrainsThenContinuesOnTermination(t *testing.T) {
	e := startServe(t, 60)
	stream := e.openStream(t)
	e.imds.SetSpotInstanceAction("terminate", time.Now().Add(2*time.Minute))
	waitFor(t, "new requests to be refused", func() bool { return e.status(t, "/api/version") == http.StatusServiceUnavailable })
	close(e.backend.next)
	if _, err := io.ReadAll(stream); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drain to end", func() bool { return strings.Contains(e.log.String(), "nothing in flight after") })
	time.Sleep(100 * time.Millisecond)
	if calls := e.asg.Calls(); len(calls) != 0 {
		t.Fatalf("lifecycle calls on a spot notice alone: %v", calls)
	}
	if !strings.Contains(e.log.String(), "spot interruption notice: EC2 will terminate") {
		t.Errorf("log does not name the spot notice:\n%s", e.log.String())
	}
	e.imds.SetTargetLifecycleState("Terminated")
	waitFor(t, "CONTINUE once terminating", func() bool { return len(e.asg.Calls()) > 0 })
	if calls := e.asg.Calls(); calls[0] != terminateCall {
		t.Errorf("lifecycle call = %v, want %v", calls[0], terminateCall)
	}
}

// A spot notice bounds the drain by its time, less the margin, even with a longer
// drainSeconds.
func TestServeSpotNoticeBoundsTheDrain(t *testing.T) {
	e := startServe(t, 3600)
	e.openStream(t)
	start := time.Now()
	e.imds.SetSpotInstanceAction("terminate", time.Now().Add(spotMargin+time.Second))
	waitFor(t, "the drain to give up", func() bool { return strings.Contains(e.log.String(), "still in flight after") })
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("drain took %s with a notice %s ahead, want about 1 s", took, spotMargin+time.Second)
	}
}

// A node config without a terminating hook has nothing to watch.
func TestServeNeedsATerminateHook(t *testing.T) {
	err := Serve(context.Background(), &Config{Role: RoleOllama, Lifecycle: Lifecycle{Hook: "h"}}, ServeOptions{})
	if err == nil || !strings.Contains(err.Error(), "terminateHook") {
		t.Errorf("Serve without a terminating hook = %v", err)
	}
}

// A gateway node runs the watcher without a proxy: on termination it has nothing of its own to
// wait for (the load balancer drained it) and sends CONTINUE at once.
func TestServeGatewayWatcherContinues(t *testing.T) {
	meta := &awstest.IMDS{InstanceID: "i-0fedcba9876543210", Group: "chemistry-gateway", Region: "ca-central-1"}
	meta.SetTargetLifecycleState("InService")
	asg, _ := awstest.Serve(t, meta)
	cfg := liteLLMGoldenConfig()
	cfg.Lifecycle.TerminateHook, cfg.Lifecycle.DrainSeconds = "llm-sandbox-terminate", 3600
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := &syncBuffer{}
	go func() {
		done <- Serve(ctx, cfg, ServeOptions{Root: t.TempDir(), Log: NewLogger(log, nil), Poll: 20 * time.Millisecond})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	if calls := asg.Calls(); len(calls) != 0 {
		t.Fatalf("lifecycle calls while in service: %v", calls)
	}
	meta.SetTargetLifecycleState("Terminated")
	waitFor(t, "CONTINUE", func() bool { return len(asg.Calls()) > 0 })
	want := awstest.Call{Group: "chemistry-gateway", Hook: "llm-sandbox-terminate", InstanceID: "i-0fedcba9876543210", Result: "CONTINUE"}
	if calls := asg.Calls(); calls[0] != want {
		t.Errorf("lifecycle call = %v, want %v", calls[0], want)
	}
	if strings.Contains(log.String(), "proxy on") {
		t.Errorf("a gateway node started a proxy:\n%s", log.String())
	}
}

// gatewayNode turns startServe's pool node into a gateway node whose LiteLLM (the stream
// backend) listens behind the accounting proxy, as the Gateway component renders it.
func gatewayNode(c *Config) {
	c.Role, c.Pool = RoleLiteLLM, "gateway"
	c.LiteLLM = &LiteLLMConfig{Port: c.Ollama.Port, BackendPort: c.Ollama.BackendPort, Workers: 1, KeepAliveSeconds: 960}
	c.Ollama = nil
}

// A gateway node with litellm.backendPort runs the accounting proxy in front of LiteLLM as a
// pool node does in front of Ollama: the load balancer's health check passes through it, it
// publishes its in-flight count with the gateway's Pool value, and on termination it refuses
// new requests (the health check too) and waits for the stream in flight before CONTINUE.
func TestServeGatewayProxyCountsPublishesAndDrains(t *testing.T) {
	var cw *awstest.CloudWatch
	e := startServeConfig(t, "InService", 60, gatewayNode, func(o *ServeOptions) {
		cw = awstest.ServeCloudWatch(t)
		o.MetricsInterval = 20 * time.Millisecond
	})
	if code := e.status(t, LiteLLMHealthPath); code != http.StatusOK {
		t.Fatalf("the load balancer's health check through the proxy: %d", code)
	}
	published := func(v float64) func() bool {
		return func() bool {
			d := cw.Data()
			for i := len(d) - 1; i >= 0; i-- {
				if len(d[i].Dimensions) == 2 {
					return d[i].Value == v && d[i].Dimensions[llmmetrics.DimensionPool] == llmmetrics.PoolGateway
				}
			}
			return false
		}
	}
	waitFor(t, "a published 0 while idle", published(0))
	stream := e.openStream(t)
	waitFor(t, "a published 1 with a stream open", published(1))
	for _, d := range cw.Data() {
		if d.Metric != llmmetrics.MetricInFlightRequests || d.Dimensions[llmmetrics.DimensionPool] != llmmetrics.PoolGateway {
			t.Fatalf("a gateway node published %+v: want only %s with Pool=%s", d, llmmetrics.MetricInFlightRequests, llmmetrics.PoolGateway)
		}
	}

	e.imds.SetTargetLifecycleState("Terminated")
	waitFor(t, "new requests to be refused", func() bool { return e.status(t, LiteLLMHealthPath) == http.StatusServiceUnavailable })
	time.Sleep(100 * time.Millisecond)
	if calls := e.asg.Calls(); len(calls) != 0 {
		t.Fatalf("lifecycle action completed with a stream in flight: %v", calls)
	}
	e.backend.next <- "last"
	close(e.backend.next)
	if rest, err := io.ReadAll(stream); err != nil || string(rest) != "last\n" {
		t.Fatalf("the stream in flight did not finish: %q %v", rest, err)
	}
	waitFor(t, "CONTINUE on the terminating hook", func() bool { return len(e.asg.Calls()) > 0 })
	if !strings.Contains(e.log.String(), "to litellm on 127.0.0.1:") {
		t.Errorf("the log does not name the proxy to litellm:\n%s", e.log)
	}
}
