package harness

import (
	"os"
	"path/filepath"

	"github.com/llm-sandbox/llm-sandbox/node"
)

// GatewayOptions are the gateway settings a caller gives; zero values take the defaults.
type GatewayOptions struct {
	// MasterKeySecretArn is the Secrets Manager secret holding the master key. Required.
	MasterKeySecretArn string
	// OllamaURL is the pool the gateway routes ModelName to. Required.
	OllamaURL string
	// Workers is LiteLLM's --num_workers; default 1.
	Workers int
	// RequestTimeoutSeconds bounds one request to the pool; default 120.
	RequestTimeoutSeconds int
	// KeepAliveSeconds is uvicorn's keep-alive; default 75.
	KeepAliveSeconds int
	// NumRetries is LiteLLM's retries to the pool; default 1.
	NumRetries int
}

// LiteLLMConfig is the node config cloud-init would write on a gateway node: the pinned
// LiteLLM from the mirror's wheelhouse, routing ModelName to the pool.
func (d *Deployment) LiteLLMConfig(m *Member, o GatewayOptions) node.Config {
	if o.Workers == 0 {
		o.Workers = 1
	}
	if o.RequestTimeoutSeconds == 0 {
		o.RequestTimeoutSeconds = 120
	}
	if o.KeepAliveSeconds == 0 {
		o.KeepAliveSeconds = 75
	}
	if o.NumRetries == 0 {
		o.NumRetries = 1
	}
	house := d.Wheelhouse
	return node.Config{
		Role:       node.RoleLiteLLM,
		Department: Department,
		Pool:       "gateway",
		Region:     Region,
		Lifecycle:  node.Lifecycle{Hook: m.Hook},
		LiteLLM: &node.LiteLLMConfig{
			Wheelhouse:            &house,
			Port:                  m.Port,
			Workers:               o.Workers,
			MasterKeySecretArn:    o.MasterKeySecretArn,
			Models:                []node.LiteLLMModel{{Name: ModelName, APIBase: o.OllamaURL}},
			RequestTimeoutSeconds: o.RequestTimeoutSeconds,
			KeepAliveSeconds:      o.KeepAliveSeconds,
			NumRetries:            o.NumRetries,
		},
	}
}

// StartGateway bootstraps a gateway node and requires it to be ready.
func (d *Deployment) StartGateway(t T, group string, o GatewayOptions) *Member {
	t.Helper()
	if d.Wheelhouse.URL == "" {
		t.Fatalf("no LiteLLM wheelhouse: the deployment's helpers come from Require, not RequireLiteLLM")
	}
	m := d.NewMember(t, group, GatewayHook)
	if code := m.Bootstrap(t, m.WriteConfig(t, d.LiteLLMConfig(m, o)), BootstrapLimit); code != 0 {
		t.Fatalf("sandbox-node bootstrap (litellm) exited %d, want 0", code)
	}
	return m
}

// VenvPython is the interpreter of the venv the agent installed LiteLLM into.
func (m *Member) VenvPython(t T) string {
	t.Helper()
	python := filepath.Join(m.Root, node.LiteLLMPython)
	if fi, err := os.Stat(python); err != nil || fi.IsDir() {
		t.Fatalf("LiteLLM's venv python %s: %v", python, err)
	}
	return python
}
