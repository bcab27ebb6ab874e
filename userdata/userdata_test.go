package userdata

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/node"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var agent = node.Artifact{
	URL:    "https://llm-sandbox-chemistry-artifacts.s3.ca-central-1.amazonaws.com/agent/sandbox-node-" + sha,
	SHA256: sha,
}

// The configurations the golden files are rendered from: a GPU pool pulling from the registry
// and a CPU pool with a mirrored model.
func sampleConfigs() map[string]*node.Config {
	return map[string]*node.Config{
		"gpu-pool": {
			Role: node.RoleOllama, Department: "chemistry", Pool: "gpu", Region: "ca-central-1",
			Lifecycle: node.Lifecycle{Hook: "chemistry-gpu-launch"},
			Ollama: &node.OllamaConfig{
				Version: "0.35.1",
				Release: node.Artifact{URL: "https://github.com/ollama/ollama/releases/download/v0.35.1/ollama-linux-amd64.tar.zst", SHA256: sha},
				GPU:     true, Port: 11434, Parallel: 4, ContextLength: 8192, MaxQueue: 32,
				Models: []node.Model{{Name: "llama3.1:8b"}, {Name: "phi3:mini"}},
			},
		},
		"cpu-pool-mirror": {
			Role: node.RoleOllama, Department: "dev", Pool: "cpu", Region: "ca-central-1",
			Lifecycle: node.Lifecycle{AutoScalingGroup: "dev-cpu", Hook: "dev-cpu-launch"},
			Ollama: &node.OllamaConfig{
				Version: "0.35.1",
				Release: node.Artifact{URL: "s3://llm-sandbox-dev-artifacts/ollama/0.35.1/ollama-linux-amd64.tar.zst", SHA256: sha},
				Port:    11434, Parallel: 2, ContextLength: 4096, MaxQueue: 16,
				Models: []node.Model{{Name: "qwen2.5:0.5b", Source: &node.Artifact{URL: "s3://llm-sandbox-dev-artifacts/models/qwen2.5-0.5b.gguf", SHA256: sha}}},
			},
		},
	}
}

func TestGolden(t *testing.T) {
	for name, cfg := range sampleConfigs() {
		t.Run(name, func(t *testing.T) {
			got, err := Render(cfg, agent)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".yaml")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./userdata -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("render differs from %s (rerun with -update if the change is meant):\n%s", golden, got)
			}
		})
	}
}

// cloudConfig is the part of the document the tests read back.
type cloudConfig struct {
	WriteFiles []struct {
		Path, Content, Permissions, Owner string
	} `yaml:"write_files"`
	RunCmd [][]string `yaml:"runcmd"`
}

func parse(t *testing.T, doc string) cloudConfig {
	t.Helper()
	if !strings.HasPrefix(doc, "#cloud-config\n") {
		t.Fatal("user data does not start with #cloud-config")
	}
	var cc cloudConfig
	if err := yaml.Unmarshal([]byte(doc), &cc); err != nil {
		t.Fatalf("user data is not YAML: %v", err)
	}
	return cc
}

func file(t *testing.T, cc cloudConfig, path string) string {
	t.Helper()
	for _, f := range cc.WriteFiles {
		if f.Path == path {
			return f.Content
		}
	}
	t.Fatalf("user data writes no %s", path)
	return ""
}

func TestRenderCarriesTheNodeConfigAndStartsTheAgent(t *testing.T) {
	for name, cfg := range sampleConfigs() {
		doc, err := Render(cfg, agent)
		if err != nil {
			t.Fatal(err)
		}
		cc := parse(t, doc)
		var back node.Config
		if err := json.Unmarshal([]byte(file(t, cc, node.ConfigPath)), &back); err != nil {
			t.Fatalf("%s: node config is not JSON: %v", name, err)
		}
		if !reflect.DeepEqual(&back, cfg) {
			t.Errorf("%s: node config in user data differs:\n%+v\n%+v", name, back, *cfg)
		}
		script := file(t, cc, "/usr/local/sbin/llm-sandbox-fetch-agent")
		if !strings.Contains(script, "url='"+agent.URL+"'") || !strings.Contains(script, "want='"+sha+"'") {
			t.Errorf("%s: fetch script does not pin the agent URL and hash:\n%s", name, script)
		}
		// The script abandons the launch lifecycle action itself when the agent cannot be installed.
		if !strings.Contains(script, "hook='"+cfg.Lifecycle.Hook+"'") || !strings.Contains(script, "LifecycleActionResult=ABANDON") {
			t.Errorf("%s: fetch script cannot abandon the launch lifecycle action:\n%s", name, script)
		}
		unit := file(t, cc, "/etc/systemd/system/sandbox-node.service")
		if !strings.Contains(unit, "ExecStart="+AgentPath+" bootstrap --config "+node.ConfigPath) {
			t.Errorf("%s: agent unit does not run bootstrap:\n%s", name, unit)
		}
		want := [][]string{{"/usr/local/sbin/llm-sandbox-fetch-agent"}, {"systemctl", "daemon-reload"}, {"systemctl", "enable", "--now", "--no-block", "sandbox-node.service"}}
		if !reflect.DeepEqual(cc.RunCmd, want) {
			t.Errorf("%s: runcmd %v, want %v", name, cc.RunCmd, want)
		}
		// EC2 takes at most 16 KB of user data.
		if len(doc) > 16*1024 {
			t.Errorf("%s: user data is %d bytes, over EC2's 16 KB", name, len(doc))
		}
		if strings.Contains(strings.ToLower(doc), "sk-") {
			t.Errorf("%s: user data contains something that looks like a key", name)
		}
	}
}

