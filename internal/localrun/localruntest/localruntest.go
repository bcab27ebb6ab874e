// Package localruntest is what the end-to-end tests add to localrun: the helpers' paths from
// the environment (skipping without them), moto's AWS emulator with an IMDSv2 stand-in, so
// that the agent's AWS path (lifecycle actions, Secrets Manager) runs through the same nodes
// as `sandboxctl local`, and the HTTP and file assertions the tests share.
//
// The helpers are prebuilt by `make e2e-deps`; their paths arrive in environment variables.
package localruntest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// EnvMotoPython names the python of the venv holding moto[server].
const EnvMotoPython = "LLM_SANDBOX_MOTO_PYTHON"

// Launch lifecycle hooks of the emulated pool and gateway groups.
const (
	OllamaHook  = "ollama-ready"
	GatewayHook = "litellm-ready"
)

// Require returns the helpers for the ollama role (Ollama and the tiny-model writer), or skips
// when they are not configured.
func Require(t T) localrun.Helpers {
	t.Helper()
	ollama, tiny := os.Getenv(localrun.EnvOllamaBin), os.Getenv(localrun.EnvTinyModelBin)
	if ollama == "" || tiny == "" {
		t.Skipf("end-to-end helpers not configured: run `make e2e-deps` and set %s and %s (`make test` and `make e2e` do both)",
			localrun.EnvOllamaBin, localrun.EnvTinyModelBin)
	}
	h, err := localrun.NewHelpers("", ollama, tiny, "")
	if err != nil {
		t.Fatalf("%v", err)
	}
	return h
}

// RequireLiteLLM is Require plus the LiteLLM wheels, or skips when they are not configured.
func RequireLiteLLM(t T) localrun.Helpers {
	t.Helper()
	wheels := os.Getenv(localrun.EnvLiteLLMWheels)
	if wheels == "" {
		t.Skipf("LiteLLM wheels not configured: run `make e2e-deps` and set %s (`make test` and `make e2e` do both)", localrun.EnvLiteLLMWheels)
	}
	h := Require(t)
	h, err := localrun.NewHelpers("", h.Ollama, h.TinyModel, wheels)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return h
}

// RequireMoto returns the emulator's python, or skips when it is not configured.
func RequireMoto(t T) string {
	t.Helper()
	python := os.Getenv(EnvMotoPython)
	if python == "" {
		t.Skipf("the AWS emulator is not configured: run `make e2e-deps` and set %s (`make test` and `make e2e` do both)", EnvMotoPython)
	}
	if fi, err := os.Stat(python); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s=%s is not an executable file (run `make e2e-deps`): %v", EnvMotoPython, python, err)
	}
	return python
}

// Deployment is a localrun deployment whose nodes run the AWS path against the emulator.
type Deployment struct {
	*localrun.Deployment
	Moto *Moto
}

// NewDeployment is localrun.NewDeployment in a temporary directory plus the emulator.
func NewDeployment(t T, h localrun.Helpers) *Deployment {
	t.Helper()
	d := &Deployment{Deployment: localrun.NewDeployment(t, h, "")}
	d.Moto = StartMoto(t, RequireMoto(t), h.Repo, d.Work)
	return d
}

// Member is a node of one Auto Scaling group: the group and its hook exist in the emulator
// with the node's instance pending on the hook, and IMDS names the instance and the group.
type Member struct {
	*localrun.Node
	Group, Hook, Instance string
	IMDS                  *IMDS
}

// NewMember seeds group (with its launch lifecycle hook) in the emulator and prepares its
// node, which talks to the emulator for every AWS API and to the stand-in for IMDS.
func (d *Deployment) NewMember(t T, group, hook string) *Member {
	t.Helper()
	instance := d.Moto.SeedGroup(t, group, hook)
	imds := NewIMDS(t, instance, group)
	n := localrun.NewNode(t, "", d.Agent,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_ENDPOINT_URL="+d.Moto.URL,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv4",
	)
	return &Member{Node: n, Group: group, Hook: hook, Instance: instance, IMDS: imds}
}

// onAWS turns a local node config into the one cloud-init writes on an instance of m's group:
// the platform's default, and m's hook. The group name is left empty: the agent reads it from
// the instance's tag in IMDS.
func onAWS(cfg node.Config, m *Member) node.Config {
	cfg.Platform = ""
	cfg.Lifecycle = node.Lifecycle{Hook: m.Hook}
	return cfg
}

// OllamaConfig is the node config of a CPU pool node of m's group serving the tiny model from
// the mirror as localrun.ModelName.
func (d *Deployment) OllamaConfig(m *Member, release node.Artifact, o localrun.OllamaOptions) node.Config {
	return onAWS(d.Deployment.OllamaConfig(m.Port, release, o), m)
}

// LiteLLMConfig is the node config of a gateway node of m's group; o must name the master
// key's secret.
func (d *Deployment) LiteLLMConfig(m *Member, o localrun.GatewayOptions) node.Config {
	return onAWS(d.Deployment.LiteLLMConfig(m.Port, o), m)
}

// StartOllama bootstraps a pool node of group with the good release and requires it ready.
func (d *Deployment) StartOllama(t T, group string, o localrun.OllamaOptions) *Member {
	t.Helper()
	m := d.NewMember(t, group, OllamaHook)
	m.Start(t, d.OllamaConfig(m, d.Release, o), localrun.BootstrapLimit)
	return m
}

// GatewayStack is the serving path on the AWS path: a pool node and a gateway node, each
// completing its lifecycle action in the emulator, the master key in its Secrets Manager.
type GatewayStack struct {
	*Deployment
	Pool, Gateway                 *Member
	MasterKey, MasterKeySecretArn string
}

// URL is the gateway's base URL, without /v1 (the stack output endpointUrl).
func (s *GatewayStack) URL() string { return "http://127.0.0.1:" + strconv.Itoa(s.Gateway.Port) }

// StartGatewayStack brings the serving path up on the AWS path: the pool node, a fresh master
// key stored in Secrets Manager, then the gateway node routing to the pool. h must come from
// RequireLiteLLM.
func StartGatewayStack(t T, h localrun.Helpers, pool localrun.OllamaOptions, gw localrun.GatewayOptions) *GatewayStack {
	t.Helper()
	d := NewDeployment(t, h)
	s := &GatewayStack{Deployment: d}
	s.Pool = d.StartOllama(t, "chemistry-cpu", pool)
	s.MasterKey = "sk-" + localrun.RandomAlphanumeric(t, 48)
	s.MasterKeySecretArn = d.Moto.CreateSecret(t, "llm-sandbox/chemistry/litellm-master-key", s.MasterKey)
	gw.MasterKeySecretArn, gw.OllamaURL = s.MasterKeySecretArn, s.Pool.URL()
	s.Gateway = d.NewMember(t, "chemistry-gateway", GatewayHook)
	s.Gateway.Start(t, d.LiteLLMConfig(s.Gateway, gw), localrun.BootstrapLimit)
	return s
}

// DetachedServer starts what a node's agent leaves running with --no-systemd, for the tests of
// stopping a detached run: a process in a session of its own whose executable lies under root
// (a copy of sleep at root/bin/server), with its pid in pidFile under root (node.OllamaPidFile
// or node.LiteLLMPidFile). It returns the pid; a cleanup kills the process group.
func DetachedServer(t T, root, pidFile string) int {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("%v", err)
	}
	bin := filepath.Join(root, "bin", "server")
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	cmd := exec.Command(bin, "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	pid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	path := filepath.Join(root, pidFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	return pid
}
