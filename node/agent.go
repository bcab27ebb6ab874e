package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Step names. Role ollama runs gpu, install, user, configure, start, models, preload, resident,
// lifecycle; role litellm runs install, user, secret, configure, start, lifecycle. On the local
// platform there is no lifecycle step.
const (
	StepGPU       = "gpu"
	StepInstall   = "install"
	StepUser      = "user"
	StepSecret    = "secret"
	StepConfigure = "configure"
	StepStart     = "start"
	StepModels    = "models"
	StepPreload   = "preload"
	StepResident  = "resident"
	StepLifecycle = "lifecycle"
)

// DefaultTimeouts is each step's time limit on a node, for either role. Models is the long
// one: pulling a 5 GB model through a NAT gateway takes minutes; install covers both an Ollama
// release and LiteLLM's ~170 MB of wheels. The launch lifecycle hook's heartbeat timeout must
// exceed the time a boot really takes, or Auto Scaling applies the hook's default result
// (ABANDON) before the agent finishes.
func DefaultTimeouts() map[string]time.Duration {
	return map[string]time.Duration{
		StepGPU:       2 * time.Minute,
		StepInstall:   10 * time.Minute,
		StepUser:      time.Minute,
		StepSecret:    2 * time.Minute,
		StepConfigure: time.Minute,
		StepStart:     3 * time.Minute,
		StepModels:    60 * time.Minute,
		StepPreload:   20 * time.Minute,
		StepResident:  time.Minute,
		StepServe:     2 * time.Minute,
		StepLifecycle: 5 * time.Minute,
	}
}

// Options are the agent's seams and knobs. The zero value is a node: the real file system
// root, systemd, os/exec, net/http, and S3, Secrets Manager and Auto Scaling through
// aws-sdk-go-v2.
type Options struct {
	// Root installs everything under this directory instead of / (tests). In a root other
	// than /, no system user is created, no package is installed with apt-get, and a server
	// started without systemd listens on 127.0.0.1 only (Ollama with OLLAMA_MODELS and HOME
	// under the root).
	Root string
	// NoSystemd starts the role's server (Ollama or LiteLLM) as a detached process (own
	// session and process group, output in <root>/var/log/llm-sandbox/<name>.log, pid in
	// <root>/run/llm-sandbox/<name>.pid) and leaves it running; the unit and its files are
	// still written.
	NoSystemd bool
	// Runner runs external commands. Default ExecRunner.
	Runner Runner
	// HTTPClient, when set, serves downloads and the local server's API. By default
	// downloads honour HTTP(S)_PROXY and the local API never uses a proxy.
	HTTPClient *http.Client
	// Objects reads s3:// artifacts. Default: an S3 client with the instance role, built on
	// first use.
	Objects ObjectGetter
	// Secrets reads the LiteLLM master key. Default: a Secrets Manager client with the
	// instance role, built on first use; FileSecrets on the local platform.
	Secrets SecretGetter
	// Lifecycle completes the launch lifecycle action. Default: NewAWSCompleter; ignored on
	// the local platform, which has none.
	Lifecycle LifecycleCompleter
	// Log receives the step log. Default: stderr only.
	Log *Logger
	// Retry bounds the retries of transient failures. Default DefaultRetry().
	Retry *RetryPolicy
	// Timeouts overrides DefaultTimeouts per step name.
	Timeouts map[string]time.Duration
	// PollInterval is how often the agent asks whether the server answers yet. Default 1 s.
	PollInterval time.Duration
	// BootBudget, when set, replaces the boot budget derived from the lifecycle heartbeat
	// (tests use a short one).
	BootBudget time.Duration
	// LiteLLMLock, when set, replaces the hash-locked requirements the litellm role installs
	// (default versions.LiteLLMRequirements, embedded): tests whose wheelhouse holds stand-in
	// wheels give a lock with the stand-in pip wheel's hash.
	LiteLLMLock []byte
}

