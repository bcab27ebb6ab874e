// Package frontdoor is the front load balancer's routing as data: which requests reach
// LiteLLM and which the load balancer answers itself. The gateway renders its listener rules
// from Design, `sandboxctl check` reads a planned listener back with Parse and judges it with
// Problems, and Decide evaluates a listener the way an Application Load Balancer does, so
// tests can run every route LiteLLM serves through the rules a stack renders.
//
// The ALB behaviour modelled here is what AWS documents ("Condition types for listener
// rules", Elastic Load Balancing User Guide,
// https://docs.aws.amazon.com/elasticloadbalancing/latest/application/rule-condition-types.html,
// and "Listener rules for your Application Load Balancer", same guide, listener-rules.html;
// the PathPatternConfig and HostHeaderConfig reference of the ELBv2 API):
//
//   - rules are evaluated in priority order, lowest first; the default action applies when no
//     rule matches;
//   - a rule matches when all its conditions match; a condition matches when one of its values
//     does;
//   - a rule holds at most five match evaluations (condition values) in total;
//   - host-header values are compared with the request's host name case-insensitively, with
//     the wildcards * (0 or more characters) and ? (exactly 1), and must contain a ".";
//   - path-pattern values are compared with the path of the request URL only, never its query
//     string, case-sensitively, with the same wildcards (`*` matches `/` too).
//
// AWS does not document that the ALB decodes percent-escapes or removes dot segments before
// matching a path. The design therefore depends on neither: every forwarding pattern is an
// exact path without a wildcard, so a request is forwarded only when its path is, byte for
// byte, one of ClientPaths. Any other spelling (another case, a trailing or doubled slash, an
// escape, a `..` segment, a `;` parameter) matches no forwarding rule and is refused by the
// listener, whatever LiteLLM's own router would have made of it.
package frontdoor

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// A PathGroup is the paths one forwarding rule carries, named for the rule.
type PathGroup struct {
	// Name names the rule (a child resource name suffix): stable, never an index.
	Name string
	// Paths are exact request paths.
	Paths []string
}

