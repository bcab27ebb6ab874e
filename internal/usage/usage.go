// Package usage names the department's usage metrics and reads them back: each gateway worker
// counts, per team and key id, the requests, prompt and completion tokens, errors and 429s
// it answered and publishes the counts to CloudWatch (node's llm_sandbox_usage.py); `sandboxctl
// keys usage` sums them over a time range with GetMetricData. Counts only: no prompt, no
// completion, no address is ever a metric, a dimension or a name.
//
// Namespace, the metric names and the dimension names are defined here once, for the module
// that publishes them, the gateway role's IAM condition that scopes its PutMetricData to the
// namespace, and the reader.
package usage

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// Namespace is the CloudWatch namespace of the usage metrics. It is the gateway's own: the
// gateway role may publish to it and to nothing else (the cloudwatch:namespace condition).
const Namespace = "LLMSandbox/Usage"

// Dimensions of every usage metric, in this order: the department (several may share an
// account), the team (a key of llm-sandbox:teams) and the key id (keyregistry.IDLength
// characters; never the key).
const (
	DimDepartment = "Department"
	DimTeam       = "Team"
	DimKeyID      = "KeyId"
)

// The metrics, each a count (unit Count) summed over a period: one datum per key and period
// and worker, which CloudWatch adds up across workers and gateway nodes.
const (
	// MetricRequests counts the requests a key was authenticated for, answered or not.
	MetricRequests = "Requests"
	// MetricPromptTokens and MetricCompletionTokens are the tokens of the answered requests
	// as LiteLLM reports them (Ollama's counts).
	MetricPromptTokens     = "PromptTokens"
	MetricCompletionTokens = "CompletionTokens"
	// MetricErrors counts the requests that failed other than with 429: a model outside the
	// team (403), a prompt too long (400), an unknown model (404), a pool that is busy or
	// down (5xx).
	MetricErrors = "Errors"
	// MetricThrottles counts the requests refused with 429 at the key's limits.
	MetricThrottles = "Throttles"
)

// Metrics are the metric names in the order reports print them.
var Metrics = []string{MetricRequests, MetricPromptTokens, MetricCompletionTokens, MetricErrors, MetricThrottles}

// FlushSeconds is how often each LiteLLM worker publishes what it counted: CloudWatch's
// standard resolution, so each worker sends at most one PutMetricData a minute.
const FlushSeconds = 60

// Counts are one key's or team's usage over a time range.
type Counts struct {
	Requests         int64 `json:"requests"`
	PromptTokens     int64 `json:"promptTokens"`
	CompletionTokens int64 `json:"completionTokens"`
	Errors           int64 `json:"errors"`
	Throttles        int64 `json:"throttles"`
}

// add adds v to the count of metric.
func (c *Counts) add(metric string, v int64) {
	switch metric {
	case MetricRequests:
		c.Requests += v
	case MetricPromptTokens:
		c.PromptTokens += v
	case MetricCompletionTokens:
		c.CompletionTokens += v
	case MetricErrors:
		c.Errors += v
	case MetricThrottles:
		c.Throttles += v
	}
}

// Plus returns the sum of c and o.
func (c Counts) Plus(o Counts) Counts {
	return Counts{c.Requests + o.Requests, c.PromptTokens + o.PromptTokens, c.CompletionTokens + o.CompletionTokens, c.Errors + o.Errors, c.Throttles + o.Throttles}
}

// Key is one key's usage.
type Key struct {
	KeyID string `json:"keyId"`
	Counts
}

// Team is one team's usage: the sum of its keys'.
type Team struct {
	Team string `json:"team"`
	Counts
	Keys []Key `json:"keys"`
}

