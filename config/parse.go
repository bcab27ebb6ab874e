package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// Values are a stack's config values exactly as the Pulumi engine hands them to a program:
// namespaced key ("llm-sandbox:network") → raw value, with objects and lists as JSON text.
// ReadStackFile produces the same form from a stack file, so a stack parses the same way under
// `pulumi up`, the Automation API and `sandboxctl`.
type Values map[string]string

// StackFile is where a stack's config lives, relative to the project directory.
func StackFile(stack string) string {
	return filepath.ToSlash(filepath.Join("stacks", "Pulumi."+stack+".yaml"))
}

// ReadStackFile reads a stack file's `config:` section into Values. It fails only when the file
// cannot be read or is not a stack file (not YAML, more than one YAML document, a top-level key
// that Pulumi's stack files do not have); what the values mean is Parse's business. Problems
// name path as the file.
func ReadStackFile(path string) (Values, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return stackFileValues(path, data)
}

// StackFileValues is ReadStackFile on bytes already read; problems name no file.
func StackFileValues(data []byte) (Values, error) { return stackFileValues("", data) }

// stackFileKeys are the top-level keys of a Pulumi stack file (ProjectStack in
// github.com/pulumi/pulumi/sdk/v3/go/common/workspace/project.go); llm-sandbox reads only config.
var stackFileKeys = []string{"config", "encryptionsalt", "secretsprovider", "encryptedkey", "environment"}

