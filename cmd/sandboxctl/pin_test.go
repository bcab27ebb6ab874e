package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror/mirrortest"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// releaseServer serves sha256sum.txt files on 127.0.0.1 by release path, counting requests.
type releaseServer struct {
	*httptest.Server
	mu    sync.Mutex
	sums  map[string]string
	asked []string
}

func newReleaseServer(t *testing.T, sums map[string]string) *releaseServer {
	t.Helper()
	s := &releaseServer{sums: sums}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.asked = append(s.asked, r.URL.Path)
		body, ok := s.sums[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

// set serves body at path.
func (s *releaseServer) set(path, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sums[path] = body
}

// pinProject is a project holding a copy of the real versions/versions.go.
func pinProject(t *testing.T) (dir, file string, src []byte) {
	t.Helper()
	dir = tempProject(t, nil)
	src, err := os.ReadFile(filepath.Join(projectRoot(t), "versions", "versions.go"))
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "versions", "versions.go")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, file, src
}

func TestPinOllamaWritesTheReleasesHash(t *testing.T) {
	sha := strings.Repeat("d", 64)
	srv := newReleaseServer(t, map[string]string{
		"/releases/v0.36.0/sha256sum.txt": strings.Repeat("1", 64) + "  ./ollama-darwin.tgz\n" + sha + "  ./ollama-linux-amd64.tar.zst\n",
	})
	dir, file, src := pinProject(t)
	base := srv.URL + "/releases"
	code, out, errOut := sandboxctl(t, dir, "pin", "ollama", "0.36.0", "--release-base", base)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, errOut, out)
	}
	for _, want := range []string{"read " + base + "/v0.36.0/sha256sum.txt\n", sha + "  ollama-linux-amd64.tar.zst (ollama 0.36.0)\n",
		"ollama " + versions.Ollama.Version + ` (sha256 "` + versions.Ollama.SHA256 + `") -> 0.36.0`, "wrote " + file} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	wantOut, _, err := versions.RewriteOllama(src, versions.OllamaRelease(base, "0.36.0", sha), "")
	if err != nil {
		t.Fatal(err)
	}
	// The file is what RewriteOllama makes of it (bar the date in the comment).
	if strings.Count(string(got), "\n") != strings.Count(string(wantOut), "\n") || !strings.Contains(string(got), `SHA256:  "`+sha+`"`) ||
		!strings.Contains(string(got), `URL:     "`+base+`/v0.36.0/ollama-linux-amd64.tar.zst"`) {
		t.Errorf("versions.go was not rewritten to pin 0.36.0:\n%s", got)
	}

	// Pinning what is pinned confirms it.
	srv.set("/releases/v"+versions.Ollama.Version+"/sha256sum.txt", versions.Ollama.SHA256+"  ollama-linux-amd64.tar.zst\n")
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = sandboxctl(t, dir, "pin", "ollama", "v"+versions.Ollama.Version, "--release-base", base)
	if code != exitOK || !strings.Contains(out, "confirmed: "+filepath.Join("versions", "versions.go")+" already pins ollama "+versions.Ollama.Version) {
		t.Errorf("exit %d, want a confirmation:\n%s", code, out)
	}
	// A different hash for the pinned version is called out.
	srv.set("/releases/v"+versions.Ollama.Version+"/sha256sum.txt", sha+"  ollama-linux-amd64.tar.zst\n")
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ = sandboxctl(t, dir, "pin", "ollama", versions.Ollama.Version, "--release-base", base); code != exitOK || !strings.Contains(out, "CHANGED:") {
		t.Errorf("exit %d, want the changed hash called out:\n%s", code, out)
	}
}

