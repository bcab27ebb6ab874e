package config

import (
	"reflect"
	"testing"
)

// A team that sets nothing gets every model of the stack and the default limits; a team that sets everything keeps what it set, models sorted.
func TestTeamDefaultsAndValues(t *testing.T) {
	values := Values{
		"aws:region":             "ca-central-1",
		"llm-sandbox:department": "history",
		"llm-sandbox:network":    `{"cidr":"10.50.0.0/16"}`,
		"llm-sandbox:access":     `{"mode":"internal","plainHttp":true}`,
		"llm-sandbox:pools": `{"chat":{"models":["qwen2.5:7b"],"maxSize":3,"parallel":2},` +
			`"gpu":{"models":["llama3.1:8b"],"maxSize":1,"parallel":4}}`,
		"llm-sandbox:teams": `{"staff":{},"students":{"models":["qwen2.5:7b","llama3.1:8b"],` +
			`"requestsPerMinute":10,"tokensPerMinute":5000,"parallelPerKey":1,"maxKeyLifetimeDays":120}}`,
	}
	spec, err := Parse("history", "stacks/Pulumi.history.yaml", values)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Team{
		"staff": {
			Name: "staff", Models: []string{"llama3.1:8b", "qwen2.5:7b"},
			RequestsPerMinute: DefaultTeamRequestsPerMinute, TokensPerMinute: DefaultTeamTokensPerMinute,
			ParallelPerKey:     DefaultTeamParallelPerKey,
			MaxKeyLifetimeDays: DefaultTeamMaxKeyLifetimeDays,
		},
		"students": {
			Name: "students", Models: []string{"llama3.1:8b", "qwen2.5:7b"},
			RequestsPerMinute: 10, TokensPerMinute: 5000, ParallelPerKey: 1,
			MaxKeyLifetimeDays: 120,
		},
	}
	if !reflect.DeepEqual(spec.Teams, want) {
		t.Errorf("teams:\ngot  %+v\nwant %+v", spec.Teams, want)
	}
	if got := spec.TeamNames(); !reflect.DeepEqual(got, []string{"staff", "students"}) {
		t.Errorf("TeamNames() = %v", got)
	}
	if got := spec.ParallelCapacity("qwen2.5:7b"); got != 6 {
		t.Errorf("ParallelCapacity(qwen2.5:7b) = %d, want 3 nodes x 2", got)
	}
}

// Every problem of a team is reported at once, not only the first.
func TestTeamProblemsAllReported(t *testing.T) {
	values := Values{
		"aws:region":             "ca-central-1",
		"llm-sandbox:department": "history",
		"llm-sandbox:network":    `{"cidr":"10.50.0.0/16"}`,
		"llm-sandbox:pools":      `{"gpu":{"models":["llama3.1:8b"]}}`,
		"llm-sandbox:teams":      `{"a":{"requestsPerMinute":0,"tokensPerMinute":-1,"maxKeyLifetimeDays":0,"parallelPerKey":99}}`,
	}
	_, err := Parse("history", "stacks/Pulumi.history.yaml", values)
	ps, _ := err.(Problems)
	paths := map[string]bool{}
	for _, p := range ps {
		paths[p.Path] = true
	}
	for _, want := range []string{"teams.a.requestsPerMinute", "teams.a.tokensPerMinute", "teams.a.maxKeyLifetimeDays", "teams.a.parallelPerKey"} {
		if !paths[want] {
			t.Errorf("no problem at %s; got %v", want, err)
		}
	}
}
