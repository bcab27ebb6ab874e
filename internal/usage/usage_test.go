package usage

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// fakeAPI lists keys metrics and answers each query with the value of its key and metric,
// recording the calls.
type fakeAPI struct {
	metrics []types.Metric
	value   func(team, keyID, metric string) []float64
	calls   []int
	period  int32
}

func (f *fakeAPI) ListMetrics(_ context.Context, in *cloudwatch.ListMetricsInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.ListMetricsOutput, error) {
	var out []types.Metric
	for _, m := range f.metrics {
		if aws.ToString(m.MetricName) != aws.ToString(in.MetricName) {
			continue
		}
		ok := true
		for _, filter := range in.Dimensions {
			found := false
			for _, d := range m.Dimensions {
				found = found || (aws.ToString(d.Name) == aws.ToString(filter.Name) && aws.ToString(d.Value) == aws.ToString(filter.Value))
			}
			ok = ok && found
		}
		if ok {
			out = append(out, m)
		}
	}
	return &cloudwatch.ListMetricsOutput{Metrics: out}, nil
}

func (f *fakeAPI) GetMetricData(_ context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	f.calls = append(f.calls, len(in.MetricDataQueries))
	out := &cloudwatch.GetMetricDataOutput{}
	for _, q := range in.MetricDataQueries {
		f.period = aws.ToInt32(q.MetricStat.Period)
		dims := map[string]string{}
		for _, d := range q.MetricStat.Metric.Dimensions {
			dims[aws.ToString(d.Name)] = aws.ToString(d.Value)
		}
		out.MetricDataResults = append(out.MetricDataResults, types.MetricDataResult{
			Id: q.Id, Values: f.value(dims[DimTeam], dims[DimKeyID], aws.ToString(q.MetricStat.Metric.MetricName)),
		})
	}
	return out, nil
}

func metric(dept, team, id string) types.Metric {
	return types.Metric{Namespace: aws.String(Namespace), MetricName: aws.String(MetricRequests), Dimensions: dimensions(dept, team, id)}
}

// A department of 120 keys (600 queries) is read in two GetMetricData calls of at most 500;
// every datapoint of a query is summed; keys group by team in name order; another
// department's metrics and metrics of other dimensions are not read; a team filter keeps
// only its keys; known keys without metrics are listed with zero counts.
func TestReadSumsPerKeyAndTeam(t *testing.T) {
	f := &fakeAPI{value: func(team, id, m string) []float64 {
		if m == MetricPromptTokens {
			return []float64{10, 5}
		}
		return []float64{1}
	}}
	for i := range 100 {
		f.metrics = append(f.metrics, metric("chem", "students", fmt.Sprintf("s%015d", i)))
	}
	for i := range 20 {
		f.metrics = append(f.metrics, metric("chem", "staff", fmt.Sprintf("t%015d", i)))
	}
	f.metrics = append(f.metrics, metric("physics", "students", "pppppppppppppppp"),
		types.Metric{Namespace: aws.String(Namespace), MetricName: aws.String(MetricRequests), Dimensions: dimensions("chem", "students", "x")[:2]})
	now := time.Now()
	r, err := Read(context.Background(), f, Query{Department: "chem", Start: now.Add(-24 * time.Hour), End: now, Known: map[string]string{"zzzzzzzzzzzzzzzz": "students"}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.calls) != "[500 105]" {
		t.Errorf("GetMetricData calls of %v queries, want [500 105]", f.calls)
	}
	if len(r.Teams) != 2 || r.Teams[0].Team != "staff" || r.Teams[1].Team != "students" || len(r.Teams[0].Keys) != 20 || len(r.Teams[1].Keys) != 101 {
		t.Fatalf("teams %+v", r.Teams)
	}
	if want := (Counts{Requests: 20, PromptTokens: 300, CompletionTokens: 20, Errors: 20, Throttles: 20}); r.Teams[0].Counts != want {
		t.Errorf("staff %+v, want %+v", r.Teams[0].Counts, want)
	}
	if want := (Counts{Requests: 101, PromptTokens: 1515, CompletionTokens: 101, Errors: 101, Throttles: 101}); r.Teams[1].Counts != want || r.Total != want.Plus(r.Teams[0].Counts) {
		t.Errorf("students %+v, total %+v", r.Teams[1].Counts, r.Total)
	}
	if f.period < 86400 || f.period%60 != 0 {
		t.Errorf("period %d, want one period of whole minutes covering the day", f.period)
	}

	f.calls = nil
	r, err = Read(context.Background(), f, Query{Department: "chem", Team: "staff", Start: now.Add(-time.Hour), End: now})
	if err != nil || len(r.Teams) != 1 || r.Teams[0].Team != "staff" || fmt.Sprint(f.calls) != "[100]" {
		t.Errorf("--team staff: %+v, %v, calls %v", r.Teams, err, f.calls)
	}
	if _, err := Read(context.Background(), f, Query{Department: "chem", Start: now, End: now.Add(-time.Hour)}); err == nil || !strings.Contains(err.Error(), "is not before") {
		t.Errorf("an empty range: %v", err)
	}
}

// The period is a multiple of what CloudWatch allows for data that old and covers the range.
func TestPeriodFor(t *testing.T) {
	now := time.Now().Truncate(time.Minute)
	for _, tc := range []struct {
		start     time.Time
		step, min int64
	}{
		{now.Add(-90 * time.Second), 60, 90},
		{now.Add(-24 * time.Hour), 60, 86400},
		{now.Add(-20 * 24 * time.Hour), 300, 20 * 86400},
		{now.Add(-90 * 24 * time.Hour), 3600, 90 * 86400},
	} {
		p := int64(periodFor(tc.start, now))
		if p%tc.step != 0 || p < tc.min {
			t.Errorf("period from %s ago: %d, want a multiple of %d of at least %d", now.Sub(tc.start), p, tc.step, tc.min)
		}
	}
}