// ClientPathGroups are the requests the front listener forwards to LiteLLM, in the rules
// that carry them: the OpenAI-compatible inference endpoints clients use (chat, legacy
// completions, embeddings, the model list), each also without its /v1 prefix, as LiteLLM
// serves both and clients configured with a base URL without /v1 call those, and LiteLLM's
// liveness probe. At most four paths per group leave room for the host-header value within
// AWS's five values per rule.
//
// GET /v1/models/{id} (one model's card, the OpenAI SDKs' models.retrieve) is not among them:
// a path pattern cannot say "one segment" (`*` also matches `/`, `..` and escapes), and the
// model list at /v1/models tells a client the same. Clients that call models.retrieve get 403.
var ClientPathGroups = []PathGroup{
	{Name: "v1", Paths: []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models"}},
	{Name: "unversioned", Paths: []string{"/chat/completions", "/completions", "/embeddings", "/models"}},
	{Name: "health", Paths: []string{"/health/liveliness"}},
}

// ClientPaths returns every path of ClientPathGroups, in order.
func ClientPaths() []string {
	var out []string
	for _, g := range ClientPathGroups {
		out = append(out, g.Paths...)
	}
	return out
}

// MaxValuesPerRule is AWS's limit on match evaluations (condition values) in one rule.
const MaxValuesPerRule = 5

// Fixed responses of the front listener. Their bodies are OpenAI-style errors, so a client
// SDK shows the message.
const (
	// DeniedStatus answers every request that is not for a client path (the default action).
	DeniedStatus = 403
	// WrongHostStatus answers a request for another host name than the stack's hostname.
	WrongHostStatus = 404
	// ContentType is the fixed responses' content type.
	ContentType = "application/json"
	// DeniedBody is the 403's body.
	DeniedBody = `{"error":{"message":"This path is not served here. The OpenAI-compatible API is under /v1: chat/completions, completions, embeddings and models.","type":"invalid_request_error","code":"path_not_allowed"}}`
	// WrongHostBody is the 404's body.
	WrongHostBody = `{"error":{"message":"Unknown host name: use the service's own name.","type":"invalid_request_error","code":"unknown_host"}}`
)

// Rule priorities on the front listener: forwarding rules first, then the right host's
// refusal, then the catch-all for other host names.
const (
	ForwardPriority   = 100 // plus the group's index in ClientPathGroups
	DenyHostPriority  = 200
	WrongHostPriority = 300
)

// Action is what the listener does with a request.
type Action struct {
	// Forward is true when the request goes to the target group (LiteLLM).
	Forward bool
	// Redirect is true for a redirect (the HTTPS listener's port 80 companion).
	Redirect bool
	// Status is a fixed response's status code; 0 for forward and redirect.
	Status int
	// Body is a fixed response's body.
	Body string
}

// String says what the action does, for messages.
func (a Action) String() string {
	switch {
	case a.Forward:
		return "forward"
	case a.Redirect:
		return "redirect"
	case a.Status != 0:
		return "fixed-response " + strconv.Itoa(a.Status)
	}
	return "no action"
}

// Rule is one listener rule. A nil condition is absent and matches every request.
type Rule struct {
	// Name is the rule's name (its resource name, or its PathGroup's), for messages.
	Name     string
	Priority int
	// Hosts are the host-header values; nil for no host-header condition.
	Hosts []string
	// Paths are the path-pattern values; nil for no path-pattern condition.
	Paths []string
	// Other counts conditions of other kinds (headers, methods, query strings, source IPs):
	// Decide does not judge them (it takes such a rule as not matching), and Problems refuses
	// a forwarding rule that has them.
	Other int
	// Values is the number of condition values, all kinds together.
	Values int
	Action Action
}

// Listener is a listener's rules and default action.
type Listener struct {
	Default Action
	Rules   []Rule
}

// Design returns the front listener of a stack: with a hostname, one forwarding rule per
// ClientPathGroups entry under that host, a 403 for any other path under that host and a 404
// for any other host; without a hostname, the forwarding rules match the path alone. The
// default action is the 403.
func Design(hostname string) Listener {
	denied := Action{Status: DeniedStatus, Body: DeniedBody}
	l := Listener{Default: denied}
	var hosts []string
	if hostname != "" {
		hosts = []string{hostname}
	}
	for i, g := range ClientPathGroups {
		l.Rules = append(l.Rules, Rule{
			Name: g.Name, Priority: ForwardPriority + i, Hosts: hosts, Paths: slices.Clone(g.Paths),
			Values: len(hosts) + len(g.Paths), Action: Action{Forward: true},
		})
	}
	if hostname != "" {
		l.Rules = append(l.Rules,
			Rule{Name: "deny", Priority: DenyHostPriority, Hosts: hosts, Values: 1, Action: denied},
			// /* matches every origin-form request; no host-header value matches every name
			// (AWS requires a "." in one).
			Rule{Name: "wrong-host", Priority: WrongHostPriority, Paths: []string{"/*"}, Values: 1,
				Action: Action{Status: WrongHostStatus, Body: WrongHostBody}},
		)
	}
	return l
}

// Decide returns what the listener does with a request for host (the Host header as sent,
// port and all) and target (the request target as sent: the path, then optionally ? and the
// query string).
func (l Listener) Decide(host, target string) Action {
	path, _, _ := strings.Cut(target, "?")
	name := strings.ToLower(hostName(host))
	rules := slices.Clone(l.Rules)
	slices.SortStableFunc(rules, func(a, b Rule) int { return a.Priority - b.Priority })
	for _, r := range rules {
		if r.Other > 0 {
			continue
		}
		if r.Hosts != nil && !slices.ContainsFunc(r.Hosts, func(p string) bool { return Match(strings.ToLower(p), name) }) {
			continue
		}
		if r.Paths != nil && !slices.ContainsFunc(r.Paths, func(p string) bool { return Match(p, path) }) {
			continue
		}
		return r.Action
	}
	return l.Default
}

// hostName is the host name of a Host header: without a port.
func hostName(host string) string {
	if h, port, ok := strings.Cut(host, ":"); ok {
		if _, err := strconv.Atoi(port); err == nil {
			return h
		}
	}
	return host
}

// Match reports whether s matches pattern, where * matches 0 or more characters (any, "/"
// included) and ? exactly one, as in ALB host-header and path-pattern values. Every other
// character matches only itself.
func Match(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0 // the last * seen, and where in s it started matching
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case star >= 0:
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// OtherSpellings returns spellings of path p that an attacker tries to get past a filter on
// paths, to reach p or, through p, another route: another case, a trailing, leading or doubled
// slash, a dot segment, a ; parameter, percent-escapes of a slash, a letter or a NUL, and dot
// segments that climb from a client path up to p. None of them is p, so a listener that
// forwards exact paths must refuse every one; tests run them through the rules.
func OtherSpellings(p string) []string {
	out := []string{
		strings.ToUpper(p), p + "/", "/" + p, strings.Replace(p, "/", "//", 2), p + "/.", p + ";x",
		strings.Replace(p, "/", "/%2F", 1), strings.ReplaceAll(p, "/", "%2F"), p + "%00", p + "%20",
		"/./" + strings.TrimPrefix(p, "/"), "/v1/chat/completions/../.." + p, "/v1/models/../.." + p,
		"/v1/models/%2e%2e/%2e%2e" + p, "/v1/models/..%2F.." + p, "/health/liveliness/../.." + p,
	}
	if i := strings.LastIndex(p, "/"); i > 0 {
		out = append(out, p[:i]+"%2F"+p[i+1:]) // the inner slash escaped
	}
	if i := strings.IndexFunc(p, func(r rune) bool { return r >= 'a' && r <= 'z' }); i >= 0 {
		out = append(out, fmt.Sprintf("%s%%%02X%s", p[:i], p[i], p[i+1:])) // one letter escaped
	}
	return slices.DeleteFunc(out, func(s string) bool { return s == p })
}

// Problems returns what is wrong with a client-facing listener, one sentence each: a default
// action that forwards; a forwarding rule with no path condition, a wildcard, a path beyond
// ClientPaths or other kinds of conditions; a forwarding rule not limited to the stack's
// hostname when the stack has one; a rule over AWS's five condition values.
func Problems(l Listener, hostname string) []string {
	var out []string
	if l.Default.Forward {
		out = append(out, fmt.Sprintf("the default action forwards every path no rule matches; want a %d fixed response", DeniedStatus))
	}
	allowed := ClientPaths()
	for _, r := range l.Rules {
		if r.Values > MaxValuesPerRule {
			out = append(out, fmt.Sprintf("rule %s has %d condition values; AWS allows %d", r.Name, r.Values, MaxValuesPerRule))
		}
		if !r.Action.Forward {
			continue
		}
		if r.Other > 0 {
			out = append(out, fmt.Sprintf("rule %s forwards on conditions other than host and path; want the host and exact paths only", r.Name))
		}
		if r.Paths == nil {
			out = append(out, fmt.Sprintf("rule %s forwards without a path condition, so every path", r.Name))
		}
		for _, p := range r.Paths {
			switch {
			case strings.ContainsAny(p, "*?"):
				out = append(out, fmt.Sprintf("rule %s forwards path pattern %q: a wildcard also matches other routes (and /, .. and escapes)", r.Name, p))
			case !slices.Contains(allowed, p):
				out = append(out, fmt.Sprintf("rule %s forwards %q, which is not a client path (%s)", r.Name, p, strings.Join(allowed, ", ")))
			}
		}
		if hostname != "" && (len(r.Hosts) != 1 || !strings.EqualFold(r.Hosts[0], hostname)) {
			out = append(out, fmt.Sprintf("rule %s forwards for hosts %v; want exactly the stack's hostname %q, so that other names get %d", r.Name, r.Hosts, hostname, WrongHostStatus))
		}
	}
	return out
}

// Parse reads a listener back from its inputs and its rules' inputs (keyed by rule name) as
// the AWS provider names them (aws:lb/listener:Listener defaultActions;
// aws:lb/listenerRule:ListenerRule priority, actions, conditions), as plain JSON-like values.
func Parse(listener map[string]any, rules map[string]map[string]any) Listener {
	l := Listener{Default: parseActions(listener["defaultActions"])}
	for name, in := range rules {
		r := Rule{Name: name, Action: parseActions(in["actions"])}
		if p, ok := in["priority"].(float64); ok {
			r.Priority = int(p)
		}
		for _, c := range asList(in["conditions"]) {
			for kind, v := range asMap(c) {
				if v == nil {
					continue
				}
				switch kind {
				case "hostHeader":
					vals := asStrings(asMap(v)["values"])
					r.Hosts = append(r.Hosts, vals...)
					r.Values += len(vals)
				case "pathPattern":
					vals := asStrings(asMap(v)["values"])
					r.Paths = append(r.Paths, vals...)
					r.Values += len(vals)
				default:
					r.Other++
					r.Values += countValues(v)
				}
			}
		}
		l.Rules = append(l.Rules, r)
	}
	slices.SortStableFunc(l.Rules, func(a, b Rule) int {
		if a.Priority != b.Priority {
			return a.Priority - b.Priority
		}
		return strings.Compare(a.Name, b.Name)
	})
	return l
}

// parseActions reads a list of listener actions: it forwards when any action forwards (an
// authenticate action comes before a forward).
func parseActions(v any) Action {
	var a Action
	for _, e := range asList(v) {
		m := asMap(e)
		switch m["type"] {
		case "forward":
			a.Forward = true
		case "redirect":
			a.Redirect = true
		case "fixed-response":
			fr := asMap(m["fixedResponse"])
			a.Status, _ = strconv.Atoi(fmt.Sprint(fr["statusCode"]))
			a.Body, _ = fr["messageBody"].(string)
		}
	}
	return a
}

// countValues counts the values of a condition of another kind: a list of values or of
// key/value pairs, or a mapping holding such lists; at least one.
func countValues(v any) int {
	if l := asList(v); l != nil {
		return max(len(l), 1)
	}
	n := 0
	for _, e := range asMap(v) {
		n += len(asList(e))
	}
	return max(n, 1)
}

func asList(v any) []any { l, _ := v.([]any); return l }

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func asStrings(v any) []string {
	var out []string
	for _, e := range asList(v) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
