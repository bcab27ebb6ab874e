package node_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/llm-sandbox/llm-sandbox/internal/cwclient"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry/keyregistrytest"
	"github.com/llm-sandbox/llm-sandbox/internal/usage"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/node/usagetest"
)

// usageSettings renders the usage settings of department chem with two teams.
func usageSettings(t *testing.T, flushSeconds int) []byte {
	t.Helper()
	c := &node.Config{Department: "chem", Region: "ca-central-1", LiteLLM: &node.LiteLLMConfig{
		KeyRegistry: &node.KeyRegistry{Table: keyregistry.TableName("chem"), Teams: []node.LiteLLMTeam{
			{Name: "students", Models: []string{"llama3.1:8b"}, RequestsPerMinute: 10, TokensPerMinute: 20000, ParallelPerKey: 1},
			{Name: "staff", Models: []string{"llama3.1:8b"}, RequestsPerMinute: 60, TokensPerMinute: 100000, ParallelPerKey: 2},
		}},
		Usage: &node.LiteLLMUsage{FlushSeconds: flushSeconds},
	}}
	settings, err := node.RenderLiteLLMUsageSettings(c)
	if err != nil {
		t.Fatal(err)
	}
	return settings
}

// readUsage reads the emulator's usage metrics of department chem for the last hour.
func readUsage(t *testing.T, m *keyregistrytest.Emulator) (usage.Report, *cloudwatch.Client) {
	t.Helper()
	cw := cwclient.New(m.Config("ca-central-1"))
	r, err := usage.Read(context.Background(), cw, usage.Query{Department: "chem", Start: time.Now().Add(-time.Hour), End: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	return r, cw
}

const (
	alice = "aliceaaaaaaaaaaa"
	bob   = "bobbbbbbbbbbbbbb"
)

// TestUsageModuleCountsAndPublishes runs the rendered module with its rendered settings under
// a real Python with the real boto3 against the AWS emulator: answered requests count their
// tokens, a 429 counts as a throttle and any other failure as an error, both for the key's
// team and id; the custom-auth module's 403 counts for the key it names; requests of no key,
// of a team the stack does not declare or of a malformed key id count nowhere, so they create
// no metric; a publication that fails keeps its counts for the next; and what is counted is
// exactly what the reader reads back, per team and key.
func TestUsageModuleCountsAndPublishes(t *testing.T) {
	m := keyregistrytest.Start(t)
	stderr := usagetest.Run(t, usagetest.Options{Python: m.Python, Endpoint: m.URL, Settings: usageSettings(t, 300)}, []usagetest.Event{
		{Kind: "success", Team: "students", KeyID: alice, PromptTokens: 10, CompletionTokens: 5},
		{Kind: "success", Team: "students", KeyID: alice, PromptTokens: 7, CompletionTokens: 3},
		{Kind: "failure", Team: "students", KeyID: alice, Status: 429},
		{Kind: "failure", Team: "students", KeyID: alice, Status: 500},
		{Kind: "success", Team: "staff", KeyID: bob, PromptTokens: 4, CompletionTokens: 2},
		{Kind: "failure", Team: "staff", KeyID: bob, Status: 403, OnException: true},
		{Kind: "failure", Status: 401},
		{Kind: "success", Team: "alumni", KeyID: alice, PromptTokens: 99, CompletionTokens: 99},
		{Kind: "success", Team: "students", KeyID: "PRIVACY-MARKER", PromptTokens: 99, CompletionTokens: 99},
		{Kind: "success", Team: "students", PromptTokens: 99, CompletionTokens: 99},
		{Kind: "flush"},
		{Kind: "cut"},
		{Kind: "success", Team: "students", KeyID: alice, PromptTokens: 1, CompletionTokens: 1},
		{Kind: "failure", Team: "staff", KeyID: bob, Status: 429},
		{Kind: "flush"},
		{Kind: "restore"},
		{Kind: "flush"},
	})
	if !strings.Contains(stderr, "publishing to CloudWatch failed, kept for the next attempt") {
		t.Errorf("the cut-off publication was not reported:\n%s", stderr)
	}
	got, cw := readUsage(t, m)
	want := []usage.Team{
		{Team: "staff", Counts: usage.Counts{Requests: 3, PromptTokens: 4, CompletionTokens: 2, Errors: 1, Throttles: 1},
			Keys: []usage.Key{{KeyID: bob, Counts: usage.Counts{Requests: 3, PromptTokens: 4, CompletionTokens: 2, Errors: 1, Throttles: 1}}}},
		{Team: "students", Counts: usage.Counts{Requests: 5, PromptTokens: 18, CompletionTokens: 9, Errors: 1, Throttles: 1},
			Keys: []usage.Key{{KeyID: alice, Counts: usage.Counts{Requests: 5, PromptTokens: 18, CompletionTokens: 9, Errors: 1, Throttles: 1}}}},
	}
	if !reflect.DeepEqual(got.Teams, want) {
		g, _ := json.Marshal(got.Teams)
		w, _ := json.Marshal(want)
		t.Errorf("usage read back:\n got  %s\n want %s", g, w)
	}

	// Every metric the module created is one of the five, in the usage namespace, with the
	// department, a declared team and an issued key id as its only dimension values.
	out, err := cw.ListMetrics(context.Background(), &cloudwatch.ListMetricsInput{})
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"chem": true, "students": true, "staff": true, alice: true, bob: true}
	names := map[string]bool{}
	for _, mt := range out.Metrics {
		names[aws.ToString(mt.MetricName)] = true
		if aws.ToString(mt.Namespace) != usage.Namespace || len(mt.Dimensions) != 3 {
			t.Errorf("metric %s in %s with %d dimensions", aws.ToString(mt.MetricName), aws.ToString(mt.Namespace), len(mt.Dimensions))
		}
		for _, d := range mt.Dimensions {
			if !allowed[aws.ToString(d.Value)] {
				t.Errorf("metric %s has dimension %s=%q", aws.ToString(mt.MetricName), aws.ToString(d.Name), aws.ToString(d.Value))
			}
		}
	}
	if len(names) != len(usage.Metrics) {
		t.Errorf("metric names %v, want the five of usage.Metrics", names)
	}
}

// A worker publishes on its own every flushSeconds (the process then ends without its
// exit-time flush), and what is left when a worker ends is published then: a single process,
// a spawned worker process (as uvicorn starts them), a forked one (which ends through
// os._exit, past atexit).
func TestUsageModulePublishesPeriodicallyAndAtExit(t *testing.T) {
	m := keyregistrytest.Start(t)
	usagetest.Run(t, usagetest.Options{Python: m.Python, Endpoint: m.URL, Settings: usageSettings(t, 1)}, []usagetest.Event{
		{Kind: "success", Team: "students", KeyID: alice, PromptTokens: 3, CompletionTokens: 2},
		{Kind: "sleep", Seconds: 2.5},
		{Kind: "abort"},
	})
	r, _ := readUsage(t, m)
	if r.Total != (usage.Counts{Requests: 1, PromptTokens: 3, CompletionTokens: 2}) {
		t.Errorf("after the periodic flush: %+v, want alice's one request", r.Total)
	}
	for _, child := range []string{"", "spawn", "fork"} {
		usagetest.Run(t, usagetest.Options{Python: m.Python, Endpoint: m.URL, Settings: usageSettings(t, 300), Child: child}, []usagetest.Event{
			{Kind: "success", Team: "staff", KeyID: bob, PromptTokens: 5, CompletionTokens: 1},
		})
	}
	r, _ = readUsage(t, m)
	if r.Total != (usage.Counts{Requests: 4, PromptTokens: 18, CompletionTokens: 5}) {
		t.Errorf("after three workers ended (a process, a spawned and a forked child): %+v, want alice's request and bob's three", r.Total)
	}
}

// Usage needs the key registry and a flush interval CloudWatch can take.
func TestUsageSettingsValidation(t *testing.T) {
	c := &node.Config{Department: "chem", Region: "ca-central-1", LiteLLM: &node.LiteLLMConfig{Usage: &node.LiteLLMUsage{FlushSeconds: 0}}}
	_, err := node.RenderLiteLLMUsageSettings(c)
	if err == nil || !strings.Contains(err.Error(), "litellm.usage: needs litellm.keyRegistry") || !strings.Contains(err.Error(), "litellm.usage.flushSeconds: must be 1..300 (got 0)") {
		t.Errorf("usage without a registry and interval: %v", err)
	}
	if b, err := node.RenderLiteLLMUsageSettings(&node.Config{LiteLLM: &node.LiteLLMConfig{}}); b != nil || err != nil {
		t.Errorf("no usage: %q, %v; want no settings file", b, err)
	}
}
