// Package node is the node agent's library: it reads the node config that cloud-init writes,
// installs and configures the node's role (Ollama on a pool node, LiteLLM on a gateway node),
// proves the node is ready and
// completes the Auto Scaling launch lifecycle action, CONTINUE or ABANDON. It never imports
// Pulumi: the program renders a Config, the agent reads it.
package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/ollamastore"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// ConfigPath is where cloud-init writes the node config on a node.
const ConfigPath = "/etc/llm-sandbox/node.json"

// Platforms the agent knows.
const (
	// PlatformAWS is an EC2 instance of an Auto Scaling group (the default).
	PlatformAWS = "aws"
	// PlatformLocal is a workstation: no lifecycle action, the master key from a file, the
	// per-person keys from a key store file.
	PlatformLocal = "local"
)

// Local reports whether the config is for the local platform.
func (c *Config) Local() bool { return c.Platform == PlatformLocal }

// Roles the agent knows.
const (
	// RoleOllama serves models with Ollama on a pool node.
	RoleOllama = "ollama"
	// RoleLiteLLM runs the LiteLLM gateway in front of the pools' internal load balancer.
	RoleLiteLLM = "litellm"
)

// Config is the node config file: everything the agent needs to bootstrap a node, and no
// secrets (it travels in user data, which anyone with ec2:DescribeInstanceAttribute can read).
type Config struct {
	// Role is what the node runs: "ollama" or "litellm".
	Role string `json:"role"`
	// Department and Pool name the node in logs.
	Department string `json:"department"`
	Pool       string `json:"pool"`
	// Region is the AWS region, for the Auto Scaling and S3 clients.
	Region string `json:"region"`
	// Platform is where the node runs: PlatformAWS (the default, also when empty) or
	// PlatformLocal, a workstation running a department with `sandboxctl local`: no Auto
	// Scaling group (no lifecycle action to complete or abandon) and no Secrets Manager (the
	// gateway's master key comes from an owner-only file, litellm.masterKeyFile, and the
	// per-person keys from the run's key store, litellm.keyRegistry.file).
	Platform string `json:"platform,omitempty"`
	// Lifecycle names the launch lifecycle hook the agent completes. Required on AWS, absent on
	// the local platform.
	Lifecycle Lifecycle `json:"lifecycle"`
	// Ollama configures the ollama role; required when Role is "ollama", absent otherwise.
	Ollama *OllamaConfig `json:"ollama,omitempty"`
	// LiteLLM configures the litellm role; required when Role is "litellm", absent otherwise.
	LiteLLM *LiteLLMConfig `json:"litellm,omitempty"`

	// RenderUnpinned lets Marshal render an Ollama release whose SHA-256 is not recorded yet
	// (an empty ollama.release.sha256), for the offline plan alone: `sandboxctl plan` shows such
	// a stack with a warning so that `sandboxctl check` can fail it. It is never written to the
	// file, so an agent reading the rendered config refuses the empty hash like any other;
	// Validate, ValidateFor and LoadConfig ignore it.
	RenderUnpinned bool `json:"-"`
}

// Lifecycle names the launch lifecycle hook the agent completes.
type Lifecycle struct {
	// AutoScalingGroup is the group's name. Optional: when empty the agent reads it from the
	// instance's aws:autoscaling:groupName tag through IMDS (the launch template enables
	// instance metadata tags), which lets the user data be rendered before the group exists.
	AutoScalingGroup string `json:"autoScalingGroup,omitempty"`
	// Hook is the launch lifecycle hook's name.
	Hook string `json:"hook"`
	// HeartbeatSeconds is the hook's heartbeat timeout. Optional: when set, the agent finishes
	// within it (less a margin) and ABANDONs itself when the budget runs out, rather than let
	// Auto Scaling time the launch out with no word of why.
	HeartbeatSeconds int `json:"heartbeatSeconds,omitempty"`
	// TerminateHook is the terminating lifecycle hook's name. Optional: when set, the agent's
	// drain watcher (`sandbox-node serve`) completes it with CONTINUE once the node has
	// drained; DrainSeconds is then required.
	TerminateHook string `json:"terminateHook,omitempty"`
	// DrainSeconds bounds a drain: how long a leaving node waits for its requests in flight
	// before it lets Auto Scaling terminate it. It is the target group's deregistration delay
	// (1..3600 s), which the terminating hook's heartbeat exceeds.
	DrainSeconds int `json:"drainSeconds,omitempty"`
}

