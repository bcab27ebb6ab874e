package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// The drain watcher's unit on a node.
const (
	// AgentBinary is where the user data installs the agent.
	AgentBinary = "/usr/local/bin/sandbox-node"
	// ServeUnitFile is the unit of `sandbox-node serve`.
	ServeUnitFile = "/etc/systemd/system/sandbox-node-serve.service"
	// ServeUnit is its name for systemctl.
	ServeUnit = "sandbox-node-serve.service"
	// StepServe writes and starts it, before the launch lifecycle action completes.
	StepServe = "serve"
)

// ServeUnitPaths are the files the serve unit refers to: the agent binary and the node
// config. The systemd-analyze test points them at files in a temporary directory.
type ServeUnitPaths struct {
	Agent, Config string
}

// RenderServeUnit renders the unit that runs `sandbox-node serve` for as long as the node
// serves: the accounting proxy in front of Ollama (pool nodes) and the drain watcher. It runs
// as a dynamic user with no capability (the proxy's port is above 1023) and reaches only the
// network: IMDS, the Auto Scaling API, Ollama on loopback and its clients.
func RenderServeUnit(c *Config, p ServeUnitPaths) ([]byte, error) {
	if c.Lifecycle.TerminateHook == "" {
		return nil, errors.New("render " + ServeUnit + ": the config has no lifecycle.terminateHook")
	}
	what := "drain watcher"
	if port, _, _, ok := c.proxied(); ok {
		what = fmt.Sprintf("accounting proxy on port %d and drain watcher", port)
	}
	u := unitFile{
		Title:         "sandbox-node serve",
		Description:   fmt.Sprintf("llm-sandbox %s (department %s, pool %s)", what, c.Department, c.Pool),
		Documentation: "https://github.com/llm-sandbox/llm-sandbox/blob/main/docs/node-agent.md",
		User:          "sandbox-node",
		ExecStart:     p.Agent + " serve --config " + p.Config,
		HardeningWhy: []string{
			"Sandbox (systemd.exec(5)): a dynamic user without capabilities, nothing writable on",
			"the file system, no devices (on GPU pools only the NVIDIA devices, which nvidia-smi reads",
			"for the GPU figures), IPv4/IPv6/Unix sockets only, the @system-service system calls.",
			"The instance role's credentials come from IMDS, which any local user can reach.",
		},
		Hardening: append(sandboxing(),
			"DynamicUser=yes",
			"ProtectSystem=strict",
			"MemoryDenyWriteExecute=yes"),
	}
	if c.Ollama != nil && c.Ollama.GPU && c.Ollama.BackendPort != 0 {
		u.Hardening = append(u.Hardening, nvidiaDevices()...)
	} else {
		u.Hardening = append(u.Hardening, "PrivateDevices=yes")
	}
	return u.render(), nil
}

// stepServe writes the serve unit and (re)starts it, then, on a node with the accounting
// proxy, proves the proxy answers from the server behind it (GET /api/version from Ollama, GET
// /health/liveliness from LiteLLM: the load balancer's health check). Without systemd (tests, --no-systemd) the unit is
// written and the caller runs `sandbox-node serve` itself.
func (a *Agent) stepServe(ctx context.Context, _ *runState) (string, error) {
	unit, err := RenderServeUnit(a.cfg, ServeUnitPaths{Agent: AgentBinary, Config: ConfigPath})
	if err != nil {
		return "", err
	}
	written, err := writeAll([]fileContent{{a.path(ServeUnitFile), unit, 0o644}})
	if err != nil {
		return "", err
	}
	if a.noSystemd {
		return "wrote " + a.path(ServeUnitFile) + "; without systemd, run `sandbox-node serve` to proxy and drain", nil
	}
	svc := systemdService{run: a.run, unit: ServeUnit}
	if err := svc.start(ctx, len(written) > 0); err != nil {
		return "", err
	}
	port, backendPort, server, ok := a.cfg.proxied()
	if !ok {
		return ServeUnit + " started: drain watcher", nil
	}
	path := "/api/version"
	if server == "litellm" {
		path = LiteLLMHealthPath
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + path
	if _, err := a.waitHealthy(ctx, svc, "the accounting proxy", "GET "+url, func(ctx context.Context) (string, error) {
		return "", a.getOK(ctx, url)
	}); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s started: the proxy on port %d answers from %s on %d", ServeUnit, port, server, backendPort), nil
}

// getOK GETs url from the local server and wants 200.
func (a *Agent) getOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := a.local.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}
