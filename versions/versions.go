// Package versions pins the third-party software llm-sandbox installs on nodes, in one place,
// with where each checksum comes from. Go modules are pinned in go.mod; Python packages for
// tests in tools/requirements-*.txt; LiteLLM, which nodes install, in litellm-requirements.txt
// beside this file (embedded as LiteLLMRequirements).
package versions

import (
	_ "embed" // LiteLLMRequirements
	"fmt"
	"regexp"
	"strconv"

	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// Release is a pinned upstream release artifact.
type Release struct {
	// Version is the upstream version.
	Version string
	// URL is where the artifact is downloaded from.
	URL string
	// SHA256 is the artifact's lowercase hex SHA-256, recorded in this file and reviewed with
	// it. Nodes check the artifact against it and against nothing else: a node never takes a
	// hash from the place it takes the file from. An empty SHA256 is refused everywhere that
	// deploys (see CheckOllama).
	SHA256 string
	// SumsURL is the upstream checksum file (sha256sum format) that `sandboxctl pin` reads
	// SHA256 from. It records provenance for the reviewer; nothing fetches it at boot.
	SumsURL string
}

// Ollama is the Ollama release pool nodes run. OllamaFloor says why 0.35.0 is the lowest.
//
// Where the hash comes from: it is the SHA-256 of ollama-linux-amd64.tar.zst of v0.35.1 as two
// independent public sources record it, a Homebrew formula for ollama 0.35.1 and a Dockerfile
// that checks the downloaded file with `sha256sum -c`. The release's own sha256sum.txt
// (SumsURL) could not be read where this pin was written. On a machine with internet access,
//
//	sandboxctl pin ollama 0.35.1
//
// reads that file and rewrites this entry from it: an unchanged file confirms the hash.
var Ollama = Release{
	Version: "0.35.1",
	URL:     "https://github.com/ollama/ollama/releases/download/v0.35.1/ollama-linux-amd64.tar.zst",
	SHA256:  "9fcd79ac4575b2bd31b992eee18b1000c8ad126b451627c8f8cd091714cfbb10",
	SumsURL: "https://github.com/ollama/ollama/releases/download/v0.35.1/sha256sum.txt",
}

const (
	// OllamaFloor is the lowest Ollama release nodes may run: 0.35.0 fixes a path traversal
	// in /api/pull (CVE-2026-103663); older releases carry further CVEs below 0.17.1.
	OllamaFloor = "0.35.0"
	// OllamaAsset is the file of an Ollama release that nodes install.
	OllamaAsset = "ollama-linux-amd64.tar.zst"
	// OllamaReleases is where Ollama publishes its releases: <OllamaReleases>/v<version>/<file>.
	OllamaReleases = "https://github.com/ollama/ollama/releases/download"
)

var (
	semver = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)
)

// AtLeast reports whether version v (X.Y.Z, no "v") is floor or later.
func AtLeast(v, floor string) (bool, error) {
	a, err := parseVersion(v)
	if err != nil {
		return false, err
	}
	b, err := parseVersion(floor)
	if err != nil {
		return false, err
	}
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i], nil
		}
	}
	return true, nil
}

func parseVersion(v string) ([3]int, error) {
	var n [3]int
	m := semver.FindStringSubmatch(v)
	if m == nil {
		return n, fmt.Errorf("version %q is not X.Y.Z", v)
	}
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return n, nil
}

// CheckOllamaVersion says what is wrong with an Ollama version, or "" when it is X.Y.Z at or
// above OllamaFloor.
func CheckOllamaVersion(v string) string {
	ok, err := AtLeast(v, OllamaFloor)
	switch {
	case err != nil:
		return fmt.Sprintf("must be an Ollama release X.Y.Z such as %s (got %q)", Ollama.Version, v)
	case !ok:
		return fmt.Sprintf("must be %s or later, which fixes CVE-2026-103663 (got %s)", OllamaFloor, v)
	}
	return ""
}

