// Package node is the node agent's library: it reads the node config that cloud-init writes,
// installs and configures the node's role (Ollama, later LiteLLM), proves the node is ready and
// completes the Auto Scaling launch lifecycle action, CONTINUE or ABANDON. It never imports
// Pulumi: the program renders a Config, the agent reads it.
package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// ConfigPath is where cloud-init writes the node config on a node.
const ConfigPath = "/etc/llm-sandbox/node.json"

// Roles the agent knows.
const (
	// RoleOllama serves models with Ollama on a pool node.
	RoleOllama = "ollama"
)

// Config is the node config file: everything the agent needs to bootstrap a node, and no
// secrets (it travels in user data, which anyone with ec2:DescribeInstanceAttribute can read).
type Config struct {
	// Role is what the node runs: "ollama".
	Role string `json:"role"`
	// Department and Pool name the node in logs.
	Department string `json:"department"`
	Pool       string `json:"pool"`
	// Region is the AWS region, for the Auto Scaling and S3 clients.
	Region string `json:"region"`
	// Lifecycle names the launch lifecycle hook the agent completes.
	Lifecycle Lifecycle `json:"lifecycle"`
	// Ollama configures the ollama role; required when Role is "ollama".
	Ollama *OllamaConfig `json:"ollama,omitempty"`
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
}

// Artifact is a file the agent downloads and checks before use.
type Artifact struct {
	// URL is https://..., s3://bucket/key (read with the instance role), or http://... (for
	// loopback mirrors in tests; the checksum still guards it).
	URL string `json:"url"`
	// SHA256 is the lowercase hex SHA-256 of the file. It may be empty only when SumsURL is set.
	SHA256 string `json:"sha256,omitempty"`
	// SumsURL is an https:// checksum file in sha256sum format published with the artifact
	// (an upstream release's sha256sum.txt). When SHA256 is empty the agent takes the hash of
	// the artifact's file name from it: the artifact is then checked against what its publisher
	// lists, over TLS, rather than against a hash pinned in the repository.
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
	// Port is Ollama's listening port (11434).
	Port int `json:"port"`
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
	// it. When nil the agent pulls Name from the Ollama registry.
	Source *Artifact `json:"source,omitempty"`
}

var (
	sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)
	label     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
)

// Validate checks the config and returns every problem at once, each naming its JSON key.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Role != RoleOllama {
		add("role", "must be %q (got %q)", RoleOllama, c.Role)
	}
	if !label.MatchString(c.Department) {
		add("department", "must be a lowercase DNS label (got %q)", c.Department)
	}
	if !label.MatchString(c.Pool) {
		add("pool", "must be a lowercase DNS label (got %q)", c.Pool)
	}
	if c.Region == "" {
		add("region", "is required")
	}
	if c.Lifecycle.Hook == "" {
		add("lifecycle.hook", "is required")
	}
	if h := c.Lifecycle.HeartbeatSeconds; h != 0 && (h < 30 || h > 7200) {
		add("lifecycle.heartbeatSeconds", "must be 30..7200 as Auto Scaling allows, or absent (got %d)", h)
	}
	if c.Role == RoleOllama {
		if c.Ollama == nil {
			add("ollama", "is required for role ollama")
		} else {
			errs = append(errs, c.Ollama.validate()...)
		}
	}
	return errors.Join(errs...)
}

func (o *OllamaConfig) validate() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("ollama.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if o.Version == "" {
		add("version", "is required")
	}
	if err := o.Release.Validate(); err != nil {
		add("release", "%v", err)
	}
	if o.Port < 1 || o.Port > 65535 {
		add("port", "must be 1-65535 (got %d)", o.Port)
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
		if m.Name == "" || strings.ContainsAny(m.Name, " /\\") {
			add(fmt.Sprintf("models[%d].name", i), "must be an Ollama tag such as llama3.1:8b (got %q)", m.Name)
		}
		if m.Source != nil {
			if err := m.Source.Validate(); err != nil {
				add(fmt.Sprintf("models[%d].source", i), "%v", err)
			}
		}
	}
	return errs
}

// Validate checks that the artifact has a usable URL and either a SHA-256 or a checksum file.
func (a Artifact) Validate() error {
	u, err := url.Parse(a.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "s3") {
		return fmt.Errorf("url must be https://, http:// or s3://bucket/key (got %q)", a.URL)
	}
	if a.SHA256 == "" && a.SumsURL != "" {
		if s, err := url.Parse(a.SumsURL); err != nil || (s.Scheme != "https" && s.Scheme != "http") || s.Host == "" {
			return fmt.Errorf("sumsUrl must be an https:// URL, or http:// for a loopback mirror (got %q)", a.SumsURL)
		}
		return nil
	}
	if !sha256Hex.MatchString(a.SHA256) {
		return fmt.Errorf("sha256 must be 64 lowercase hex digits (got %q)", a.SHA256)
	}
	return nil
}

// LoadConfig reads and validates a node config file.
func LoadConfig(path string) (*Config, error) {
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
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("node config %s: %w", path, err)
	}
	return &c, nil
}

// Marshal renders the config as the agent reads it (indented JSON, stable key order).
func (c *Config) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
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
