package localrun

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/agentbuild"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Names the tests' deployments use.
const (
	// ModelName is the tag the tests' tiny model is created as: the name a department's
	// clients use.
	ModelName = "llama3.1:8b"
	// Department names the tests' department in node configs.
	Department = "chemistry"
	// Region is the region local node configs name (the agent needs one; a local node calls no
	// AWS API).
	Region = "us-east-1"
)

// BootstrapLimit bounds one `sandbox-node bootstrap` of a node whose models come from the
// mirror: installing LiteLLM from the wheelhouse into a fresh venv takes a minute or two on a
// 2-core machine.
const BootstrapLimit = 8 * time.Minute

// PullLimit bounds the bootstrap of a pool node that pulls its models from the registry.
const PullLimit = 90 * time.Minute

// Deployment is one department's artifacts on loopback: the agent binary, and the Ollama
// release, the tiny model and the LiteLLM wheelhouse in a mirror standing in for the
// department's artifacts bucket. Its nodes bootstrap from them.
type Deployment struct {
	H     Helpers
	Work  string
	Agent string

	Mirror *Mirror
	// Ctx, when set, stops the bootstrap of the deployment's nodes when it is done.
	Ctx context.Context

	// The artifacts the mirror serves, with their SHA-256. Wheelhouse is empty unless
	// H.LiteLLMWheels is set.
	Release, Wheelhouse node.Artifact
	// Tiny holds, by model name, the tiny model served under that name (each of its own
	// seed: Ollama runs models of identical bytes as one); empty unless H.TinyModel is set.
	Tiny map[string]node.Artifact
}

// AddTinyModel writes a tiny model of the next seed for name (once) and serves it.
func (d *Deployment) AddTinyModel(t T, name string) {
	t.Helper()
	if _, ok := d.Tiny[name]; ok {
		return
	}
	seed := len(d.Tiny) + 1
	model, sum := TinyModel(t, d.H, d.Work, seed)
	d.Tiny[name] = node.Artifact{URL: d.Mirror.Add("/models/tiny-"+strconv.Itoa(seed)+".gguf", model), SHA256: sum}
}

