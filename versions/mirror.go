package versions

// ModelPin records one model of the Ollama library as a department's mirror holds it: the
// SHA-256 of its manifest's bytes, which names every blob by digest, so that pinning the
// manifest pins the whole model. A mirrored stack may serve only pinned models; `sandboxctl
// pin model NAME` fetches the manifest from the registry and records it in
// models_pinned.go beside this file.
type ModelPin struct {
	// Manifest is the lowercase hex SHA-256 of the manifest's bytes as the registry served them.
	Manifest string
	// Size is the sum of the sizes of the blobs the manifest lists, in bytes.
	Size int64
	// Pinned is the date the pin was recorded (YYYY-MM-DD).
	Pinned string
}

// WheelFile is one file of the LiteLLM wheelhouse.
type WheelFile struct {
	// Name is the wheel's file name.
	Name string
	// SHA256 is its lowercase hex SHA-256, one of the hashes LiteLLMRequirements lists for it.
	SHA256 string
}

// WheelhousePin records the LiteLLM wheelhouse a mirrored gateway node installs from: the
// wheels of LiteLLMRequirements that pip selects for the nodes' Python and platform, packed
// into a tar.zst in a byte-for-byte reproducible way. `sandboxctl pin wheelhouse` builds it
// and records it in wheelhouse_pinned.go beside this file.
type WheelhousePin struct {
	// Python is the nodes' Python version (X.Y), Ubuntu 24.04's python3.
	Python string
	// Platform is the pip platform tag the wheels are chosen for.
	Platform string
	// Lock is the SHA-256 of LiteLLMRequirements the wheelhouse was built from: a change to
	// the lock makes the pin stale.
	Lock string
	// SHA256 and Size describe the packed tar.zst.
	SHA256 string
	Size   int64
	// Files are the wheels in the archive, sorted by name.
	Files []WheelFile
}
