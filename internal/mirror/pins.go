package mirror

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"sort"
	"strconv"

	"github.com/llm-sandbox/llm-sandbox/versions"
)

// The files `sandboxctl pin model` and `sandboxctl pin wheelhouse` write, relative to the
// project directory. Each is written whole from what it records, so it holds nothing else.
const (
	ModelPinsFile  = "versions/models_pinned.go"
	WheelhouseFile = "versions/wheelhouse_pinned.go"
)

const modelPinsDoc = `// Code written by ` + "`sandboxctl pin model`" + `: edit it with that command, not by hand.

package versions

// ModelPins are the models a mirrored department may serve (network.nat
// none), by Ollama tag: the SHA-256 of each one's manifest as the Ollama registry served it,
// which names every blob by digest, so nodes copy from the bucket only the files the manifest
// pinned here names. Add a model, or re-pin one, on a machine with internet access:
//
//	sandboxctl pin model llama3.1:8b [NAME...]
//
// It fetches each manifest from the registry and records it here, keeping the other entries;
// review the change and commit it.
`

// RenderModelPins is the text of versions/models_pinned.go recording pins, sorted by name and
// gofmt'd.
func RenderModelPins(pins map[string]versions.ModelPin) ([]byte, error) {
	names := make([]string, 0, len(pins))
	for n := range pins {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(modelPinsDoc)
	b.WriteString("var ModelPins = map[string]ModelPin{\n")
	for _, n := range names {
		p := pins[n]
		fmt.Fprintf(&b, "\t%q: {Manifest: %q, Size: %d, Pinned: %q},\n", n, p.Manifest, p.Size, p.Pinned)
	}
	b.WriteString("}\n")
	return format.Source(b.Bytes())
}

// ParseModelPins reads the pins of versions/models_pinned.go (src), as RenderModelPins writes
// them.
func ParseModelPins(src []byte) (map[string]versions.ModelPin, error) {
	lit, err := varLiteral(src, "ModelPins")
	if err != nil {
		return nil, err
	}
	pins := map[string]versions.ModelPin{}
	for _, e := range lit.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			return nil, fmt.Errorf("ModelPins: an entry that is not NAME: {...}")
		}
		name, err := stringLit(kv.Key)
		if err != nil {
			return nil, fmt.Errorf("ModelPins: key: %w", err)
		}
		val, ok := kv.Value.(*ast.CompositeLit)
		if !ok {
			return nil, fmt.Errorf("ModelPins[%q]: not a {...} literal", name)
		}
		var p versions.ModelPin
		for _, fe := range val.Elts {
			key, value, ok := field(fe)
			if !ok {
				return nil, fmt.Errorf("ModelPins[%q]: a field without its name", name)
			}
			switch key {
			case "Manifest":
				p.Manifest, err = stringLit(value)
			case "Pinned":
				p.Pinned, err = stringLit(value)
			case "Size":
				p.Size, err = intLit(value)
			default:
				err = fmt.Errorf("unknown field")
			}
			if err != nil {
				return nil, fmt.Errorf("ModelPins[%q].%s: %w", name, key, err)
			}
		}
		if _, dup := pins[name]; dup {
			return nil, fmt.Errorf("ModelPins: %q twice", name)
		}
		pins[name] = p
	}
	return pins, nil
}

// RenderWheelhousePin is the text of versions/wheelhouse_pinned.go recording pin, built with
// pip (its version line, for the record) on day (YYYY-MM-DD).
func RenderWheelhousePin(pin versions.WheelhousePin, pip, day string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, `// Code written by `+"`sandboxctl pin wheelhouse`"+`: edit it with that command, not by hand.

package versions

// Wheelhouse is the LiteLLM wheelhouse a mirrored gateway node installs from (network.nat
// none): the wheels of litellm-requirements.txt (Lock is its SHA-256) that pip
// chooses for CPython %s on %s, packed by the mirror library into a
// reproducible tar.zst (SHA256, Size). `+"`sandboxctl pin wheelhouse`"+` built it on %s with
// %s.
// Run it again after every change to the lock, on a machine that reaches PyPI; rebuilding an
// unchanged lock gives the same archive hash.
var Wheelhouse = WheelhousePin{
	Python:   %q,
	Platform: %q,
	Lock:     %q,
	SHA256:   %q,
	Size:     %d,
	Files: []WheelFile{
`, pin.Python, pin.Platform, day, pip, pin.Python, pin.Platform, pin.Lock, pin.SHA256, pin.Size)
	for _, f := range pin.Files {
		fmt.Fprintf(&b, "\t\t{Name: %q, SHA256: %q},\n", f.Name, f.SHA256)
	}
	b.WriteString("\t},\n}\n")
	return format.Source(b.Bytes())
}