// Agent bootstraps one node from its config. It holds what every role shares (the root, the
// runner, the HTTP clients, the lifecycle completer, the retry policy, the log) and the role
// it picked once, in New; build one per run.
type Agent struct {
	cfg       *Config
	role      Role
	root      string
	run       Runner
	downloads *http.Client
	// local talks to the server on this node: no proxy, no header timeout.
	local     *http.Client
	objects   ObjectGetter
	lifecycle LifecycleCompleter
	log       *Logger
	policy    RetryPolicy
	timeouts  map[string]time.Duration
	poll      time.Duration
	// bootBudget overrides the budget derived from the lifecycle heartbeat.
	bootBudget time.Duration
	// noSystemd: servers run as detached processes, and serve is left to the caller.
	noSystemd bool
}

// Role is what a node runs, as nodeadm's daemons are: the ollama role on a pool node, the
// litellm role on a gateway node. A role installs, configures and starts its server and proves
// it ready; the agent runs its steps, then completes the lifecycle action, which every role
// shares.
type Role interface {
	// Name is the role's name in the node config: RoleOllama or RoleLiteLLM.
	Name() string
	// Summary describes what the role sets up, for the bootstrap's first log line.
	Summary() string
	// Steps are the role's steps in order, up to and including its readiness proof, without
	// their time limits.
	Steps() []Step
}

// Step is one stage of a bootstrap, with its time limit.
type Step struct {
	Name    string
	Timeout time.Duration
	run     func(context.Context, *runState) (string, error)
}

// runState carries what one step learns for a later one within a run.
type runState struct {
	// changed is true when a step rewrote a file the server reads at start (its unit, its
	// environment, its config, LiteLLM's master key): start then restarts it.
	changed bool
}

// StepError is a failed bootstrap: the step and why.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return "step " + e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// New builds an agent for a validated config.
func New(ctx context.Context, cfg *Config, opts Options) (*Agent, error) {
	if cfg == nil {
		return nil, errors.New("node agent: no config")
	}
	if err := cfg.ValidateFor(opts); err != nil {
		return nil, fmt.Errorf("node agent: %w", err)
	}
	root := opts.Root
	if root == "" {
		root = "/"
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("node agent: root %q: %w", opts.Root, err)
	}
	a := &Agent{
		cfg:       cfg,
		root:      root,
		run:       opts.Runner,
		objects:   opts.Objects,
		lifecycle: opts.Lifecycle,
		log:       opts.Log,
		policy:    DefaultRetry(),
		timeouts:  DefaultTimeouts(),
		poll:      opts.PollInterval,

		bootBudget: opts.BootBudget,
		noSystemd:  opts.NoSystemd,
	}
	if a.run == nil {
		a.run = ExecRunner{}
	}
	if a.log == nil {
		a.log = NewLogger(os.Stderr, nil)
	}
	if cfg.Ollama != nil {
		if p := versions.CheckOllamaVersion(cfg.Ollama.Version); p != "" {
			a.log.Printf("warning: ollama.version %s; accepted only because the agent installs under %s (tests), never on a node", p, root)
		}
	}
	if opts.Retry != nil {
		a.policy = *opts.Retry
	}
	for name, d := range opts.Timeouts {
		a.timeouts[name] = d
	}
	if a.poll <= 0 {
		a.poll = time.Second
	}
	a.local = opts.HTTPClient
	a.downloads = opts.HTTPClient
	if a.local == nil {
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		a.downloads = DownloadClient()
		// No proxy and no header timeout: a model load answers only when it is done, and the
		// step's context bounds it.
		a.local = &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	}
	if cfg.Local() {
		// No Auto Scaling group: nothing to complete or abandon, and no AWS configuration.
		a.lifecycle = nil
		if opts.Secrets == nil {
			opts.Secrets = FileSecrets{}
		}
	} else if a.lifecycle == nil {
		lc, err := NewAWSCompleter(ctx, cfg.Region, cfg.Lifecycle)
		if err != nil {
			return nil, fmt.Errorf("node agent: %w", err)
		}
		a.lifecycle = lc
	}
	switch cfg.Role {
	case RoleOllama:
		a.role = newOllamaRole(a, cfg.Ollama, opts.NoSystemd)
	case RoleLiteLLM:
		a.role = newLiteLLMRole(a, cfg.LiteLLM, opts)
	}
	return a, nil
}