// Artifact is a file the agent downloads and checks before use.
type Artifact struct {
	// URL is https://..., s3://bucket/key (read with the instance role), or http://... (for
	// loopback mirrors in tests; the checksum still guards it).
	URL string `json:"url"`
	// SHA256 is the lowercase hex SHA-256 of the file. Required: the agent checks every
	// download against the hash the repository pinned, never against one it fetched.
	SHA256 string `json:"sha256"`
	// SumsURL, optional, names the upstream checksum file the hash was copied from (an
	// upstream release's sha256sum.txt), for whoever reads the node config. The agent never
	// fetches it: a hash read from the place the file comes from proves nothing.
	SumsURL string `json:"sumsUrl,omitempty"`
}

// OllamaConfig configures the ollama role.
type OllamaConfig struct {
	// Version is the Ollama release, e.g. "0.35.1" (for logs and the installed-version check).
	Version string `json:"version"`
	// Release is the ollama-linux-amd64.tar.zst of that version.
	Release Artifact `json:"release"`
	// GPU is true on GPU pools: the agent verifies the GPU with nvidia-smi before starting
	// Ollama and requires every model to be resident in GPU memory (size_vram > 0).
	GPU bool `json:"gpu"`
	// Port is the pool's port (11434), the one its target group sends requests to. Without
	// BackendPort Ollama listens there itself.
	Port int `json:"port"`
	// BackendPort, optional, is Ollama's own port on 127.0.0.1 (OllamaBackendPort on a
	// node): the agent's accounting proxy (`sandbox-node serve`) then listens on Port, counts
	// the requests in flight and refuses new ones while the node drains.
	BackendPort int `json:"backendPort,omitempty"`
	// Parallel is OLLAMA_NUM_PARALLEL.
	Parallel int `json:"parallel"`
	// ContextLength is OLLAMA_CONTEXT_LENGTH.
	ContextLength int `json:"contextLength"`
	// MaxQueue is OLLAMA_MAX_QUEUE: requests queued beyond it get 503.
	MaxQueue int `json:"maxQueue"`
	// Models are the models to serve, all preloaded and kept loaded.
	Models []Model `json:"models"`
}

// Model is one model a node serves.
type Model struct {
	// Name is the Ollama tag clients ask for, e.g. "llama3.1:8b".
	Name string `json:"name"`
	// Source, when set, is a GGUF file in the department's mirror; the agent creates Name from
	// it. When neither Source nor Mirror is set the agent pulls Name from the Ollama registry.
	Source *Artifact `json:"source,omitempty"`
	// Mirror, when set, is the model as Ollama stores it, in the department's bucket: the
	// agent copies its manifest and every blob the manifest names into OLLAMA_MODELS, each
	// checked against its digest, and pulls nothing. Not with Source.
	Mirror *ModelMirror `json:"mirror,omitempty"`
	// Embedding marks an embedding model: readiness embeds a string instead of generating a
	// token (Ollama refuses to generate with an embedding model).
	Embedding bool `json:"embedding,omitempty"`
}

// ModelMirror names a model's files in the department's bucket (internal/ollamastore).
type ModelMirror struct {
	// Manifest is the model's manifest, pinned by the SHA-256 of its bytes, which the deploy
	// recorded when it mirrored the model.
	Manifest Artifact `json:"manifest"`
	// Blobs is the URL prefix, ending in "/", under which each blob the manifest names is
	// stored as sha256-<hex> (its digest).
	Blobs string `json:"blobs"`
}

// Validate checks the config as a node runs it and returns every problem at once, each naming
// its JSON key.
func (c *Config) Validate() error { return c.validate(false, false) }

// ValidateFor checks the config as an agent run with opts checks it (LoadConfig, New): as
// Validate, except that a root other than / accepts an Ollama release below the floor.
func (c *Config) ValidateFor(opts Options) error { return c.validate(opts.testRoot(), false) }

