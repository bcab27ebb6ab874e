// Package mirrortest serves what the mirror fetches, on 127.0.0.1, for tests: an Ollama
// registry with made-up models in Ollama's manifest format and an Ollama release host, in one
// httptest server that counts requests; and tiny Python wheels with their hash-locked
// requirements, for pip to download without an index.
package mirrortest

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/ollamastore"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Server is a registry and release host. Blobs are answered with a redirect to /storage/,
// as the Ollama registry redirects to its storage.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	requests map[string]int
}

// NewServer starts a server on 127.0.0.1; a cleanup stops it.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{files: map[string][]byte{}, requests: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	body, ok := s.files[r.URL.Path]
	s.mu.Unlock()
	if i := strings.Index(r.URL.Path, "/blobs/sha256:"); ok && i >= 0 {
		http.Redirect(w, r, "/storage/"+r.URL.Path[i+len("/blobs/sha256:"):], http.StatusTemporaryRedirect)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	if strings.Contains(r.URL.Path, "/manifests/") {
		w.Header().Set("Content-Type", ollamastore.ManifestMediaType)
	}
	_, _ = w.Write(body)
}

// Set serves body at path (a manifest, a release, or a blob's /storage/<hex>).
func (s *Server) Set(path string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = body
}

// Requests counts the requests for path; with "", for every path.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if path != "" {
		return s.requests[path]
	}
	n := 0
	for _, c := range s.requests {
		n += c
	}
	return n
}

// ResetRequests forgets the counts.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = map[string]int{}
}

// Model is a made-up model the server serves.
type Model struct {
	Name     ollamastore.Name
	Manifest []byte
	// Blobs are the config and layers by hex digest.
	Blobs map[string][]byte
	Pin   versions.ModelPin
}

// ManifestPath is where the server serves the manifest.
func (m Model) ManifestPath() string { return m.Name.RegistryManifestPath() }

// AddModel serves model tag (model:tag) with a config blob and the given layers, in Ollama's
// manifest format (a docker image manifest v2 whose layers have Ollama's media types), and
// returns it with its pin dated 2026-01-02.
func (s *Server) AddModel(t testing.TB, tag string, layers ...[]byte) Model {
	t.Helper()
	blobs := map[string][]byte{}
	layer := func(mediaType string, data []byte) ollamastore.Layer {
		sum := sha256Hex(data)
		blobs[sum] = data
		return ollamastore.Layer{MediaType: mediaType, Digest: "sha256:" + sum, Size: int64(len(data))}
	}
	config := []byte(fmt.Sprintf(`{"model_format":"gguf","model_family":"llama","file_type":"Q4_K_M","name":%q}`, tag))
	manifest := ollamastore.Manifest{
		SchemaVersion: 2,
		MediaType:     ollamastore.ManifestMediaType,
		Config:        layer("application/vnd.docker.container.image.v1+json", config),
	}
	types := []string{"application/vnd.ollama.image.model", "application/vnd.ollama.image.template", "application/vnd.ollama.image.params"}
	for i, l := range layers {
		manifest.Layers = append(manifest.Layers, layer(types[min(i, len(types)-1)], l))
	}
	data, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	return s.AddStoredModel(t, tag, data, blobs)
}

// AddStoredModel serves model tag (model:tag) as an Ollama store holds it, the way the
// registry serves a model pushed from one: the manifest's bytes as they are, and every blob the
// manifest names from blobs (by hex digest), each checked against its digest. It returns the
// model with its pin dated 2026-01-02.
func (s *Server) AddStoredModel(t testing.TB, tag string, manifest []byte, blobs map[string][]byte) Model {
	t.Helper()
	name, err := ollamastore.ParseName(tag)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ollamastore.ParseManifest(manifest)
	if err != nil {
		t.Fatalf("model %s: %v", tag, err)
	}
	m := Model{Name: name, Manifest: manifest, Blobs: map[string][]byte{}}
	for _, l := range parsed.Blobs() {
		sum, err := ollamastore.DigestHex(l.Digest)
		if err != nil {
			t.Fatalf("model %s: %v", tag, err)
		}
		data, ok := blobs[sum]
		if !ok || sha256Hex(data) != sum || int64(len(data)) != l.Size {
			t.Fatalf("model %s: no blob with digest %s and size %d given", tag, l.Digest, l.Size)
		}
		m.Blobs[sum] = data
		s.Set(name.RegistryBlobPath(l.Digest), data)
		s.Set("/storage/"+sum, data)
	}
	s.Set(m.ManifestPath(), manifest)
	m.Pin = versions.ModelPin{Manifest: sha256Hex(manifest), Size: parsed.Size(), Pinned: "2026-01-02"}
	return m
}

