package localrun

import (
	"archive/tar"
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// archiveFile is one entry of a .tar.zst the harness writes.
type archiveFile struct {
	name string
	mode int64
	data []byte // nil for a directory
}

// writeTarZst packs files, in order, with a fixed modification time, so the same inputs give
// the same bytes (and the same SHA-256).
func writeTarZst(t T, files []archiveFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatalf("zstd: %v", err)
	}
	tw := tar.NewWriter(zw)
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		if f.data == nil {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar: %v", err)
		}
		if f.data != nil {
			if _, err := tw.Write(f.data); err != nil {
				t.Fatalf("tar: %v", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("tar: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("zstd: %v", err)
	}
	return buf.Bytes()
}

// PackageOllamaRelease lays the real Ollama binary out as Ollama's release asset
// ollama-linux-amd64.tar.zst (bin/ollama; the real asset adds lib/ollama with GPU libraries)
// and returns the archive and its SHA-256. A copy is kept in dir for a look after a failure.
func PackageOllamaRelease(t T, ollamaBin, dir string) ([]byte, string) {
	t.Helper()
	bin, err := os.ReadFile(ollamaBin)
	if err != nil {
		t.Fatalf("%v", err)
	}
	release := writeTarZst(t, []archiveFile{
		{name: "bin/", mode: 0o755},
		{name: "bin/ollama", mode: 0o755, data: bin},
	})
	if err := os.WriteFile(filepath.Join(dir, "ollama-linux-amd64.tar.zst"), release, 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	return release, SHA256Hex(release)
}

// PackageWheelhouse packs the wheels in wheelsDir (every *.whl, flat, sorted by name) as the
// LiteLLM wheelhouse a department's bucket holds, a .tar.zst, and returns it and its SHA-256.
func PackageWheelhouse(t T, wheelsDir string) ([]byte, string) {
	t.Helper()
	wheels, err := filepath.Glob(filepath.Join(wheelsDir, "*.whl"))
	if err != nil || len(wheels) == 0 {
		t.Fatalf("no wheels in %s: %v", wheelsDir, err)
	}
	sort.Strings(wheels)
	files := make([]archiveFile, 0, len(wheels))
	for _, w := range wheels {
		data, err := os.ReadFile(w)
		if err != nil {
			t.Fatalf("%v", err)
		}
		files = append(files, archiveFile{name: filepath.Base(w), mode: 0o644, data: data})
	}
	house := writeTarZst(t, files)
	return house, SHA256Hex(house)
}

// TinyModel writes the tiny GGUF of the given seed (a fixed seed gives fixed bytes) into dir
// and returns it and its SHA-256.
func TinyModel(t T, h Helpers, dir string, seed int) ([]byte, string) {
	t.Helper()
	gguf := filepath.Join(dir, "tiny-"+strconv.Itoa(seed)+".gguf")
	RunCommand(t, time.Minute, h.TinyModel, "-o", gguf, "-seed", strconv.Itoa(seed))
	model, err := os.ReadFile(gguf)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return model, SHA256Hex(model)
}

// Mirror serves artifacts from loopback, standing in for the department's mirror (the
// artifacts bucket).
type Mirror struct {
	*httptest.Server

	mu    sync.Mutex
	files map[string][]byte
	// paths are files served from disk (an Ollama release is too large to hold in memory).
	paths map[string]string
}

// NewMirror starts a mirror serving files (path to content); Add serves more.
func NewMirror(t T, files map[string][]byte) *Mirror {
	t.Helper()
	m := &Mirror{files: map[string][]byte{}, paths: map[string]string{}}
	for p, data := range files {
		m.files[p] = data
	}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		data, ok := m.files[r.URL.Path]
		file, onDisk := m.paths[r.URL.Path]
		m.mu.Unlock()
		if (!ok && !onDisk) || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.NotFound(w, r)
			return
		}
		if onDisk {
			f, err := os.Open(file)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			http.ServeContent(w, r, filepath.Base(r.URL.Path), time.Time{}, f)
			return
		}
		http.ServeContent(w, r, filepath.Base(r.URL.Path), time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(m.Close)
	return m
}

// Add serves data at path and returns its URL.
func (m *Mirror) Add(path string, data []byte) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[path] = data
	return m.URL + path
}

// AddFile serves the file at path on disk at urlPath and returns its URL.
func (m *Mirror) AddFile(urlPath, path string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paths[urlPath] = path
	return m.URL + urlPath
}
