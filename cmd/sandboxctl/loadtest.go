package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/loadgen"
)

// defaultLoadPrompt asks for an answer long enough to fill max_tokens.
const defaultLoadPrompt = "Explain, in several paragraphs, how a university department could use a private language model service for teaching and research."

// loadSettings are the run's knobs, as the JSON report records them.
type loadSettings struct {
	URL                  string  `json:"url"`
	Model                string  `json:"model"`
	Users                int     `json:"users"`
	DurationSeconds      float64 `json:"durationSeconds,omitempty"`
	Requests             int     `json:"requests,omitempty"`
	MaxTokens            int     `json:"maxTokens"`
	TimeoutSeconds       float64 `json:"timeoutSeconds"`
	TargetTokensPerUser  float64 `json:"targetTokensPerUser"`
	VerdictPercentile    int     `json:"verdictPercentile"`
	MaxErrorRate         float64 `json:"maxErrorRate"`
	TokensPerSecondBasis string  `json:"tokensPerSecondBasis"`
}

// loadReport is what --format json prints.
type loadReport struct {
	Settings loadSettings    `json:"settings"`
	Summary  loadgen.Summary `json:"summary"`
	Verdict  loadgen.Verdict `json:"verdict"`
}

const tokensPerSecondBasis = "per user: tokens after each answer's first, over the time from its first to its last text chunk (the streaming speed a reader sees; TTFT is reported apart)"

func runLoadtest(e env, projectFlag string, args []string) int {
	return exit(e, "loadtest", loadtest(e, projectFlag, args))
}

func loadtest(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "loadtest",
		"loadtest STACK | --url URL [--key KEY] --users N [--duration D | --requests N] [--model M]\n"+
			"           [--max-tokens N] [--target-tokens-per-user 10] [--format text|json]",
		"Drives N concurrent streaming users, each sending chat completions back to back, and\n"+
			"reports: time to first token (p50, p95); tokens/s per user, the median user (p50) and\n"+
			"the slowest (p5); aggregate tokens/s; requests completed; errors by kind (http_<status>,\n"+
			"timeout, connection, stream_cut before data: [DONE], stream_error, malformed).\n"+
			"A user's tokens/s is the speed text arrived once it started: the tokens after each\n"+
			"answer's first, over the time from its first to its last text chunk. Tokens are the\n"+
			"server's usage.completion_tokens (requested with stream_options.include_usage), or the\n"+
			"text chunks counted when the server sends no usage or the stream was cut.\n"+
			"Verdict: met when the median user (p50) streams at least --target-tokens-per-user, no\n"+
			"more than 1% of the requests failed, and at least one completed. The median, because\n"+
			"the target (10 tokens/s, the UBC figure) is a typical user's reading speed; p5 shows\n"+
			"how the slowest users fare beside it.\n"+
			"With --duration, requests still in flight at the end are cancelled and counted as\n"+
			"unfinished, not as errors. Progress goes to stderr every --progress.\n"+
			"STACK, --url, --key and "+apiKeyEnv+" as for verify; the key is never printed.\n"+
			"Exit 0 verdict met, 1 not met (too slow, too many errors), 2 usage error or no endpoint.")
	format := formatFlag(fs)
	users := fs.Int("users", 0, "`N` concurrent streaming users (required)")
	duration := fs.Duration("duration", 0, "run for `D`, a duration such as 2m (default 1m unless --requests is given)")
	requests := fs.Int("requests", 0, "send `N` requests in all, then stop (instead of --duration)")
	model := fs.String("model", "", "the `model` to load (default: the first GET /v1/models lists)")
	maxTokens := fs.Int("max-tokens", 256, "max_tokens of every request (`N`)")
	target := fs.Float64("target-tokens-per-user", 10, "the verdict's target: `N` tokens/s of the median user")
	timeout := fs.Duration("timeout", 2*time.Minute, "bound on each request (`duration`)")
	prompt := fs.String("prompt", defaultLoadPrompt, "the user message of every request")
	progress := fs.Duration("progress", 5*time.Second, "report progress on stderr this often (0: never)")
	ef := addEndpointFlags(fs)
	positional, err := parseArgs(fs, args, format)
	if err != nil {
		return err
	}
	switch {
	case *users < 1:
		return usagef("--users must be at least 1 (got %d)", *users)
	case *duration != 0 && *requests != 0:
		return usagef("give --duration or --requests, not both")
	case *duration < 0 || *requests < 0:
		return usagef("--duration and --requests must be positive")
	case *maxTokens < 1:
		return usagef("--max-tokens must be at least 1 (got %d)", *maxTokens)
	case *target < 0:
		return usagef("--target-tokens-per-user must not be negative (got %g)", *target)
	case *timeout <= 0:
		return usagef("--timeout must be positive (got %s)", *timeout)
	case *progress < 0:
		return usagef("--progress must not be negative (got %s)", *progress)
	}
	if *duration == 0 && *requests == 0 {
		*duration = time.Minute
	}
	ep, err := resolveEndpoint(e, projectFlag, positional, ef)
	if err != nil {
		return err
	}

	// An interrupt ends the run early, as the end of --duration does: the report still prints.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := loadgen.NewClient(ep.url, ep.key, *users)
	defer c.Close()
	if *model == "" {
		m, err := firstModel(ctx, c, *timeout)
		if err != nil {
			return err
		}
		*model = m
	}
	settings := loadSettings{
		URL: loadgen.BaseURL(ep.url), Model: *model, Users: *users, DurationSeconds: duration.Seconds(), Requests: *requests,
		MaxTokens: *maxTokens, TimeoutSeconds: timeout.Seconds(), TargetTokensPerUser: *target,
		VerdictPercentile: loadgen.VerdictPercentile, MaxErrorRate: loadgen.MaxErrorRate, TokensPerSecondBasis: tokensPerSecondBasis,
	}
	what := fmt.Sprintf("for %s", *duration)
	if *requests > 0 {
		what = fmt.Sprintf("for %d requests", *requests)
	}
	fmt.Fprintf(e.stderr, "loadtest: %d users %s against %s (from %s), model %s, max_tokens %d\n",
		*users, what, settings.URL, ep.source, *model, *maxTokens)

	res := loadgen.Run(ctx, c, loadgen.Options{
		Users: *users, Duration: *duration, Requests: *requests, Timeout: *timeout,
		Body:          loadgen.ChatRequest(*model, *prompt, *maxTokens, true),
		ProgressEvery: *progress,
		Progress: func(p loadgen.Progress) {
			fmt.Fprintf(e.stderr, "loadtest: %5.0fs  %d streams open, %d completed, %d failed, %.0f text chunks/s\n",
				p.Elapsed.Seconds(), p.Open, p.Completed, p.Failed, p.ChunksPerSecond)
		},
	})
	if ctx.Err() != nil {
		fmt.Fprintln(e.stderr, "loadtest: interrupted; reporting what ran")
	}
	rep := loadReport{Settings: settings, Summary: loadgen.Summarise(res)}
	rep.Verdict = loadgen.Judge(rep.Summary, *target)
	if *format == "json" {
		out, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
	} else {
		writeLoadText(e, rep)
	}
	if !rep.Verdict.Met {
		return errReported
	}
	return nil
}

