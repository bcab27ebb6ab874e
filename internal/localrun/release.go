package localrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// EnvOllamaMirror names a base URL with the layout of Ollama's releases,
// <base>/v<version>/ollama-linux-amd64.tar.zst: a department's mirror of the pinned release.
// A local run downloads the release from it instead of from Ollama's releases; the SHA-256 it
// checks is still the pinned one.
const EnvOllamaMirror = "LLM_SANDBOX_OLLAMA_MIRROR"

// OllamaReleaseFrom is the pinned Ollama release as a mirror at base serves it, or as Ollama
// publishes it when base is empty.
func OllamaReleaseFrom(base string) versions.Release {
	if base == "" {
		return versions.Ollama
	}
	return versions.OllamaRelease(base, versions.Ollama.Version, versions.Ollama.SHA256)
}

// ReleaseError is a release that could not be had: Offline when it could not be downloaded
// (no network, a mirror that does not answer or lacks the file), a checksum mismatch otherwise.
type ReleaseError struct {
	Offline bool
	Err     error
}

func (e *ReleaseError) Error() string { return e.Err.Error() }
func (e *ReleaseError) Unwrap() error { return e.Err }

// CachedRelease returns the path of r's archive in cacheDir, downloading it once (with a
// progress line on log at each tenth) and checking its SHA-256 before anything uses it. A copy
// kept from an earlier run is checked again, and downloaded anew when it does not match. It
// fails closed: a download whose SHA-256 is not r's is deleted and reported as a
// *ReleaseError, as is a download that failed.
func CachedRelease(ctx context.Context, client *http.Client, r versions.Release, cacheDir string, log io.Writer) (string, error) {
	art := node.Artifact{URL: r.URL, SHA256: r.SHA256}
	dir := filepath.Join(cacheDir, r.SHA256)
	file := filepath.Join(dir, r.URL[strings.LastIndex(r.URL, "/")+1:])
	switch err := node.VerifyFile(file, art); {
	case err == nil:
		fmt.Fprintf(log, "Ollama %s: using %s (sha256 %s verified)\n", r.Version, file, r.SHA256)
		return file, nil
	case errors.Is(err, os.ErrNotExist):
	default:
		fmt.Fprintf(log, "Ollama %s: the copy in %s fails its check (%v); downloading it again\n", r.Version, file, err)
		if err := os.Remove(file); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	fmt.Fprintf(log, "Ollama %s: downloading %s into %s\n", r.Version, r.URL, dir)
	start := time.Now()
	tmp, err := node.Download(ctx, client, art, dir, func(size int64) io.Writer {
		return &node.Progress{Printf: func(format string, args ...any) { fmt.Fprintf(log, format+"\n", args...) },
			What: "Ollama " + r.Version, Total: size, Every: 30 * time.Second}
	})
	if err != nil {
		var mismatch *node.ChecksumError
		_ = os.Remove(dir) // only when empty: nothing of a failed download is kept
		return "", &ReleaseError{Offline: !errors.As(err, &mismatch), Err: fmt.Errorf("download Ollama %s: %w", r.Version, err)}
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return "", err
	}
	fmt.Fprintf(log, "Ollama %s: downloaded in %s, sha256 %s verified\n", r.Version, time.Since(start).Round(time.Second), r.SHA256)
	return file, nil
}
