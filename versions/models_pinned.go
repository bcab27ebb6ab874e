// Code written by `sandboxctl pin model`: edit it with that command, not by hand.

package versions

// ModelPins are the models a mirrored department may serve (network.nat
// none), by Ollama tag: the SHA-256 of each one's manifest as the Ollama registry served it,
// which names every blob by digest, so nodes copy from the bucket only the files the manifest
// pinned here names. Add a model, or re-pin one, on a machine with internet access:
//
//	sandboxctl pin model llama3.1:8b [NAME...]
//
// It fetches each manifest from the registry and records it here, keeping the other entries;
// review the change and commit it.
var ModelPins = map[string]ModelPin{}
