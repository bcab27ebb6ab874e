package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/internal/ollamastore"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// TestModelFromTheBucket bootstraps pool nodes whose model comes from the department's bucket
// as Ollama stores it (manifest and blobs, in the emulator's S3), never from the registry. The
// files are the real Ollama's own: a first node creates the tiny model and its store is
// uploaded. A second node copies it into place and serves it, preloaded, and continues; run
// again it downloads nothing. A third, whose bucket holds a blob with one byte flipped,
// refuses it, writes no manifest, and abandons.
func TestModelFromTheBucket(t *testing.T) {
	h := localruntest.Require(t)
	d := localruntest.NewDeployment(t, h)

	source := d.StartOllama(t, "chemistry-cpu-source", localrun.OllamaOptions{})
	stored := localruntest.ReadStoredModel(t, source.Node, modelName)
	name, err := ollamastore.ParseName(modelName)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := ollamastore.ParseManifest(stored.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	manifestData := stored.Manifest
	source.StopAll(t)

	// The bucket: the manifest under the SHA-256 of its bytes, the blobs under their digests.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := d.Moto.S3()
	const bucket = "chemistry-artifacts"
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("moto: create bucket: %v", err)
	}
	put := func(key string, data []byte) {
		t.Helper()
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
			t.Fatalf("moto: put %s: %v", key, err)
		}
	}
	sum := sha256.Sum256(manifestData)
	manifestSum := hex.EncodeToString(sum[:])
	for _, prefix := range []string{"good", "corrupt"} {
		put(prefix+"/manifests/"+manifestSum, manifestData)
		for i, l := range manifest.Blobs() {
			digestHex, _ := ollamastore.DigestHex(l.Digest)
			data := stored.Blobs[digestHex]
			if prefix == "corrupt" && i == len(manifest.Blobs())-1 {
				data = bytes.Clone(data)
				data[len(data)/2] ^= 0xff
			}
			put(prefix+"/blobs/"+ollamastore.BlobFile(digestHex), data)
		}
	}
	fromBucket := func(m *localruntest.Member, prefix string) string {
		cfg := d.OllamaConfig(m, d.Release, localrun.OllamaOptions{})
		cfg.Ollama.Models[0].Source = nil
		cfg.Ollama.Models[0].Mirror = &node.ModelMirror{
			Manifest: node.Artifact{URL: "s3://" + bucket + "/" + prefix + "/manifests/" + manifestSum, SHA256: manifestSum},
			Blobs:    "s3://" + bucket + "/" + prefix + "/blobs/",
		}
		return m.WriteConfig(t, cfg)
	}

	t.Run("copied, served and continued", func(t *testing.T) {
		n := d.NewMember(t, "chemistry-cpu-mirror", hookName)
		cfg := fromBucket(n, "good")
		if code := n.Bootstrap(t, cfg, 5*time.Minute); code != 0 {
			t.Fatalf("sandbox-node bootstrap exited %d, want 0\n%s", code, n.Stderr.String())
		}
		copied := filepath.Join(n.Root, node.OllamaModelsDir)
		if got, err := os.ReadFile(filepath.Join(copied, filepath.FromSlash(name.ManifestPath()))); err != nil || !bytes.Equal(got, manifestData) {
			t.Errorf("the copied manifest differs from the source's (err %v)", err)
		}
		assertLoaded(t, n.URL())
		reply := localruntest.PostJSON(t, n.URL()+"/v1/chat/completions", "", map[string]any{
			"model": modelName, "messages": []map[string]string{{"role": "user", "content": "Ready?"}}, "max_tokens": 8, "temperature": 0,
		})
		if !strings.Contains(string(reply), `"content"`) {
			t.Errorf("/v1/chat/completions through the copied model: %s", reply)
		}
		want := []localruntest.LifecycleRecord{{Group: n.Group, Hook: hookName, Instance: n.Instance, Result: "CONTINUE"}}
		if got := d.Moto.Records(t, n.Group); !slices.Equal(got, want) {
			t.Errorf("lifecycle actions: got %+v, want %+v", got, want)
		}
		log := n.Stderr.String()
		if !strings.Contains(log, "copied from the mirror") || strings.Contains(log, "pulling") {
			t.Errorf("the step log does not show a copy from the mirror alone:\n%s", log)
		}

		// Again, on the same root: the model is present, nothing is downloaded.
		if code := n.Bootstrap(t, cfg, 5*time.Minute); code != 0 {
			t.Fatalf("second bootstrap exited %d, want 0\n%s", code, n.Stderr.String())
		}
		if log := n.Stderr.String(); !strings.Contains(log, modelName+" already present") || strings.Contains(log, "blob sha256:") {
			t.Errorf("the second bootstrap did not find the model present, or downloaded a blob:\n%s", log)
		}
	})

	t.Run("corrupt blob abandons", func(t *testing.T) {
		n := d.NewMember(t, "chemistry-cpu-mirror-corrupt", hookName)
		if code := n.Bootstrap(t, fromBucket(n, "corrupt"), 5*time.Minute); code != 1 {
			t.Fatalf("sandbox-node bootstrap exited %d, want 1 (ABANDON)\n%s", code, n.Stderr.String())
		}
		want := []localruntest.LifecycleRecord{{Group: n.Group, Hook: hookName, Instance: n.Instance, Result: "ABANDON"}}
		if got := d.Moto.Records(t, n.Group); !slices.Equal(got, want) {
			t.Errorf("lifecycle actions: got %+v, want %+v", got, want)
		}
		if _, err := os.Stat(filepath.Join(n.Root, node.OllamaModelsDir, filepath.FromSlash(name.ManifestPath()))); err == nil {
			t.Errorf("a manifest was written although a blob failed its digest")
		}
		console, _ := os.ReadFile(n.Console)
		if !regexp.MustCompile(`step models\b.*fail`).Match(console) || !regexp.MustCompile(`(?i)sha-?256|checksum`).Match(console) {
			t.Errorf("the console log does not name the models step and the checksum:\n%s", console)
		}
	})
}
