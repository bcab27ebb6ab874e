package program

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/sandbox"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// airGapped is the dev example with network.nat none (which implies the mirror), and a pin for
// its model: the project pins none yet, and validation refuses an unpinned model, so the Spec
// is changed after loading.
func airGapped(t *testing.T) (*config.Spec, map[string]versions.ModelPin) {
	t.Helper()
	spec, err := config.Load("..", "dev")
	if err != nil {
		t.Fatal(err)
	}
	spec.Network.NAT, spec.Artifacts.Mirror = config.NATNone, true
	pins := map[string]versions.ModelPin{
		"qwen2.5:0.5b": {Manifest: strings.Repeat("ab", 32), Size: 397_000_000, Pinned: "2026-12-05"},
	}
	return spec, pins
}

// urlsIn returns every URL with a scheme in s.
func urlsIn(s string) []string {
	return regexp.MustCompile(`[a-z0-9]+://[^"\s]+`).FindAllString(s, -1)
}

// A mirrored stack's nodes name only the bucket: the pool's release and model, and the
// gateway's wheelhouse, are s3:// objects under mirror/, and no node config names GitHub, PyPI
// or the registry. The plan lists the mirror's objects and the interface endpoints.
func TestMirroredStackNamesOnlyTheBucket(t *testing.T) {
	spec, pins := airGapped(t)
	ollama := versions.Ollama
	plan, err := PlanWith(spec, "..", &sandbox.SandboxArgs{OllamaRelease: &ollama, ModelPins: pins})
	if err != nil {
		t.Fatal(err)
	}
	bucket := ""
	for _, b := range plan.ByType("aws:s3/bucketV2:BucketV2") {
		if strings.HasSuffix(b.Name, "-artifacts-bucket") {
			bucket = b.ID
		}
	}
	if bucket == "" {
		t.Fatal("no artifacts bucket in the plan")
	}
	want := map[string]string{ // role: URLs its node config must name
		"ollama": "s3://" + bucket + "/" + mirror.OllamaReleaseKey(versions.Ollama.SHA256) + " " +
			"s3://" + bucket + "/" + mirror.ModelManifestKey(pins["qwen2.5:0.5b"].Manifest) + " " +
			"s3://" + bucket + "/" + mirror.ModelBlobPrefix,
		"litellm": "s3://" + bucket + "/" + mirror.WheelhouseKey(versions.Wheelhouse.SHA256),
	}
	seen := map[string]bool{}
	for _, lt := range plan.ByType("aws:ec2/launchTemplate:LaunchTemplate") {
		cfg := nodeConfigOf(t, lt)
		role := "litellm"
		if strings.Contains(cfg, `"role": "ollama"`) {
			role = "ollama"
		}
		seen[role] = true
		for _, u := range strings.Fields(want[role]) {
			if !strings.Contains(cfg, `"`+u) {
				t.Errorf("%s (%s): the node config does not name %s:\n%s", lt.Name, role, u, cfg)
			}
		}
		for _, u := range urlsIn(cfg) {
			if !strings.HasPrefix(u, "s3://"+bucket+"/"+mirror.Prefix) && !strings.Contains(u, ".internal") && !strings.Contains(u, ".elb.") && !strings.Contains(u, "127.0.0.1") {
				t.Errorf("%s (%s): the node config names %s, outside the mirror", lt.Name, role, u)
			}
		}
	}
	if !seen["ollama"] || !seen["litellm"] {
		t.Fatalf("launch templates of roles %v, want both", seen)
	}

	keys := []string{}
	for _, a := range plan.Mirror {
		keys = append(keys, a.Key)
	}
	wantKeys := []string{mirror.OllamaReleaseKey(versions.Ollama.SHA256), mirror.ModelManifestKey(pins["qwen2.5:0.5b"].Manifest), mirror.WheelhouseKey(versions.Wheelhouse.SHA256)}
	for _, k := range wantKeys {
		if !strings.Contains(strings.Join(keys, " "), k) {
			t.Errorf("plan.Mirror %q lacks %s", keys, k)
		}
	}
	services := map[string]string{}
	for _, e := range plan.Endpoints {
		services[e.Service] = e.Kind
	}
	for _, s := range []string{"s3", "dynamodb", "secretsmanager", "autoscaling", "monitoring", "ssm"} {
		if services[s] == "" {
			t.Errorf("plan.Endpoints %v lacks %s", services, s)
		}
	}
	var text bytes.Buffer
	if err := plan.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Mirror (artifacts.mirror)", mirror.WheelhouseKey(versions.Wheelhouse.SHA256), "model qwen2.5:0.5b manifest", "secretsmanager", "Interface"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("the text plan lacks %q", s)
		}
	}
	for _, f := range plan.Check() {
		if f.Rule == "airgap-no-internet-route" {
			t.Errorf("the air-gapped plan fails its own rule: %v", f)
		}
	}

	// Without the mirror, the same stack names the internet and lists no mirror.
	spec.Network.NAT, spec.Artifacts.Mirror = config.NATSingle, false
	plain, err := PlanWith(spec, "..", &sandbox.SandboxArgs{OllamaRelease: &ollama, ModelPins: pins})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Mirror) != 0 || len(plain.Endpoints) != 2 {
		t.Errorf("without the mirror: %d mirror objects, endpoints %+v; want none and the two gateway endpoints", len(plain.Mirror), plain.Endpoints)
	}
}

// An update calls the uploader once with the bucket's name and the stack's set before the
// launch templates are rendered, and fails when it fails; a preview calls nothing.
func TestUpdateUploadsTheMirrorFirst(t *testing.T) {
	spec, pins := airGapped(t)
	ollama := versions.Ollama
	for _, tc := range []struct {
		name      string
		dryRun    bool
		fail      error
		wantCalls int
	}{
		{"update", false, nil, 1},
		{"preview", true, nil, 0},
		{"failed upload", false, errors.New("access denied"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			var set mirror.Set
			upload := func(_ context.Context, bucket string, s mirror.Set) error {
				calls = append(calls, bucket)
				set = s
				return tc.fail
			}
			m := mockaws.New(spec.Region)
			body := func(ctx *pulumi.Context) error {
				_, err := build(ctx, spec, "..", &sandbox.SandboxArgs{OllamaRelease: &ollama, ModelPins: pins, UploadMirror: upload})
				return err
			}
			err := pulumi.RunErr(body, pulumi.WithMocks(Project, spec.Stack, m), func(info *pulumi.RunInfo) { info.DryRun = tc.dryRun })
			if len(calls) != tc.wantCalls {
				t.Fatalf("uploader called %d times (%v), want %d", len(calls), calls, tc.wantCalls)
			}
			if tc.fail != nil {
				if err == nil || !strings.Contains(err.Error(), "upload the mirror to bucket "+calls[0]) || !strings.Contains(err.Error(), "access denied") {
					t.Errorf("a failed upload: err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantCalls == 1 && (!strings.HasPrefix(calls[0], "llm-dev-") || len(set.Models) != 1 || set.Wheelhouse == nil) {
				t.Errorf("uploader got bucket %q and set %+v", calls[0], set)
			}
		})
	}
}
