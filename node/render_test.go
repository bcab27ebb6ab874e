package node

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenConfig is a fixed config, so the golden files do not depend on test ports.
func goldenConfig(gpu bool) *Config {
	return &Config{
		Role: RoleOllama, Department: "chemistry", Pool: "default", Region: "eu-west-1",
		Lifecycle: Lifecycle{Hook: "chemistry-default-launch"},
		Ollama: &OllamaConfig{
			Version: "0.35.1",
			Release: Artifact{URL: "s3://chemistry-artifacts/ollama/ollama-linux-amd64.tar.zst", SHA256: strings.Repeat("a", 64)},
			GPU:     gpu, Port: 11434, Parallel: 4, ContextLength: 8192, MaxQueue: 64,
			Models: []Model{{Name: "llama3.1:8b"}, {Name: "qwen2.5:7b"}},
		},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./node -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the render (go test ./node -update rewrites it after review):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

func TestRenderGolden(t *testing.T) {
	env, err := RenderEnv(goldenConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "ollama.env.golden", env)
	for _, tc := range []struct {
		name string
		gpu  bool
	}{{"ollama.service.gpu.golden", true}, {"ollama.service.cpu.golden", false}} {
		unit, err := RenderUnit(goldenConfig(tc.gpu), DefaultUnitPaths())
		if err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name, unit)
	}
}

func envMap(t *testing.T, data []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("env line %q is not KEY=value", line)
		}
		if _, dup := m[k]; dup {
			t.Fatalf("env sets %s twice", k)
		}
		m[k] = v
	}
	return m
}

