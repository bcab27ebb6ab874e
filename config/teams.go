package config

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// Team is one group of people whose keys share a model list and limits. Teams are code (the
// stack file); keys are data (the key registry, managed with `sandboxctl keys`).
type Team struct {
	// Name is the team's key in the stack file; the registry stores it with each key.
	Name string
	// Models are the model names the team's keys may call, sorted; by default every model of
	// the stack.
	Models []string
	// RequestsPerMinute is each key's request rate limit.
	RequestsPerMinute int
	// TokensPerMinute is each key's token rate limit (prompt and completion tokens).
	TokensPerMinute int
	// ParallelPerKey is how many requests one key may have in flight at once.
	ParallelPerKey int
	// MaxKeyLifetimeDays is the longest lifetime `sandboxctl keys issue` gives a key of the
	// team.
	MaxKeyLifetimeDays int
}

// TeamNames returns the team names in sorted order.
func (s *Spec) TeamNames() []string { return slices.Sorted(maps.Keys(s.Teams)) }

// ModelNames returns every model the stack serves, sorted.
func (s *Spec) ModelNames() []string {
	var names []string
	for _, pool := range s.Pools {
		names = append(names, pool.Models...)
	}
	sort.Strings(names)
	return names
}

// ParallelCapacity is how many requests for model the stack's pools can run at once at their
// maxSize: Ollama runs `parallel` requests per loaded model on each node
// (OLLAMA_NUM_PARALLEL), and a pool loads each of its models on every node. 0 when no pool
// serves model.
func (s *Spec) ParallelCapacity(model string) int {
	n := 0
	for _, pool := range s.Pools {
		for _, m := range pool.Models {
			if m == model {
				n += pool.MaxSize * pool.Parallel
			}
		}
	}
	return n
}

// Team defaults (docs/config.md and Pulumi.yaml say the same).
const (
	DefaultTeamRequestsPerMinute  = 60
	DefaultTeamTokensPerMinute    = 100000
	DefaultTeamParallelPerKey     = 2
	DefaultTeamMaxKeyLifetimeDays = 180
)

// Team limits, chosen so that a typo (requestsPerMinute: 60000) is caught rather than deployed.
const (
	maxTeamRequestsPerMinute = 10000
	maxTeamTokensPerMinute   = 10000000
	maxTeamKeyLifetimeDays   = 366
)

var teamKeys = []string{"models", "requestsPerMinute", "tokensPerMinute", "parallelPerKey", "maxKeyLifetimeDays"}

// teams parses llm-sandbox:teams against the stack's pools (already parsed): a team's models
// must be served by a pool, and its concurrency may not exceed what those pools can run.
func (p *parser) teams(n *yaml.Node, spec *Spec) map[string]Team {
	const path = "teams"
	teams := map[string]Team{}
	for _, e := range p.entries(n, path) {
		name := e[0].Value
		tp := joinPath(path, name)
		if msg := rules.TeamName(name); msg != "" {
			p.add(tp, "%s", msg)
		}
		teams[name] = p.team(e[1], tp, name, spec)
	}
	return teams
}

func (p *parser) team(n *yaml.Node, path, name string, spec *Spec) Team {
	served := spec.ModelNames()
	t := Team{
		Name: name, Models: served,
		RequestsPerMinute: DefaultTeamRequestsPerMinute, TokensPerMinute: DefaultTeamTokensPerMinute,
		ParallelPerKey: DefaultTeamParallelPerKey, MaxKeyLifetimeDays: DefaultTeamMaxKeyLifetimeDays,
	}
	if n.Kind != yaml.MappingNode && !isNull(n) {
		p.add(path, "must be a mapping of team settings (got %s)", describe(n))
		return t
	}
	f := p.fields(n, path, teamKeys)
	at := func(k string) string { return joinPath(path, k) }

	modelsOK := true
	if v, ok := f["models"]; ok {
		listed := p.strList(v, at("models"))
		if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
			p.add(at("models"), "must list at least one model, or be left out for every model of the stack (got an empty list)")
			modelsOK = false
		}
		seen := map[string]bool{}
		for i, m := range listed {
			mp := fmt.Sprintf("%s[%d]", at("models"), i)
			switch {
			case seen[m]:
				p.add(mp, "lists %q twice", m)
			case spec.ParallelCapacity(m) == 0:
				p.add(mp, "%s", notServed(m, served))
				modelsOK = false
			}
			seen[m] = true
		}
		t.Models = slices.Compact(slices.Sorted(slices.Values(listed)))
	}
	if len(t.Models) == 0 {
		// No pool parsed (reported there) or an empty list (reported above): no capacity to
		// check the limits against.
		modelsOK = false
	}

	var ok bool
	if t.RequestsPerMinute, ok = p.integer(f["requestsPerMinute"], at("requestsPerMinute"), DefaultTeamRequestsPerMinute); ok {
		p.rangeCheck(at("requestsPerMinute"), t.RequestsPerMinute, 1, maxTeamRequestsPerMinute)
	}
	if t.TokensPerMinute, ok = p.integer(f["tokensPerMinute"], at("tokensPerMinute"), DefaultTeamTokensPerMinute); ok {
		p.rangeCheck(at("tokensPerMinute"), t.TokensPerMinute, 1, maxTeamTokensPerMinute)
	}
	if t.MaxKeyLifetimeDays, ok = p.integer(f["maxKeyLifetimeDays"], at("maxKeyLifetimeDays"), DefaultTeamMaxKeyLifetimeDays); ok {
		p.rangeCheck(at("maxKeyLifetimeDays"), t.MaxKeyLifetimeDays, 1, maxTeamKeyLifetimeDays)
	}

	// What the team's models can run at once at the pools' maxSize.
	capacity := 0
	for _, m := range t.Models {
		capacity += spec.ParallelCapacity(m)
	}
	capacityNote := func() string {
		parts := make([]string, 0, len(t.Models))
		for _, m := range t.Models {
			parts = append(parts, fmt.Sprintf("%s %d", m, spec.ParallelCapacity(m)))
		}
		return strings.Join(parts, ", ")
	}
	// One key at parallelPerKey holds that many of the pools' slots: more than the team's
	// models can run at once at the pools' maxSize is never reached.
	if t.ParallelPerKey, ok = p.integer(f["parallelPerKey"], at("parallelPerKey"), DefaultTeamParallelPerKey); ok && modelsOK {
		if t.ParallelPerKey < 1 || t.ParallelPerKey > capacity {
			p.add(at("parallelPerKey"), "must be between 1 and %d, what the team's models can run at once at the pools' maxSize x parallel (%s) (got %d)", capacity, capacityNote(), t.ParallelPerKey)
		}
	}
	return t
}

// notServed says that model is no model of the stack's pools, with the one most likely meant.
func notServed(model string, served []string) string {
	if s := suggest(model, served); s != "" {
		return fmt.Sprintf("model %q is not served by any pool of this stack (did you mean %q?)", model, s)
	}
	return fmt.Sprintf("model %q is not served by any pool of this stack (served: %s)", model, strings.Join(served, ", "))
}
