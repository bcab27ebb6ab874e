// Package verify checks a deployed OpenAI-compatible endpoint the way a department's clients
// use it, once per model: the model list, a chat completion, a streamed one to its end, and the
// refusal of a wrong key. `sandboxctl verify` runs it after a deploy; each check says what it
// proves in docs/verify-loadtest.md.
package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/loadgen"
)

// Prompt is the message every completion check sends. Its answer is not checked, only that
// there is one: the checks prove the path, not the model's quality.
const Prompt = "Reply with one short sentence: is the service up?"

// MaxTokens bounds every answer: enough for a first token, a few more and a finish_reason.
const MaxTokens = 16

// Options select what to check.
type Options struct {
	// Models are the models that must be listed and answer. Empty: every listed model.
	Models []string
	// Timeout bounds each request.
	Timeout time.Duration
}

// Report is every check's result. OK is true when every check passed.
type Report struct {
	URL     string        `json:"url"`
	OK      bool          `json:"ok"`
	Listing ListingCheck  `json:"listing"`
	Auth    Check         `json:"auth"`
	Models  []ModelReport `json:"models"`
}

// Check is one check's outcome.
type Check struct {
	OK bool `json:"ok"`
	// Status is the HTTP status of the answer, 0 when none came.
	Status int `json:"status"`
	// Detail says what was seen, or what failed.
	Detail string `json:"detail"`
	// TotalMs is the time from sending the request to the end of the answer.
	TotalMs float64 `json:"totalMs"`
}

// ListingCheck is GET /v1/models: the models listed, and whether each required one is.
type ListingCheck struct {
	Check
	Listed []string `json:"listed"`
}

// ModelReport is one model's checks.
type ModelReport struct {
	Model string `json:"model"`
	OK    bool   `json:"ok"`
	// Listed is whether GET /v1/models lists the model.
	Listed bool        `json:"listed"`
	Chat   ChatCheck   `json:"chat"`
	Stream StreamCheck `json:"stream"`
}

// ChatCheck is a non-streamed chat completion.
type ChatCheck struct {
	Check
	Tokens       int    `json:"tokens"`
	FinishReason string `json:"finishReason"`
}

// StreamCheck is a streamed chat completion read to its end.
type StreamCheck struct {
	Check
	// TTFTMs is the time to the first chunk carrying text.
	TTFTMs float64 `json:"ttftMs"`
	Tokens int     `json:"tokens"`
	// TokensFrom is "usage" (the server's count) or "chunks" (text chunks received).
	TokensFrom   string `json:"tokensFrom"`
	FinishReason string `json:"finishReason"`
	// Done is whether the stream ended with data: [DONE].
	Done bool `json:"done"`
}