func TestEnvSettings(t *testing.T) {
	cfg := goldenConfig(true)
	data, err := RenderEnv(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := envMap(t, data)
	want := map[string]string{
		"OLLAMA_HOST":              "0.0.0.0:11434",
		"OLLAMA_MODELS":            "/var/lib/ollama/models",
		"OLLAMA_NUM_PARALLEL":      "4",
		"OLLAMA_CONTEXT_LENGTH":    "8192",
		"OLLAMA_KEEP_ALIVE":        "-1",
		"OLLAMA_FLASH_ATTENTION":   "1",
		"OLLAMA_KV_CACHE_TYPE":     "q8_0",
		"OLLAMA_MAX_QUEUE":         "64",
		"OLLAMA_MAX_LOADED_MODELS": "2",
		"OLLAMA_NO_CLOUD":          "1",
		"OLLAMA_NOHISTORY":         "1",
		"OLLAMA_DEBUG":             "0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("env sets %d variables, want exactly %d: %v", len(got), len(want), got)
	}
	// Request bodies must never reach the disk.
	if _, ok := got["OLLAMA_DEBUG_LOG_REQUESTS"]; ok {
		t.Errorf("env sets OLLAMA_DEBUG_LOG_REQUESTS")
	}
	if !strings.Contains(string(data), "security group") {
		t.Errorf("the wide OLLAMA_HOST is not explained")
	}
}

func TestUnitRunsNvidiaSMIOnlyOnGPUPools(t *testing.T) {
	gpu, _ := RenderUnit(goldenConfig(true), DefaultUnitPaths())
	cpu, _ := RenderUnit(goldenConfig(false), DefaultUnitPaths())
	if !strings.Contains(string(gpu), "\nExecStartPre=/usr/bin/nvidia-smi\n") {
		t.Errorf("GPU unit lacks ExecStartPre=/usr/bin/nvidia-smi")
	}
	if strings.Contains(string(cpu), "nvidia-smi") {
		t.Errorf("CPU unit runs nvidia-smi")
	}
}

// TestRenderedUnitPassesSystemdAnalyze runs the real validator on the unit. systemd-analyze
// verify needs the unit's executables to exist, so the test renders a copy whose paths point
// at stand-ins in a temporary directory; it reports unknown keys only as warnings, so any
// output at all fails the test.
func TestRenderedUnitPassesSystemdAnalyze(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (%v): install systemd (apt-get install systemd) to validate the rendered unit", err)
	}
	for _, gpu := range []bool{true, false} {
		dir := t.TempDir()
		p := UnitPaths{
			Ollama:    filepath.Join(dir, "usr/local/bin/ollama"),
			NvidiaSMI: filepath.Join(dir, "usr/bin/nvidia-smi"),
			EnvFile:   filepath.Join(dir, "etc/llm-sandbox/ollama.env"),
			Home:      filepath.Join(dir, "var/lib/ollama"),
		}
		for _, exe := range []string{p.Ollama, p.NvidiaSMI} {
			if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(exe, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		unit, err := RenderUnit(goldenConfig(gpu), p)
		if err != nil {
			t.Fatal(err)
		}
		// Apart from the paths, the copy is the unit a node gets.
		node, _ := RenderUnit(goldenConfig(gpu), DefaultUnitPaths())
		replaced := strings.NewReplacer(p.Ollama, OllamaBinary, p.NvidiaSMI, NvidiaSMI, p.EnvFile, OllamaEnvFile, p.Home, OllamaHome).Replace(string(unit))
		if replaced != string(node) {
			t.Fatalf("the verified copy differs from the node's unit beyond its paths")
		}
		file := filepath.Join(dir, "ollama.service")
		if err := os.WriteFile(file, unit, 0o644); err != nil {
			t.Fatal(err)
		}
		analyzeUnit(t, analyze, file)
	}
}

// maxExposure is the highest `systemd-analyze security` exposure a service unit may score:
// 4.5 is the top of its "OK" band (0 is fully sandboxed, 10 is "UNSAFE").
const maxExposure = 4.5

var exposureLine = regexp.MustCompile(`(?m)^→ Overall exposure level for \S+: ([0-9]+\.[0-9]) `)

// analyzeUnit runs the real systemd-analyze on a unit file: verify, which reports unknown keys
// and bad values only as warnings, so any output at all fails; then security --offline=yes,
// which scores the sandbox, and must score at most maxExposure, again without a warning.
func analyzeUnit(t *testing.T, analyze, file string) {
	t.Helper()
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(analyze, args...)
		cmd.Dir = filepath.Dir(file)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	if stdout, stderr, err := run("verify", file); err != nil || stderr != "" {
		t.Errorf("systemd-analyze verify %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(file), err, stdout, stderr)
	}
	stdout, stderr, err := run("security", "--offline=yes", "--no-pager", file)
	m := exposureLine.FindStringSubmatch(stdout)
	if err != nil || stderr != "" || m == nil {
		t.Fatalf("systemd-analyze security --offline=yes %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(file), err, stdout, stderr)
	}
	if score, _ := strconv.ParseFloat(m[1], 64); score > maxExposure {
		t.Errorf("%s: systemd-analyze security scores its exposure %s, want at most %.1f:\n%s", filepath.Base(file), m[1], maxExposure, stdout)
	}
}

// RenderUnpinned lets Marshal render an empty Ollama release hash, and nothing else: the flag
// never reaches the file, and the config read back is refused.
func TestMarshalRenderUnpinned(t *testing.T) {
	cfg := goldenConfig(true)
	cfg.Ollama.Release.SHA256 = ""
	if _, err := cfg.Marshal(); err == nil || !strings.Contains(err.Error(), "ollama.release.sha256: is empty") {
		t.Errorf("Marshal() of an unpinned release = %v, want a refusal", err)
	}
	cfg.RenderUnpinned = true
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatalf("Marshal() with RenderUnpinned: %v", err)
	}
	if !strings.Contains(string(data), `"sha256": ""`) || strings.Contains(strings.ToLower(string(data)), "unpinned") {
		t.Errorf("rendered config:\n%s\nwant the empty hash and no trace of RenderUnpinned", data)
	}
	path := filepath.Join(t.TempDir(), "node.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path, Options{}); err == nil || !strings.Contains(err.Error(), "sandboxctl pin ollama") {
		t.Errorf("LoadConfig() of the rendered config = %v, want a refusal naming sandboxctl pin ollama", err)
	}
	for name, edit := range map[string]func(*Config){
		"malformed hash": func(c *Config) { c.Ollama.Release.SHA256 = "abc" },
		"plain ftp url":  func(c *Config) { c.Ollama.Release.URL = "ftp://example.com/ollama.tar.zst" },
	} {
		c := goldenConfig(true)
		c.Ollama.Release.SHA256, c.RenderUnpinned = "", true
		edit(c)
		if _, err := c.Marshal(); err == nil || !strings.Contains(err.Error(), "ollama.release") {
			t.Errorf("%s: Marshal() = %v, want a refusal", name, err)
		}
	}
}

// A model's mirror is checked as a node reads it: one source of the model, a manifest pinned
// by its hash, a blobs prefix, and a name the store can hold.
func TestConfigValidatesModelMirror(t *testing.T) {
	sum := strings.Repeat("a", 64)
	mirror := func() *ModelMirror {
		return &ModelMirror{
			Manifest: Artifact{URL: "s3://chem-artifacts/models/manifests/" + sum, SHA256: sum},
			Blobs:    "s3://chem-artifacts/models/blobs/",
		}
	}
	ok := goldenConfig(true)
	ok.Ollama.Models[0].Mirror = mirror()
	if err := ok.Validate(); err != nil {
		t.Fatalf("a model from the mirror: %v", err)
	}
	for name, c := range map[string]struct {
		edit func(*Model)
		want string
	}{
		"with a source":        {func(m *Model) { m.Source = &Artifact{URL: "s3://b/k.gguf", SHA256: sum} }, "models[0].mirror: is set together with source"},
		"unpinned manifest":    {func(m *Model) { m.Mirror.Manifest.SHA256 = "" }, "models[0].mirror.manifest: sha256"},
		"blobs not a prefix":   {func(m *Model) { m.Mirror.Blobs = "s3://chem-artifacts/models/blobs" }, "models[0].mirror.blobs: must be a URL prefix ending in /"},
		"blobs not a URL":      {func(m *Model) { m.Mirror.Blobs = "/models/blobs/" }, "models[0].mirror.blobs"},
		"name with a dot part": {func(m *Model) { m.Name = "llama3.1:.." }, "models[0].mirror: model name"},
	} {
		cfg := goldenConfig(true)
		m := &cfg.Ollama.Models[0]
		m.Mirror = mirror()
		c.edit(m)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate() = %v, want %q", name, err, c.want)
		}
	}
}
