// Package mirror puts into a department's artifacts bucket everything its nodes would
// otherwise fetch from the internet at boot: the pinned Ollama release, the LiteLLM
// wheelhouse and every model of the stack's pools as Ollama stores it. Objects are
// content-addressed: a key names the SHA-256 of what it holds, so an object once uploaded
// never changes and an upload of an object already present is skipped.
package mirror

import (
	"github.com/llm-sandbox/llm-sandbox/internal/ollamastore"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Prefix is where mirrored objects live in the artifacts bucket.
const Prefix = "mirror/"

// OllamaReleaseKey is the key of the Ollama release whose file has SHA-256 sum.
func OllamaReleaseKey(sum string) string {
	return Prefix + "ollama/" + sum + "/" + versions.OllamaAsset
}

// WheelhouseKey is the key of the LiteLLM wheelhouse whose tar.zst has SHA-256 sum.
func WheelhouseKey(sum string) string {
	return Prefix + "litellm/wheelhouse-" + sum + ".tar.zst"
}

// ModelManifestKey is the key of a model manifest whose bytes have SHA-256 sum.
func ModelManifestKey(sum string) string {
	return Prefix + "models/manifests/" + sum
}

// ModelBlobPrefix is the prefix under which every model blob is stored as sha256-<hex>
// (ollamastore.BlobFile), shared by all models: a blob two models use is stored once.
const ModelBlobPrefix = Prefix + "models/blobs/"

// ModelBlobKey is the key of the blob with SHA-256 hex.
func ModelBlobKey(hex string) string { return ModelBlobPrefix + ollamastore.BlobFile(hex) }

// S3URL is s3://bucket/key, the form node configs name bucket objects in (read with the
// instance role).
func S3URL(bucket, key string) string { return "s3://" + bucket + "/" + key }