func TestRenderRejectsBadInput(t *testing.T) {
	cfg := sampleConfigs()["gpu-pool"]
	cases := map[string]struct {
		cfg   *node.Config
		agent node.Artifact
		want  string
	}{
		"no config":       {nil, agent, "node config is required"},
		"invalid config":  {&node.Config{Role: "web"}, agent, `role: must be "ollama"`},
		"http agent":      {cfg, node.Artifact{URL: "http://x/agent", SHA256: sha}, "agent URL must be a plain https URL"},
		"quote in URL":    {cfg, node.Artifact{URL: "https://x/a'; rm -rf /'", SHA256: sha}, "agent URL must be a plain https URL"},
		"short agent sha": {cfg, node.Artifact{URL: agent.URL, SHA256: "abc"}, "agent SHA-256 must be 64 lowercase hex digits"},
		"quote in hook":   {withHook(cfg, "launch'; reboot; '"), agent, "lifecycle.hook"},
	}
	for name, c := range cases {
		if _, err := Render(c.cfg, c.agent); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
}

// The real validators run on every render: cloud-init's schema check, shellcheck on the script,
// systemd-analyze on the agent's unit.
func TestValidators(t *testing.T) {
	for _, tool := range []string{"cloud-init", "shellcheck", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: `make tools` installs it", tool)
		}
	}
	// The validators must be able to fail here, or passing them proves nothing.
	bad := t.TempDir()
	write(t, filepath.Join(bad, "user-data"), "#cloud-config\nruncmd: 5\n")
	if out, err := exec.Command("cloud-init", "schema", "--config-file", filepath.Join(bad, "user-data")).CombinedOutput(); err == nil {
		t.Errorf("cloud-init schema accepted an invalid document:\n%s", out)
	}
	write(t, filepath.Join(bad, "x.service"), "[Service]\nExecStart=/bin/true\nNoSuchKey=1\n")
	var badStderr strings.Builder
	check := exec.Command("systemd-analyze", "verify", filepath.Join(bad, "x.service"))
	check.Stderr = &badStderr
	_ = check.Run() // it exits 0 on warnings; what it prints is the verdict
	if badStderr.Len() == 0 {
		t.Error("systemd-analyze verify printed nothing for an unknown key")
	}
	for name, cfg := range sampleConfigs() {
		t.Run(name, func(t *testing.T) {
			doc, err := Render(cfg, agent)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			userData := filepath.Join(dir, "user-data")
			write(t, userData, doc)
			out, err := exec.Command("cloud-init", "schema", "--config-file", userData).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
				t.Errorf("cloud-init schema: %v\n%s", err, out)
			}

			cc := parse(t, doc)
			script := filepath.Join(dir, "fetch-agent")
			write(t, script, file(t, cc, "/usr/local/sbin/llm-sandbox-fetch-agent"))
			if out, err := exec.Command("shellcheck", "--severity=style", script).CombinedOutput(); err != nil {
				t.Errorf("shellcheck: %v\n%s", err, out)
			}

			// systemd-analyze needs the binaries the unit names to exist: point the unit at a
			// stand-in executable in the temporary folder, keeping every other line as rendered.
			agentBin := filepath.Join(dir, "sandbox-node")
			write(t, agentBin, "#!/bin/sh\nexit 0\n")
			if err := os.Chmod(agentBin, 0o755); err != nil {
				t.Fatal(err)
			}
			unitFile := filepath.Join(dir, "sandbox-node.service")
			write(t, unitFile, strings.ReplaceAll(file(t, cc, "/etc/systemd/system/sandbox-node.service"), AgentPath, agentBin))
			cmd := exec.Command("systemd-analyze", "verify", unitFile)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, stderr.String())
			}
		})
	}
}

// withHook is cfg with another launch lifecycle hook name.
func withHook(cfg *node.Config, hook string) *node.Config {
	c := *cfg
	c.Lifecycle.Hook = hook
	return &c
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
