package loadgen

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// MaxErrorRate is the share of failed requests above which a load test fails whatever the
// speed: 1%. A healthy deployment fails none; 1% lets one transient failure pass in a run of a
// hundred requests or more, and fails a shorter run on its first failure.
const MaxErrorRate = 0.01

// VerdictPercentile is the percentile of the users' streaming speeds the verdict compares
// with the target: the median user. The target (10 tokens/s per user, the UBC figure) is a
// typical user's reading speed; the slowest users' speed (p5) is reported beside it.
const VerdictPercentile = 50

// Percentile is the nearest-rank percentile p (0 < p <= 100) of values, which it sorts: the
// smallest value with at least p% of the values at or below it. It is 0 for no values.
func Percentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sort.Float64s(values)
	rank := int(math.Ceil(p / 100 * float64(len(values))))
	rank = max(1, min(rank, len(values)))
	return values[rank-1]
}

// Summary is a run's report: what load, what came back, how fast.
type Summary struct {
	// Users is the number of users that sent at least one request.
	Users int `json:"users"`
	// DurationSeconds is the measured wall time.
	DurationSeconds float64 `json:"durationSeconds"`
	// Requests: sent = completed + failed + unfinished. Unfinished requests were in flight
	// when the duration ended (waitingForFirstToken of them had received nothing yet); they
	// are neither completed nor errors.
	Requests struct {
		Sent                 int `json:"sent"`
		Completed            int `json:"completed"`
		Failed               int `json:"failed"`
		Unfinished           int `json:"unfinished"`
		WaitingForFirstToken int `json:"waitingForFirstToken"`
	} `json:"requests"`
	// ErrorRate is failed / (completed + failed).
	ErrorRate float64 `json:"errorRate"`
	// Errors counts the failures by kind ("http_503", "timeout", "connection", "stream_cut",
	// "stream_error", "malformed"); ErrorExamples holds one message per kind.
	Errors        map[string]int    `json:"errors"`
	ErrorExamples map[string]string `json:"errorExamples"`
	// TTFT percentiles (milliseconds) over every request that received a first token.
	TTFT struct {
		P50Ms   float64 `json:"p50Ms"`
		P95Ms   float64 `json:"p95Ms"`
		Samples int     `json:"samples"`
	} `json:"ttft"`
	// UserTokensPerSecond is the distribution of the users' streaming speeds
	// (UserStats.TokensPerSecond): the median user (p50) and the slowest users (p5, min).
	UserTokensPerSecond struct {
		P50 float64 `json:"p50"`
		P5  float64 `json:"p5"`
		Min float64 `json:"min"`
		Max float64 `json:"max"`
	} `json:"userTokensPerSecond"`
	// AggregateTokensPerSecond is every token received, by every user, per second of wall
	// time.
	AggregateTokensPerSecond float64 `json:"aggregateTokensPerSecond"`
	Tokens                   int     `json:"tokens"`
	// TokensFrom says where the token counts come from: "usage" (the server's
	// usage.completion_tokens for every completed request), "chunks" (text chunks counted by
	// the client) or "usage and chunks" (some of each: cut streams have no usage).
	TokensFrom string `json:"tokensFrom"`
}

// Summarise turns a run's result into its summary.
func Summarise(r *Result) Summary {
	var s Summary
	s.DurationSeconds = math.Round(r.Wall.Seconds()*1000) / 1000
	s.Errors, s.ErrorExamples = map[string]int{}, map[string]string{}
	var ttfts []float64
	var speeds []float64
	usage := 0
	for i := range r.Users {
		u := &r.Users[i]
		if u.Requests == 0 {
			continue
		}
		s.Users++
		s.Requests.Sent += u.Requests
		s.Requests.Completed += u.Completed
		s.Requests.Failed += u.Failed
		s.Requests.Unfinished += u.Unfinished
		s.Requests.WaitingForFirstToken += u.WaitingAtEnd
		for k, n := range u.Errors {
			s.Errors[k] += n
			if _, ok := s.ErrorExamples[k]; !ok {
				s.ErrorExamples[k] = u.Examples[k]
			}
		}
		for _, d := range u.TTFT {
			ttfts = append(ttfts, float64(d)/float64(time.Millisecond))
		}
		speeds = append(speeds, u.TokensPerSecond())
		s.Tokens += u.Tokens
		usage += u.UsageTokens
	}
	if n := s.Requests.Completed + s.Requests.Failed; n > 0 {
		s.ErrorRate = float64(s.Requests.Failed) / float64(n)
	}
	s.TTFT.Samples = len(ttfts)
	s.TTFT.P50Ms = round1(Percentile(ttfts, 50))
	s.TTFT.P95Ms = round1(Percentile(ttfts, 95))
	s.UserTokensPerSecond.P50 = round1(Percentile(speeds, 50))
	s.UserTokensPerSecond.P5 = round1(Percentile(speeds, 5))
	if len(speeds) > 0 { // sorted by Percentile
		s.UserTokensPerSecond.Min, s.UserTokensPerSecond.Max = round1(speeds[0]), round1(speeds[len(speeds)-1])
	}
	if r.Wall > 0 {
		s.AggregateTokensPerSecond = round1(float64(s.Tokens) / r.Wall.Seconds())
	}
	switch {
	case s.Tokens == 0 || usage == 0:
		s.TokensFrom = "chunks"
	case usage == s.Tokens:
		s.TokensFrom = "usage"
	default:
		s.TokensFrom = "usage and chunks"
	}
	return s
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// Verdict is a load test's pass or fail against a per-user speed target.
type Verdict struct {
	Met bool `json:"met"`
	// TargetTokensPerSecond is the per-user speed asked for.
	TargetTokensPerSecond float64 `json:"targetTokensPerSecond"`
	// Percentile is the users' percentile compared with the target (VerdictPercentile), and
	// ObservedTokensPerSecond that percentile's speed.
	Percentile              int     `json:"percentile"`
	ObservedTokensPerSecond float64 `json:"observedTokensPerSecond"`
	// MaxErrorRate is the share of failed requests allowed (MaxErrorRate).
	MaxErrorRate float64 `json:"maxErrorRate"`
	// Reasons says why the verdict is not met; empty when it is.
	Reasons []string `json:"reasons"`
}

// Judge compares a summary with a per-user target: met when at least one request completed,
// the median user's streaming speed reaches target, and no more than MaxErrorRate of the
// requests failed.
func Judge(s Summary, target float64) Verdict {
	v := Verdict{
		TargetTokensPerSecond:   target,
		Percentile:              VerdictPercentile,
		ObservedTokensPerSecond: s.UserTokensPerSecond.P50,
		MaxErrorRate:            MaxErrorRate,
		Reasons:                 []string{},
	}
	if s.Requests.Completed == 0 {
		v.Reasons = append(v.Reasons, "no request completed")
	}
	if v.ObservedTokensPerSecond < target {
		v.Reasons = append(v.Reasons, fmt.Sprintf("the median user streamed %.1f tokens/s, below the target %g",
			v.ObservedTokensPerSecond, target))
	}
	if s.ErrorRate > MaxErrorRate {
		v.Reasons = append(v.Reasons, fmt.Sprintf("%d of %d requests failed (%.1f%%, more than %.0f%%)",
			s.Requests.Failed, s.Requests.Completed+s.Requests.Failed, 100*s.ErrorRate, 100*MaxErrorRate))
	}
	v.Met = len(v.Reasons) == 0
	return v
}
