package e2e

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/llm-sandbox/llm-sandbox/components/gateway"
	"github.com/llm-sandbox/llm-sandbox/components/modelpool"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror/mirrortest"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// TestAirgapBoot boots the nodes of a department without a NAT (network.nat: none) from its
// mirror alone. The whole test runs in a network namespace of its own where only loopback
// exists, so no node can reach any host but the emulator and its own neighbours on 127.0.0.1.
//
// The deploying machine's side first: upstream stand-ins on loopback serve the Ollama release
// (the real Ollama packed as its release asset) and the real tiny model as the registry serves
// it (the manifest and blobs a real Ollama wrote); the LiteLLM wheelhouse is built from the
// local wheels of the pinned lock for this machine's Python, and pinned. mirror.Sync, as the
// deploy runs it, fetches all of it into the cache, checked against the pins, and uploads it
// into the artifacts bucket in the emulator's S3. Then every upstream stand-in is stopped; a
// second upload sends nothing, and a second sync from an empty cache fetches nothing.
//
// Then the nodes: a pool node and a gateway node whose configs are the mirrored forms the
// deploy renders (only s3:// URLs of the bucket, and the pool's address for the gateway) boot
// with the real agent, each completing its lifecycle action with CONTINUE, and a chat
// completion goes through LiteLLM to Ollama. A pool node whose bucket lacks one blob of the
// model abandons.
func TestAirgapBoot(t *testing.T) {
	h := localruntest.RequireLiteLLM(t)
	localruntest.RequireMoto(t)
	if !localruntest.Isolated(t) {
		return
	}
	pip := mirrortest.PipEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mirror progress:\n%s", progress.String())
		}
	})

	// The deployment without its wheelhouse: the gateway gets the mirrored one below.
	hd := h
	hd.LiteLLMWheels = ""
	d := localruntest.NewDeployment(t, hd)

	// The real tiny model as a real Ollama stores it: what the registry would serve.
	source := d.StartOllama(t, "chemistry-cpu-source", localrun.OllamaOptions{})
	stored := localruntest.ReadStoredModel(t, source.Node, modelName)
	source.StopAll(t)

	upstream := mirrortest.NewServer(t)
	releaseData, err := os.ReadFile(filepath.Join(d.Work, versions.OllamaAsset))
	if err != nil {
		t.Fatal(err)
	}
	release := upstream.AddRelease(h.OllamaVersion, releaseData)
	if release.SHA256 != d.Release.SHA256 {
		t.Fatalf("the upstream release has sha256 %s, the deployment's %s", release.SHA256, d.Release.SHA256)
	}
	model := upstream.AddStoredModel(t, modelName, stored.Manifest, stored.Blobs)
	pins := map[string]versions.ModelPin{modelName: model.Pin}

	// The wheelhouse pin for this machine's Python (the repository's pin is for the nodes'
	// Python 3.12), built as `sandboxctl pin wheelhouse` builds it and left in the cache.
	cache := filepath.Join(d.Work, "mirror-cache")
	src := mirror.Sources{Registry: upstream.URL, Pip: pip, PipFindLinks: h.LiteLLMWheels}
	wheelhouse, archive, err := mirror.BuildWheelhouse(ctx, src, pythonVersion(t), mirror.NodePlatform, t.TempDir(), &progress)
	if err != nil {
		t.Fatalf("build the wheelhouse: %v", err)
	}
	if _, err := mirror.StoreInCache(cache, archive, wheelhouse.SHA256); err != nil {
		t.Fatal(err)
	}

	// mirror.NewSet would refuse the release: the Ollama these tests build is older than the
	// floor nodes enforce (agents under --root accept it). The set is what NewSet returns.
	set := mirror.Set{Ollama: release, Wheelhouse: &wheelhouse, Models: []mirror.Model{{Name: modelName, Pin: model.Pin}}}
	s3c := d.Moto.S3()
	const bucket = "chemistry-artifacts"
	const incomplete = "chemistry-artifacts-incomplete"
	for _, b := range []string{bucket, incomplete} {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatalf("moto: create bucket %s: %v", b, err)
		}
	}
	// What the deploy runs: the empty bucket lacks everything, so Sync fetches and uploads
	// the release, the wheelhouse, the manifest and each blob.
	objects := 3 + len(stored.Blobs)
	if r, err := mirror.Sync(ctx, s3c, bucket, set, src, cache, &progress); err != nil || r.Uploaded != objects || r.Skipped != 0 {
		t.Fatalf("mirror.Sync: %+v, %v; want %d objects uploaded", r, err, objects)
	}
	for _, p := range []string{strings.TrimPrefix(release.URL, upstream.URL), model.ManifestPath()} {
		if upstream.Requests(p) != 1 {
			t.Errorf("mirror.Sync asked the upstream stand-in %d times for %s, want once", upstream.Requests(p), p)
		}
	}

	// The incomplete bucket, for a pool node only, holds the release and the model but for
	// its weights, its largest blob. Fetch finds everything in the cache.
	upstream.ResetRequests()
	fetched, err := mirror.Fetch(ctx, set, src, cache, &progress)
	if err != nil || len(fetched) != objects {
		t.Fatalf("mirror.Fetch from the cache: %d objects, %v; want %d", len(fetched), err, objects)
	}
	if n := upstream.Requests(""); n != 0 {
		t.Errorf("mirror.Fetch asked the upstream stand-in %d times for what the cache holds", n)
	}
	var weights mirror.Fetched
	for _, f := range fetched {
		if strings.HasPrefix(f.Key, mirror.ModelBlobPrefix) && f.Size > weights.Size {
			weights = f
		}
	}
	partial := slices.DeleteFunc(slices.Clone(fetched), func(f mirror.Fetched) bool {
		return f.Key == weights.Key || f.Key == mirror.WheelhouseKey(wheelhouse.SHA256)
	})
	if _, err := mirror.Upload(ctx, s3c, incomplete, partial, &progress); err != nil {
		t.Fatalf("mirror.Upload to %s: %v", incomplete, err)
	}

	// From here on nothing but the emulator serves: a node that reaches for anything else
	// fails to boot.
	upstream.Close()
	d.Mirror.Close()
	// Uploaded again, every object is there already and nothing is sent; synced again, from a
	// machine with an empty cache and no upstream, nothing is fetched or sent.
	if r, err := mirror.Upload(ctx, s3c, bucket, fetched, &progress); err != nil || r.Uploaded != 0 || r.Skipped != objects || r.Bytes != 0 {
		t.Errorf("the second mirror.Upload: %+v, %v; want all %d objects skipped", r, err, objects)
	}
	if r, err := mirror.Sync(ctx, s3c, bucket, set, src, t.TempDir(), &progress); err != nil || r.Uploaded != 0 || r.Skipped != objects {
		t.Errorf("the second mirror.Sync: %+v, %v; want all %d objects there already", r, err, objects)
	}

	// A pool node with the config the deploy renders for a mirrored department, from
	// bucket: a pool's models come from the registry unless mirrored, so the tiny model's
	// GGUF source goes. It returns the node and the agent's exit code.
	bootPool := func(t *testing.T, group, bucket string) (*localruntest.Member, int) {
		t.Helper()
		m := d.NewMember(t, group, localruntest.OllamaHook)
		cfg := d.OllamaConfig(m, d.Release, localrun.OllamaOptions{})
		for i := range cfg.Ollama.Models {
			cfg.Ollama.Models[i].Source = nil
		}
		path := m.WriteConfig(t, *modelpool.MirroredConfig(&cfg, bucket, pins))
		assertOnlyFrom(t, path, bucket)
		return m, m.Bootstrap(t, path, localrun.BootstrapLimit)
	}
	pool, code := bootPool(t, "chemistry-cpu", bucket)
	if code != 0 {
		t.Fatalf("sandbox-node bootstrap (ollama) exited %d, want 0", code)
	}
	assertRecords(t, d, pool, "CONTINUE")

	t.Run("boot", func(t *testing.T) {
		t.Run("gateway serves through the pool", func(t *testing.T) {
			t.Parallel()
			masterKey := "sk-" + localrun.RandomAlphanumeric(t, 48)
			arn := d.Moto.CreateSecret(t, "llm-sandbox/chemistry/litellm-master-key", masterKey)
			gw := d.NewMember(t, "chemistry-gateway", localruntest.GatewayHook)
			cfg := d.LiteLLMConfig(gw, localrun.GatewayOptions{MasterKeySecretArn: arn, OllamaURL: pool.URL()})
			cfg.LiteLLM.Wheelhouse = gateway.WheelhouseArtifact(bucket, &wheelhouse)
			path := gw.WriteConfig(t, cfg)
			assertOnlyFrom(t, path, bucket, pool.URL())
			if code := gw.Bootstrap(t, path, localrun.BootstrapLimit); code != 0 {
				t.Fatalf("sandbox-node bootstrap (litellm) exited %d, want 0", code)
			}
			assertRecords(t, d, gw, "CONTINUE")

			localruntest.Chat(t, gw.URL()+"/v1/chat/completions", masterKey, map[string]any{
				"model": modelName, "messages": []map[string]string{{"role": "user", "content": "Ready?"}}, "max_tokens": 8, "temperature": 0,
			})
			localruntest.AssertNoReachOut(t, pool.Node)
			localruntest.AssertNoReachOut(t, gw.Node)
		})
		t.Run("a missing blob abandons", func(t *testing.T) {
			t.Parallel()
			n, code := bootPool(t, "chemistry-cpu-incomplete", incomplete)
			if code != 1 {
				t.Fatalf("sandbox-node bootstrap exited %d, want 1 (ABANDON)", code)
			}
			assertRecords(t, d, n, "ABANDON")
			console, _ := os.ReadFile(n.Console)
			if !regexp.MustCompile(`step models\b.*fail`).Match(console) || !bytes.Contains(console, []byte(weights.SHA256)) {
				t.Errorf("the console log does not name the models step and the missing blob %s:\n%s", weights.SHA256, console)
			}
		})
	})
}

