package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/llm-sandbox/llm-sandbox/internal/inflight"
	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
)

// The instance metadata the drain watcher polls.
const (
	// TargetLifecycleStatePath is the Auto Scaling target lifecycle state: "InService" while
	// serving, "Terminated" once Auto Scaling terminates the instance, and "Warmed:Stopped"
	// (or "Warmed:Running") both while an instance launches into a warm pool and when a pool
	// that reuses instances on scale-in sends a serving one back to it, from the moment Auto
	// Scaling prepares the transition (Amazon EC2 Auto Scaling User Guide, "Retrieve the target
	// lifecycle state through instance metadata",
	// https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html).
	TargetLifecycleStatePath = "autoscaling/target-lifecycle-state"
	// SpotInstanceActionPath is the spot interruption notice: 404 until EC2 decides to
	// interrupt the instance, then {"action": "terminate"|"stop"|"hibernate", "time":
	// "<RFC 3339>"}, two minutes ahead (Amazon EC2 User Guide, "Spot Instance interruption
	// notices", https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html,
	// which recommends checking every 5 seconds).
	SpotInstanceActionPath = "spot/instance-action"
	// StateTerminated is the target lifecycle state of an instance Auto Scaling terminates.
	StateTerminated = "Terminated"
	// StateInService is the target lifecycle state of a serving instance.
	StateInService = "InService"
	// warmedPrefix starts every warm-pool state. An instance that returns to the warm pool
	// on scale-in pauses on the terminating hook in Warmed:Pending:Wait, so it drains and
	// completes that hook as a terminated one does ("Use lifecycle hooks with a warm pool",
	// https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html).
	warmedPrefix = "Warmed:"
	// DefaultDrainPoll is how often the watcher polls both: AWS's recommended 5 s.
	DefaultDrainPoll = 5 * time.Second
	// spotMargin is kept back from a spot notice's time: the drain ends this much before EC2
	// takes the instance.
	spotMargin = 10 * time.Second
)

// ServeOptions are the seams of Serve. The zero value is a node.
type ServeOptions struct {
	// Root, when not / (tests), makes the proxy listen on 127.0.0.1 only.
	Root string
	// Log receives the drain log. Default: stderr.
	Log *Logger
	// Counter counts the requests in flight; pass one to read it from elsewhere (a metrics
	// publisher). Default: a new one.
	Counter *inflight.Counter
	// Lifecycle completes the terminating lifecycle action. Default: NewAWSCompleter for
	// lifecycle.terminateHook.
	Lifecycle LifecycleCompleter
	// Poll is how often the watcher reads the instance metadata. Default DefaultDrainPoll.
	Poll time.Duration
	// Listening, when set, receives the proxy's address once it listens (tests).
	Listening func(addr string)
	// MetricsInterval is how often a pool node publishes its in-flight requests (node/metrics.go).
	// Default llmmetrics.IntervalSeconds; tests shorten it.
	MetricsInterval time.Duration
	// Metrics receives the samples. Default: CloudWatch in the node's region.
	Metrics llmmetrics.Sink
	// Run runs nvidia-smi for a GPU pool's figures (node/metrics_gpu.go). Default ExecRunner.
	Run Runner
	// now is the clock (tests of the spot deadline); default time.Now.
	now func() time.Time
}

// metadataGetter reads instance metadata; the IMDS client is one.
type metadataGetter interface {
	GetMetadata(ctx context.Context, in *imds.GetMetadataInput, opts ...func(*imds.Options)) (*imds.GetMetadataOutput, error)
}

// drainSignal is what the watcher read on one poll.
type drainSignal struct {
	// state is the target lifecycle state ("" before Auto Scaling has set one).
	state string
	// spot is the spot notice's action ("terminate", "stop", "hibernate"), "" without one;
	// spotTime is when EC2 acts.
	spot     string
	spotTime time.Time
}

// readMetadata reads one metadata path; found is false on 404 (no such item yet).
func readMetadata(ctx context.Context, meta metadataGetter, path string) (value string, found bool, err error) {
	out, err := meta.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
			return "", false, nil
		}
		return "", false, fmt.Errorf("read IMDS %s: %w", path, err)
	}
	defer out.Content.Close()
	data, err := io.ReadAll(io.LimitReader(out.Content, 64<<10))
	if err != nil {
		return "", false, fmt.Errorf("read IMDS %s: %w", path, err)
	}
	return strings.TrimSpace(string(data)), true, nil
}