// path maps a node path into the agent's root.
func (a *Agent) path(p string) string {
	return filepath.Join(a.root, p)
}

// rootMode reports whether the agent installs into a directory other than /.
func (a *Agent) rootMode() bool { return a.root != "/" }

// testRoot reports whether the options install under a root other than / (tests).
func (o Options) testRoot() bool { return o.Root != "" && filepath.Clean(o.Root) != "/" }

// searchPath is the PATH a detached server gets: the agent's, or the usual one.
func searchPath() string {
	if path := os.Getenv("PATH"); path != "" {
		return path
	}
	return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

// Steps lists the bootstrap's steps for the config's role in order, then serve (when the config
// names a terminating hook), then lifecycle (except on the local platform, which has none),
// with their time limits.
func (a *Agent) Steps() []Step {
	steps := a.role.Steps()
	if a.cfg.Lifecycle.TerminateHook != "" {
		// The proxy and drain watcher run before the node takes traffic: the target
		// group's health check goes through the proxy.
		steps = append(steps, Step{Name: StepServe, run: a.stepServe})
	}
	if a.lifecycle != nil {
		steps = append(steps, Step{Name: StepLifecycle, run: a.stepLifecycle})
	}
	for i := range steps {
		steps[i].Timeout = a.timeouts[steps[i].Name]
	}
	return steps
}

// Bootstrap runs every step in order. On the first failure it logs the step and the reason,
// sends ABANDON (best effort) and returns a *StepError; the node must never serve half
// configured. It returns nil when the node is ready and CONTINUE was sent, or when there was
// no lifecycle action to complete (a reboot). Running it again on a ready node is safe.
func (a *Agent) Bootstrap(ctx context.Context) error {
	a.log.Printf("bootstrap: role %s, department %s, pool %s, %s, root %s",
		a.role.Name(), a.cfg.Department, a.cfg.Pool, a.role.Summary(), a.root)
	st := &runState{}
	bootCtx := ctx
	budget := bootBudget(a.cfg.Lifecycle.HeartbeatSeconds)
	if a.bootBudget > 0 {
		budget = a.bootBudget
	}
	if budget > 0 {
		var cancel context.CancelFunc
		bootCtx, cancel = context.WithTimeout(ctx, budget)
		defer cancel()
		a.log.Printf("bootstrap: boot budget %s (the lifecycle heartbeat less a margin)", budget)
	}
	for _, s := range a.Steps() {
		err := a.runStep(bootCtx, s, st)
		if err != nil && ctx.Err() == nil && errors.Is(bootCtx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("the boot budget ran out before the node was ready (raise the hook's heartbeat or check why this step is slow): %w", err)
		}
		if err != nil {
			a.log.Printf("step %s: failed: %v", s.Name, err)
			if a.lifecycle != nil {
				_ = Abandon(ctx, a.lifecycle, a.log, a.policy, a.timeouts[StepLifecycle], "step "+s.Name+" failed")
			}
			return &StepError{Step: s.Name, Err: err}
		}
	}
	a.log.Printf("bootstrap: node ready")
	return nil
}

// bootBudget is how long a boot may take within a lifecycle heartbeat of the given seconds: the
// heartbeat less a tenth (at most two minutes), kept back to send ABANDON before Auto Scaling
// gives up on the node. 0 means no heartbeat was configured.
func bootBudget(heartbeatSeconds int) time.Duration {
	if heartbeatSeconds <= 0 {
		return 0
	}
	heartbeat := time.Duration(heartbeatSeconds) * time.Second
	return heartbeat - min(heartbeat/10, 2*time.Minute)
}

func (a *Agent) runStep(ctx context.Context, s Step, st *runState) error {
	a.log.Printf("step %s: start", s.Name)
	sctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	note, err := s.run(sctx, st)
	if err != nil {
		if errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("timed out after %s: %w", s.Timeout, err)
		}
		return err
	}
	if note != "" {
		a.log.Printf("step %s: ok: %s", s.Name, note)
	} else {
		a.log.Printf("step %s: ok", s.Name)
	}
	return nil
}

