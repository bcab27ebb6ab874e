package versions

import (
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

func TestSumFor(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	sums := a + "  ./ollama-darwin.tgz\n" + b + " *./ollama-linux-amd64.tar.zst\n"
	if got, err := SumFor([]byte(sums), OllamaAsset); err != nil || got != b {
		t.Errorf("SumFor() = %q, %v, want %s", got, err, b)
	}
	for name, text := range map[string]string{
		"not listed":    a + "  ollama-linux-amd64.tar.zst.sig\n",
		"listed twice":  a + "  ollama-linux-amd64.tar.zst\n" + b + "  ./ollama-linux-amd64.tar.zst\n",
		"short hash":    "abc  ollama-linux-amd64.tar.zst\n",
		"upper-case":    strings.ToUpper(a) + "  ollama-linux-amd64.tar.zst\n",
		"empty file":    "",
		"an HTML page?": "<html>ollama-linux-amd64.tar.zst</html>\n",
	} {
		if got, err := SumFor([]byte(text), OllamaAsset); err == nil {
			t.Errorf("%s: SumFor() = %q, want an error", name, got)
		}
	}
}

// RewriteOllama replaces the Ollama declaration of the real versions.go, comment and value,
// and keeps every other byte.
func TestRewriteOllamaKeepsTheRestOfTheFile(t *testing.T) {
	src, err := os.ReadFile("versions.go")
	if err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("c", 64)
	r := OllamaRelease("https://mirror.example.org/ollama/", "0.36.2", sha)
	out, old, err := RewriteOllama(src, r, "2026-12-04")
	if err != nil {
		t.Fatal(err)
	}
	if old != Ollama {
		t.Errorf("old = %+v, want the pinned %+v", old, Ollama)
	}
	if r.URL != "https://mirror.example.org/ollama/v0.36.2/ollama-linux-amd64.tar.zst" || r.SumsURL != "https://mirror.example.org/ollama/v0.36.2/sha256sum.txt" {
		t.Errorf("OllamaRelease() = %+v", r)
	}
	// Parse the result back: the new declaration holds r, with its provenance.
	_, again, err := RewriteOllama(out, r, "2026-12-05")
	if err != nil || again != r {
		t.Errorf("the rewritten file declares %+v (%v), want %+v", again, err, r)
	}
	if _, err := parser.ParseFile(token.NewFileSet(), "versions.go", out, parser.ParseComments); err != nil {
		t.Fatal(err)
	}
	text := string(out)
	if !strings.Contains(text, "// Where the hash comes from: "+r.SumsURL+"\n") || !strings.Contains(text, "`sandboxctl pin ollama 0.36.2` read it there on 2026-12-04") {
		t.Errorf("the new comment does not say where the hash came from:\n%s", text)
	}
	// Everything before the Ollama declaration's comment and after its closing brace is kept.
	start := strings.Index(string(src), "// Ollama is the Ollama release")
	end := strings.Index(string(src), "\nconst (\n\t// OllamaFloor")
	if start < 0 || end < 0 {
		t.Fatal("versions.go has changed shape; update this test")
	}
	if !strings.HasPrefix(text, string(src[:start])) || !strings.HasSuffix(text, string(src[end:])) {
		t.Errorf("RewriteOllama changed more than the Ollama declaration")
	}
	if strings.Contains(text, Ollama.SHA256) {
		t.Errorf("the old hash is still in the file")
	}

	if _, _, err := RewriteOllama([]byte("package versions\n\nvar LiteLLM = 1\n"), r, "2026-12-04"); err == nil {
		t.Errorf("a file without an Ollama declaration was rewritten")
	}
}
