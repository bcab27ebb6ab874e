package versions

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"strconv"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// SumFor returns the SHA-256 that sums, a checksum file in sha256sum format ("<hex>  <name>",
// the name possibly marked "*" for binary mode or prefixed "./"), lists for the file name.
// A name listed twice, or with anything but 64 lowercase hex digits, is an error.
func SumFor(sums []byte, name string) (string, error) {
	var found []string
	for _, line := range strings.Split(string(sums), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 2 || strings.TrimPrefix(strings.TrimPrefix(fields[1], "*"), "./") != name {
			continue
		}
		if !rules.IsSHA256Hex(fields[0]) {
			return "", fmt.Errorf("the line for %s holds %q, not 64 lowercase hex digits", name, fields[0])
		}
		found = append(found, fields[0])
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no line for %s", name)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d lines for %s", len(found), name)
}

// OllamaRelease is the Release of Ollama version under base (OllamaReleases, or a mirror with
// the same layout), with the hash sha.
func OllamaRelease(base, version, sha string) Release {
	dir := strings.TrimSuffix(base, "/") + "/v" + version + "/"
	return Release{Version: version, URL: dir + OllamaAsset, SHA256: sha, SumsURL: dir + "sha256sum.txt"}
}

// RewriteOllama returns src, the text of versions.go, with the declaration of Ollama (its doc
// comment and value) replaced by r, documented as read from r.SumsURL on day (YYYY-MM-DD) by
// `sandboxctl pin`, and the Release it declared before. Everything else in src is kept byte
// for byte, then gofmt'd.
func RewriteOllama(src []byte, r Release, day string) (out []byte, old Release, err error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "versions.go", src, parser.ParseComments)
	if err != nil {
		return nil, old, err
	}
	var decl *ast.GenDecl
	for _, d := range file.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR || len(g.Specs) != 1 || g.Lparen.IsValid() {
			continue
		}
		if vs := g.Specs[0].(*ast.ValueSpec); len(vs.Names) == 1 && vs.Names[0].Name == "Ollama" && len(vs.Values) == 1 {
			if lit, ok := vs.Values[0].(*ast.CompositeLit); ok {
				decl, old = g, releaseLiteral(lit)
			}
		}
	}
	if decl == nil {
		return nil, old, fmt.Errorf("no declaration `var Ollama = Release{...}` on its own")
	}
	start := decl.Pos()
	if decl.Doc != nil {
		start = decl.Doc.Pos()
	}
	var b bytes.Buffer
	b.Write(src[:fset.Position(start).Offset])
	fmt.Fprintf(&b, `// Ollama is the Ollama release pool nodes run. OllamaFloor says why %s is the lowest.
//
// Where the hash comes from: %s
// lists it for %s. `+"`sandboxctl pin ollama %s`"+` read it there on %s; run it
// again on a machine with internet access to confirm it (an unchanged file confirms the hash).
var Ollama = Release{
	Version: %q,
	URL:     %q,
	SHA256:  %q,
	SumsURL: %q,
}`, OllamaFloor, r.SumsURL, OllamaAsset, r.Version, day, r.Version, r.URL, r.SHA256, r.SumsURL)
	b.Write(src[fset.Position(decl.End()).Offset:])
	out, err = format.Source(b.Bytes())
	if err != nil {
		return nil, old, fmt.Errorf("format the rewritten file: %w", err)
	}
	return out, old, nil
}

// releaseLiteral reads the string fields of a Release{...} literal.
func releaseLiteral(lit *ast.CompositeLit) Release {
	var r Release
	for _, e := range lit.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		key, _ := kv.Key.(*ast.Ident)
		val, _ := kv.Value.(*ast.BasicLit)
		if key == nil || val == nil || val.Kind != token.STRING {
			continue
		}
		s, err := strconv.Unquote(val.Value)
		if err != nil {
			continue
		}
		switch key.Name {
		case "Version":
			r.Version = s
		case "URL":
			r.URL = s
		case "SHA256":
			r.SHA256 = s
		case "SumsURL":
			r.SumsURL = s
		}
	}
	return r
}