// Report is a department's usage over [Start, End).
type Report struct {
	Department string    `json:"department"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Teams      []Team    `json:"teams"`
	Total      Counts    `json:"total"`
}

// API is what Read calls.
type API interface {
	ListMetrics(context.Context, *cloudwatch.ListMetricsInput, ...func(*cloudwatch.Options)) (*cloudwatch.ListMetricsOutput, error)
	GetMetricData(context.Context, *cloudwatch.GetMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

// key is a team's key id.
type key struct{ team, id string }

// Query is what Read reads.
type Query struct {
	// Department names the metrics' Department dimension.
	Department string
	// Team, when set, keeps only that team's keys; KeyID only that key.
	Team, KeyID string
	// Start and End bound the range; Read rounds Start down and End up to the minute.
	Start, End time.Time
	// Known are keys (team, key id) to read even when ListMetrics does not list them:
	// CloudWatch lists only metrics with data in the past two weeks, so a longer range takes
	// the key ids from the registry too. Map of key id → team.
	Known map[string]string
}

// maxQueries is GetMetricData's limit of queries per call (CloudWatch API Reference,
// GetMetricData: "You can include up to 500 MetricDataQuery structures").
const maxQueries = 500

// Read sums the usage metrics of q.Department per key over the range and groups them by team.
func Read(ctx context.Context, api API, q Query) (Report, error) {
	start, end := q.Start.UTC().Truncate(time.Minute), q.End.UTC()
	if t := end.Truncate(time.Minute); !t.Equal(end) {
		end = t.Add(time.Minute)
	}
	if !start.Before(end) {
		return Report{}, fmt.Errorf("usage range: start %s is not before end %s", start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	keys, err := listKeys(ctx, api, q)
	if err != nil {
		return Report{}, err
	}
	counts := make([]Counts, len(keys))
	period := periodFor(start, end)
	type ref struct{ key, metric int }
	var queries []types.MetricDataQuery
	refs := map[string]ref{}
	flush := func() error {
		if len(queries) == 0 {
			return nil
		}
		in := &cloudwatch.GetMetricDataInput{StartTime: aws.Time(start), EndTime: aws.Time(end), MetricDataQueries: queries}
		for p := cloudwatch.NewGetMetricDataPaginator(api, in); p.HasMorePages(); {
			out, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("read usage metrics (cloudwatch:GetMetricData in %s): %w", Namespace, err)
			}
			for _, r := range out.MetricDataResults {
				at, ok := refs[aws.ToString(r.Id)]
				if !ok {
					continue
				}
				var sum float64
				for _, v := range r.Values {
					sum += v
				}
				counts[at.key].add(Metrics[at.metric], int64(math.Round(sum)))
			}
		}
		queries, refs = nil, map[string]ref{}
		return nil
	}
	for i, k := range keys {
		for j, m := range Metrics {
			id := "m" + strconv.Itoa(i) + "_" + strconv.Itoa(j)
			refs[id] = ref{i, j}
			queries = append(queries, types.MetricDataQuery{
				Id: aws.String(id),
				MetricStat: &types.MetricStat{
					Metric: &types.Metric{Namespace: aws.String(Namespace), MetricName: aws.String(m), Dimensions: dimensions(q.Department, k.team, k.id)},
					Period: aws.Int32(period),
					Stat:   aws.String("Sum"),
				},
			})
			if len(queries) == maxQueries {
				if err := flush(); err != nil {
					return Report{}, err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return Report{}, err
	}
	r := Report{Department: q.Department, Start: start, End: end, Teams: []Team{}}
	for i, k := range keys {
		if len(r.Teams) == 0 || r.Teams[len(r.Teams)-1].Team != k.team {
			r.Teams = append(r.Teams, Team{Team: k.team, Keys: []Key{}})
		}
		t := &r.Teams[len(r.Teams)-1]
		t.Keys = append(t.Keys, Key{KeyID: k.id, Counts: counts[i]})
		t.Counts = t.Counts.Plus(counts[i])
		r.Total = r.Total.Plus(counts[i])
	}
	return r, nil
}

// dimensions are a key's metric dimensions.
func dimensions(department, team, keyID string) []types.Dimension {
	return []types.Dimension{
		{Name: aws.String(DimDepartment), Value: aws.String(department)},
		{Name: aws.String(DimTeam), Value: aws.String(team)},
		{Name: aws.String(DimKeyID), Value: aws.String(keyID)},
	}
}

// listKeys returns the keys of q (team, then key id order): those ListMetrics finds with a
// Requests metric in the department (every key with any usage has one) and q.Known.
func listKeys(ctx context.Context, api API, q Query) ([]key, error) {
	seen := map[key]bool{}
	filters := []types.DimensionFilter{{Name: aws.String(DimDepartment), Value: aws.String(q.Department)}}
	if q.Team != "" {
		filters = append(filters, types.DimensionFilter{Name: aws.String(DimTeam), Value: aws.String(q.Team)})
	}
	if q.KeyID != "" {
		filters = append(filters, types.DimensionFilter{Name: aws.String(DimKeyID), Value: aws.String(q.KeyID)})
	}
	in := &cloudwatch.ListMetricsInput{Namespace: aws.String(Namespace), MetricName: aws.String(MetricRequests), Dimensions: filters}
	for p := cloudwatch.NewListMetricsPaginator(api, in); p.HasMorePages(); {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list usage metrics (cloudwatch:ListMetrics in %s): %w", Namespace, err)
		}
		for _, m := range out.Metrics {
			var k key
			dept := ""
			for _, d := range m.Dimensions {
				switch aws.ToString(d.Name) {
				case DimDepartment:
					dept = aws.ToString(d.Value)
				case DimTeam:
					k.team = aws.ToString(d.Value)
				case DimKeyID:
					k.id = aws.ToString(d.Value)
				}
			}
			// Only the metrics of exactly these three dimensions are a key's.
			if len(m.Dimensions) == 3 && dept == q.Department && k.team != "" && k.id != "" {
				seen[k] = true
			}
		}
	}
	for id, team := range q.Known {
		if (q.Team == "" || team == q.Team) && (q.KeyID == "" || id == q.KeyID) {
			seen[key{team, id}] = true
		}
	}
	keys := make([]key, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.team != b.team {
			return cmp.Compare(a.team, b.team)
		}
		return cmp.Compare(a.id, b.id)
	})
	return keys, nil
}

// periodFor is one period covering [start, end), as CloudWatch allows it for data that old
// (CloudWatch API Reference, GetMetricData, Period: a multiple of 60 for data up to 15 days
// old, of 300 up to 63 days, of 3600 beyond; at most one datapoint per period is returned).
// Read sums every datapoint returned anyway, so a range split into several periods still
// adds up.
func periodFor(start, end time.Time) int32 {
	step := int64(60)
	switch age := time.Since(start); {
	case age > 63*24*time.Hour:
		step = 3600
	case age > 15*24*time.Hour:
		step = 300
	}
	secs := int64(end.Sub(start) / time.Second)
	p := (secs + step - 1) / step * step
	if p > math.MaxInt32 {
		p = math.MaxInt32 / step * step
	}
	return int32(p)
}
