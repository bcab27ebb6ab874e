package frontdoor

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"/v1/models", "/v1/models", true},
		{"/v1/models", "/v1/models/", false},
		{"/v1/models", "/V1/models", false},
		{"/v1/models", "/v1/model", false},
		{"/v1/models", "/v1/modelsx", false},
		{"/*", "/", true},
		{"/*", "/config/update", true},
		{"/*", "", false},
		{"*", "", true},
		{"/v1/*", "/v1/models/../../config/update", true},
		{"/v1/*/x", "/v1/a/b/x", true},
		{"/v1/*/x", "/v1/a/b/y", false},
		{"/v?/models", "/v1/models", true},
		{"/v?/models", "/v12/models", false},
		{"*.example.edu", "llm.example.edu", true},
		{"*.example.edu", "example.edu", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"**", "anything", true},
	} {
		if got := Match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

const host = "llm.chem.example.edu"

// managementPaths are LiteLLM admin and management routes (the 2026 CVEs were on these).
var managementPaths = []string{
	"/config/update", "/prompts/test", "/user/update", "/key/generate", "/key/list", "/model/new",
	"/team/new", "/spend/logs", "/global/spend", "/health", "/", "/openapi.json", "/docs", "/metrics",
	"/v1/models/llama3.1:8b", "/models/llama3.1:8b", "/v1/files", "/v1/batches", "/v1/fine_tuning/jobs",
	"/v1/responses", "/v1/audio/speech", "/v1/images/generations", "/ollama/api/pull", "/health/readiness",
}

// With a hostname: exactly the client paths, under exactly that name (any case, with or
// without a port, any query string), are forwarded; every other path of that name gets 403;
// every other name gets 404.
func TestDesignWithHostname(t *testing.T) {
	l := Design(host)
	if ps := Problems(l, host); len(ps) != 0 {
		t.Fatalf("the design has problems: %v", ps)
	}
	for _, p := range ClientPaths() {
		for _, h := range []string{host, strings.ToUpper(host), host + ":443", host + ":80"} {
			for _, target := range []string{p, p + "?x=1", p + "?/config/update"} {
				if a := l.Decide(h, target); !a.Forward {
					t.Errorf("%s %s: %v, want forward", h, target, a)
				}
			}
		}
		for _, h := range []string{"", "other.example.edu", "llm.chem.example.edu.evil.example", "internal-llmgw-123.ca-central-1.elb.amazonaws.com", "10.20.1.5"} {
			if a := l.Decide(h, p); a.Status != WrongHostStatus {
				t.Errorf("host %q %s: %v, want %d", h, p, a, WrongHostStatus)
			}
		}
	}
	for _, p := range managementPaths {
		if a := l.Decide(host, p); a.Status != DeniedStatus || a.Body != DeniedBody {
			t.Errorf("%s: %v, want %d", p, a, DeniedStatus)
		}
		for _, b := range OtherSpellings(p) {
			if a := l.Decide(host, b); a.Forward {
				t.Errorf("bypass %s is forwarded", b)
			}
		}
	}
	// Even the client paths themselves, spelled any other way, are not forwarded.
	for _, p := range ClientPaths() {
		for _, b := range OtherSpellings(p) {
			if a := l.Decide(host, b); a.Forward {
				t.Errorf("%s spelled %s is forwarded", p, b)
			}
		}
	}
}

func TestOtherSpellings(t *testing.T) {
	got := OtherSpellings("/config/update")
	for _, want := range []string{"/CONFIG/UPDATE", "/config/update/", "//config/update", "/v1/chat/completions/../../config/update", "/%63onfig/update", "/config%2Fupdate"} {
		if !slices.Contains(got, want) {
			t.Errorf("OtherSpellings(/config/update) lacks %s: %v", want, got)
		}
	}
	if slices.Contains(got, "/config/update") {
		t.Error("OtherSpellings returns the path itself")
	}
}

// Without a hostname any name reaches the client paths, and nothing else is forwarded.
func TestDesignWithoutHostname(t *testing.T) {
	l := Design("")
	if ps := Problems(l, ""); len(ps) != 0 {
		t.Fatalf("the design has problems: %v", ps)
	}
	if slices.ContainsFunc(l.Rules, func(r Rule) bool { return r.Hosts != nil || !r.Action.Forward }) {
		t.Errorf("rules without a hostname: %+v, want forwarding rules on paths alone", l.Rules)
	}
	for _, p := range ClientPaths() {
		if a := l.Decide("internal-llmgw-123.ca-central-1.elb.amazonaws.com", p); !a.Forward {
			t.Errorf("%s: %v, want forward", p, a)
		}
	}
	for _, p := range managementPaths {
		if a := l.Decide("anything", p); a.Status != DeniedStatus {
			t.Errorf("%s: %v, want %d", p, a, DeniedStatus)
		}
		for _, b := range OtherSpellings(p) {
			if a := l.Decide("anything", b); a.Forward {
				t.Errorf("bypass %s is forwarded", b)
			}
		}
	}
}

// Every rule stays within AWS's limits: five condition values and five wildcards per rule,
// 128 characters per value.
func TestDesignWithinAWSLimits(t *testing.T) {
	for _, h := range []string{"", host} {
		for _, r := range Design(h).Rules {
			values := append(slices.Clone(r.Hosts), r.Paths...)
			wild := 0
			for _, v := range values {
				wild += strings.Count(v, "*") + strings.Count(v, "?")
				if len(v) > 128 {
					t.Errorf("rule %s: value %q over 128 characters", r.Name, v)
				}
			}
			if len(values) != r.Values || r.Values > MaxValuesPerRule || r.Values == 0 || wild > 5 {
				t.Errorf("rule %s: %d values (counted %d), %d wildcards", r.Name, len(values), r.Values, wild)
			}
		}
	}
}

// inputs renders a listener as the AWS provider's inputs, the shape Parse reads.
func inputs(l Listener) (map[string]any, map[string]map[string]any) {
	action := func(a Action) []any {
		switch {
		case a.Forward:
			return []any{map[string]any{"type": "forward", "targetGroupArn": "arn:tg"}}
		case a.Redirect:
			return []any{map[string]any{"type": "redirect", "redirect": map[string]any{"protocol": "HTTPS"}}}
		}
		return []any{map[string]any{"type": "fixed-response", "fixedResponse": map[string]any{
			"statusCode": strconv.Itoa(a.Status), "contentType": ContentType, "messageBody": a.Body}}}
	}
	rules := map[string]map[string]any{}
	for _, r := range l.Rules {
		var conds []any
		if r.Hosts != nil {
			conds = append(conds, map[string]any{"hostHeader": map[string]any{"values": strsAny(r.Hosts)}})
		}
		if r.Paths != nil {
			conds = append(conds, map[string]any{"pathPattern": map[string]any{"values": strsAny(r.Paths)}})
		}
		rules[r.Name] = map[string]any{"priority": float64(r.Priority), "actions": action(r.Action), "conditions": conds}
	}
	return map[string]any{"defaultActions": action(l.Default)}, rules
}

func strsAny(ss []string) []any {
	var out []any
	for _, s := range ss {
		out = append(out, s)
	}
	return out
}

func TestParseReadsBackTheDesign(t *testing.T) {
	for _, h := range []string{"", host} {
		want := Design(h)
		got := Parse(inputs(want))
		if len(got.Rules) != len(want.Rules) || got.Default != want.Default {
			t.Fatalf("hostname %q: parsed %+v, want %+v", h, got, want)
		}
		for i := range want.Rules {
			g, w := got.Rules[i], want.Rules[i]
			if g.Priority != w.Priority || !slices.Equal(g.Hosts, w.Hosts) || !slices.Equal(g.Paths, w.Paths) || g.Values != w.Values || g.Action != w.Action || g.Other != 0 {
				t.Errorf("hostname %q rule %d: parsed %+v, want %+v", h, i, g, w)
			}
		}
	}
}

// Problems names each way a listener can forward more than the client paths.
func TestProblems(t *testing.T) {
	edit := func(h string, f func(*Listener)) Listener {
		l := Design(h)
		f(&l)
		return l
	}
	for _, tc := range []struct {
		name     string
		l        Listener
		hostname string
		want     string
	}{
		{"default forwards", edit("", func(l *Listener) { l.Default = Action{Forward: true} }), "", "the default action forwards every path"},
		{"no rules, default forwards", Listener{Default: Action{Forward: true}}, "", "the default action forwards"},
		{"wildcard", edit("", func(l *Listener) { l.Rules[0].Paths = []string{"/v1/*"} }), "", `forwards path pattern "/v1/*"`},
		{"admin path", edit(host, func(l *Listener) { l.Rules[2].Paths = append(l.Rules[2].Paths, "/config/update") }), host, `forwards "/config/update", which is not a client path`},
		{"no path condition", edit("", func(l *Listener) { l.Rules[2].Paths = nil }), "", "without a path condition"},
		{"no host condition with a hostname", edit("", func(l *Listener) {}), host, `want exactly the stack's hostname "llm.chem.example.edu"`},
		{"a wildcard host", edit(host, func(l *Listener) { l.Rules[0].Hosts = []string{"*.example.edu"} }), host, "forwards for hosts [*.example.edu]"},
		{"other conditions", edit("", func(l *Listener) { l.Rules[0].Other = 1 }), "", "conditions other than host and path"},
		{"too many values", edit(host, func(l *Listener) { l.Rules[0].Values = 6 }), host, "6 condition values; AWS allows 5"},
	} {
		ps := Problems(tc.l, tc.hostname)
		if !slices.ContainsFunc(ps, func(p string) bool { return strings.Contains(p, tc.want) }) {
			t.Errorf("%s: problems %v, want one containing %q", tc.name, ps, tc.want)
		}
	}
}