// pythonVersion is python3's X.Y: the interpreter the gateway node makes LiteLLM's venv with.
func pythonVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("python3", "-c", `import sys; print("%d.%d" % sys.version_info[:2])`).Output()
	if err != nil {
		t.Fatalf("python3 version: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// urlPattern finds the URLs in a node config.
var urlPattern = regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^\s"]*`)

// assertOnlyFrom fails t unless every URL in the node config at path is an s3:// URL of
// bucket or starts with one of the allowed bases.
func assertOnlyFrom(t *testing.T, path, bucket string, allowed ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	urls := urlPattern.FindAllString(string(data), -1)
	if len(urls) == 0 {
		t.Fatalf("%s names no URL", path)
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			t.Errorf("%s: %q is not a URL: %v", path, raw, err)
		case u.Scheme == "s3" && u.Host == bucket:
		case slices.ContainsFunc(allowed, func(base string) bool { return raw == base || strings.HasPrefix(raw, base+"/") }):
		default:
			t.Errorf("%s names %s, which is neither in bucket %s nor one of %v", path, raw, bucket, allowed)
		}
	}
}

// assertRecords fails t unless m's group has exactly one lifecycle action, with result.
func assertRecords(t *testing.T, d *localruntest.Deployment, m *localruntest.Member, result string) {
	t.Helper()
	want := []localruntest.LifecycleRecord{{Group: m.Group, Hook: m.Hook, Instance: m.Instance, Result: result}}
	if got := d.Moto.Records(t, m.Group); !slices.Equal(got, want) {
		t.Errorf("lifecycle actions for %s: got %+v, want exactly %+v", m.Group, got, want)
	}
}
