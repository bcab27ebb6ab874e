package harness

import (
	"context"
	"strconv"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/agentbuild"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// Names the deployment uses.
const (
	// ModelName is the tag the tiny model is created as: the name a department's clients use.
	ModelName = "llama3.1:8b"
	// Department names the emulated department in node configs.
	Department = "chemistry"
	// OllamaHook and GatewayHook are the launch lifecycle hooks of the pool and gateway groups.
	OllamaHook  = "ollama-ready"
	GatewayHook = "litellm-ready"
)

// BootstrapLimit bounds one `sandbox-node bootstrap`: installing LiteLLM from the wheelhouse
// into a fresh venv takes a minute or two on the 2-core machines.
const BootstrapLimit = 8 * time.Minute

// Deployment is one emulated department on loopback: the agent binary, the artifacts in the
// mirror, and the AWS emulator. Its nodes are Members.
type Deployment struct {
	H     Helpers
	Work  string
	Agent string

	Mirror *Mirror
	Moto   *Moto

	// The artifacts the mirror serves, with their SHA-256.
	Release, Model, Wheelhouse node.Artifact
}

// NewDeployment builds the agent, packages the Ollama release, writes the tiny model, packages
// the LiteLLM wheelhouse (when h has wheels), serves them from a loopback mirror and starts
// the AWS emulator.
func NewDeployment(t T, h Helpers) *Deployment {
	t.Helper()
	d := &Deployment{H: h, Work: t.TempDir()}
	// The binary a deployment uploads: agentbuild's reproducible static linux/amd64 build.
	agent, err := agentbuild.Build(context.Background(), h.Repo)
	if err != nil {
		t.Fatalf("%v", err)
	}
	d.Agent = agent.Path
	d.Mirror = NewMirror(t, nil)

	release, releaseSum := PackageOllamaRelease(t, h.Ollama, d.Work)
	d.Release = node.Artifact{URL: d.Mirror.Add("/ollama/v"+h.OllamaVersion+"/ollama-linux-amd64.tar.zst", release), SHA256: releaseSum}

	model, modelSum := TinyModel(t, h, d.Work)
	d.Model = node.Artifact{URL: d.Mirror.Add("/models/tiny-llama.gguf", model), SHA256: modelSum}

	if h.LiteLLMWheels != "" {
		house, houseSum := PackageWheelhouse(t, h.LiteLLMWheels)
		d.Wheelhouse = node.Artifact{URL: d.Mirror.Add("/litellm/wheelhouse.tar.zst", house), SHA256: houseSum}
	}

	d.Moto = StartMoto(t, h, d.Work)
	return d
}

// Member is a node of one Auto Scaling group: the group and its hook exist in the emulator
// with the node's instance pending on the hook, and IMDS names the instance and the group.
type Member struct {
	*Node
	Group, Hook, Instance string
	IMDS                  *IMDS
}

// NewMember seeds group (with its launch lifecycle hook) in the emulator and prepares its node.
func (d *Deployment) NewMember(t T, group, hook string) *Member {
	t.Helper()
	instance := d.Moto.SeedGroup(t, group, hook)
	imds := NewIMDS(t, instance, group)
	return &Member{Node: NewNode(t, d.Agent, d.Moto, imds), Group: group, Hook: hook, Instance: instance, IMDS: imds}
}

// URL is the member's server on loopback.
func (m *Member) URL() string { return "http://127.0.0.1:" + strconv.Itoa(m.Port) }

// OllamaOptions are the pool settings a caller may change; zero values take the defaults.
type OllamaOptions struct {
	Parallel      int // OLLAMA_NUM_PARALLEL; default 2
	ContextLength int // default 2048
	MaxQueue      int // default 16
}

// OllamaConfig is the node config cloud-init would write on a CPU pool node serving the tiny
// model from the mirror as ModelName. The group name is left empty: the agent reads it from the
// instance's tag in IMDS.
func (d *Deployment) OllamaConfig(m *Member, release node.Artifact, o OllamaOptions) node.Config {
	if o.Parallel == 0 {
		o.Parallel = 2
	}
	if o.ContextLength == 0 {
		o.ContextLength = 2048
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = 16
	}
	model := d.Model
	return node.Config{
		Role:       node.RoleOllama,
		Department: Department,
		Pool:       "cpu",
		Region:     Region,
		Lifecycle:  node.Lifecycle{Hook: m.Hook},
		Ollama: &node.OllamaConfig{
			Version:       d.H.OllamaVersion,
			Release:       release,
			GPU:           false,
			Port:          m.Port,
			Parallel:      o.Parallel,
			ContextLength: o.ContextLength,
			MaxQueue:      o.MaxQueue,
			Models:        []node.Model{{Name: ModelName, Source: &model}},
		},
	}
}

// StartOllama bootstraps a pool node with the good release and requires it to be ready.
func (d *Deployment) StartOllama(t T, group string, o OllamaOptions) *Member {
	t.Helper()
	m := d.NewMember(t, group, OllamaHook)
	if code := m.Bootstrap(t, m.WriteConfig(t, d.OllamaConfig(m, d.Release, o)), BootstrapLimit); code != 0 {
		t.Fatalf("sandbox-node bootstrap (ollama) exited %d, want 0", code)
	}
	return m
}