func stackFileValues(source string, data []byte) (Values, error) {
	fail := func(path, format string, args ...any) error {
		return Problems{{Source: source, Path: path, Message: fmt.Sprintf(format, args...)}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && err != io.EOF {
		return nil, fail("(file)", "not valid YAML: %s", syntaxError(data, err))
	}
	var second yaml.Node
	if err := dec.Decode(&second); err == nil && !emptyDocument(&second) {
		return nil, fail("(file)", "line %d: a second YAML document starts here; a stack file is one document (Pulumi reads only the first, so the rest would be ignored)", second.Line)
	}
	values := Values{}
	if len(root.Content) == 0 || isNull(root.Content[0]) {
		return values, nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fail("(file)", "line %d: must be a mapping with a config: key (got %s)", top.Line, describe(top))
	}
	var config *yaml.Node
	var ps Problems
	for i := 0; i+1 < len(top.Content); i += 2 {
		key := top.Content[i].Value
		switch {
		case key == "config":
			config = top.Content[i+1]
		case !slices.Contains(stackFileKeys, key):
			ps = append(ps, Problem{Source: source, Path: key, Message: unknownMessage(key, stackFileKeys)})
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	if config == nil || isNull(config) {
		return values, nil
	}
	if config.Kind != yaml.MappingNode {
		return nil, fail("config", "must be a mapping of keys to values (got %s)", describe(config))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(config.Content); i += 2 {
		key, node := config.Content[i].Value, config.Content[i+1]
		if !strings.Contains(key, ":") {
			// Pulumi reads an unqualified key as the project's own.
			key = Namespace + ":" + key
		}
		if first, ok := seen[key]; ok {
			// yaml.v3 finds a repeated key only when decoding into a map; "tags" and
			// "llm-sandbox:tags" are one key too.
			return nil, fail("(file)", "not valid YAML: line %d: mapping key %q already defined at line %d", config.Content[i].Line, key, first)
		}
		seen[key] = config.Content[i].Line
		if node.Kind == yaml.ScalarNode {
			values[key] = node.Value
			continue
		}
		var v any
		if err := node.Decode(&v); err != nil {
			return nil, fail(key, "%v", err)
		}
		text, err := json.Marshal(jsonable(v))
		if err != nil {
			return nil, fail(key, "%v", err)
		}
		values[key] = string(text)
	}
	return values, nil
}

// emptyDocument reports whether a YAML document holds nothing (a lone "---" at the end).
func emptyDocument(doc *yaml.Node) bool {
	return len(doc.Content) == 0 || (len(doc.Content) == 1 && isNull(doc.Content[0]) && doc.Content[0].Value == "")
}

// syntaxLine matches yaml.v3's "yaml: line N: problem".
var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError is a YAML syntax error with the line where the document stops being YAML.
// yaml.v3 reports the line where the enclosing block starts (libyaml's context mark), so a bad
// indent on line 14 inside a mapping opened on line 1 reads "line 1". The line that breaks the
// document is the first one after the longest prefix of lines that still parses: a prefix cut
// inside a multi-line flow value fails too, but the longest prefix that parses is past it.
func syntaxError(data []byte, err error) string {
	m := syntaxLine.FindStringSubmatch(err.Error())
	if m == nil {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > maxSyntaxSearchLines {
		return "line " + m[1] + ": " + m[2]
	}
	for n := len(lines) - 1; n >= 0; n-- {
		var probe yaml.Node
		if yaml.Unmarshal([]byte(strings.Join(lines[:n], "")), &probe) == nil {
			return fmt.Sprintf("line %d: %s", n+1, m[2])
		}
	}
	return "line 1: " + m[2]
}

// maxSyntaxSearchLines bounds syntaxError's search (one parse per line): past it, yaml.v3's own
// line is reported.
const maxSyntaxSearchLines = 5000

// jsonable turns what yaml.v3 decodes into values encoding/json accepts (maps with non-string
// keys become string-keyed, as Pulumi does).
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
		return t
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
		return t
	}
	return v
}

// Load reads and parses stacks/Pulumi.<stack>.yaml under projectDir.
func Load(projectDir, stack string) (*Spec, error) {
	source := StackFile(stack)
	data, err := os.ReadFile(filepath.Join(projectDir, source))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, Problems{{Source: source, Path: "(file)", Message: fmt.Sprintf("no stack file for stack %q", stack)}}
		}
		return nil, Problems{{Source: source, Path: "(file)", Message: err.Error()}}
	}
	values, err := stackFileValues(source, data)
	if err != nil {
		return nil, err
	}
	return Parse(stack, source, values)
}

// Stacks lists the stacks that have a file in projectDir/stacks, sorted.
func Stacks(projectDir string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(projectDir, "stacks", "Pulumi.*.yaml"))
	if err != nil {
		return nil, err
	}
	var stacks []string
	for _, m := range matches {
		base := filepath.Base(m)
		stacks = append(stacks, strings.TrimSuffix(strings.TrimPrefix(base, "Pulumi."), ".yaml"))
	}
	sort.Strings(stacks)
	return stacks, nil
}

// The project's top-level keys, in the order messages and docs use.
var topLevelKeys = []string{"department", "network", "access", "pools", "gateway", "artifacts", "teams", "tags", "alerts", WaiversKey}

// TopLevelKeys returns the project's top-level config keys, without the namespace.
func TopLevelKeys() []string { return append([]string(nil), topLevelKeys...) }

// RegionKey is the one config key outside the project's namespace that a stack file holds: the
// AWS provider's region.
const RegionKey = "aws:region"

// ConfigKeys returns every config key a stack file may hold, namespaced: RegionKey and the
// project's top-level keys.
func ConfigKeys() []string {
	keys := []string{RegionKey}
	for _, k := range topLevelKeys {
		keys = append(keys, Namespace+":"+k)
	}
	return keys
}

// Parse builds a Spec from a stack's config values: it parses every key, applies the defaults and
// validates the result. It returns Problems listing everything wrong, never only the first.
// source names the stack file in messages.
func Parse(stack, source string, values Values) (*Spec, error) {
	p := &parser{source: source}
	spec := &Spec{Stack: stack, Source: source}

	nodes := map[string]*yaml.Node{}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	known := ConfigKeys()
	for _, key := range keys {
		ns, name, _ := strings.Cut(key, ":")
		if ns != Namespace {
			// A stack deploys with exactly these keys: anything else, in any namespace, is a
			// typo (`llmsandbox:tags`, `aws:regoin`) or a setting nothing reads.
			if key != RegionKey {
				p.unknown(key, key, known)
			}
			continue
		}
		if !slices.Contains(topLevelKeys, name) {
			p.unknown(joinPath("", name), name, topLevelKeys)
			continue
		}
		if name == "department" {
			// A plain string: the engine passes it unquoted, so it is not parsed as YAML.
			nodes[name] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: values[key]}
			continue
		}
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(values[key]), &doc); err != nil || len(doc.Content) == 0 {
			p.add(name, "cannot be parsed (got %q)", values[key])
			continue
		}
		nodes[name] = doc.Content[0]
	}

	spec.Region = values[RegionKey]
	p.region(spec.Region)
	spec.Department = p.department(nodes["department"])
	spec.Network = p.network(nodes["network"])
	spec.Access = p.access(nodes["access"], spec.Region)
	spec.Pools = p.pools(nodes["pools"])
	spec.Gateway = p.gateway(nodes["gateway"])
	spec.Artifacts = p.artifacts(nodes["artifacts"], spec)
	spec.Teams = p.teams(nodes["teams"], spec)
	spec.Tags = p.tags(nodes["tags"])
	spec.Alerts = p.alerts(nodes["alerts"])

	if len(p.problems) > 0 {
		return nil, p.problems
	}
	spec.Warnings = spec.gatewayWarnings()
	return spec, nil
}

