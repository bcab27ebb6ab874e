package ollamastore

import (
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	for _, c := range []struct {
		in, manifest, registry, str string
	}{
		{"llama3.1:8b", "manifests/registry.ollama.ai/library/llama3.1/8b", "/v2/library/llama3.1/manifests/8b", "llama3.1:8b"},
		{"nomic-embed-text", "manifests/registry.ollama.ai/library/nomic-embed-text/latest", "/v2/library/nomic-embed-text/manifests/latest", "nomic-embed-text:latest"},
		{"model_x:q4_K_M", "manifests/registry.ollama.ai/library/model_x/q4_K_M", "/v2/library/model_x/manifests/q4_K_M", "model_x:q4_K_M"},
	} {
		n, err := ParseName(c.in)
		if err != nil {
			t.Errorf("ParseName(%q): %v", c.in, err)
			continue
		}
		if n.ManifestPath() != c.manifest || n.RegistryManifestPath() != c.registry || n.String() != c.str {
			t.Errorf("ParseName(%q) = %s, %s, %s; want %s, %s, %s", c.in, n.ManifestPath(), n.RegistryManifestPath(), n, c.manifest, c.registry, c.str)
		}
	}
	for _, bad := range []string{"", ":8b", "llama3.1:", "../x:1", "a/../b:1", "x/y/z:1", "someone/model:1", "registry.example.com/a/b:1", "a:..", ".hidden:1", "a b:1", "a/b/c"} {
		if n, err := ParseName(bad); err == nil {
			t.Errorf("ParseName(%q) = %+v, want an error", bad, n)
		}
	}
}

func TestParseManifest(t *testing.T) {
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	good := `{"schemaVersion":2,"mediaType":"` + ManifestMediaType + `",
		"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` + d("a") + `","size":10},
		"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"` + d("b") + `","size":100},
		          {"mediaType":"application/vnd.ollama.image.template","digest":"` + d("c") + `","size":5},
		          {"mediaType":"application/vnd.ollama.image.license","digest":"` + d("b") + `","size":100}]}`
	m, err := ParseManifest([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	blobs := m.Blobs()
	if len(blobs) != 3 || blobs[0].Digest != d("a") || blobs[1].Digest != d("b") || blobs[2].Digest != d("c") {
		t.Errorf("Blobs() = %+v, want config, then each layer's digest once", blobs)
	}
	if m.Size() != 115 {
		t.Errorf("Size() = %d, want 115", m.Size())
	}
	if p := BlobPath(strings.Repeat("b", 64)); p != "blobs/sha256-"+strings.Repeat("b", 64) {
		t.Errorf("BlobPath = %s", p)
	}
	for name, bad := range map[string]string{
		"not JSON":       `{`,
		"no layers":      `{"config":{"digest":"` + d("a") + `"},"layers":[]}`,
		"bad digest":     `{"config":{"digest":"` + d("a") + `"},"layers":[{"digest":"sha256:../../etc/passwd"}]}`,
		"upper-case hex": `{"config":{"digest":"` + d("A") + `"},"layers":[{"digest":"` + d("b") + `"}]}`,
		"other hash":     `{"config":{"digest":"sha512:` + strings.Repeat("a", 64) + `"},"layers":[{"digest":"` + d("b") + `"}]}`,
		"negative size":  `{"config":{"digest":"` + d("a") + `"},"layers":[{"digest":"` + d("b") + `","size":-1}]}`,
	} {
		if _, err := ParseManifest([]byte(bad)); err == nil {
			t.Errorf("%s: ParseManifest accepted %s", name, bad)
		}
	}
}
