package node

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDocsMatchTheAgent keeps docs/node-agent.md true: each role's steps table lists every
// step in the order the agent runs them with its default timeout, and the files tables name
// every file the agent writes.
func TestDocsMatchTheAgent(t *testing.T) {
	data, err := os.ReadFile("../docs/node-agent.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, role := range []struct {
		section string
		agent   *Agent
	}{
		// The configs a node gets: with the terminating hook, so the serve step is listed.
		{"## Steps (role ollama)", docsAgent(t, drainingConfig(true))},
		{"## Steps (role litellm)", docsAgent(t, drainingLiteLLMConfig())},
	} {
		section := docSection(t, doc, role.section)
		rows := regexp.MustCompile("(?m)^\\| (\\d+) \\| `(\\w+)` \\|.*\\| ([^|]+) \\| [^|]+ \\|$").FindAllStringSubmatch(section, -1)
		steps := role.agent.Steps()
		if len(rows) != len(steps) {
			t.Fatalf("%s: docs list %d steps, the agent runs %d", role.section, len(rows), len(steps))
		}
		for i, s := range steps {
			if rows[i][1] != fmt.Sprint(i+1) || rows[i][2] != s.Name {
				t.Errorf("%s: docs row %d is %s %q, want %d %q", role.section, i, rows[i][1], rows[i][2], i+1, s.Name)
			}
			if want := minutes(s.Timeout); strings.TrimSpace(rows[i][3]) != want {
				t.Errorf("%s: docs give step %s a timeout of %q, the agent %q", role.section, s.Name, rows[i][3], want)
			}
		}
	}
	for _, f := range []string{ServeUnitFile, AgentBinary, TargetLifecycleStatePath, SpotInstanceActionPath, OllamaBinary, OllamaHome, OllamaModelsDir, OllamaEnvFile, OllamaUnitFile, CacheDir, OllamaLogFile, OllamaPidFile, ConfigPath,
		LiteLLMVenv, LiteLLMRequirementsFile, LiteLLMEnvFile, LiteLLMConfigFile, LiteLLMUnitFile, LiteLLMLogFile, LiteLLMPidFile, LiteLLMHealthPath} {
		if !strings.Contains(doc, "`"+f) {
			t.Errorf("docs do not name %s", f)
		}
	}
	for _, v := range OllamaEnv(goldenConfig(true).Ollama) {
		if !strings.Contains(doc, "`"+v.Name) {
			t.Errorf("docs do not mention %s", v.Name)
		}
	}
	for _, v := range LiteLLMEnv() {
		if !strings.Contains(doc, "| `"+v.Name+"` | `"+v.Value+"` |") {
			t.Errorf("docs do not list %s=%s", v.Name, v.Value)
		}
	}
	// Every setting config.yaml renders has a row saying why.
	config, err := RenderLiteLLMConfig(liteLLMGoldenConfig().LiteLLM)
	if err != nil {
		t.Fatal(err)
	}
	section, entry := "", ""
	for _, line := range strings.Split(string(config), "\n") {
		trimmed := strings.TrimLeft(line, " -")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		key, _, _ := strings.Cut(trimmed, ":")
		switch {
		case !strings.HasPrefix(line, " "):
			section = key
			continue
		case key == "litellm_params" || key == "model_info":
			entry = key
			continue
		}
		name := section + "." + key
		if section == "model_list" {
			name = "model_list[]." + key
			if key != "model_name" {
				name = "model_list[]." + entry + "." + key
			}
		}
		if !strings.Contains(doc, "| `"+name+"` |") {
			t.Errorf("docs do not explain config.yaml's %s", name)
		}
	}
	for _, key := range []string{"wheelhouse", "port", "workers", "masterKeySecretArn", "models", "requestTimeoutSeconds", "streamTimeoutSeconds", "keepAliveSeconds", "numRetries"} {
		if !strings.Contains(doc, "| `"+key+"` |") {
			t.Errorf("docs do not document the litellm key %s", key)
		}
	}
	p := DefaultRetry()
	if !strings.Contains(doc, fmt.Sprintf("%d attempts, waiting %s, %s, %s, %s", p.Attempts, secs(p.Initial), secs(2*p.Initial), secs(4*p.Initial), secs(8*p.Initial))) {
		t.Errorf("docs do not state the retry policy %+v", p)
	}
}

// docSection returns the text from a heading to the next heading of the same level.
func docSection(t *testing.T, doc, heading string) string {
	t.Helper()
	i := strings.Index(doc, heading+"\n")
	if i < 0 {
		t.Fatalf("docs have no %q section", heading)
	}
	rest := doc[i+len(heading):]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

func docsAgent(t *testing.T, cfg *Config) *Agent {
	t.Helper()
	a, err := New(t.Context(), cfg, Options{Lifecycle: &fakeLifecycle{}, Runner: &fakeRunner{}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// drainingLiteLLMConfig is liteLLMGoldenConfig as the Gateway component renders it: with the
// terminating hook and LiteLLM behind the accounting proxy.
func drainingLiteLLMConfig() *Config {
	c := liteLLMGoldenConfig()
	c.Lifecycle.TerminateHook, c.Lifecycle.DrainSeconds = "llm-sandbox-terminate", 3600
	c.LiteLLM.BackendPort = LiteLLMBackendPort
	return c
}

func minutes(d time.Duration) string { return fmt.Sprintf("%d min", int(d.Minutes())) }

func secs(d time.Duration) string { return fmt.Sprintf("%d s", int(d.Seconds())) }
