package node

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/inflight"
	"github.com/llm-sandbox/llm-sandbox/node/ollamatest"
)

// drainingConfig is goldenConfig as the ModelPool component renders it: Ollama behind the
// proxy and a terminating hook.
func drainingConfig(gpu bool) *Config {
	c := goldenConfig(gpu)
	c.Lifecycle.TerminateHook, c.Lifecycle.DrainSeconds = "llm-sandbox-terminate", 820
	c.Ollama.BackendPort = OllamaBackendPort
	return c
}

func TestServeUnitGolden(t *testing.T) {
	unit, err := RenderServeUnit(drainingConfig(true), ServeUnitPaths{Agent: AgentBinary, Config: ConfigPath})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sandbox-node-serve.service.golden", unit)
	if _, err := RenderServeUnit(goldenConfig(true), ServeUnitPaths{Agent: AgentBinary, Config: ConfigPath}); err == nil {
		t.Error("rendered a serve unit for a config without a terminating hook")
	}
}

// Behind the proxy Ollama listens on loopback only, on the backend port.
func TestOllamaEnvBehindTheProxy(t *testing.T) {
	env, err := RenderEnv(drainingConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "\nOLLAMA_HOST=127.0.0.1:11435\n") || strings.Contains(string(env), "0.0.0.0") {
		t.Errorf("ollama.env behind the proxy does not bind loopback:11435 only:\n%s", env)
	}
	if got := drainingConfig(true).Ollama.ListenPort(); got != 11435 {
		t.Errorf("ListenPort = %d, want 11435", got)
	}
	if got := goldenConfig(true).Ollama.ListenPort(); got != 11434 {
		t.Errorf("ListenPort without a proxy = %d, want 11434", got)
	}
}

// The serve unit passes systemd-analyze verify and scores at most maxExposure, like the
// services' units.
func TestServeUnitPassesSystemdAnalyze(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (%v): install systemd (apt-get install systemd) to validate the rendered unit", err)
	}
	dir := t.TempDir()
	p := ServeUnitPaths{Agent: filepath.Join(dir, "usr/local/bin/sandbox-node"), Config: filepath.Join(dir, "etc/llm-sandbox/node.json")}
	if err := os.MkdirAll(filepath.Dir(p.Agent), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.Agent, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, gpu := range []bool{false, true} {
		unit, err := RenderServeUnit(drainingConfig(gpu), p)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, fmt.Sprintf("gpu-%t", gpu), ServeUnit)
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, unit, 0o644); err != nil {
			t.Fatal(err)
		}
		analyzeUnit(t, analyze, file)
		// A GPU pool's unit sees the NVIDIA devices (nvidia-smi for the GPU figures), a CPU
		// pool's none.
		devices := strings.Contains(string(unit), "DeviceAllow=char-nvidiactl rw") && !strings.Contains(string(unit), "PrivateDevices=yes")
		if devices != gpu {
			t.Errorf("serve unit of a GPU pool (%t) sees the NVIDIA devices: %t\n%s", gpu, devices, unit)
		}
	}
}

