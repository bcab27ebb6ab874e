package localruntest

import (
	"os"
	"path/filepath"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/ollamastore"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// StoredModel is one model as an Ollama store holds it.
type StoredModel struct {
	// Manifest is the manifest's bytes.
	Manifest []byte
	// Blobs are the config and the layers the manifest names, by hex digest.
	Blobs map[string][]byte
}

// ReadStoredModel reads model name (an Ollama tag) from the Ollama store under n's root, the
// real Ollama's own files for a model it created or pulled: the manifest and every blob it
// names.
func ReadStoredModel(t T, n *localrun.Node, name string) StoredModel {
	t.Helper()
	parsed, err := ollamastore.ParseName(name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	store := filepath.Join(n.Root, node.OllamaModelsDir)
	data, err := os.ReadFile(filepath.Join(store, filepath.FromSlash(parsed.ManifestPath())))
	if err != nil {
		t.Fatalf("the node's Ollama store has no manifest for %s: %v", name, err)
	}
	manifest, err := ollamastore.ParseManifest(data)
	if err != nil {
		t.Fatalf("the node's manifest of %s: %v", name, err)
	}
	m := StoredModel{Manifest: data, Blobs: map[string][]byte{}}
	for _, l := range manifest.Blobs() {
		sum, err := ollamastore.DigestHex(l.Digest)
		if err != nil {
			t.Fatalf("the node's manifest of %s: %v", name, err)
		}
		blob, err := os.ReadFile(filepath.Join(store, filepath.FromSlash(ollamastore.BlobPath(sum))))
		if err != nil {
			t.Fatalf("the node's Ollama store lacks blob %s of %s: %v", l.Digest, name, err)
		}
		m.Blobs[sum] = blob
	}
	return m
}
