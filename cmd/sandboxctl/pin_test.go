package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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