// validate is Validate. testRoot is an agent installing under a root other than / (tests):
// there an Ollama release below versions.OllamaFloor is accepted, because the end-to-end tests
// can only build older releases from source; a node never runs with a root. unpinned accepts
// an Ollama release without a SHA-256 (RenderUnpinned).
func (c *Config) validate(testRoot, unpinned bool) error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Role != RoleOllama && c.Role != RoleLiteLLM {
		add("role", "must be %q or %q (got %q)", RoleOllama, RoleLiteLLM, c.Role)
	}
	// The same rules as the stack file's: a node config names a department and pool that
	// config and the components have already accepted.
	if msg := rules.Department(c.Department); msg != "" {
		add("department", "%s", msg)
	}
	poolRule := rules.PoolName
	if c.Role == RoleOllama {
		poolRule = rules.ModelPoolName
	}
	if msg := poolRule(c.Pool); msg != "" {
		add("pool", "%s", msg)
	}
	if c.Region == "" {
		add("region", "is required")
	}
	switch c.Platform {
	case "", PlatformAWS:
		if c.Lifecycle.Hook == "" {
			add("lifecycle.hook", "is required")
		}
	case PlatformLocal:
		if c.Lifecycle != (Lifecycle{}) {
			add("lifecycle", "must be absent on platform %s: there is no Auto Scaling group", PlatformLocal)
		}
	default:
		add("platform", "must be %q or %q, or absent (got %q)", PlatformAWS, PlatformLocal, c.Platform)
	}
	if h := c.Lifecycle.HeartbeatSeconds; h != 0 && (h < 30 || h > 7200) {
		add("lifecycle.heartbeatSeconds", "must be 30..7200 as Auto Scaling allows, or absent (got %d)", h)
	}
	switch d := c.Lifecycle.DrainSeconds; {
	case c.Lifecycle.TerminateHook != "" && (d < 1 || d > 3600):
		add("lifecycle.drainSeconds", "must be 1..3600 (the target group's deregistration delay) with a terminateHook (got %d)", d)
	case c.Lifecycle.TerminateHook == "" && d != 0:
		add("lifecycle.drainSeconds", "is only for a terminateHook, which is absent (got %d)", d)
	}
	if c.Role == RoleOllama {
		if c.Ollama == nil {
			add("ollama", "is required for role ollama")
		} else {
			errs = append(errs, c.Ollama.validate(testRoot, unpinned)...)
		}
	} else if c.Ollama != nil {
		add("ollama", "is only for role ollama (role is %q)", c.Role)
	}
	if c.Role == RoleLiteLLM {
		if c.LiteLLM == nil {
			add("litellm", "is required for role litellm")
		} else {
			errs = append(errs, c.LiteLLM.validate(c.Local())...)
			if r := arnRegion(c.LiteLLM.MasterKeySecretArn); r != "" && c.Region != "" && r != c.Region {
				add("litellm.masterKeySecretArn", "names a secret in region %s, but the node is in %s (region): the gateway reads its master key from its own region", r, c.Region)
			}
		}
	} else if c.LiteLLM != nil {
		add("litellm", "is only for role litellm (role is %q)", c.Role)
	}
	return errors.Join(errs...)
}

// ListenPort is the port Ollama itself listens on: BackendPort behind the accounting proxy,
// Port without it.
func (o *OllamaConfig) ListenPort() int {
	if o.BackendPort != 0 {
		return o.BackendPort
	}
	return o.Port
}

// ListenPort is the port LiteLLM itself listens on: BackendPort behind the accounting proxy,
// Port without it.
func (l *LiteLLMConfig) ListenPort() int {
	if l.BackendPort != 0 {
		return l.BackendPort
	}
	return l.Port
}

// proxied names the accounting proxy a serving node runs (`sandbox-node serve`): the port it
// listens on, the loopback port of the server behind it and that server's name. ok is false
// on a node without one (no backendPort in its role's section).
func (c *Config) proxied() (port, backendPort int, server string, ok bool) {
	switch {
	case c.Ollama != nil && c.Ollama.BackendPort != 0:
		return c.Ollama.Port, c.Ollama.BackendPort, "ollama", true
	case c.LiteLLM != nil && c.LiteLLM.BackendPort != 0:
		return c.LiteLLM.Port, c.LiteLLM.BackendPort, "litellm", true
	}
	return 0, 0, "", false
}