// AddRelease serves data as the Ollama release version, at
// <URL>/releases/v<version>/ollama-linux-amd64.tar.zst, and returns its pin.
func (s *Server) AddRelease(version string, data []byte) versions.Release {
	r := versions.OllamaRelease(s.URL+"/releases", version, sha256Hex(data))
	s.Set(strings.TrimPrefix(r.URL, s.URL), data)
	return r
}

// Wheel is a tiny wheel file.
type Wheel struct {
	Name, Path, SHA256 string
}

// WriteWheel writes dist-version-tag.whl into dir: a package with one module and the
// .dist-info pip reads (METADATA, WHEEL, RECORD). Same arguments, same bytes.
func WriteWheel(t testing.TB, dir, dist, version, tag string) Wheel {
	t.Helper()
	name := fmt.Sprintf("%s-%s-%s.whl", dist, version, tag)
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	info := fmt.Sprintf("%s-%s.dist-info", dist, version)
	files := []struct{ name, body string }{
		{dist + "/__init__.py", fmt.Sprintf("VERSION = %q\n", version)},
		{info + "/METADATA", fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", dist, version)},
		{info + "/WHEEL", fmt.Sprintf("Wheel-Version: 1.0\nGenerator: mirrortest\nRoot-Is-Purelib: %t\nTag: %s\n", strings.HasSuffix(tag, "-none-any"), tag)},
	}
	var record strings.Builder
	for _, file := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: file.name, Method: zip.Deflate, Modified: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(file.body)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&record, "%s,,\n", file.name)
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", info)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: info + "/RECORD", Method: zip.Deflate, Modified: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(record.String())); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Wheel{Name: name, Path: path, SHA256: sha256Hex(data)}
}

// Wheels is a directory of tiny wheels and their lock.
type Wheels struct {
	Dir string
	// Lock pins tinya 1.0 (one pure wheel) and tinyb 1.0 (a manylinux_2_17 wheel for CPython
	// 3.12 and a Windows one), with hashes, as pip-compile writes it.
	Lock string
	// Linux are the wheels pip chooses for CPython 3.12 on manylinux_2_39_x86_64, by name.
	Linux []Wheel
	// Windows is the wheel it must leave.
	Windows Wheel
}

// WriteWheels writes the wheels of Wheels into dir.
func WriteWheels(t testing.TB, dir string) Wheels {
	t.Helper()
	a := WriteWheel(t, dir, "tinya", "1.0", "py3-none-any")
	b := WriteWheel(t, dir, "tinyb", "1.0", "cp312-cp312-manylinux_2_17_x86_64")
	win := WriteWheel(t, dir, "tinyb", "1.0", "cp312-cp312-win_amd64")
	lock := fmt.Sprintf("tinya==1.0 \\\n    --hash=sha256:%s\n    # via -r in\ntinyb==1.0 \\\n    --hash=sha256:%s \\\n    --hash=sha256:%s\n", a.SHA256, b.SHA256, win.SHA256)
	return Wheels{Dir: dir, Lock: lock, Linux: []Wheel{a, b}, Windows: win}
}

// PipEnv sets the environment so that the pip tests start sees none of this machine's pip
// configuration (config files, find-links, index) and keeps its cache in a temporary
// directory. It returns the pip command, or skips when python3 has no pip.
func PipEnv(t *testing.T) []string {
	t.Helper()
	pip := []string{"python3", "-m", "pip"}
	for _, k := range os.Environ() {
		if name, _, _ := strings.Cut(k, "="); strings.HasPrefix(name, "PIP_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	t.Setenv("PIP_CONFIG_FILE", os.DevNull)
	t.Setenv("PIP_CACHE_DIR", t.TempDir())
	t.Setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
	if out, err := exec.Command(pip[0], append(pip[1:], "--version")...).CombinedOutput(); err != nil {
		t.Skipf("%s --version: %v: %s", strings.Join(pip, " "), err, out)
	}
	return pip
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
