package config

import (
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/versions"
)

// TestMirrorFollowsTheNetwork checks when a stack's artifacts are mirrored: always without a
// NAT, on request with one, and only with every model of the pools pinned.
func TestMirrorFollowsTheNetwork(t *testing.T) {
	saved := versions.ModelPins
	t.Cleanup(func() { versions.ModelPins = saved })
	versions.ModelPins = map[string]versions.ModelPin{
		"llama3.1:8b": {Manifest: strings.Repeat("a", 64), Size: 4920753328, Pinned: "2026-12-05"},
	}
	for _, tc := range []struct {
		nat, artifacts, models string
		mirror                 bool
		want                   string // a problem, "" for none
	}{
		{nat: "single", mirror: false},
		{nat: "single", artifacts: `{"mirror":false}`, mirror: false},
		{nat: "single", artifacts: `{"mirror":true}`, mirror: true},
		{nat: "perAz", artifacts: `{}`, mirror: false},
		{nat: "none", mirror: true},
		{nat: "none", artifacts: `{"mirror":true}`, mirror: true},
		{nat: "none", artifacts: `{"mirror":false}`, want: "artifacts.mirror: must be true or absent with network.nat none"},
		{nat: "none", models: `["llama3.1:8b","qwen2.5:7b"]`, want: `pools.gpu.models[1]: network.nat is none, so nodes load models only from the department's bucket, and "qwen2.5:7b" has no pinned manifest to mirror: run ` + "`sandboxctl pin model qwen2.5:7b`"},
		{nat: "single", artifacts: `{"mirror":true}`, models: `["qwen2.5:7b"]`, want: `pools.gpu.models[0]: artifacts.mirror is true, so`},
		{nat: "single", models: `["qwen2.5:7b"]`, mirror: false}, // not mirrored: no pin needed
	} {
		models := tc.models
		if models == "" {
			models = `["llama3.1:8b"]`
		}
		values := Values{
			"aws:region":             "ca-central-1",
			"llm-sandbox:department": "history",
			"llm-sandbox:network":    `{"cidr":"10.50.0.0/16","nat":"` + tc.nat + `"}`,
			"llm-sandbox:access":     `{"mode":"internal","plainHttp":true}`,
			"llm-sandbox:pools":      `{"gpu":{"models":` + models + `}}`,
		}
		if tc.artifacts != "" {
			values["llm-sandbox:artifacts"] = tc.artifacts
		}
		name := tc.nat + " " + tc.artifacts + " " + models
		spec, err := Parse("history", "stacks/Pulumi.history.yaml", values)
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: want a problem %q, got %v", name, tc.want, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if spec.Artifacts.Mirror != tc.mirror {
			t.Errorf("%s: Artifacts.Mirror = %v, want %v", name, spec.Artifacts.Mirror, tc.mirror)
		}
	}
}