// CheckOllama says why nodes would refuse to install release r as Ollama, or "" when they
// would not: a version below the floor, or a SHA-256 that is not recorded. Every message says
// how to pin a release. `sandboxctl check` and `preflight` fail on it, the program refuses to
// deploy with it, and `sandboxctl plan` prints it as a warning.
func CheckOllama(r Release) string {
	if p := CheckOllamaVersion(r.Version); p != "" {
		return fmt.Sprintf("versions.Ollama.Version %s; pin another release with `sandboxctl pin ollama VERSION` on a machine with internet access", p)
	}
	if !rules.IsSHA256Hex(r.SHA256) {
		return fmt.Sprintf("versions.Ollama.SHA256 is not a pinned SHA-256 (got %q): %s", r.SHA256, PinAdvice(r.Version))
	}
	return ""
}

// PinAdvice says why an Ollama release needs a recorded SHA-256 and how to record it.
func PinAdvice(version string) string {
	return fmt.Sprintf("nodes install only an Ollama release whose hash is recorded in versions/versions.go; "+
		"run `sandboxctl pin ollama %s` on a machine with internet access, review the change to versions/versions.go and commit it", version)
}

// PythonPin is a pinned Python package installed from a hash-locked requirements file.
type PythonPin struct {
	// Name is the package's name on PyPI.
	Name string
	// Version is the pinned version; the lock pins the package to exactly this version.
	Version string
	// Lock is the requirements file, beside this one, that pins the package and every
	// dependency (the whole closure) to one version, each with the SHA-256 of every file PyPI
	// publishes for that version.
	Lock string
	// Input is the file the lock is compiled from (the top-level requirements and the
	// regeneration command).
	Input string
}

// LiteLLM is the LiteLLM gateway nodes run, installed into a venv from LiteLLMRequirements with
// `pip install --require-hashes --no-deps --only-binary :all:`.
//
// Why this version: 1.108.x is LiteLLM's LTS line, and 1.108.7 is its latest patch whose
// [proxy] extra resolves from PyPI (1.108.8 to 1.108.12 pin litellm-enterprise==0.1.79.post2,
// 1.108.13 and 1.108.14 pin litellm-proxy-extras==0.4.110.post1; PyPI publishes neither). It is
// above every floor: 1.83.7 (several CVEs), 1.84.0 (Host-header auth bypass); 1.101.0 for the
// semantic cache, which is not used. 1.82.7 and 1.82.8 carried a credential stealer
// (BerriAI/litellm#24518) and must never be installed; the lock's test checks it names neither.
//
// Where the hashes come from: pip-compile --generate-hashes (pip-tools 7.6.2, pinned with hashes
// in tools/requirements-piptools.txt) records, for every requirement, the SHA-256 of each file
// that PyPI's JSON API lists for the pinned version (every wheel and the sdist), so pip refuses
// any file whose hash differs. Regenerate, after editing litellm-requirements.in, from the
// repository root with Python 3.12 (the nodes' Ubuntu 24.04 interpreter):
//
//	python3.12 -m venv /tmp/piptools
//	/tmp/piptools/bin/pip install --require-hashes --no-deps -r tools/requirements-piptools.txt
//	cd versions && env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL \
//	  /tmp/piptools/bin/pip-compile --generate-hashes --allow-unsafe --strip-extras \
//	  --no-emit-find-links --no-emit-index-url \
//	  --output-file litellm-requirements.txt litellm-requirements.in
//
// then set Version here. The lock installs on CPython 3.11 (from 3.11.2) and 3.12 on x86-64
// Linux from wheels only, and `pip check` finds it complete there (litellm-requirements.in
// says which lines make that so).
var LiteLLM = PythonPin{
	Name:    "litellm",
	Version: "1.108.7",
	Lock:    "litellm-requirements.txt",
	Input:   "litellm-requirements.in",
}

// LiteLLMRequirements is the hash-locked requirements file of LiteLLM (LiteLLM.Lock), embedded
// so that the node agent installs exactly what was reviewed, with no file to fetch at boot.
//
//go:embed litellm-requirements.txt
var LiteLLMRequirements string