// ParseWheelhousePin reads the pin of versions/wheelhouse_pinned.go (src).
func ParseWheelhousePin(src []byte) (versions.WheelhousePin, error) {
	var pin versions.WheelhousePin
	lit, err := varLiteral(src, "Wheelhouse")
	if err != nil {
		return pin, err
	}
	for _, e := range lit.Elts {
		key, value, ok := field(e)
		if !ok {
			return pin, fmt.Errorf("the wheelhouse pin (var Wheelhouse) has a field without its name")
		}
		switch key {
		case "Python":
			pin.Python, err = stringLit(value)
		case "Platform":
			pin.Platform, err = stringLit(value)
		case "Lock":
			pin.Lock, err = stringLit(value)
		case "SHA256":
			pin.SHA256, err = stringLit(value)
		case "Size":
			pin.Size, err = intLit(value)
		case "Files":
			pin.Files, err = wheelFiles(value)
		default:
			err = fmt.Errorf("unknown field")
		}
		if err != nil {
			return pin, fmt.Errorf("the wheelhouse pin, field Wheelhouse.%s: %w", key, err)
		}
	}
	return pin, nil
}

func wheelFiles(e ast.Expr) ([]versions.WheelFile, error) {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, fmt.Errorf("not a []WheelFile{...} literal")
	}
	var files []versions.WheelFile
	for _, fe := range lit.Elts {
		fl, ok := fe.(*ast.CompositeLit)
		if !ok {
			return nil, fmt.Errorf("an entry that is not {Name: ..., SHA256: ...}")
		}
		var f versions.WheelFile
		for _, x := range fl.Elts {
			key, value, ok := field(x)
			if !ok {
				return nil, fmt.Errorf("a field without its name")
			}
			var err error
			switch key {
			case "Name":
				f.Name, err = stringLit(value)
			case "SHA256":
				f.SHA256, err = stringLit(value)
			default:
				err = fmt.Errorf("unknown field %s", key)
			}
			if err != nil {
				return nil, err
			}
		}
		files = append(files, f)
	}
	return files, nil
}

// varLiteral finds `var name = T{...}` in src and returns its literal.
func varLiteral(src []byte, name string) (*ast.CompositeLit, error) {
	file, err := parser.ParseFile(token.NewFileSet(), "pinned.go", src, 0)
	if err != nil {
		return nil, err
	}
	for _, d := range file.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if len(vs.Names) == 1 && vs.Names[0].Name == name && len(vs.Values) == 1 {
				if lit, ok := vs.Values[0].(*ast.CompositeLit); ok {
					return lit, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no declaration `var %s = ...{...}`", name)
}

// field splits a `Name: value` element of a struct literal.
func field(e ast.Expr) (string, ast.Expr, bool) {
	kv, ok := e.(*ast.KeyValueExpr)
	if !ok {
		return "", nil, false
	}
	key, ok := kv.Key.(*ast.Ident)
	if !ok {
		return "", nil, false
	}
	return key.Name, kv.Value, true
}

func stringLit(e ast.Expr) (string, error) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", fmt.Errorf("not a string literal")
	}
	return strconv.Unquote(lit.Value)
}

func intLit(e ast.Expr) (int64, error) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.INT {
		return 0, fmt.Errorf("not an integer literal")
	}
	return strconv.ParseInt(lit.Value, 0, 64)
}
