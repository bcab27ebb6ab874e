package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Options describe a load run.
type Options struct {
	// Users is the number of concurrent users; each sends its next request as soon as the
	// previous one ends. Required, at least 1.
	Users int
	// Duration ends the run: no request starts after it, and the requests still in flight
	// when it passes are cancelled and counted as unfinished, not as errors. Either Duration
	// or Requests is set.
	Duration time.Duration
	// Requests is the total number of requests to send, shared between the users; the run
	// ends when the last one ends.
	Requests int
	// Body is every request's body: a streamed chat completion (ChatRequest).
	Body []byte
	// Timeout bounds each request. Required.
	Timeout time.Duration
	// Progress, when set, is called every ProgressEvery from its own goroutine.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is a snapshot of a running load run.
type Progress struct {
	Elapsed   time.Duration
	Open      int64 // requests in flight
	Completed int64 // requests that ended with data: [DONE]
	Failed    int64
	// TextChunks is the number of text chunks received since the start.
	TextChunks int64
	// ChunksPerSecond is the rate of text chunks since the previous snapshot.
	ChunksPerSecond float64
}

// UserStats is what one user saw over the run.
type UserStats struct {
	// Requests counts the requests the user sent: Completed + Failed + Unfinished.
	Requests, Completed, Failed, Unfinished int
	// WaitingAtEnd counts the unfinished requests that had not received a first token.
	WaitingAtEnd int
	// Tokens are the user's completion tokens (StreamResult.Tokens), cut streams included.
	Tokens int
	// UsageTokens counts the tokens that came from the server's usage block; the rest are
	// text chunks.
	UsageTokens int
	// DecodeTokens and DecodeTime are the tokens after each request's first and the time
	// from its first to its last text chunk, summed over the requests with two chunks or
	// more: DecodeTokens / DecodeTime is the speed at which the user saw text arrive.
	DecodeTokens float64
	DecodeTime   time.Duration
	// TTFT holds the time to first token of every request that received one.
	TTFT []time.Duration
	// Errors counts the failures by kind; Examples holds the first message of each kind.
	Errors   map[string]int
	Examples map[string]string
}

// TokensPerSecond is the user's streaming speed: DecodeTokens / DecodeTime, 0 when the user
// never received two text chunks in one answer.
func (u *UserStats) TokensPerSecond() float64 {
	if u.DecodeTime <= 0 {
		return 0
	}
	return u.DecodeTokens / u.DecodeTime.Seconds()
}

// Add records one request's result.
func (u *UserStats) Add(r *StreamResult) {
	u.Requests++
	switch r.Kind {
	case "":
		u.Completed++
	case KindCancelled:
		u.Unfinished++
		if r.Chunks == 0 {
			u.WaitingAtEnd++
		}
	default:
		u.Failed++
		if u.Errors == nil {
			u.Errors, u.Examples = map[string]int{}, map[string]string{}
		}
		u.Errors[r.Kind]++
		if _, ok := u.Examples[r.Kind]; !ok && r.Err != nil {
			u.Examples[r.Kind] = r.Err.Error()
		}
	}
	tokens := r.Tokens()
	u.Tokens += tokens
	if r.HasUsage && r.Done {
		u.UsageTokens += tokens
	}
	if r.Chunks > 0 {
		u.TTFT = append(u.TTFT, r.TTFT)
	}
	if r.Chunks >= 2 && r.LastText > r.TTFT {
		// The first chunk's tokens arrive at TTFT; the rest over the window after it. With
		// usage, a chunk may hold several tokens: the first chunk's share is tokens/chunks.
		u.DecodeTokens += float64(tokens) * float64(r.Chunks-1) / float64(r.Chunks)
		u.DecodeTime += r.LastText - r.TTFT
	}
}

// Result is a whole run: each user's stats and the wall time it took.
type Result struct {
	Users []UserStats
	// Wall is the measured time: Duration, or until the last request ended.
	Wall time.Duration
}

// Run drives o.Users concurrent streaming users against c until o.Duration passes or
// o.Requests have been sent, then returns what each user saw. Cancelling ctx ends the run
// early, as the end of Duration does.
func Run(ctx context.Context, c *Client, o Options) *Result {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		open, completed, failed, chunks atomic.Int64
		remaining                       atomic.Int64
	)
	remaining.Store(int64(o.Requests))
	take := func() bool {
		if runCtx.Err() != nil {
			return false
		}
		return o.Requests <= 0 || remaining.Add(-1) >= 0
	}

	res := &Result{Users: make([]UserStats, o.Users)}
	start := time.Now()
	if o.Duration > 0 {
		timer := time.AfterFunc(o.Duration, cancel)
		defer timer.Stop()
	}
	stopProgress := startProgress(o, start, &open, &completed, &failed, &chunks)

	var wg sync.WaitGroup
	for i := range o.Users {
		wg.Add(1)
		go func(u *UserStats) {
			defer wg.Done()
			s := c.NewStreamer()
			s.OnText = func() { chunks.Add(1) }
			for take() {
				open.Add(1)
				r := s.Stream(runCtx, o.Body, o.Timeout)
				open.Add(-1)
				switch r.Kind {
				case "":
					completed.Add(1)
				case KindCancelled:
				default:
					failed.Add(1)
				}
				u.Add(&r)
			}
		}(&res.Users[i])
	}
	wg.Wait()
	res.Wall = time.Since(start)
	if o.Duration > 0 && ctx.Err() == nil {
		// The run's own clock: cancelled requests drain a moment after the deadline.
		res.Wall = min(res.Wall, o.Duration)
	}
	stopProgress()
	return res
}

// startProgress calls o.Progress every o.ProgressEvery until the returned function is called.
func startProgress(o Options, start time.Time, open, completed, failed, chunks *atomic.Int64) func() {
	if o.Progress == nil || o.ProgressEvery <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(o.ProgressEvery)
		defer tick.Stop()
		last, lastAt := int64(0), start
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				n := chunks.Load()
				p := Progress{
					Elapsed: now.Sub(start), Open: open.Load(), Completed: completed.Load(),
					Failed: failed.Load(), TextChunks: n,
				}
				if d := now.Sub(lastAt).Seconds(); d > 0 {
					p.ChunksPerSecond = float64(n-last) / d
				}
				last, lastAt = n, now
				o.Progress(p)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
