// Package ollamastore is Ollama's model store as files: where a model's manifest and blobs
// live under OLLAMA_MODELS, and what a manifest lists. A department's bucket holds each model
// as Ollama stores it, so that a node without internet access copies it into place, checking
// every file against its digest, instead of pulling it from the registry.
//
// The layout is Ollama's own (github.com/ollama/ollama, manifest/paths.go and
// types/model/name.go): manifests/<host>/<namespace>/<model>/<tag> and
// blobs/sha256-<64 hex>, the manifest being the registry's image manifest
// (application/vnd.docker.distribution.manifest.v2+json) whose config and layers name the
// blobs by digest.
package ollamastore

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// The registry models come from, and the namespace and tag a bare name takes, as Ollama
// completes them (types/model/name.go).
const (
	DefaultRegistry  = "registry.ollama.ai"
	DefaultNamespace = "library"
	DefaultTag       = "latest"
)

// ManifestMediaType is what the registry is asked for and what a manifest says it is.
const ManifestMediaType = "application/vnd.docker.distribution.manifest.v2+json"

// part is one component of a model name: Ollama's own part rules are looser (it accepts
// up to 350 characters), this is what a catalog name needs and nothing that could climb
// out of a directory.
var part = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,79}$`)

// Name is a model name split the way Ollama stores it.
type Name struct {
	Namespace, Model, Tag string
}

// ParseName splits "model" or "model:tag", a name of the default registry's library (the
// names the catalog serves: rules.IsOllamaTag allows no namespace or host either).
func ParseName(s string) (Name, error) {
	n := Name{Namespace: DefaultNamespace, Model: s, Tag: DefaultTag}
	if i := strings.LastIndex(s, ":"); i >= 0 {
		n.Model, n.Tag = s[:i], s[i+1:]
	}
	for _, p := range []string{n.Model, n.Tag} {
		if !part.MatchString(p) {
			return Name{}, fmt.Errorf("model name %q: %q is not a name part (letters, digits, '.', '_', '-'; starting with a letter or digit)", s, p)
		}
	}
	return n, nil
}

// String is the name as Ollama lists it: model:tag.
func (n Name) String() string { return n.Model + ":" + n.Tag }

// ManifestPath is the manifest's path under OLLAMA_MODELS, slash-separated.
func (n Name) ManifestPath() string {
	return path.Join("manifests", DefaultRegistry, n.Namespace, n.Model, n.Tag)
}

// RegistryManifestPath is the manifest's path on the registry (OCI distribution API).
func (n Name) RegistryManifestPath() string {
	return path.Join("/v2", n.Namespace, n.Model, "manifests", n.Tag)
}

// RegistryBlobPath is a blob's path on the registry.
func (n Name) RegistryBlobPath(digest string) string {
	return path.Join("/v2", n.Namespace, n.Model, "blobs", digest)
}

// DigestHex returns the hex of a "sha256:<64 lowercase hex>" digest.
func DigestHex(digest string) (string, error) {
	hex, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || !rules.IsSHA256Hex(hex) {
		return "", fmt.Errorf("digest %q: want sha256:<64 lowercase hex>", digest)
	}
	return hex, nil
}

// BlobPath is a blob's path under OLLAMA_MODELS: blobs/sha256-<hex>.
func BlobPath(hex string) string { return path.Join("blobs", BlobFile(hex)) }

// BlobFile is a blob's file name: sha256-<hex>.
func BlobFile(hex string) string { return "sha256-" + hex }

// Layer is one blob a manifest names.
type Layer struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// Manifest is a model's manifest.
type Manifest struct {
	SchemaVersion int     `json:"schemaVersion"`
	MediaType     string  `json:"mediaType"`
	Config        Layer   `json:"config"`
	Layers        []Layer `json:"layers"`
}

// ParseManifest reads a manifest and checks what a copy depends on: every digest well
// formed, every size non-negative, at least one layer.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if len(m.Layers) == 0 {
		return nil, fmt.Errorf("manifest: no layers")
	}
	for _, l := range append([]Layer{m.Config}, m.Layers...) {
		if _, err := DigestHex(l.Digest); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("manifest: blob %s has size %d", l.Digest, l.Size)
		}
	}
	return &m, nil
}

// Blobs are the config and the layers, each digest once, in manifest order.
func (m *Manifest) Blobs() []Layer {
	seen := map[string]bool{}
	var out []Layer
	for _, l := range append([]Layer{m.Config}, m.Layers...) {
		if !seen[l.Digest] {
			seen[l.Digest] = true
			out = append(out, l)
		}
	}
	return out
}

// Size is the bytes of all its blobs.
func (m *Manifest) Size() int64 {
	var n int64
	for _, l := range m.Blobs() {
		n += l.Size
	}
	return n
}
