// Package agentbuild builds the node agent (cmd/sandbox-node) at deploy time, reproducibly, so
// that the same source gives the same bytes, the same content-addressed object key in the
// artifacts bucket, and so no diff.
package agentbuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Package is the agent's main package, relative to the project directory.
const Package = "./cmd/sandbox-node"

// buildTimeout bounds a cold build (the agent's dependencies compile in well under a minute on
// two cores; a warm build links in seconds).
const buildTimeout = 10 * time.Minute

// Agent is a built agent binary.
type Agent struct {
	// Path is the binary, under the project's .cache/agent folder.
	Path string
	// SHA256 is its lowercase hex SHA-256.
	SHA256 string
}

// Build compiles the agent for linux/amd64 with cgo off, paths trimmed, no VCS stamp and no
// build id, into projectDir/.cache/agent/sandbox-node-<sha256>, and returns it.
func Build(ctx context.Context, projectDir string) (Agent, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	// go build runs in projectDir, so a relative output path would be taken from there, not
	// from here: the binary would land elsewhere and the (empty) temporary file be hashed.
	projectDir, err := filepath.Abs(projectDir)
	if err != nil {
		return Agent{}, fmt.Errorf("build node agent: %w", err)
	}
	cacheDir := filepath.Join(projectDir, ".cache", "agent")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Agent{}, fmt.Errorf("build node agent: %w", err)
	}
	tmp, err := os.CreateTemp(cacheDir, "build-*")
	if err != nil {
		return Agent{}, fmt.Errorf("build node agent: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", "-o", tmp.Name(), Package)
	cmd.Dir = projectDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Agent{}, fmt.Errorf("build node agent (go build %s in %s): %w\n%s", Package, projectDir, err, out)
	}
	if st, err := os.Stat(tmp.Name()); err != nil || st.Size() == 0 {
		return Agent{}, fmt.Errorf("build node agent: go build left no binary at %s", tmp.Name())
	}
	sum, err := fileSHA256(tmp.Name())
	if err != nil {
		return Agent{}, fmt.Errorf("build node agent: %w", err)
	}
	final := filepath.Join(cacheDir, "sandbox-node-"+sum)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return Agent{}, fmt.Errorf("build node agent: %w", err)
	}
	return Agent{Path: final, SHA256: sum}, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