func (o *OllamaConfig) validate(testRoot, unpinned bool) []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("ollama.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, err := versions.AtLeast(o.Version, versions.OllamaFloor); err != nil {
		add("version", "must be an Ollama release X.Y.Z (got %q)", o.Version)
	} else if p := versions.CheckOllamaVersion(o.Version); p != "" && !testRoot {
		add("version", "%s", p)
	}
	switch {
	case o.Release.SHA256 == "" && unpinned:
		if err := o.Release.validateURL(); err != nil {
			add("release", "%v", err)
		}
	case o.Release.SHA256 == "":
		add("release.sha256", "is empty: the agent installs only an Ollama release whose SHA-256 is pinned in the repository (versions/versions.go), "+
			"never one it would read from the release itself; pin it with `sandboxctl pin ollama %s` on a machine with internet access and deploy again", o.Version)
	default:
		if err := o.Release.Validate(); err != nil {
			add("release", "%v", err)
		}
	}
	if o.Port < 1 || o.Port > 65535 {
		add("port", "must be 1-65535 (got %d)", o.Port)
	}
	if b := o.BackendPort; b != 0 && (b < 1 || b > 65535 || b == o.Port) {
		add("backendPort", "must be 1-65535 and differ from port %d, or absent (got %d)", o.Port, b)
	}
	if o.Parallel < 1 {
		add("parallel", "must be at least 1 (got %d)", o.Parallel)
	}
	if o.ContextLength < 1 {
		add("contextLength", "must be at least 1 (got %d)", o.ContextLength)
	}
	if o.MaxQueue < 1 {
		add("maxQueue", "must be at least 1 (got %d)", o.MaxQueue)
	}
	if len(o.Models) == 0 {
		add("models", "must list at least one model")
	}
	for i, m := range o.Models {
		if !rules.IsOllamaTag(m.Name) {
			add(fmt.Sprintf("models[%d].name", i), "must be an Ollama tag such as llama3.1:8b (got %q)", m.Name)
		}
		if m.Source != nil {
			if err := m.Source.Validate(); err != nil {
				add(fmt.Sprintf("models[%d].source", i), "%v", err)
			}
		}
		if mm := m.Mirror; mm != nil {
			key := fmt.Sprintf("models[%d].mirror", i)
			if m.Source != nil {
				add(key, "is set together with source: a model comes from one of them")
			}
			if _, err := ollamastore.ParseName(m.Name); err != nil {
				add(key, "%v", err)
			}
			if err := mm.Manifest.Validate(); err != nil {
				add(key+".manifest", "%v", err)
			}
			if err := (Artifact{URL: mm.Blobs}).validateURL(); err != nil || !strings.HasSuffix(mm.Blobs, "/") {
				add(key+".blobs", "must be a URL prefix ending in / (https://, http:// or s3://bucket/prefix/; got %q)", mm.Blobs)
			}
		}
	}
	return errs
}

