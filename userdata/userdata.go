// Package userdata renders the thin cloud-init document a node boots with: it writes the node
// config, installs the agent's systemd unit, fetches the agent binary (checked against its
// SHA-256) and starts it. Everything else happens in the agent (package node), where it is typed
// and tested.
package userdata

import (
	"bytes"
	"embed"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// AgentPath is where the agent binary is installed on a node.
const AgentPath = node.AgentBinary

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{"indent": indent}).ParseFS(templateFS, "templates/*.tmpl"))

// shellSafe is what may stand inside single quotes in the fetch script: URLs of the bucket
// and hex digests never need more.
var shellSafe = regexp.MustCompile(`^[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]*$`)

// Render returns the #cloud-config user data for a node with the given config, whose agent is
// fetched from agent (the URL of the binary in the artifacts bucket and its SHA-256).
func Render(cfg *node.Config, agent node.Artifact) (string, error) {
	if cfg == nil {
		return "", fmt.Errorf("render user data: node config is required")
	}
	nodeConfig, err := cfg.Marshal()
	if err != nil {
		return "", fmt.Errorf("render user data: %w", err)
	}
	if !strings.HasPrefix(agent.URL, "https://") || !shellSafe.MatchString(agent.URL) || strings.Contains(agent.URL, "'") {
		return "", fmt.Errorf("render user data: agent URL must be a plain https URL (got %q)", agent.URL)
	}
	if !rules.IsSHA256Hex(agent.SHA256) {
		return "", fmt.Errorf("render user data: agent SHA-256 must be 64 lowercase hex digits (got %q)", agent.SHA256)
	}
	parts := struct {
		Role, Department, Pool             string
		NodeConfig, AgentUnit, FetchScript string
	}{Role: cfg.Role, Department: cfg.Department, Pool: cfg.Pool, NodeConfig: string(nodeConfig)}
	if parts.AgentUnit, err = AgentUnit(); err != nil {
		return "", err
	}
	// The fetch script abandons the launch lifecycle action itself when the agent cannot be
	// installed; the group and the region may be empty (read from IMDS, as the agent does).
	fetch := struct {
		Agent               node.Artifact
		AgentPath           string
		Hook, Group, Region string
	}{agent, AgentPath, cfg.Lifecycle.Hook, cfg.Lifecycle.AutoScalingGroup, cfg.Region}
	for key, v := range map[string]string{"lifecycle.hook": fetch.Hook, "lifecycle.autoScalingGroup": fetch.Group, "region": fetch.Region} {
		if !shellSafe.MatchString(v) {
			return "", fmt.Errorf("render user data: node config %s %q has characters the fetch script cannot quote", key, v)
		}
	}
	if parts.FetchScript, err = execute("fetch-agent.sh.tmpl", fetch); err != nil {
		return "", err
	}
	return execute("node.yaml.tmpl", parts)
}

// AgentUnit returns the systemd unit that runs the agent at every boot (for validators).
func AgentUnit() (string, error) {
	return execute("sandbox-node.service.tmpl", struct{ AgentPath, ConfigPath string }{AgentPath, node.ConfigPath})
}

func execute(name string, data any) (string, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return b.String(), nil
}

// indent prefixes every non-empty line with n spaces, for YAML block scalars.
func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n")
}