func TestConfigValidatesDrainSettings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"hook without bound", func(c *Config) { c.Lifecycle.DrainSeconds = 0 }, "lifecycle.drainSeconds: must be 1..3600"},
		{"bound over AWS's maximum", func(c *Config) { c.Lifecycle.DrainSeconds = 3601 }, "lifecycle.drainSeconds: must be 1..3600"},
		{"bound without hook", func(c *Config) { c.Lifecycle.TerminateHook = "" }, "lifecycle.drainSeconds: is only for a terminateHook"},
		{"backend on the proxy's port", func(c *Config) { c.Ollama.BackendPort = c.Ollama.Port }, "ollama.backendPort: must be 1-65535 and differ from port 11434"},
	} {
		c := drainingConfig(true)
		if err := c.Validate(); err != nil {
			t.Fatalf("the draining config is invalid: %v", err)
		}
		tc.mutate(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// proxyEnv is a pool node whose config names a terminating hook and puts Ollama (the fake)
// behind the proxy port.
func proxyEnv(t *testing.T) (*env, int) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.cfg.Ollama.BackendPort = e.cfg.Ollama.Port
	e.cfg.Ollama.Port = freePort(t)
	e.cfg.Lifecycle.TerminateHook, e.cfg.Lifecycle.DrainSeconds = "llm-sandbox-terminate", 60
	return e, e.cfg.Ollama.Port
}

// Bootstrap writes the serve unit, starts it under systemd and waits for the proxy to answer
// from Ollama before it sends CONTINUE.
func TestBootstrapStartsServeBeforeLifecycle(t *testing.T) {
	e, port := proxyEnv(t)
	// What systemd would start: the proxy on the pool's port.
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewProxy("127.0.0.1:"+strconv.Itoa(e.cfg.Ollama.BackendPort), &inflight.Counter{})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	wantResults(t, e.lc, ResultContinue)
	var want []string
	for _, s := range []string{StepGPU, StepInstall, StepUser, StepConfigure, StepStart, StepModels, StepPreload, StepResident, StepServe, StepLifecycle} {
		want = append(want, s+" start", s+" ok")
	}
	if got := stepLines(e.log.String()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("step log = %v\nwant %v", got, want)
	}
	cmds := strings.Join(e.runner.commands(), "\n")
	if !strings.Contains(cmds, "systemctl enable "+ServeUnit+"\nsystemctl restart "+ServeUnit) {
		t.Errorf("serve unit not enabled and started:\n%s", cmds)
	}
	data, err := os.ReadFile(filepath.Join(e.root, ServeUnitFile))
	if err != nil || !strings.Contains(string(data), "ExecStart="+AgentBinary+" serve --config "+ConfigPath) {
		t.Errorf("serve unit: %v\n%s", err, data)
	}
}

// A proxy that never answers fails the serve step, and the node ABANDONs.
func TestBootstrapAbandonsWhenTheProxyNeverAnswers(t *testing.T) {
	e, _ := proxyEnv(t)
	err := e.bootstrap(func(o *Options) { o.Timeouts[StepServe] = 300 * time.Millisecond })
	wantStepFailure(t, err, StepServe, "the accounting proxy never answered")
	wantResults(t, e.lc, ResultAbandon)
}

// Behind the proxy LiteLLM listens on 127.0.0.1:backendPort only, the serve unit names the
// proxy on the gateway's port, and the config checks the backend port and the pool names.
func TestLiteLLMBehindTheProxy(t *testing.T) {
	c := drainingLiteLLMConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("the gateway's draining config is invalid: %v", err)
	}
	unit, err := RenderLiteLLMUnit(c, DefaultLiteLLMUnitPaths())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), " --host 127.0.0.1 --port 4001 ") || strings.Contains(string(unit), "0.0.0.0") {
		t.Errorf("litellm.service behind the proxy does not listen on 127.0.0.1:4001 only:\n%s", unit)
	}
	if got := c.LiteLLM.ListenPort(); got != LiteLLMBackendPort {
		t.Errorf("ListenPort = %d, want %d", got, LiteLLMBackendPort)
	}
	if got := liteLLMGoldenConfig().LiteLLM.ListenPort(); got != 4000 {
		t.Errorf("ListenPort without a proxy = %d, want 4000", got)
	}
	serve, err := RenderServeUnit(c, ServeUnitPaths{Agent: AgentBinary, Config: ConfigPath})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(serve), "Description=llm-sandbox accounting proxy on port 4000 and drain watcher") ||
		!strings.Contains(string(serve), "PrivateDevices=yes") {
		t.Errorf("the gateway's serve unit does not name the proxy on 4000, or sees devices:\n%s", serve)
	}

	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"backend on the proxy's port", func(c *Config) { c.LiteLLM.BackendPort = c.LiteLLM.Port }, "litellm.backendPort: must be 1-65535 and differ from port 4000"},
		{"backend out of range", func(c *Config) { c.LiteLLM.BackendPort = 70000 }, "litellm.backendPort: must be 1-65535"},
		{"a model pool named as the gateway", func(c *Config) {
			d := drainingConfig(true)
			*c = *d
			c.Pool = "gateway"
		}, `pool: pool name must not be "gateway"`},
	} {
		c := drainingLiteLLMConfig()
		tc.mutate(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
}