func TestPinRefusesAndLeavesTheFile(t *testing.T) {
	srv := newReleaseServer(t, map[string]string{
		"/v0.36.1/sha256sum.txt": strings.Repeat("1", 64) + "  ollama-darwin.tgz\n",
	})
	dir, file, src := pinProject(t)
	for _, tc := range []struct {
		args     []string
		code     int
		want     string
		requests int
	}{
		{[]string{"pin", "ollama", "0.34.0", "--release-base", srv.URL}, exitUsage, "must be 0.35.0 or later", 0},
		{[]string{"pin", "ollama", "latest", "--release-base", srv.URL}, exitUsage, "X.Y.Z", 0},
		{[]string{"pin", "litellm", "1.108.7"}, exitUsage, "want: pin ollama VERSION", 0},
		{[]string{"pin", "ollama"}, exitUsage, "want: pin ollama VERSION", 0},
		{[]string{"pin", "ollama", "0.36.0", "--release-base", "ftp://example.org"}, exitUsage, "--release-base must be an http(s) URL", 0},
		{[]string{"pin", "ollama", "0.36.0", "--release-base", srv.URL}, exitInvalid, "404 Not Found", 1},
		{[]string{"pin", "ollama", "0.36.1", "--release-base", srv.URL}, exitInvalid, "no line for ollama-linux-amd64.tar.zst", 1},
	} {
		srv.mu.Lock()
		srv.asked = nil
		srv.mu.Unlock()
		code, out, errOut := sandboxctl(t, dir, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q), stdout %q", tc.args, code, tc.code, errOut, tc.want, out)
		}
		srv.mu.Lock()
		asked := srv.asked
		srv.mu.Unlock()
		if len(asked) != tc.requests {
			t.Errorf("%v: %d requests %q, want %d", tc.args, len(asked), asked, tc.requests)
		}
		if got, _ := os.ReadFile(file); string(got) != string(src) {
			t.Errorf("%v: versions.go changed", tc.args)
		}
	}
	if code, out, _ := sandboxctl(t, dir, "pin", "--help"); code != exitOK || !strings.Contains(out, "sha256sum.txt") {
		t.Errorf("pin --help: exit %d\n%s", code, out)
	}
}

// modelsProject is a project holding a copy of the real versions/models_pinned.go.
func modelsProject(t *testing.T) (dir, file string) {
	t.Helper()
	dir = tempProject(t, nil)
	src, err := os.ReadFile(filepath.Join(projectRoot(t), filepath.FromSlash(mirror.ModelPinsFile)))
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, filepath.FromSlash(mirror.ModelPinsFile))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, file
}

func readModelPins(t *testing.T, file string) map[string]versions.ModelPin {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pins, err := mirror.ParseModelPins(src)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := mirror.RenderModelPins(pins); err != nil || string(out) != string(src) {
		t.Errorf("%s is not as RenderModelPins writes it (err %v):\n%s", file, err, src)
	}
	return pins
}

func TestPinModelRecordsTheManifest(t *testing.T) {
	srv := mirrortest.NewServer(t)
	llama := srv.AddModel(t, "llama3.1:8b", []byte("llama weights"), []byte("{{ .Prompt }}"))
	qwen := srv.AddModel(t, "qwen2.5:7b", []byte("qwen weights"))
	dir, file := modelsProject(t)
	today := time.Now().UTC().Format(time.DateOnly)

	code, out, errOut := sandboxctl(t, dir, "pin", "model", "llama3.1:8b", "qwen2.5:7b", "--registry", srv.URL)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, errOut, out)
	}
	if !strings.Contains(out, "model llama3.1:8b: manifest sha256 "+llama.Pin.Manifest) || !strings.Contains(out, "wrote "+file) {
		t.Errorf("output:\n%s", out)
	}
	pins := readModelPins(t, file)
	for name, m := range map[string]mirrortest.Model{"llama3.1:8b": llama, "qwen2.5:7b": qwen} {
		want := m.Pin
		want.Pinned = today
		if pins[name] != want {
			t.Errorf("%s: pinned %+v, want %+v", name, pins[name], want)
		}
	}
	// Only the manifests were read, not the blobs.
	if n := srv.Requests(""); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}

	// Again, with a changed llama: qwen stays as it was, llama is called out.
	changed := srv.AddModel(t, "llama3.1:8b", []byte("other llama weights"))
	code, out, _ = sandboxctl(t, dir, "pin", "model", "--registry", srv.URL, "llama3.1:8b")
	if code != exitOK || !strings.Contains(out, "CHANGED: model llama3.1:8b manifest sha256 "+llama.Pin.Manifest+" -> "+changed.Pin.Manifest) {
		t.Errorf("exit %d, want the change called out:\n%s", code, out)
	}
	pins = readModelPins(t, file)
	if pins["llama3.1:8b"].Manifest != changed.Pin.Manifest || pins["qwen2.5:7b"].Manifest != qwen.Pin.Manifest || len(pins) != 2 {
		t.Errorf("pins after the change: %+v", pins)
	}
	code, out, _ = sandboxctl(t, dir, "pin", "model", "qwen2.5:7b", "--registry", srv.URL)
	if code != exitOK || !strings.Contains(out, "confirmed: model qwen2.5:7b") {
		t.Errorf("exit %d, want a confirmation:\n%s", code, out)
	}
}

