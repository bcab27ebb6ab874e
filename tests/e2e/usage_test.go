package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
	"github.com/llm-sandbox/llm-sandbox/internal/usage"
)

// usageTally is what the clients saw, per team and key id, counted as docs/keys.md says the
// gateway's usage metrics count it: every request a key was authenticated for, the tokens of
// the answered ones as the answer reports them, a 429 as a throttle, any other refusal or
// failure as an error; a 401 (a key unknown, revoked or expired) nowhere.
type usageTally struct {
	mu   sync.Mutex
	keys map[string]*usage.Counts // key id → counts
	team map[string]string        // key id → team
}

func newUsageTally() *usageTally {
	return &usageTally{keys: map[string]*usage.Counts{}, team: map[string]string{}}
}

// add records one answer to a request made with the key of team and keyID.
func (u *usageTally) add(t *testing.T, team, keyID string, status int, body []byte) {
	t.Helper()
	if status == http.StatusUnauthorized {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.keys[keyID]
	if c == nil {
		c = &usage.Counts{}
		u.keys[keyID], u.team[keyID] = c, team
	}
	c.Requests++
	switch {
	case status == http.StatusOK:
		var answer struct {
			Usage struct {
				PromptTokens     int64 `json:"prompt_tokens"`
				CompletionTokens int64 `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(body, &answer); err != nil || answer.Usage.PromptTokens <= 0 || answer.Usage.CompletionTokens <= 0 {
			t.Errorf("an answer without its token counts (%v): %s", err, body)
		}
		c.PromptTokens += answer.Usage.PromptTokens
		c.CompletionTokens += answer.Usage.CompletionTokens
	case status == http.StatusTooManyRequests:
		c.Throttles++
	default:
		c.Errors++
	}
}

// teams is the tally as usage.Read reports it: teams by name, their keys by id.
func (u *usageTally) teams() []usage.Team {
	u.mu.Lock()
	defer u.mu.Unlock()
	byTeam := map[string]*usage.Team{}
	var names []string
	for id, c := range u.keys {
		name := u.team[id]
		tm := byTeam[name]
		if tm == nil {
			tm = &usage.Team{Team: name, Keys: []usage.Key{}}
			byTeam[name] = tm
			names = append(names, name)
		}
		tm.Keys = append(tm.Keys, usage.Key{KeyID: id, Counts: *c})
		tm.Counts = tm.Counts.Plus(*c)
	}
	slices.Sort(names)
	out := []usage.Team{}
	for _, name := range names {
		tm := byTeam[name]
		slices.SortFunc(tm.Keys, func(a, b usage.Key) int { return strings.Compare(a.KeyID, b.KeyID) })
		out = append(out, *tm)
	}
	return out
}

// waitForUsage reads the department's usage metrics from the emulator until they equal the
// tally's or limit passes, and returns the last report. The workers publish every
// flushSeconds, so a few seconds after the last request every count is there.
func waitForUsage(t *testing.T, cw usage.API, department string, since time.Time, want []usage.Team, limit time.Duration) usage.Report {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r, err := usage.Read(context.Background(), cw, usage.Query{Department: department, Start: since, End: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(r.Teams, want) || time.Now().After(deadline) {
			return r
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// diffUsage fails t unless got is want, naming the first key that differs.
func diffUsage(t *testing.T, what string, got, want []usage.Team) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	t.Errorf("%s:\n got  %s\n want %s", what, g, w)
}

// buildSandboxctl compiles cmd/sandboxctl into a temporary directory in the background: the
// link takes tens of seconds, which the caller spends booting the gateway. The returned
// function waits for the binary.
func buildSandboxctl(t *testing.T, repo string) func() string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sandboxctl")
	done := make(chan error, 1)
	var out []byte
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sandboxctl")
		cmd.Dir = repo
		var err error
		out, err = cmd.CombinedOutput()
		done <- err
	}()
	var once sync.Once
	var buildErr error
	return func() string {
		t.Helper()
		once.Do(func() { buildErr = <-done })
		if buildErr != nil {
			t.Fatalf("go build ./cmd/sandboxctl: %v\n%s", buildErr, out)
		}
		return bin
	}
}

// usageStack is the department's stack file as `sandboxctl keys usage` reads it: the
// department and region of the local deployment and its two teams.
const usageStack = `config:
  aws:region: %s
  llm-sandbox:department: %s
  llm-sandbox:network:
    cidr: 10.20.0.0/16
  llm-sandbox:access:
    mode: internal
    plainHttp: true
  llm-sandbox:pools:
    cpu:
      models: [%s, qwen2.5:7b]
  llm-sandbox:teams:
    students:
      models: [%s]
    staff:
      models: [%s]
`

// runKeysUsage runs `sandboxctl keys usage STACK args...` with the emulator's endpoint and
// fake credentials (and nothing else of the machine's AWS configuration), in a project of the
// repository's Pulumi.yaml and stack, and returns its stdout, failing unless it exits 0.
func runKeysUsage(t *testing.T, bin, repo, endpoint, stack, stackFile string, args ...string) string {
	t.Helper()
	project := t.TempDir()
	projectYAML, err := os.ReadFile(filepath.Join(repo, "Pulumi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(project, "Pulumi.yaml"), projectYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(project, "stacks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(project, "stacks", "Pulumi."+stack+".yaml"), []byte(stackFile), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--project", project, "keys", "usage", stack}, args...)...)
	missing := filepath.Join(project, "no-such-file")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + project,
		"AWS_ENDPOINT_URL=" + endpoint, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_CONFIG_FILE=" + missing, "AWS_SHARED_CREDENTIALS_FILE=" + missing, "AWS_EC2_METADATA_DISABLED=true",
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sandboxctl keys usage %s %q: %v\n%s%s", stack, args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// checkKeysUsageText checks that keys usage's table has a row per team and per key with want's
// counts, and the total.
func checkKeysUsageText(t *testing.T, out string, want []usage.Team) {
	t.Helper()
	row := func(team, key string, c usage.Counts) {
		t.Helper()
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(team) + `\s+` + regexp.QuoteMeta(key) + fmt.Sprintf(`\s+%d\s+%d\s+%d\s+%d\s+%d$`,
			c.Requests, c.PromptTokens, c.CompletionTokens, c.Errors, c.Throttles))
		if !re.MatchString(out) {
			t.Errorf("keys usage prints no row %q %q %+v:\n%s", team, key, c, out)
		}
	}
	var total usage.Counts
	for _, tm := range want {
		keys := fmt.Sprintf("(%d keys)", len(tm.Keys))
		if len(tm.Keys) == 1 {
			keys = "(1 key)"
		}
		row(tm.Team, keys, tm.Counts)
		for _, k := range tm.Keys {
			row(tm.Team, k.KeyID, k.Counts)
		}
		total = total.Plus(tm.Counts)
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^all teams\s+%d\s+%d\s+%d\s+%d\s+%d$`,
		total.Requests, total.PromptTokens, total.CompletionTokens, total.Errors, total.Throttles)).MatchString(out) {
		t.Errorf("keys usage prints no total %+v:\n%s", total, out)
	}
}

// checkUsageStore reads everything the emulator's CloudWatch holds (every metric ListMetrics
// lists, in any namespace, and its data) and fails if a metric is neither a usage metric nor
// the node agent's in-flight requests, if a usage metric has other dimensions than
// Department, Team and KeyId or a dimension value outside allowed (the department, its teams
// and the key ids issued), if an in-flight series names anything but the department, the
// gateway and an instance id, or if any name, value
// or label holds one of needles (the prompts' markers and the keys themselves). It returns
// the number of metrics read, so the caller can tell an empty store from a clean one.
func checkUsageStore(t *testing.T, cw *cloudwatch.Client, allowed map[string]bool, needles []string) int {
	t.Helper()
	ctx := context.Background()
	var metrics []types.Metric
	for p := cloudwatch.NewListMetricsPaginator(cw, &cloudwatch.ListMetricsInput{}); p.HasMorePages(); {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListMetrics: %v", err)
		}
		metrics = append(metrics, out.Metrics...)
	}
	var texts []string
	wantDims := []string{usage.DimDepartment, usage.DimTeam, usage.DimKeyID}
	// The node agent's own metrics (the gateway's in-flight requests) share the emulator: their
	// names and values are the agent's contract, a count per department, pool and instance.
	agentDims := []string{llmmetrics.DimensionDepartment, llmmetrics.DimensionInstance, llmmetrics.DimensionPool}
	instanceID := regexp.MustCompile(`^i-[0-9a-f]{17}$`)
	for _, m := range metrics {
		name := aws.ToString(m.Namespace) + " " + aws.ToString(m.MetricName)
		texts = append(texts, aws.ToString(m.Namespace), aws.ToString(m.MetricName))
		var dims []string
		for _, d := range m.Dimensions {
			dims = append(dims, aws.ToString(d.Name))
			texts = append(texts, aws.ToString(d.Name), aws.ToString(d.Value))
		}
		slices.Sort(dims)
		if aws.ToString(m.Namespace) == llmmetrics.Namespace && aws.ToString(m.MetricName) == llmmetrics.MetricInFlightRequests {
			for _, d := range m.Dimensions {
				v := aws.ToString(d.Value)
				ok := allowed[v] || (aws.ToString(d.Name) == llmmetrics.DimensionPool && v == llmmetrics.PoolGateway) ||
					(aws.ToString(d.Name) == llmmetrics.DimensionInstance && instanceID.MatchString(v))
				if !ok {
					t.Errorf("metric %s has dimension %s=%q: not the department, the gateway or an instance id", name, aws.ToString(d.Name), v)
				}
			}
			if !slices.Equal(dims, agentDims) && !slices.Equal(dims, []string{llmmetrics.DimensionDepartment, llmmetrics.DimensionPool}) {
				t.Errorf("metric %s has dimensions %v, want %v or without %s", name, dims, agentDims, llmmetrics.DimensionInstance)
			}
			continue
		}
		if aws.ToString(m.Namespace) != usage.Namespace || !slices.Contains(usage.Metrics, aws.ToString(m.MetricName)) {
			t.Errorf("metric %s: want one of %v in %s", name, usage.Metrics, usage.Namespace)
		}
		for _, d := range m.Dimensions {
			if !allowed[aws.ToString(d.Value)] {
				t.Errorf("metric %s has dimension %s=%q: not the department, a team or an issued key id", name, aws.ToString(d.Name), aws.ToString(d.Value))
			}
		}
		if sorted := slices.Sorted(slices.Values(wantDims)); !slices.Equal(dims, sorted) {
			t.Errorf("metric %s has dimensions %v, want %v", name, dims, sorted)
		}
	}
	// The data: every datum of every metric over the last hour, with its label.
	for i := 0; i < len(metrics); i += 500 {
		var queries []types.MetricDataQuery
		for j := i; j < min(i+500, len(metrics)); j++ {
			queries = append(queries, types.MetricDataQuery{
				Id:         aws.String(fmt.Sprintf("q%d", j)),
				MetricStat: &types.MetricStat{Metric: &metrics[j], Period: aws.Int32(60), Stat: aws.String("SampleCount")},
			})
		}
		in := &cloudwatch.GetMetricDataInput{StartTime: aws.Time(time.Now().Add(-time.Hour)), EndTime: aws.Time(time.Now().Add(time.Minute)), MetricDataQueries: queries}
		for p := cloudwatch.NewGetMetricDataPaginator(cw, in); p.HasMorePages(); {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("GetMetricData: %v", err)
			}
			for _, r := range out.MetricDataResults {
				texts = append(texts, aws.ToString(r.Label), fmt.Sprint(r.Values))
				for _, msg := range r.Messages {
					texts = append(texts, aws.ToString(msg.Code), aws.ToString(msg.Value))
				}
			}
		}
	}
	for _, text := range texts {
		for _, n := range needles {
			if strings.Contains(text, n) {
				t.Errorf("the usage metrics hold %q", n)
			}
		}
	}
	return len(metrics)
}