// LiteLLMConfig configures the litellm role: the LiteLLM gateway (proxy) on a gateway node,
// in front of the model pools' internal load balancer. It holds no secret: the master key is
// named by its Secrets Manager ARN and fetched at boot. It names no LiteLLM version: the agent
// installs the one its embedded lock pins (versions.LiteLLM), which `sandbox-node version`
// reports.
//
// The timeouts are one chain, outside in: client → front ALB (idle timeout) → LiteLLM
// (keep-alive, request timeout) → internal ALB → Ollama. An ALB's idle timeout bounds silence:
// for a streaming request the wait for the first token, for a non-streaming one the whole
// generation (nothing is sent before it is done).
type LiteLLMConfig struct {
	// Wheelhouse, optional, is a .tar.zst of the wheels the lock names (their files at the
	// archive's top level): for air-gapped departments and for tests. The agent checks its
	// SHA-256, extracts it and installs with --no-index: PyPI is never contacted. When absent,
	// pip downloads the wheels from PyPI; either way every wheel must match a hash of the lock.
	Wheelhouse *Artifact `json:"wheelhouse,omitempty"`
	// Port is the gateway's port (4000), the one its target group sends requests to. Without
	// BackendPort LiteLLM listens there itself.
	Port int `json:"port"`
	// BackendPort, optional, is LiteLLM's own port on 127.0.0.1 (LiteLLMBackendPort on a
	// node): the agent's accounting proxy (`sandbox-node serve`) then listens on Port, counts
	// the requests in flight, publishes the count and refuses new requests while the node
	// drains, as on a pool node.
	BackendPort int `json:"backendPort,omitempty"`
	// Workers is LiteLLM's --num_workers, uvicorn worker processes; set explicitly because the
	// default changed between versions. One per vCPU suits a CPU gateway node.
	Workers int `json:"workers"`
	// MasterKeySecretArn is the ARN of the Secrets Manager secret holding the master key
	// (sk-...), in the node's region. The agent reads it at boot with the instance role into a
	// root-only environment file; the value is never in this config or the user data.
	// Required on AWS, absent on the local platform.
	MasterKeySecretArn string `json:"masterKeySecretArn,omitempty"`
	// MasterKeyFile is, on the local platform only (and required there), the absolute path of
	// a file readable by its owner only that holds the master key, written by `sandboxctl
	// local`. The agent copies it into the same root-only environment file.
	MasterKeyFile string `json:"masterKeyFile,omitempty"`
	// Models are the models the gateway serves, one entry per model name.
	Models []LiteLLMModel `json:"models"`
	// KeyRegistry, when set, makes the department's per-person keys the only keys LiteLLM
	// accepts: the custom-auth module resolves each key through the registry (the table on
	// AWS, the local run's key store file on the local platform) and gives it its team's
	// models and limits; the master key no longer authenticates anything. Required on the
	// local platform.
	KeyRegistry *KeyRegistry `json:"keyRegistry,omitempty"`
	// Usage, when set, makes each LiteLLM worker count the requests, tokens, errors and 429s
	// of each team and key id and publish the counts to CloudWatch (llm_sandbox_usage.py).
	// Needs KeyRegistry. Absent on the local platform.
	Usage *LiteLLMUsage `json:"usage,omitempty"`
	// RateLimitCache, optional, is the cache that holds the rate-limit counters of every
	// worker of every gateway node (litellm_limits.go); absent, each worker counts alone.
	RateLimitCache *RateLimitCache `json:"rateLimitCache,omitempty"`
	// RequestTimeoutSeconds bounds an upstream call (litellm_settings.request_timeout,
	// router_settings.timeout and each model's timeout): the longest generation any pool runs.
	// 1..4000; at least the front ALB's idle timeout, so LiteLLM never gives up on a request
	// the client may still wait for.
	RequestTimeoutSeconds int `json:"requestTimeoutSeconds"`
	// StreamTimeoutSeconds, optional, is each model's stream_timeout: how long a streaming call
	// waits for the upstream's first chunk (Ollama's queue plus the prompt evaluation).
	// 0 (absent) means RequestTimeoutSeconds; otherwise 1..RequestTimeoutSeconds.
	StreamTimeoutSeconds int `json:"streamTimeoutSeconds,omitempty"`
	// KeepAliveSeconds is uvicorn's keep-alive (--keepalive_timeout): how long LiteLLM keeps an
	// idle client connection open. It must exceed the front ALB's idle timeout: the ALB reuses
	// its connections to a target until its own idle timeout, and if LiteLLM closes one first
	// the ALB can send a request down a connection that is closing, which the client receives
	// as a 502 (AWS's rule for every ALB target: keep-alive longer than the idle timeout).
	// uvicorn's default is 5 s. 1..86400.
	KeepAliveSeconds int `json:"keepAliveSeconds"`
	// NumRetries is 0 or 1: how often LiteLLM retries a failed upstream call (num_retries in
	// litellm_settings and router_settings). At most one, because a retry re-runs a whole
	// generation on a GPU pool: under overload, retries multiply the load they react to.
	NumRetries int `json:"numRetries"`
}

// LiteLLMModel is one model the gateway serves.
type LiteLLMModel struct {
	// Name is what clients ask for: the Ollama tag, e.g. "llama3.1:8b".
	Name string `json:"name"`
	// APIBase is the model's pool on the internal load balancer: http://<internal ALB DNS>:<port>
	// (LiteLLM appends /api/chat, or /api/embed for an embedding model).
	APIBase string `json:"apiBase"`
	// Embedding marks an embedding model: LiteLLM serves it on /v1/embeddings only.
	Embedding bool `json:"embedding,omitempty"`
	// Tools is true when the model takes tools (its catalog entry says so); LiteLLM reports it
	// in the model's info.
	Tools bool `json:"tools,omitempty"`
	// ContextLength is the context the pool runs the model with; a chat request whose prompt is
	// longer gets 400 context_length_exceeded from the gateway. 0 turns the check off.
	ContextLength int `json:"contextLength,omitempty"`
}

