package program

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/node"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// The LiteLLM config.yaml each example stack's gateway nodes render, from the node config the
// plan puts in the gateway's user data: one golden file per stack.
func TestGoldenLiteLLMConfigPerStack(t *testing.T) {
	stacks, err := config.Stacks("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, stack := range stacks {
		t.Run(stack, func(t *testing.T) {
			spec, plan := planExample(t, stack)
			cfg := gatewayNodeConfig(t, plan, spec.Department+"-gateway-lt")
			if cfg.Role != node.RoleLiteLLM || cfg.LiteLLM == nil {
				t.Fatalf("gateway node config is not role litellm: %+v", cfg)
			}
			// Every model of every pool is routed, to its pool's listener port.
			for _, name := range spec.PoolNames() {
				pool := spec.Pools[name]
				for _, m := range pool.Models {
					found := false
					for _, lm := range cfg.LiteLLM.Models {
						if lm.Name == m && strings.HasSuffix(lm.APIBase, ":"+itoa(pool.ListenerPort())) {
							found = true
						}
					}
					if !found {
						t.Errorf("model %s of pool %s is not routed to port %d: %+v", m, name, pool.ListenerPort(), cfg.LiteLLM.Models)
					}
				}
			}
			got, err := node.RenderLiteLLMConfig(cfg.LiteLLM)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "litellm", stack+".config.yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./program -run Golden -update creates it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("config.yaml differs from %s (rerun with -update if meant):\n%s", golden, got)
			}
			// The privacy settings hold in every stack's render.
			for _, s := range []string{"turn_off_message_logging: true", "disable_spend_logs: true", "store_prompts_in_spend_logs: false", "disable_error_logs: true"} {
				if !strings.Contains(string(got), s) {
					t.Errorf("config.yaml lacks %q", s)
				}
			}
		})
	}
}

// gatewayNodeConfig decodes the node config from a launch template's user data in the plan.
func gatewayNodeConfig(t *testing.T, plan *Plan, launchTemplate string) *node.Config {
	t.Helper()
	for _, r := range plan.Resources {
		if r.Type != "aws:ec2/launchTemplate:LaunchTemplate" || r.Name != launchTemplate {
			continue
		}
		var cfg node.Config
		if err := json.Unmarshal([]byte(nodeConfigOf(t, r)), &cfg); err != nil {
			t.Fatal(err)
		}
		return &cfg
	}
	t.Fatalf("no launch template %s with a node config", launchTemplate)
	return nil
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