// Run runs every check against c and returns the report; it never returns early, so one
// report shows every failure.
func Run(ctx context.Context, c *loadgen.Client, o Options) Report {
	r := Report{URL: strings.TrimSuffix(c.URL(""), "/v1"), Models: []ModelReport{}}
	r.Listing = listing(ctx, c, o)
	models := o.Models
	if len(models) == 0 {
		models = r.Listing.Listed
	}
	probe := "verify-auth-probe"
	if len(models) > 0 {
		probe = models[0]
	}
	r.Auth = wrongKeyRefused(ctx, c, probe, o.Timeout)
	for _, m := range models {
		mr := ModelReport{Model: m, Listed: slices.Contains(r.Listing.Listed, m)}
		mr.Chat = chat(ctx, c, m, o.Timeout)
		mr.Stream = stream(ctx, c, m, o.Timeout)
		mr.OK = mr.Listed && mr.Chat.OK && mr.Stream.OK
		r.Models = append(r.Models, mr)
	}
	r.OK = r.Listing.OK && r.Auth.OK && len(r.Models) > 0
	for _, m := range r.Models {
		r.OK = r.OK && m.OK
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// listing checks GET /v1/models: 200, at least one model, every required model listed.
func listing(ctx context.Context, c *loadgen.Client, o Options) ListingCheck {
	l := ListingCheck{Listed: []string{}}
	reqCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	status, body, err := c.Do(reqCtx, http.MethodGet, "/models", nil, 4<<20)
	l.TotalMs, l.Status = ms(time.Since(start)), status
	switch {
	case err != nil:
		l.Detail = "GET /v1/models: " + c.Redact(err.Error())
		return l
	case status != http.StatusOK:
		l.Detail = "GET /v1/models: " + statusDetail(c, status, body)
		return l
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		l.Detail = fmt.Sprintf("GET /v1/models: not a model list (%v)", err)
		return l
	}
	for _, m := range list.Data {
		l.Listed = append(l.Listed, m.ID)
	}
	var missing []string
	for _, m := range o.Models {
		if !slices.Contains(l.Listed, m) {
			missing = append(missing, m)
		}
	}
	switch {
	case len(l.Listed) == 0:
		l.Detail = "GET /v1/models lists no model: the gateway has no model configured"
	case len(missing) > 0:
		l.Detail = fmt.Sprintf("%s not listed (listed: %s)", strings.Join(missing, ", "), strings.Join(l.Listed, ", "))
	default:
		l.OK = true
		l.Detail = fmt.Sprintf("%d listed: %s", len(l.Listed), strings.Join(l.Listed, ", "))
	}
	return l
}

// wrongKeyRefused sends a chat completion with a random key and wants 401: the endpoint
// serves no one without the key.
func wrongKeyRefused(ctx context.Context, c *loadgen.Client, model string, timeout time.Duration) Check {
	var ch Check
	random := make([]byte, 24)
	if _, err := rand.Read(random); err != nil {
		ch.Detail = "no random key: " + err.Error()
		return ch
	}
	wrong := c.WithKey("sk-verify-wrong-" + hex.EncodeToString(random))
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	status, body, err := wrong.Do(reqCtx, http.MethodPost, "/chat/completions", loadgen.ChatRequest(model, Prompt, 1, false), 64<<10)
	ch.TotalMs, ch.Status = ms(time.Since(start)), status
	switch {
	case err != nil:
		ch.Detail = "POST /v1/chat/completions with a wrong key: " + c.Redact(err.Error())
	case status == http.StatusUnauthorized:
		ch.OK = true
		ch.Detail = "a wrong key is refused with HTTP 401"
	case status == http.StatusOK:
		ch.Detail = "a wrong key got HTTP 200: the endpoint answers without the key"
	default:
		ch.Detail = "a wrong key got " + statusDetail(c, status, body) + ", want HTTP 401"
	}
	return ch
}

// chat checks a non-streamed completion: 200 and a choice with text and a finish_reason.
func chat(ctx context.Context, c *loadgen.Client, model string, timeout time.Duration) ChatCheck {
	var ch ChatCheck
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	status, body, err := c.Do(reqCtx, http.MethodPost, "/chat/completions", loadgen.ChatRequest(model, Prompt, MaxTokens, false), 4<<20)
	ch.TotalMs, ch.Status = ms(time.Since(start)), status
	switch {
	case err != nil:
		ch.Detail = c.Redact(err.Error())
		return ch
	case status != http.StatusOK:
		ch.Detail = statusDetail(c, status, body)
		return ch
	}
	var resp struct {
		Choices []struct {
			Message struct {
				Content          string `json:"content"`
				ReasoningContent string `json:"reasoning_content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		ch.Detail = fmt.Sprintf("not a chat completion (%v)", err)
		return ch
	}
	ch.Tokens = resp.Usage.CompletionTokens
	switch {
	case len(resp.Choices) == 0:
		ch.Detail = "the answer has no choices"
	case resp.Choices[0].Message.Content == "" && resp.Choices[0].Message.ReasoningContent == "":
		ch.Detail = "the answer's message is empty"
	case resp.Choices[0].FinishReason == "":
		ch.Detail = "the answer has no finish_reason"
	default:
		ch.OK = true
		ch.FinishReason = resp.Choices[0].FinishReason
		ch.Detail = fmt.Sprintf("%d tokens in %.0f ms, finish_reason %s", ch.Tokens, ch.TotalMs, ch.FinishReason)
	}
	return ch
}

// stream checks a streamed completion: 200, text chunks, a finish_reason, data: [DONE].
func stream(ctx context.Context, c *loadgen.Client, model string, timeout time.Duration) StreamCheck {
	var ch StreamCheck
	r := c.NewStreamer().Stream(ctx, loadgen.ChatRequest(model, Prompt, MaxTokens, true), timeout)
	ch.Status, ch.TotalMs, ch.TTFTMs = r.Status, ms(r.Total), ms(r.TTFT)
	ch.Tokens, ch.FinishReason, ch.Done = r.Tokens(), r.FinishReason, r.Done
	ch.TokensFrom = "chunks"
	if r.HasUsage && r.Done {
		ch.TokensFrom = "usage"
	}
	switch {
	case r.Err != nil:
		ch.Detail = fmt.Sprintf("%s: %s", r.Kind, c.Redact(r.Err.Error()))
	case r.Chunks == 0:
		ch.Detail = "the stream ended with data: [DONE] but carried no text"
	case r.FinishReason == "":
		ch.Detail = "the stream ended with data: [DONE] but no chunk had a finish_reason"
	default:
		ch.OK = true
		ch.Detail = fmt.Sprintf("first token %.0f ms, %d tokens in %.0f ms, finish_reason %s, ended with data: [DONE]",
			ch.TTFTMs, ch.Tokens, ch.TotalMs, ch.FinishReason)
	}
	return ch
}

// statusDetail describes a non-200 answer. A 401's body is left out: it is about the key,
// and some gateways quote part of it.
func statusDetail(c *loadgen.Client, status int, body []byte) string {
	if status == http.StatusUnauthorized {
		return "HTTP 401 (the key was refused)"
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	if msg == "" {
		return fmt.Sprintf("HTTP %d", status)
	}
	return fmt.Sprintf("HTTP %d: %s", status, c.Redact(msg))
}