func TestPinModelRefusesAndLeavesTheFile(t *testing.T) {
	srv := mirrortest.NewServer(t)
	srv.AddModel(t, "llama3.1:8b", []byte("llama weights"))
	srv.Set("/v2/library/gemma3/manifests/4b", []byte(`{"schemaVersion":2,"layers":[]}`))
	dir, file := modelsProject(t)
	src, _ := os.ReadFile(file)
	for _, tc := range []struct {
		args     []string
		code     int
		want     string
		requests int
	}{
		{[]string{"pin", "model", "llama3.1:8b", "mistral:latest", "library/x:1", "--registry", srv.URL}, exitUsage, `model "mistral:latest", "library/x:1": not in the catalog`, 0},
		{[]string{"pin", "model"}, exitUsage, "want: pin ollama VERSION, pin model NAME... or pin wheelhouse", 0},
		{[]string{"pin", "model", "llama3.1:8b", "--registry", "ftp://example.org"}, exitUsage, "--registry must be an http(s) URL", 0},
		{[]string{"pin", "model", "llama3.1:8b", "--pip", "pip3", "--registry", srv.URL}, exitUsage, "--pip: not a flag of pin model", 0},
		{[]string{"pin", "model", "llama3.1:8b", "qwen2.5:7b", "--registry", srv.URL}, exitInvalid, "model qwen2.5:7b: GET " + srv.URL + "/v2/library/qwen2.5/manifests/7b: 404", 2},
		{[]string{"pin", "model", "gemma3:4b", "--registry", srv.URL}, exitInvalid, "manifest: no layers", 1},
	} {
		srv.ResetRequests()
		code, out, errOut := sandboxctl(t, dir, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q), stdout %q", tc.args, code, tc.code, errOut, tc.want, out)
		}
		if n := srv.Requests(""); n != tc.requests {
			t.Errorf("%v: %d requests, want %d", tc.args, n, tc.requests)
		}
		if got, _ := os.ReadFile(file); string(got) != string(src) {
			t.Errorf("%v: %s changed", tc.args, mirror.ModelPinsFile)
		}
	}
	if code, out, _ := sandboxctl(t, dir, "pin", "--help"); code != exitOK || !strings.Contains(out, "pin model NAME...") || !strings.Contains(out, "pin wheelhouse") {
		t.Errorf("pin --help: exit %d\n%s", code, out)
	}
}

func TestPinWheelhouseIsReproducible(t *testing.T) {
	pip := mirrortest.PipEnv(t)
	wheels := mirrortest.WriteWheels(t, t.TempDir())
	dir := tempProject(t, nil)
	lock := filepath.Join(dir, "versions", versions.LiteLLM.Lock)
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, []byte(wheels.Lock), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	args := []string{"pin", "wheelhouse", "--pip", strings.Join(pip, " "), "--find-links", wheels.Dir, "--cache-dir", cache}
	code, out, errOut := sandboxctl(t, dir, args...)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	file := filepath.Join(dir, filepath.FromSlash(mirror.WheelhouseFile))
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := mirror.ParseWheelhousePin(src)
	if err != nil {
		t.Fatal(err)
	}
	want := []versions.WheelFile{{Name: wheels.Linux[0].Name, SHA256: wheels.Linux[0].SHA256}, {Name: wheels.Linux[1].Name, SHA256: wheels.Linux[1].SHA256}}
	if pin.Python != mirror.NodePython || pin.Platform != mirror.NodePlatform || pin.Lock != mirror.SHA256Hex([]byte(wheels.Lock)) || !slices.Equal(pin.Files, want) {
		t.Errorf("pin %+v, want the two Linux wheels of the lock", pin)
	}
	if p := mirror.CheckWheelhouse(pin, wheels.Lock); p != "" {
		t.Errorf("the pin written does not check: %s", p)
	}
	if data, err := os.ReadFile(filepath.Join(cache, "sha256", pin.SHA256)); err != nil || mirror.SHA256Hex(data) != pin.SHA256 || int64(len(data)) != pin.Size {
		t.Errorf("the archive is not in the cache under its hash (err %v)", err)
	}
	// Again: the same archive.
	code, out, _ = sandboxctl(t, dir, args...)
	if code != exitOK || !strings.Contains(out, "confirmed: "+mirror.WheelhouseFile+" already pins this wheelhouse (sha256 "+pin.SHA256+")") {
		t.Errorf("exit %d, want a confirmation:\n%s", code, out)
	}
	// A wheel missing from the directory fails the build and leaves the file.
	if err := os.Remove(wheels.Linux[0].Path); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = sandboxctl(t, dir, args...)
	if got, _ := os.ReadFile(file); code != exitInvalid || !strings.Contains(errOut, "tinya") || string(got) != string(src) {
		t.Errorf("exit %d, stderr %q; want a failure naming tinya and the file unchanged", code, errOut)
	}
}

func TestPinHelpIsDocumented(t *testing.T) {
	helpIsDocumented(t, "docs/artifacts.md", "pin")
}
