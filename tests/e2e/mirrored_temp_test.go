package e2e

// TEMPORARY: copies of components/modelpool.MirroredConfig and
// components/gateway.WheelhouseArtifact, which turn a node config into the one a mirrored
// department's nodes get. Once both are on this branch, the test calls them instead and this
// file goes.

import (
	"slices"

	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// mirroredConfig is components/modelpool.MirroredConfig.
func mirroredConfig(cfg *node.Config, bucket string, pins map[string]versions.ModelPin) *node.Config {
	out := *cfg
	o := *cfg.Ollama
	o.Release = node.Artifact{URL: mirror.S3URL(bucket, mirror.OllamaReleaseKey(o.Release.SHA256)), SHA256: o.Release.SHA256}
	o.Models = slices.Clone(o.Models)
	for i, m := range o.Models {
		sum := pins[m.Name].Manifest
		o.Models[i].Mirror = &node.ModelMirror{
			Manifest: node.Artifact{URL: mirror.S3URL(bucket, mirror.ModelManifestKey(sum)), SHA256: sum},
			Blobs:    mirror.S3URL(bucket, mirror.ModelBlobPrefix),
		}
	}
	out.Ollama = &o
	return &out
}

// wheelhouseArtifact is components/gateway.WheelhouseArtifact.
func wheelhouseArtifact(bucket string, w *versions.WheelhousePin) *node.Artifact {
	return &node.Artifact{URL: mirror.S3URL(bucket, mirror.WheelhouseKey(w.SHA256)), SHA256: w.SHA256}
}