// stepLifecycle sends CONTINUE. No pending action (a reboot, a re-run) is success.
func (a *Agent) stepLifecycle(ctx context.Context, _ *runState) (string, error) {
	err := a.retry(ctx, StepLifecycle, "CompleteLifecycleAction CONTINUE", func(ctx context.Context) error {
		err := a.lifecycle.Complete(ctx, ResultContinue)
		if errors.Is(err, ErrNoLifecycleAction) {
			return permanent(err)
		}
		return err
	})
	if errors.Is(err, ErrNoLifecycleAction) {
		a.log.Printf("step lifecycle: %v", err)
		return "no active lifecycle action (a reboot or a re-run, not a launch): nothing to complete", nil
	}
	if err != nil {
		return "", err
	}
	return "CONTINUE sent: the instance goes InService", nil
}

// waitHealthy polls probe (what describes it, e.g. "GET /api/version") until it succeeds, the
// step's context ends, or a server that svc started itself exits.
func (a *Agent) waitHealthy(ctx context.Context, svc service, name, what string, probe func(context.Context) (string, error)) (string, error) {
	var last error
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := probe(rctx)
		cancel()
		if err == nil {
			return v, nil
		}
		// A request cut short by the deadline says nothing new; keep the answer before it.
		if ctx.Err() == nil || last == nil {
			last = err
		}
		timer := time.NewTimer(a.poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", fmt.Errorf("%s never answered %s with 200 (last: %v; see %s): %w", name, what, last, svc.logHint(), ctx.Err())
		case err := <-svc.exited():
			timer.Stop()
			return "", permanent(fmt.Errorf("%s exited before it answered: %v (see %s)", name, err, svc.logHint()))
		case <-timer.C:
		}
	}
}

// ensureSystemUser creates a system user and its group, with home as its home directory (not
// created) and no login shell, unless getent finds the user. It returns a note for the log.
func (a *Agent) ensureSystemUser(ctx context.Context, user, home string) (string, error) {
	if _, err := a.run.Run(ctx, "getent", "passwd", user); err == nil {
		return "user " + user + " exists", nil
	}
	if _, err := a.run.Run(ctx, "useradd", "--system", "--user-group", "--home-dir", home,
		"--shell", "/usr/sbin/nologin", user); err != nil {
		return "", fmt.Errorf("create user %s: %w", user, err)
	}
	return "created system user " + user, nil
}

// Abandon sends ABANDON for the launch lifecycle action, retrying transient failures within
// timeout even when ctx was cancelled (a stopping agent still owes Auto Scaling an answer).
// It logs the outcome and returns the error, which callers may only log: it is best effort.
func Abandon(ctx context.Context, lc LifecycleCompleter, log *Logger, policy RetryPolicy, timeout time.Duration, reason string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	log.Printf("lifecycle: sending ABANDON: %s", reason)
	err := policy.do(ctx, func(attempt, attempts int, err error, wait time.Duration) {
		log.Printf("lifecycle: ABANDON attempt %d of %d failed: %v; retrying in %s", attempt, attempts, err, wait)
	}, func(ctx context.Context) error {
		err := lc.Complete(ctx, ResultAbandon)
		if errors.Is(err, ErrNoLifecycleAction) {
			return permanent(err)
		}
		return err
	})
	switch {
	case err == nil:
		log.Printf("lifecycle: ABANDON sent: Auto Scaling terminates this instance and launches another")
	case errors.Is(err, ErrNoLifecycleAction):
		log.Printf("lifecycle: no active lifecycle action to abandon (a reboot or a re-run): the instance keeps its state")
	default:
		log.Printf("lifecycle: ABANDON failed: %v (the hook's default result applies when its heartbeat times out)", err)
	}
	return err
}

// retry runs fn under the agent's retry policy, logging each retried failure.
func (a *Agent) retry(ctx context.Context, step, what string, fn func(context.Context) error) error {
	return a.policy.do(ctx, func(attempt, attempts int, err error, wait time.Duration) {
		a.log.Printf("step %s: %s: attempt %d of %d failed: %v; retrying in %s", step, what, attempt, attempts, err, wait)
	}, fn)
}

// nonEmptyLines splits command output into trimmed, non-empty lines.
func nonEmptyLines(out []byte) []string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