// firstModel is the first model GET /v1/models lists.
func firstModel(ctx context.Context, c *loadgen.Client, timeout time.Duration) (string, error) {
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	status, body, err := c.Do(reqCtx, http.MethodGet, "/models", nil, 4<<20)
	if err != nil {
		return "", fmt.Errorf("GET /v1/models (to pick a model; or pass --model): %s", c.Redact(err.Error()))
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("GET /v1/models (to pick a model; or pass --model): HTTP %d", status)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Data) == 0 || list.Data[0].ID == "" {
		return "", fmt.Errorf("GET /v1/models lists no model (or pass --model)")
	}
	return list.Data[0].ID, nil
}

func writeLoadText(e env, r loadReport) {
	s, v := r.Summary, r.Verdict
	var b strings.Builder
	fmt.Fprintf(&b, "load:        %d users, %.1f s, model %s, max_tokens %d, %s\n",
		r.Settings.Users, s.DurationSeconds, r.Settings.Model, r.Settings.MaxTokens, r.Settings.URL)
	fmt.Fprintf(&b, "requests:    %d sent, %d completed, %d failed, %d unfinished at the end (%d waiting for a first token)\n",
		s.Requests.Sent, s.Requests.Completed, s.Requests.Failed, s.Requests.Unfinished, s.Requests.WaitingForFirstToken)
	fmt.Fprintf(&b, "TTFT:        p50 %.1f ms, p95 %.1f ms (%d requests)\n", s.TTFT.P50Ms, s.TTFT.P95Ms, s.TTFT.Samples)
	u := s.UserTokensPerSecond
	fmt.Fprintf(&b, "per user:    p50 %.1f tokens/s, p5 %.1f (slowest %.1f, fastest %.1f) over %d users\n", u.P50, u.P5, u.Min, u.Max, s.Users)
	fmt.Fprintf(&b, "aggregate:   %.1f tokens/s, %d tokens (counted from: %s)\n", s.AggregateTokensPerSecond, s.Tokens, s.TokensFrom)
	if len(s.Errors) == 0 {
		b.WriteString("errors:      none\n")
	} else {
		kinds := slices.Sorted(maps.Keys(s.Errors))
		fmt.Fprintf(&b, "errors:      %d (%.1f%% of the requests that ended)\n", s.Requests.Failed, 100*s.ErrorRate)
		for _, k := range kinds {
			fmt.Fprintf(&b, "  %-12s %d, e.g. %s\n", k, s.Errors[k], s.ErrorExamples[k])
		}
	}
	if v.Met {
		fmt.Fprintf(&b, "verdict:     MET: the median user (p%d) streamed %.1f tokens/s >= target %g; %.1f%% failed (<= %.0f%%)\n",
			v.Percentile, v.ObservedTokensPerSecond, v.TargetTokensPerSecond, 100*s.ErrorRate, 100*v.MaxErrorRate)
	} else {
		fmt.Fprintf(&b, "verdict:     NOT MET (median user p%d, target %g tokens/s, at most %.0f%% failed): %s\n",
			v.Percentile, v.TargetTokensPerSecond, 100*v.MaxErrorRate, strings.Join(v.Reasons, "; "))
	}
	fmt.Fprint(e.stdout, b.String())
}
