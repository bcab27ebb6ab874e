package localrun

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// fakeReleaseServer serves archive as Ollama's release asset of version under a mirror base
// URL on 127.0.0.1, counting the downloads.
type fakeReleaseServer struct {
	*httptest.Server
	mu        sync.Mutex
	downloads int
}

func newFakeReleaseServer(t *testing.T, version string, archive []byte) *fakeReleaseServer {
	f := &fakeReleaseServer{}
	asset := "/mirror/ollama/v" + version + "/" + versions.OllamaAsset
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != asset {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		f.downloads++
		f.mu.Unlock()
		http.ServeContent(w, r, versions.OllamaAsset, time.Time{}, bytes.NewReader(archive))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeReleaseServer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.downloads
}

// fakeRelease is a release archive laid out as Ollama's (bin/ollama, lib/ollama/, and a file
// a node must not install), whose bin/ollama is a shell script reporting version, padded to
// 2 MiB so that the download reports its progress.
func fakeRelease(t *testing.T, version string) []byte {
	return writeTarZst(t, []archiveFile{
		{name: "bin/", mode: 0o755},
		{name: "bin/ollama", mode: 0o755, data: []byte("#!/bin/sh\necho 'ollama version is " + version + "'\n")},
		{name: "lib/ollama/", mode: 0o755},
		{name: "lib/ollama/libggml-padding.so", mode: 0o644, data: incompressible(2 << 20)},
		{name: "share/extra", mode: 0o644, data: []byte("not for a node")},
	})
}

// incompressible returns n pseudo-random bytes of a fixed seed, which zstd cannot shrink.
func incompressible(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestCachedReleaseDownloadsChecksAndReuses(t *testing.T) {
	archive := fakeRelease(t, "0.35.1")
	srv := newFakeReleaseServer(t, "0.35.1", archive)
	r := versions.OllamaRelease(srv.URL+"/mirror/ollama", "0.35.1", SHA256Hex(archive))
	cache := t.TempDir()

	var log bytes.Buffer
	file, err := CachedRelease(context.Background(), srv.Client(), r, cache, &log)
	if err != nil {
		t.Fatalf("CachedRelease: %v\n%s", err, log.String())
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, archive) {
		t.Fatalf("cached file %s: %v, %d bytes; want the %d bytes served", file, err, len(got), len(archive))
	}
	if !strings.HasPrefix(file, cache+string(filepath.Separator)) {
		t.Errorf("cached at %s, outside the cache %s", file, cache)
	}
	for _, want := range []string{"Ollama 0.35.1: downloading " + r.URL, "Ollama 0.35.1: 100% (", "sha256 " + r.SHA256 + " verified"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	// What a pool node installs from it: only bin/ollama and lib/ollama, and it runs.
	dest := t.TempDir()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	skipped, err := node.ExtractOllamaRelease(f, dest)
	f.Close()
	if err != nil || len(skipped) != 1 || skipped[0] != "share/extra" {
		t.Errorf("extract: skipped %q, %v; want only share/extra skipped", skipped, err)
	}
	if out, err := exec.Command(filepath.Join(dest, "bin", "ollama"), "--version").Output(); err != nil || string(out) != "ollama version is 0.35.1\n" {
		t.Errorf("extracted bin/ollama --version: %q, %v", out, err)
	}

	// A later run uses the cached copy after checking it: no download.
	log.Reset()
	again, err := CachedRelease(context.Background(), srv.Client(), r, cache, &log)
	if err != nil || again != file || srv.count() != 1 {
		t.Errorf("second run: %s, %v, %d downloads; want %s reused, 1 download", again, err, srv.count(), file)
	}
	if !strings.Contains(log.String(), "using "+file+" (sha256 "+r.SHA256+" verified)") {
		t.Errorf("second run's log does not say it checked the cached copy:\n%s", log.String())
	}

	// A cached copy that no longer matches is not used: it is downloaded again and checked.
	if err := os.WriteFile(file, []byte("corrupted"), 0o644); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	if again, err := CachedRelease(context.Background(), srv.Client(), r, cache, &log); err != nil || again != file || srv.count() != 2 {
		t.Errorf("after corruption: %s, %v, %d downloads; want a second download", again, err, srv.count())
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, archive) {
		t.Errorf("the corrupted copy was kept")
	}
	if !strings.Contains(log.String(), "fails its check") {
		t.Errorf("log does not say the cached copy failed its check:\n%s", log.String())
	}
}

func TestCachedReleaseRefusesAMismatch(t *testing.T) {
	archive := fakeRelease(t, "0.35.1")
	srv := newFakeReleaseServer(t, "0.35.1", archive)
	// The pinned hash, not the served file's.
	r := OllamaReleaseFrom(srv.URL + "/mirror/ollama")
	cache := t.TempDir()
	var log bytes.Buffer
	file, err := CachedRelease(context.Background(), srv.Client(), r, cache, &log)
	var rerr *ReleaseError
	var mismatch *node.ChecksumError
	if err == nil || !errors.As(err, &rerr) || rerr.Offline || !errors.As(err, &mismatch) {
		t.Fatalf("CachedRelease = %q, %v; want a checksum ReleaseError", file, err)
	}
	if mismatch.Want != versions.Ollama.SHA256 || mismatch.Got != SHA256Hex(archive) {
		t.Errorf("mismatch %+v: want the pinned hash and the served file's", mismatch)
	}
	// Nothing is left in the cache for a later run to pick up.
	var left []string
	_ = filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Errorf("files left in the cache after a mismatch: %q", left)
	}
}

func TestCachedReleaseOffline(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more: a machine without network
	var log bytes.Buffer
	_, err := CachedRelease(context.Background(), http.DefaultClient, OllamaReleaseFrom(base), t.TempDir(), &log)
	var rerr *ReleaseError
	if !errors.As(err, &rerr) || !rerr.Offline {
		t.Fatalf("CachedRelease = %v; want an offline ReleaseError", err)
	}
}

// TestDeploymentServesTheCachedRelease hands a downloaded release to a deployment, as
// `sandboxctl local` does without --ollama, and requires its pool nodes' config to name that
// archive, served unchanged from disk, with the pinned hash and version.
func TestDeploymentServesTheCachedRelease(t *testing.T) {
	archive := fakeRelease(t, "0.35.1")
	srv := newFakeReleaseServer(t, "0.35.1", archive)
	r := versions.OllamaRelease(srv.URL+"/mirror/ollama", "0.35.1", SHA256Hex(archive))
	file, err := CachedRelease(context.Background(), srv.Client(), r, t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHelpers(repo, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	h.UseRelease(file, r)
	d := NewDeployment(t, h, t.TempDir())
	cfg := d.OllamaConfig(11434, d.Release, OllamaOptions{})
	if cfg.Ollama.Version != "0.35.1" || cfg.Ollama.Release.SHA256 != r.SHA256 {
		t.Errorf("pool config pins %s, sha256 %s; want 0.35.1 and %s", cfg.Ollama.Version, cfg.Ollama.Release.SHA256, r.SHA256)
	}
	resp, err := http.Get(cfg.Ollama.Release.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, archive) {
		t.Errorf("GET %s: %d, %d bytes, %v; want the cached archive's %d bytes", cfg.Ollama.Release.URL, resp.StatusCode, len(got), err, len(archive))
	}
}