// NewLiteLLMModel is the gateway's entry for a catalog model served by a pool at apiBase with
// the pool's context length (capped, as Ollama caps it, at what the model was trained for).
// A tag the catalog does not know is served as a chat model without tools or context check.
func NewLiteLLMModel(tag, apiBase string, contextLength int) LiteLLMModel {
	m := LiteLLMModel{Name: tag, APIBase: apiBase}
	if c, ok := catalog.LookupModel(tag); ok {
		m.Embedding, m.Tools, m.ContextLength = c.Embedding, c.Tools, c.ContextLength(contextLength)
	}
	return m
}

// NewModel is a pool node's entry for a catalog model (Source left to the caller).
func NewModel(tag string) Model {
	c, _ := catalog.LookupModel(tag)
	return Model{Name: tag, Embedding: c.Embedding}
}

var (
	secretARN = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):\d{12}:secret:[A-Za-z0-9/_+=.@-]+$`)
)

// arnRegion returns the region of a Secrets Manager ARN, or "".
func arnRegion(arn string) string {
	if m := secretARN.FindStringSubmatch(arn); m != nil {
		return m[1]
	}
	return ""
}

// validate checks every field, naming each bad one by its JSON key under "litellm.".
func (l *LiteLLMConfig) validate(local bool) []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("litellm.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if l.Wheelhouse != nil {
		if err := l.Wheelhouse.Validate(); err != nil {
			add("wheelhouse", "%v", err)
		} else if u, _ := url.Parse(l.Wheelhouse.URL); !strings.HasSuffix(u.Path, ".tar.zst") {
			add("wheelhouse.url", "must name a .tar.zst of wheels (got %q)", l.Wheelhouse.URL)
		}
	}
	if l.Port < 1 || l.Port > 65535 {
		add("port", "must be 1-65535 (got %d)", l.Port)
	}
	if b := l.BackendPort; b != 0 && (b < 1 || b > 65535 || b == l.Port) {
		add("backendPort", "must be 1-65535 and differ from port %d, or absent (got %d)", l.Port, b)
	}
	if l.Workers < 1 || l.Workers > 64 {
		add("workers", "must be 1-64 uvicorn workers, about one per vCPU (got %d)", l.Workers)
	}
	switch {
	case !local && !secretARN.MatchString(l.MasterKeySecretArn):
		add("masterKeySecretArn", "must be a Secrets Manager secret ARN, arn:aws:secretsmanager:<region>:<account>:secret:<name> (got %q)", l.MasterKeySecretArn)
	case !local && l.MasterKeyFile != "":
		add("masterKeyFile", "is only for platform %s (got %q)", PlatformLocal, l.MasterKeyFile)
	case local && l.MasterKeySecretArn != "":
		add("masterKeySecretArn", "must be absent on platform %s, which has no Secrets Manager (got %q)", PlatformLocal, l.MasterKeySecretArn)
	case local && !filepath.IsAbs(l.MasterKeyFile):
		add("masterKeyFile", "must be an absolute path on platform %s (got %q)", PlatformLocal, l.MasterKeyFile)
	}
	errs = append(errs, l.validateRendered()...)
	switch {
	case l.KeyRegistry != nil:
		errs = append(errs, l.KeyRegistry.validate(l.Models, local)...)
	case local:
		add("keyRegistry", "is required on platform %s: a local run's keys are in its key store, never the master key", PlatformLocal)
	}
	if l.Usage != nil {
		errs = append(errs, l.Usage.validate(l.KeyRegistry)...)
	}
	if l.RateLimitCache != nil {
		errs = append(errs, l.RateLimitCache.validate(local)...)
	}
	if l.KeepAliveSeconds < 1 || l.KeepAliveSeconds > 86400 {
		add("keepAliveSeconds", "must be 1-86400, and above the front load balancer's idle timeout (got %d)", l.KeepAliveSeconds)
	}
	return errs
}

// validateRendered checks the fields config.yaml is rendered from.
func (l *LiteLLMConfig) validateRendered() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("litellm.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(l.Models) == 0 {
		add("models", "must list at least one model")
	}
	seen := map[string]int{}
	for i, m := range l.Models {
		if !rules.IsOllamaTag(m.Name) {
			add(fmt.Sprintf("models[%d].name", i), "must be an Ollama tag such as llama3.1:8b (got %q)", m.Name)
		} else if j, dup := seen[m.Name]; dup {
			add(fmt.Sprintf("models[%d].name", i), "repeats models[%d]: %q (one entry per model; its pool's load balancer spreads the load)", j, m.Name)
		} else {
			seen[m.Name] = i
		}
		if problem := checkAPIBase(m.APIBase); problem != "" {
			add(fmt.Sprintf("models[%d].apiBase", i), "%s", problem)
		}
	}
	if l.RequestTimeoutSeconds < 1 || l.RequestTimeoutSeconds > 4000 {
		add("requestTimeoutSeconds", "must be 1-4000: a request must fit in an ALB's idle timeout, at most 4000 s (got %d)", l.RequestTimeoutSeconds)
	}
	if s := l.StreamTimeoutSeconds; s != 0 && (s < 1 || s > l.RequestTimeoutSeconds) {
		add("streamTimeoutSeconds", "must be 1..requestTimeoutSeconds (%d), or absent to mean requestTimeoutSeconds (got %d)", l.RequestTimeoutSeconds, s)
	}
	if l.NumRetries != 0 && l.NumRetries != 1 {
		add("numRetries", "must be 0 or 1: a retry re-runs a whole generation on the pool (got %d)", l.NumRetries)
	}
	return errs
}

// checkAPIBase says what is wrong with a model's api_base, or "".
func checkAPIBase(raw string) string {
	u, err := url.Parse(raw)
	want := "must be http://<internal load balancer DNS>:<port>"
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "":
		return fmt.Sprintf("%s (got %q)", want, raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return fmt.Sprintf("%s, with no credentials, path, query or fragment (got %q)", want, raw)
	case u.Port() != "":
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			return fmt.Sprintf("%s: port 1-65535 (got %q)", want, raw)
		}
	}
	return ""
}

// streamTimeout is the effective stream_timeout.
func (l *LiteLLMConfig) streamTimeout() int {
	if l.StreamTimeoutSeconds > 0 {
		return l.StreamTimeoutSeconds
	}
	return l.RequestTimeoutSeconds
}

// Validate checks that the artifact has a usable URL and a SHA-256.
func (a Artifact) Validate() error {
	if err := a.validateURL(); err != nil {
		return err
	}
	if !rules.IsSHA256Hex(a.SHA256) {
		return fmt.Errorf("sha256 must be 64 lowercase hex digits (got %q)", a.SHA256)
	}
	return nil
}

// validateURL checks the URL alone.
func (a Artifact) validateURL() error {
	u, err := url.Parse(a.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "s3") {
		return fmt.Errorf("url must be https://, http:// or s3://bucket/key (got %q)", a.URL)
	}
	return nil
}

// LoadConfig reads and validates a node config file for an agent run with opts (whose Root
// decides, as in New, whether an Ollama release below the floor is accepted).
func LoadConfig(path string, opts Options) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read node config: %w", err)
	}
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("node config %s: %w", path, err)
	}
	if err := c.ValidateFor(opts); err != nil {
		return nil, fmt.Errorf("node config %s: %w", path, err)
	}
	return &c, nil
}

// Marshal renders the config as the agent reads it (indented JSON, stable key order).
func (c *Config) Marshal() ([]byte, error) {
	if err := c.validate(false, c.RenderUnpinned); err != nil {
		return nil, err
	}
	return json.MarshalIndent(c, "", "  ")
}

// LifecycleHint reads, leniently, what the agent needs to ABANDON the launch from a node
// config that failed to load or validate: the region and the lifecycle hook (other keys may be
// unknown or invalid). ok is false when no hook name can be read, and then nothing can be
// abandoned; the hook's heartbeat timeout and default result (ABANDON) take over.
func LifecycleHint(path string) (region string, lc Lifecycle, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", Lifecycle{}, false
	}
	var hint struct {
		Region    any `json:"region"`
		Lifecycle struct {
			AutoScalingGroup any `json:"autoScalingGroup"`
			Hook             any `json:"hook"`
		} `json:"lifecycle"`
	}
	if err := json.Unmarshal(data, &hint); err != nil {
		return "", Lifecycle{}, false
	}
	region, _ = hint.Region.(string)
	hook, _ := hint.Lifecycle.Hook.(string)
	group, _ := hint.Lifecycle.AutoScalingGroup.(string)
	if hook == "" {
		return "", Lifecycle{}, false
	}
	return region, Lifecycle{AutoScalingGroup: group, Hook: hook}, true
}
