// Package versions pins the third-party software llm-sandbox installs on nodes, in one place,
// with where each checksum comes from. Go modules are pinned in go.mod; Python packages for
// tests in tools/requirements-*.txt.
package versions

// Release is a pinned upstream release artifact.
type Release struct {
	// Version is the upstream version.
	Version string
	// URL is where the artifact is downloaded from.
	URL string
	// SHA256 is the artifact's lowercase hex SHA-256, copied from the upstream checksum file
	// named in SumsURL. Empty only while it has not been recorded: nodes then verify the
	// artifact against SumsURL, fetched over HTTPS from the same release, at boot.
	SHA256 string
	// SumsURL is the upstream checksum file (sha256sum format) that SHA256 is copied from.
	SumsURL string
}

// Ollama is the Ollama release pool nodes run. 0.35.0 is the floor: it fixes a path traversal
// in /api/pull (CVE-2026-103663); older releases carry further CVEs below 0.17.1.
//
// Where the hash comes from: the release's sha256sum.txt, line "ollama-linux-amd64.tar.zst".
// It is not recorded yet (the machine this pin was written on could not reach the release
// page); record it with
//
//	curl -fsSL https://github.com/ollama/ollama/releases/download/v0.35.1/sha256sum.txt | grep ollama-linux-amd64.tar.zst
var Ollama = Release{
	Version: "0.35.1",
	URL:     "https://github.com/ollama/ollama/releases/download/v0.35.1/ollama-linux-amd64.tar.zst",
	SHA256:  "",
	SumsURL: "https://github.com/ollama/ollama/releases/download/v0.35.1/sha256sum.txt",
}
