// Package mocktest holds the assertions the component tests share over a mockaws.Monitor's
// recordings, so each test file states only what it checks.
package mocktest

import (
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
