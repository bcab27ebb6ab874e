package loadgen

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ten := func() []float64 { return []float64{10, 1, 9, 2, 8, 3, 7, 4, 6, 5} }
	cases := []struct {
		values []float64
		p      float64
		want   float64
	}{
		{ten(), 50, 5},  // rank ceil(5) = 5
		{ten(), 95, 10}, // rank ceil(9.5) = 10
		{ten(), 5, 1},   // rank ceil(0.5) = 1: the slowest
		{ten(), 10, 1},
		{ten(), 11, 2},
		{ten(), 100, 10},
		{[]float64{4, 2, 3, 1}, 50, 2}, // an even count takes the lower middle, no interpolation
		{[]float64{7}, 5, 7},
		{[]float64{7}, 95, 7},
		{nil, 50, 0},
	}
	for _, c := range cases {
		if got := Percentile(c.values, c.p); got != c.want {
			t.Errorf("Percentile(%v, %g) = %g, want %g", c.values, c.p, got, c.want)
		}
	}
}

// user builds a user's stats from requests of (tokens, decode window) completed with usage.
func user(reqs ...[2]float64) UserStats {
	var u UserStats
	for _, r := range reqs {
		window := time.Duration(r[1] * float64(time.Second))
		u.Add(&StreamResult{
			TTFT: 100 * time.Millisecond, LastText: 100*time.Millisecond + window, Total: 200*time.Millisecond + window,
			Chunks: int(r[0]), UsageTokens: int(r[0]), HasUsage: true, Done: true, FinishReason: "length",
		})
	}
	return u
}

func TestUserTokensPerSecond(t *testing.T) {
	// 11 tokens: the first at TTFT, 10 more over 1 s; then 21 tokens, 20 more over 1 s.
	u := user([2]float64{11, 1}, [2]float64{21, 1})
	if got := u.TokensPerSecond(); math.Abs(got-15) > 1e-9 {
		t.Errorf("TokensPerSecond = %g, want 15 (30 tokens after the first over 2 s)", got)
	}
	// Two tokens per chunk (usage 20, chunks 10): the first chunk's two tokens do not count.
	var packed UserStats
	packed.Add(&StreamResult{TTFT: time.Second, LastText: 2 * time.Second, Chunks: 10, UsageTokens: 20, HasUsage: true, Done: true})
	if got := packed.TokensPerSecond(); math.Abs(got-18) > 1e-9 {
		t.Errorf("packed chunks: TokensPerSecond = %g, want 18", got)
	}
	// A single-chunk answer has no window; a user with nothing else streamed at 0.
	var one UserStats
	one.Add(&StreamResult{TTFT: time.Second, LastText: time.Second, Chunks: 1, Done: true})
	if got := one.TokensPerSecond(); got != 0 || one.Tokens != 1 || len(one.TTFT) != 1 {
		t.Errorf("one chunk: %g tokens/s, %d tokens, %d TTFTs", got, one.Tokens, len(one.TTFT))
	}
}

func summaryOf(users ...UserStats) Summary {
	return Summarise(&Result{Users: users, Wall: 10 * time.Second})
}

