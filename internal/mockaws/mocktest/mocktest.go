// Package mocktest holds the assertions the component tests share over a mockaws.Monitor's
// recordings, so each test file states only what it checks.
package mocktest

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
)

// Only returns the single registration of a type, failing the test when there is not exactly
// one.
func Only(t testing.TB, m *mockaws.Monitor, typ string) mockaws.Resource {
	t.Helper()
	rs := m.ByType(typ)
	if len(rs) != 1 {
		t.Fatalf("%s: got %d registrations, want 1", typ, len(rs))
	}
	return rs[0]
}

// OnlyInputs returns the plain inputs of the single registration of a type.
func OnlyInputs(t testing.TB, m *mockaws.Monitor, typ string) map[string]any {
	t.Helper()
	return mockaws.Plain(Only(t, m, typ).Inputs)
}

// Named returns the plain inputs of the registration with that type and logical name, failing
// the test when there is none.
func Named(t testing.TB, m *mockaws.Monitor, typ, name string) map[string]any {
	t.Helper()
	r, ok := m.ByName(typ, name)
	if !ok {
		var names []string
		for _, r := range m.ByType(typ) {
			names = append(names, r.Name)
		}
		sort.Strings(names)
		t.Fatalf("no %s named %q; registered: %v", typ, name, names)
	}
	return mockaws.Plain(r.Inputs)
}

// Obj asserts that a plain value is an object and returns it; what names it in the failure.
func Obj(t testing.TB, v any, what string) map[string]any {
	t.Helper()
	o, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s = %#v, want an object", what, v)
	}
	return o
}

// List asserts that a plain value is a list and returns it; what names it in the failure.
func List(t testing.TB, v any, what string) []any {
	t.Helper()
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("%s = %#v, want a list", what, v)
	}
	return l
}

// Strings reads a plain value that may be one string or a list of strings (as IAM and bucket
// policies allow); anything else gives nil.
func Strings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, _ := e.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// Statement is one IAM policy statement as AWS reads it. Action and Resource may be one string
// or a list (Strings reads either).
type Statement struct {
	Sid       string
	Effect    string
	Principal Principal
	Action    any
	Resource  any
	Condition map[string]map[string]any
}

// Principal is a statement's principal: principal type ("AWS", "Service") to one name or a
// list. The bare "*" reads as {"AWS": "*"}, which is what IAM takes it to mean.
type Principal map[string]any

// UnmarshalJSON reads an object of principal types, or "*".
func (p *Principal) UnmarshalJSON(data []byte) error {
	var star string
	if json.Unmarshal(data, &star) == nil {
		*p = Principal{"AWS": star}
		return nil
	}
	return json.Unmarshal(data, (*map[string]any)(p))
}

// Policy decodes a recorded policy document, failing the test unless raw is a plain JSON string
// of policy language version 2012-10-17, and returns its statements.
func Policy(t testing.TB, raw any) []Statement {
	t.Helper()
	s, ok := raw.(string)
	if !ok {
		t.Fatalf("policy is not a plain string: %v", raw)
	}
	var doc struct {
		Version   string
		Statement []Statement
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		t.Fatalf("policy is not JSON: %v\n%s", err, s)
	}
	if doc.Version != "2012-10-17" {
		t.Errorf("policy Version = %q, want 2012-10-17", doc.Version)
	}
	return doc.Statement
}

// Children checks that exactly one component of type typ was registered, named name, under the
// stack, and that every other registration is a direct child of it and the children are want
// ("<type> <name>", in any order).
func Children(t testing.TB, m *mockaws.Monitor, typ, name string, want []string) {
	t.Helper()
	comps := m.ByType(typ)
	if len(comps) != 1 || comps[0].Name != name || comps[0].Parent != "" || comps[0].Custom {
		t.Fatalf("components = %+v, want one %s named %s under the stack", comps, typ, name)
	}
	comp := comps[0].URN
	var got []string
	for _, r := range m.Resources() {
		if r.URN == comp {
			continue
		}
		got = append(got, r.Type+" "+r.Name)
		if r.Parent != comp {
			t.Errorf("%s %s: parent %q (%s), want the component", r.Type, r.Name, r.Parent, m.NameOf(r.Parent))
		}
	}
	want = slices.Clone(want)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("children:\n got  %v\n want %v", got, want)
	}
}

// Refused checks that err refuses a component's arguments, naming the component (e.g.
// `gateway "chem-gw"`) and the field ("<field>:"), and that nothing at all, not even the
// component, was registered.
func Refused(t testing.TB, m *mockaws.Monitor, err error, component, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s accepted the args, want an error naming %s", component, field)
	}
	if !strings.Contains(err.Error(), field+":") || !strings.Contains(err.Error(), component) {
		t.Errorf("error %q does not name %s and the field %s", err, component, field)
	}
	for _, r := range m.Resources() {
		t.Errorf("registered %s %s, want nothing", r.Type, r.Name)
	}
}

// ReportsAll checks that err reports every one of fields ("<field>:"), so that all problems
// come out at once.
func ReportsAll(t testing.TB, err error, fields ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one reporting %v", fields)
	}
	for _, field := range fields {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error does not report %s:\n%v", field, err)
		}
	}
}
