// Package versions pins the third-party software llm-sandbox installs on nodes, in one place,
// with where each checksum comes from. Go modules are pinned in go.mod; Python packages for
// tests in tools/requirements-*.txt; LiteLLM, which nodes install, in litellm-requirements.txt
// beside this file (embedded as LiteLLMRequirements).
package versions

import _ "embed" // LiteLLMRequirements

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