func TestSummarise(t *testing.T) {
	slow := user([2]float64{5, 1}) // 4 tokens/s
	slow.Add(&StreamResult{Kind: "http_503", Err: &HTTPError{Status: 503, Body: "x"}})
	slow.Add(&StreamResult{Kind: KindCancelled, Chunks: 0})
	fast := user([2]float64{41, 1}, [2]float64{41, 1}) // 40 tokens/s
	// Cut at the end after 3 chunks over 0.95 s: its 2 tokens after the first count too, so
	// the user's speed is (40 + 40 + 2) / 2.95 s = 27.8 tokens/s.
	fast.Add(&StreamResult{Kind: KindCancelled, Chunks: 3, TTFT: 50 * time.Millisecond, LastText: time.Second})
	idle := UserStats{} // sent nothing (requests mode, fewer requests than users)
	mid := user([2]float64{21, 1})
	s := summaryOf(slow, fast, idle, mid)

	if s.Users != 3 {
		t.Errorf("users %d, want 3 (the idle one left out)", s.Users)
	}
	r := s.Requests
	if r.Sent != 7 || r.Completed != 4 || r.Failed != 1 || r.Unfinished != 2 || r.WaitingForFirstToken != 1 {
		t.Errorf("requests %+v", r)
	}
	if s.Errors["http_503"] != 1 || len(s.Errors) != 1 || s.ErrorExamples["http_503"] != "HTTP 503: x" {
		t.Errorf("errors %v %v", s.Errors, s.ErrorExamples)
	}
	if math.Abs(s.ErrorRate-0.2) > 1e-9 {
		t.Errorf("error rate %g, want 0.2 (1 of 5 ended requests; unfinished ones are neither)", s.ErrorRate)
	}
	if u := s.UserTokensPerSecond; u.P50 != 20 || u.P5 != 4 || u.Min != 4 || u.Max != 27.8 {
		t.Errorf("per-user tokens/s %+v, want p50 20, p5 4, min 4, max 27.8", u)
	}
	if s.Tokens != 5+41+41+3+21 || s.AggregateTokensPerSecond != 11.1 || s.TokensFrom != "usage and chunks" {
		t.Errorf("tokens %d, aggregate %g, from %q", s.Tokens, s.AggregateTokensPerSecond, s.TokensFrom)
	}
	if s.TTFT.Samples != 5 || s.TTFT.P50Ms != 100 || s.TTFT.P95Ms != 100 {
		t.Errorf("TTFT %+v, want 5 samples (4 completed + 1 cut with a token), p50 100", s.TTFT)
	}
}

func TestJudge(t *testing.T) {
	healthy := summaryOf(user([2]float64{21, 1}), user([2]float64{13, 1}), user([2]float64{31, 1})) // 20, 12, 30 tokens/s
	cases := []struct {
		name    string
		s       Summary
		target  float64
		met     bool
		reasons []string
	}{
		{"median above a low target", healthy, 10, true, nil},
		{"the median decides, not the slowest", healthy, 15, true, nil},
		{"median at the target exactly", healthy, 20, true, nil},
		{"median below a high target", healthy, 25, false, []string{"median user streamed 20.0 tokens/s, below the target 25"}},
		{"too many errors", func() Summary {
			u := user([2]float64{21, 1}, [2]float64{21, 1}, [2]float64{21, 1})
			for range 2 {
				u.Add(&StreamResult{Kind: KindTimeout})
			}
			return summaryOf(u)
		}(), 10, false, []string{"2 of 5 requests failed (40.0%, more than 1%)"}},
		{"nothing completed", summaryOf(UserStats{Requests: 1, Unfinished: 1}), 0, false, []string{"no request completed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Judge(c.s, c.target)
			if v.Met != c.met || len(v.Reasons) != len(c.reasons) {
				t.Fatalf("verdict %+v, want met=%v with reasons %q", v, c.met, c.reasons)
			}
			for i, want := range c.reasons {
				if !strings.Contains(v.Reasons[i], want) {
					t.Errorf("reason %q, want it to say %q", v.Reasons[i], want)
				}
			}
			if v.Percentile != 50 || v.ObservedTokensPerSecond != c.s.UserTokensPerSecond.P50 || v.TargetTokensPerSecond != c.target || v.MaxErrorRate != 0.01 {
				t.Errorf("verdict fields %+v", v)
			}
		})
	}
	// Exactly 1% failed passes; just over fails.
	atLimit := summaryOf(UserStats{Requests: 100, Completed: 99, Failed: 1, DecodeTokens: 100, DecodeTime: time.Second})
	overLimit := summaryOf(UserStats{Requests: 99, Completed: 97, Failed: 2, DecodeTokens: 100, DecodeTime: time.Second})
	if !Judge(atLimit, 10).Met || Judge(overLimit, 10).Met {
		t.Errorf("1 of 100 failed: met=%v (want true); 2 of 99: met=%v (want false)", Judge(atLimit, 10).Met, Judge(overLimit, 10).Met)
	}
}