// NewDeployment builds the agent, packages the Ollama binary as its release (or serves the
// release archive h has), writes the tiny model (when h
// has the writer), packages the LiteLLM wheelhouse (when h has wheels) and serves them from a
// loopback mirror. Its files go to work (a new temporary directory when empty).
func NewDeployment(t T, h Helpers, work string) *Deployment {
	t.Helper()
	if work == "" {
		work = t.TempDir()
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	d := &Deployment{H: h, Work: work}
	// The binary a deployment uploads: agentbuild's reproducible static linux/amd64 build.
	agent, err := agentbuild.Build(context.Background(), h.Repo)
	if err != nil {
		t.Fatalf("%v", err)
	}
	d.Agent = agent.Path
	d.Mirror = NewMirror(t, nil)

	releasePath := "/ollama/v" + h.OllamaVersion + "/" + versions.OllamaAsset
	switch {
	case h.Ollama != "":
		release, releaseSum := PackageOllamaRelease(t, h.Ollama, d.Work)
		d.Release = node.Artifact{URL: d.Mirror.Add(releasePath, release), SHA256: releaseSum}
	case h.OllamaArchive != "":
		// The agent checks it against the pinned hash again as it downloads it.
		d.Release = node.Artifact{URL: d.Mirror.AddFile(releasePath, h.OllamaArchive), SHA256: h.OllamaSHA256}
	default:
		t.Fatalf("no Ollama: give the binary (%s) or a release archive (Helpers.UseRelease)", EnvOllamaBin)
	}

	if h.TinyModel != "" {
		d.Tiny = map[string]node.Artifact{}
		d.AddTinyModel(t, ModelName)
	}
	if h.LiteLLMWheels != "" {
		house, houseSum := PackageWheelhouse(t, h.LiteLLMWheels)
		d.Wheelhouse = node.Artifact{URL: d.Mirror.Add("/litellm/wheelhouse.tar.zst", house), SHA256: houseSum}
	}
	return d
}

// OllamaOptions are a pool's settings; zero values take the defaults.
type OllamaOptions struct {
	Pool          string   // the pool's name; default "cpu"
	Models        []string // the models it serves; default [ModelName]
	Parallel      int      // OLLAMA_NUM_PARALLEL; default 2
	ContextLength int      // default 2048
	MaxQueue      int      // default 16
}

// OllamaConfig is the node config of a CPU pool node on the local platform listening on port,
// installing release. Each model with a tiny model (AddTinyModel) is created from it; any other
// is pulled from the Ollama registry.
func (d *Deployment) OllamaConfig(port int, release node.Artifact, o OllamaOptions) node.Config {
	setDefault(&o.Pool, "cpu")
	if len(o.Models) == 0 {
		o.Models = []string{ModelName}
	}
	setDefault(&o.Parallel, 2)
	setDefault(&o.ContextLength, 2048)
	setDefault(&o.MaxQueue, 16)
	var models []node.Model
	for _, name := range o.Models {
		m := node.NewModel(name)
		if tiny, ok := d.Tiny[name]; ok {
			m.Source = &tiny
		}
		models = append(models, m)
	}
	return node.Config{
		Role:       node.RoleOllama,
		Department: Department,
		Pool:       o.Pool,
		Region:     Region,
		Platform:   node.PlatformLocal,
		Ollama: &node.OllamaConfig{
			Version:       d.H.OllamaVersion,
			Release:       release,
			GPU:           false,
			Port:          port,
			Parallel:      o.Parallel,
			ContextLength: o.ContextLength,
			MaxQueue:      o.MaxQueue,
			Models:        models,
		},
	}
}

// GatewayOptions are the gateway's settings; zero values take the defaults.
type GatewayOptions struct {
	// Port is LiteLLM's port on 127.0.0.1; default a free one.
	Port int
	// MasterKeyFile is the owner-only file holding the master key (local platform).
	MasterKeyFile string
	// MasterKeySecretArn is the Secrets Manager secret holding the master key (the AWS path).
	MasterKeySecretArn string
	// Routes are the models and the pools serving them; default ModelName on OllamaURL.
	Routes []node.LiteLLMModel
	// OllamaURL is the pool the gateway routes ModelName to when Routes is empty.
	OllamaURL string
	// Workers is LiteLLM's --num_workers; default 1.
	Workers int
	// RequestTimeoutSeconds bounds one request to the pool; default 120.
	RequestTimeoutSeconds int
	// KeepAliveSeconds is uvicorn's keep-alive; default 75.
	KeepAliveSeconds int
	// NumRetries is LiteLLM's retries to the pool; default 1.
	NumRetries int
	// KeyRegistry, when set, makes the gateway accept the registry's per-person keys of its
	// teams instead of the master key (the AWS path).
	KeyRegistry *node.KeyRegistry
	// Usage, when set (with KeyRegistry), makes each LiteLLM worker count and publish its
	// teams' and keys' usage to CloudWatch (the AWS path).
	Usage *node.LiteLLMUsage
}

// LiteLLMConfig is the node config of a gateway node on port: the pinned LiteLLM from the
// mirror's wheelhouse (or from PyPI when the deployment has none), routing to the pools. It is
// for the local platform when o names a key file, for AWS when it names a secret.
func (d *Deployment) LiteLLMConfig(port int, o GatewayOptions) node.Config {
	setDefault(&o.Workers, 1)
	setDefault(&o.RequestTimeoutSeconds, 120)
	setDefault(&o.KeepAliveSeconds, 75)
	setDefault(&o.NumRetries, 1)
	if len(o.Routes) == 0 {
		o.Routes = []node.LiteLLMModel{{Name: ModelName, APIBase: o.OllamaURL}}
	}
	cfg := node.Config{
		Role:       node.RoleLiteLLM,
		Department: Department,
		Pool:       "gateway",
		Region:     Region,
		LiteLLM: &node.LiteLLMConfig{
			Port:                  port,
			Workers:               o.Workers,
			MasterKeySecretArn:    o.MasterKeySecretArn,
			MasterKeyFile:         o.MasterKeyFile,
			Models:                o.Routes,
			RequestTimeoutSeconds: o.RequestTimeoutSeconds,
			KeepAliveSeconds:      o.KeepAliveSeconds,
			NumRetries:            o.NumRetries,
			KeyRegistry:           o.KeyRegistry,
			Usage:                 o.Usage,
		},
	}
	if o.MasterKeyFile != "" {
		cfg.Platform = node.PlatformLocal
	}
	if d.Wheelhouse.URL != "" {
		house := d.Wheelhouse
		cfg.LiteLLM.Wheelhouse = &house
	}
	return cfg
}

// Start writes cfg into n's directory and bootstraps it, failing unless the node is ready
// within limit.
func (n *Node) Start(t T, cfg node.Config, limit time.Duration) {
	t.Helper()
	if code := n.Bootstrap(t, n.WriteConfig(t, cfg), limit); code != 0 {
		t.Fatalf("sandbox-node bootstrap (%s, pool %s) exited %d, want 0", cfg.Role, cfg.Pool, code)
	}
}

// VenvPython is the interpreter of the venv the agent installed LiteLLM into.
func (n *Node) VenvPython(t T) string {
	t.Helper()
	python := filepath.Join(n.Root, node.LiteLLMPython)
	if fi, err := os.Stat(python); err != nil || fi.IsDir() {
		t.Fatalf("LiteLLM's venv python %s: %v", python, err)
	}
	return python
}

// setDefault sets *v to def when it is the zero value: an option left unset.
func setDefault[V comparable](v *V, def V) {
	var zero V
	if *v == zero {
		*v = def
	}
}