// parser walks the config nodes, collecting problems as it goes.
type parser struct {
	source   string
	problems Problems
}

func (p *parser) add(path, format string, args ...any) {
	p.problems = append(p.problems, Problem{Source: p.source, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) unknown(path, key string, known []string) {
	p.add(path, "%s", unknownMessage(key, known))
}

// fields checks that n is a mapping with only known keys and returns its values by key. A nil
// node (key absent) gives an empty map.
func (p *parser) fields(n *yaml.Node, path string, known []string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n == nil || isNull(n) {
		return out
	}
	if n.Kind != yaml.MappingNode {
		p.add(path, "must be a mapping of keys to values (got %s)", describe(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i].Value, n.Content[i+1]
		if known != nil && !slices.Contains(known, key) {
			p.unknown(joinPath(path, key), key, known)
			continue
		}
		out[key] = value
	}
	return out
}

// entries returns a mapping's entries in file order (for maps keyed by user names).
func (p *parser) entries(n *yaml.Node, path string) [][2]*yaml.Node {
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.add(path, "must be a mapping of names to values (got %s)", describe(n))
		return nil
	}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
	}
	return out
}

func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		p.add(path, "must be a string (got %s)", describe(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) integer(n *yaml.Node, path string, def int) (int, bool) {
	if n == nil {
		return def, true
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.add(path, "must be a whole number (got %s)", describe(n))
		return def, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		p.add(path, "must be a whole number (got %s)", n.Value)
		return def, false
	}
	return v, true
}

func (p *parser) boolean(n *yaml.Node, path string) bool {
	if n == nil {
		return false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.add(path, "must be true or false (got %s)", describe(n))
		return false
	}
	return n.Value == "true"
}

func (p *parser) strList(n *yaml.Node, path string) []string {
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.add(path, "must be a list (got %s)", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, e := range n.Content {
		if s, ok := p.str(e, fmt.Sprintf("%s[%d]", path, i)); ok {
			out = append(out, s)
		}
	}
	return out
}

// rangeCheck adds a problem when v is outside [lo, hi].
func (p *parser) rangeCheck(path string, v, lo, hi int) {
	if v < lo || v > hi {
		p.add(path, "must be between %d and %d (got %d)", lo, hi, v)
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// describe names a node's kind and value for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return strconv.Quote(n.Value)
		case "!!null":
			return "nothing"
		}
		return n.Value
	}
	return "an unexpected value"
}

// prefix parses an IPv4 CIDR (rules.IPv4CIDR), adding its problem at path.
func (p *parser) prefix(n *yaml.Node, path string) (netip.Prefix, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return netip.Prefix{}, false
	}
	pfx, problem := rules.IPv4CIDR(s)
	if problem != "" {
		p.add(path, "%s", problem)
		return netip.Prefix{}, false
	}
	return pfx, true
}