// poll reads the target lifecycle state and the spot notice.
func poll(ctx context.Context, meta metadataGetter) (drainSignal, error) {
	var sig drainSignal
	state, _, err := readMetadata(ctx, meta, TargetLifecycleStatePath)
	if err != nil {
		return sig, err
	}
	sig.state = state
	notice, found, err := readMetadata(ctx, meta, SpotInstanceActionPath)
	if err != nil || !found {
		return sig, err
	}
	var n struct {
		Action string `json:"action"`
		Time   string `json:"time"`
	}
	if err := json.Unmarshal([]byte(notice), &n); err != nil || n.Action == "" {
		return sig, fmt.Errorf("read IMDS %s: not a spot notice: %q", SpotInstanceActionPath, notice)
	}
	sig.spot = n.Action
	if t, err := time.Parse(time.RFC3339, n.Time); err == nil {
		sig.spotTime = t
	}
	return sig, nil
}

// Serve runs a serving node until ctx ends: on a node whose config names a backendPort, the
// accounting proxy in front of its server (on ollama.port in front of Ollama on a pool node,
// on litellm.port in front of LiteLLM on a gateway node) and the in-flight publisher; on every
// node with a terminateHook,
// the drain watcher. The watcher polls the instance metadata every opts.Poll. When Auto
// Scaling takes the instance out of service (target lifecycle state Terminated, or a warm-pool
// state once it has been InService: a pool that reuses instances on scale-in sends it back to
// the warm pool) or EC2 gives a spot
// notice, the node drains: the proxy refuses every new request (503, Connection: close; the
// load balancer's health check, which goes through the proxy, fails too, so the target leaves
// service even if nothing deregistered it), and the watcher waits for the requests in flight
// to finish, at most lifecycle.drainSeconds (for a spot notice, at most until 10 s before
// EC2's time). Then it completes the terminating lifecycle action with CONTINUE. A spot notice
// alone has no lifecycle action: the node stays drained, and if Auto Scaling then takes it out
// of service, the action is completed at once. An instance that launches into a warm pool is
// never drained: it has not served (its target state is a warm-pool state from the start).
func Serve(ctx context.Context, cfg *Config, opts ServeOptions) error {
	if cfg.Local() || cfg.Lifecycle.TerminateHook == "" {
		return errors.New("serve: the node config names no lifecycle.terminateHook: nothing to watch (only nodes of an Auto Scaling group drain)")
	}
	log := opts.Log
	if log == nil {
		log = NewLogger(os.Stderr, nil)
	}
	counter := opts.Counter
	if counter == nil {
		counter = &inflight.Counter{}
	}
	every := opts.Poll
	if every <= 0 {
		every = DefaultDrainPoll
	}
	now := opts.now
	if now == nil {
		now = time.Now
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("serve: load AWS config: %w", err)
	}
	meta := imds.NewFromConfig(awsCfg)
	completer := opts.Lifecycle
	if completer == nil {
		c, err := NewAWSCompleter(ctx, cfg.Region, Lifecycle{AutoScalingGroup: cfg.Lifecycle.AutoScalingGroup, Hook: cfg.Lifecycle.TerminateHook})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		completer = c
	}

	var srv *http.Server
	srvErr := make(chan error, 1)
	if port, backendPort, server, ok := cfg.proxied(); ok {
		host := ""
		if opts.Root != "" && opts.Root != "/" {
			host = "127.0.0.1"
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("serve: listen on port %d: %w", port, err)
		}
		backend := net.JoinHostPort("127.0.0.1", strconv.Itoa(backendPort))
		srv = &http.Server{Handler: NewProxy(backend, counter), ReadHeaderTimeout: 30 * time.Second}
		if l := cfg.LiteLLM; l != nil {
			// The front load balancer reuses its connections to a target until its own idle
			// timeout: the proxy keeps them open as long as LiteLLM did itself (its keep-alive,
			// above that timeout), or the balancer could send a request down a connection
			// that is closing and answer the client 502.
			srv.IdleTimeout = time.Duration(l.KeepAliveSeconds) * time.Second
		}
		go func() { srvErr <- srv.Serve(ln) }()
		log.Printf("serve: proxy on %s to %s on %s, counting requests in flight", ln.Addr(), server, backend)
		wait, err := publishInFlight(ctx, cfg, opts, awsCfg, meta, counter, log)
		if err != nil {
			_ = srv.Close()
			return err
		}
		defer wait()
		if opts.Listening != nil {
			opts.Listening(ln.Addr().String())
		}
		defer func() {
			// Stopping the unit (a reboot, an agent upgrade) lets answers in progress
			// finish for a moment; a drained node has none left.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	log.Printf("serve: watching the target lifecycle state and the spot notice every %s (drain bound %ds, hook %s)",
		every, cfg.Lifecycle.DrainSeconds, cfg.Lifecycle.TerminateHook)

	w := &drainer{cfg: cfg, log: log, counter: counter, srv: srv, completer: completer, now: now}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	var lastErr string
	for {
		pctx, cancel := context.WithTimeout(ctx, every)
		sig, err := poll(pctx, meta)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			// Log a failing read once per distinct error, not every 5 s.
			if err.Error() != lastErr {
				log.Printf("serve: %v", err)
				lastErr = err.Error()
			}
		case err == nil:
			lastErr = ""
			if done := w.step(ctx, sig); done {
				log.Printf("serve: drained and the terminating lifecycle action completed: the instance leaves service")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-srvErr:
			return fmt.Errorf("serve: proxy: %w", err)
		case <-ticker.C:
		}
	}
}

// drainer is the watcher's state between polls.
type drainer struct {
	cfg       *Config
	log       *Logger
	counter   *inflight.Counter
	srv       *http.Server
	completer LifecycleCompleter
	now       func() time.Time
	// served: the target state has been InService. drained: the drain ran (it runs once).
	// completed: the lifecycle action is done, or cannot be (a permanent error).
	served, drained, completed bool
}

// leaving reports whether Auto Scaling is taking the instance out of service: terminating it,
// or, once it has served, sending it back to the warm pool.
func (d *drainer) leaving(sig drainSignal) bool {
	return sig.state == StateTerminated || (d.served && strings.HasPrefix(sig.state, warmedPrefix))
}

// step acts on one poll's signal; it reports true when it completed the lifecycle action.
func (d *drainer) step(ctx context.Context, sig drainSignal) bool {
	if sig.state == StateInService {
		d.served = true
	}
	leaving := d.leaving(sig)
	if !d.drained && (leaving || sig.spot != "") {
		d.drain(ctx, sig)
		d.drained = true
	}
	if !d.drained || !leaving || d.completed {
		return false
	}
	err := d.completer.Complete(ctx, ResultContinue)
	switch {
	case err == nil:
		d.completed = true
		return true
	case errors.Is(err, ErrNoLifecycleAction):
		// Auto Scaling changes the target state when it starts the termination, and holds
		// the instance on the hook only once its deregistration delay has passed: try again
		// at the next poll.
		d.log.Printf("drain: not yet held on the terminating hook (%v); trying again", err)
	case isPermanent(err):
		d.log.Printf("drain: CONTINUE failed: %v; the hook's heartbeat and default result (CONTINUE) take over", err)
		d.completed = true
	default:
		d.log.Printf("drain: CONTINUE failed: %v; trying again", err)
	}
	return false
}

// drain refuses new requests and waits for those in flight, within the drain bound.
func (d *drainer) drain(ctx context.Context, sig drainSignal) {
	bound := time.Duration(d.cfg.Lifecycle.DrainSeconds) * time.Second
	reason := fmt.Sprintf("Auto Scaling takes this instance out of service (target lifecycle state %s)", sig.state)
	if sig.spot != "" {
		reason = fmt.Sprintf("spot interruption notice: EC2 will %s this instance at %s", sig.spot, sig.spotTime.Format(time.RFC3339))
		if !sig.spotTime.IsZero() {
			bound = min(bound, max(sig.spotTime.Sub(d.now())-spotMargin, 0))
		}
	}
	d.counter.Close()
	if d.srv != nil {
		// Idle keep-alive connections close now; busy ones after their response.
		d.srv.SetKeepAlivesEnabled(false)
	}
	before := d.counter.Snapshot()
	d.log.Printf("drain: %s: refusing new requests; waiting up to %s for %d in flight", reason, bound, before.InFlight)
	start := d.now()
	wctx, cancel := context.WithTimeout(ctx, bound)
	err := d.counter.WaitIdle(wctx)
	cancel()
	after := d.counter.Snapshot()
	if err != nil {
		d.log.Printf("drain: %d request(s) still in flight after %s: going anyway", after.InFlight, d.now().Sub(start).Round(time.Millisecond))
		return
	}
	d.log.Printf("drain: nothing in flight after %s (%d refused meanwhile)", d.now().Sub(start).Round(time.Millisecond), after.Refused-before.Refused)
}
