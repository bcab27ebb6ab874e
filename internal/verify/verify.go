// Package verify checks a deployed OpenAI-compatible endpoint the way a department's clients
// use it, once per model, through the official OpenAI Go SDK (openai-go), so that what passes
// verify is what an SDK user gets: the model list, a chat completion and a streamed one to its
// end for a chat model, an embedding for an embedding model, and the refusal of a wrong key.
// `sandboxctl verify` runs it after a deploy; each check says what it proves in
// docs/verify-loadtest.md.
package verify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/pagination"
	"github.com/openai/openai-go/v3/packages/respjson"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/loadgen"
)

// Prompt is the message every completion check sends. Its answer is not checked, only that
// there is one: the checks prove the path, not the model's quality.
const Prompt = "Reply with one short sentence: is the service up?"

// EmbeddingInputs are what the embedding check embeds: two, so the check sees a batch answered
// in order.
var EmbeddingInputs = []string{"Is the service up?", "The embedding check of sandboxctl verify."}

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

// ModelReport is one model's checks: chat and stream for a chat model, embedding for an
// embedding model (the catalog says which).
type ModelReport struct {
	Model string `json:"model"`
	OK    bool   `json:"ok"`
	// Listed is whether GET /v1/models lists the model.
	Listed    bool            `json:"listed"`
	Chat      *ChatCheck      `json:"chat,omitempty"`
	Stream    *StreamCheck    `json:"stream,omitempty"`
	Embedding *EmbeddingCheck `json:"embedding,omitempty"`
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

// EmbeddingCheck is POST /v1/embeddings of EmbeddingInputs.
type EmbeddingCheck struct {
	Check
	// Vectors is how many embeddings came back; Dimensions their size.
	Vectors    int `json:"vectors"`
	Dimensions int `json:"dimensions"`
}

// IsEmbedding reports whether model is an embedding model of the catalog: it is checked with
// an embedding, not a chat.
func IsEmbedding(model string) bool {
	m, ok := catalog.LookupModel(model)
	return ok && m.Embedding
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
	for _, m := range models {
		if !IsEmbedding(m) {
			probe = m
			break
		}
	}
	r.Auth = wrongKeyRefused(ctx, c, probe, o.Timeout)
	for _, m := range models {
		mr := ModelReport{Model: m, Listed: slices.Contains(r.Listing.Listed, m)}
		if IsEmbedding(m) {
			e := embedding(ctx, c, m, o.Timeout)
			mr.Embedding = &e
			mr.OK = mr.Listed && e.OK
		} else {
			ch, st := chat(ctx, c, m, o.Timeout), stream(ctx, c, m, o.Timeout)
			mr.Chat, mr.Stream = &ch, &st
			mr.OK = mr.Listed && ch.OK && st.OK
		}
		r.Models = append(r.Models, mr)
	}
	r.OK = r.Listing.OK && r.Auth.OK && len(r.Models) > 0
	for _, m := range r.Models {
		r.OK = r.OK && m.OK
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// answer is the HTTP status and, for a failure, the body of the last response an SDK client
// got: the SDK keeps the status only for errors in OpenAI's shape, while a load balancer or a
// gateway coming up answers in its own (an HTML page, {"error": "text"}).
type answer struct {
	status int
	body   []byte
}

// sdk is the official Go SDK's client of c's endpoint, with c's key (or key, when not empty)
// and HTTP client, recording each response's status into the returned answer. It never
// retries on its own: each check reports what one request got.
func sdk(c *loadgen.Client, key string) (openai.Client, *answer) {
	if key == "" {
		key = c.Key()
	}
	got := &answer{}
	record := option.WithMiddleware(func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(req)
		if err != nil {
			return resp, err
		}
		got.status, got.body = resp.StatusCode, nil
		if resp.StatusCode != http.StatusOK {
			got.body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(got.body))
		}
		return resp, err
	})
	client := openai.NewClient(option.WithBaseURL(c.URL("/")), option.WithAPIKey(key),
		option.WithHTTPClient(c.HTTP()), option.WithMaxRetries(0), record)
	return client, got
}

// failure is the status and description of a failed SDK call: the HTTP status and body of an
// answer other than success, status 0 when none came (or when it failed within a 200).
func (a *answer) failure(c *loadgen.Client, err error) (int, string) {
	if a.status != 0 && a.status != http.StatusOK {
		return a.status, statusDetail(c, a.status, a.body)
	}
	return 0, c.Redact(err.Error())
}

// call sends one SDK request of the endpoint with c's key, bounded by timeout, and fills the
// check's time, status and, when it failed, the detail; ok is whether it succeeded.
func call[T any](ctx context.Context, c *loadgen.Client, timeout time.Duration, ch *Check, send func(context.Context, openai.Client) (T, error)) (resp T, ok bool) {
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, got := sdk(c, "")
	start := time.Now()
	resp, err := send(reqCtx, client)
	ch.TotalMs = ms(time.Since(start))
	if err != nil {
		ch.Status, ch.Detail = got.failure(c, err)
		return resp, false
	}
	ch.Status = http.StatusOK
	return resp, true
}

// listing checks GET /v1/models: 200, at least one model, every required model listed.
func listing(ctx context.Context, c *loadgen.Client, o Options) ListingCheck {
	l := ListingCheck{Listed: []string{}}
	page, ok := call(ctx, c, o.Timeout, &l.Check, func(ctx context.Context, client openai.Client) (*pagination.Page[openai.Model], error) {
		return client.Models.List(ctx)
	})
	if !ok {
		l.Detail = "GET /v1/models: " + l.Detail
		return l
	}
	for _, m := range page.Data {
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
	wrong, got := sdk(c, "sk-verify-wrong-"+hex.EncodeToString(random))
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	_, err := wrong.Chat.Completions.New(reqCtx, chatParams(model, 1))
	ch.TotalMs = ms(time.Since(start))
	if err == nil {
		ch.Status = http.StatusOK
		ch.Detail = "a wrong key got HTTP 200: the endpoint answers without the key"
		return ch
	}
	status, detail := got.failure(c, err)
	ch.Status = status
	switch {
	case status == http.StatusUnauthorized:
		ch.OK = true
		ch.Detail = "a wrong key is refused with HTTP 401"
	case status == 0:
		ch.Detail = "POST /v1/chat/completions with a wrong key: " + detail
	default:
		ch.Detail = "a wrong key got " + detail + ", want HTTP 401"
	}
	return ch
}

// chatParams is a chat completion of Prompt.
func chatParams(model string, maxTokens int64) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:       model,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage(Prompt)},
		MaxTokens:   openai.Int(maxTokens),
		Temperature: openai.Float(0),
	}
}

// hasReasoning reports whether a message or delta carries reasoning_content (thinking models
// answer there first), which the SDK keeps among the extra fields.
func hasReasoning(extra map[string]respjson.Field) bool {
	f, ok := extra["reasoning_content"]
	return ok && f.Raw() != "" && f.Raw() != "null" && f.Raw() != `""`
}

// chat checks a non-streamed completion: 200 and a choice with text and a finish_reason.
func chat(ctx context.Context, c *loadgen.Client, model string, timeout time.Duration) ChatCheck {
	var ch ChatCheck
	resp, ok := call(ctx, c, timeout, &ch.Check, func(ctx context.Context, client openai.Client) (*openai.ChatCompletion, error) {
		return client.Chat.Completions.New(ctx, chatParams(model, MaxTokens))
	})
	if !ok {
		return ch
	}
	ch.Tokens = int(resp.Usage.CompletionTokens)
	switch {
	case len(resp.Choices) == 0:
		ch.Detail = "the answer has no choices"
	case resp.Choices[0].Message.Content == "" && !hasReasoning(resp.Choices[0].Message.JSON.ExtraFields):
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

// doneWatcher passes a streamed body through and notes whether its last event was
// "data: [DONE]": the SDK ends a stream the same way at [DONE] and at a cut connection.
type doneWatcher struct {
	io.ReadCloser
	tail []byte
	done *bool
}

func (w *doneWatcher) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	w.tail = append(w.tail, p[:n]...)
	if len(w.tail) > 64 {
		w.tail = w.tail[len(w.tail)-64:]
	}
	*w.done = bytes.HasSuffix(bytes.TrimRight(w.tail, "\r\n"), []byte("data: [DONE]"))
	return n, err
}

// stream checks a streamed completion through the SDK: 200, text chunks that all carry the
// stream's id (the SDK's accumulator drops any other), a finish_reason, data: [DONE].
func stream(ctx context.Context, c *loadgen.Client, model string, timeout time.Duration) StreamCheck {
	var ch StreamCheck
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	params := chatParams(model, MaxTokens)
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	watch := option.WithMiddleware(func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(req)
		if err == nil && resp.StatusCode == http.StatusOK {
			resp.Body = &doneWatcher{ReadCloser: resp.Body, done: &ch.Done}
		}
		return resp, err
	})
	client, got := sdk(c, "")
	start := time.Now()
	s := client.Chat.Completions.NewStreaming(reqCtx, params, watch)
	defer s.Close()
	var acc openai.ChatCompletionAccumulator
	chunks, usageTokens, foreign := 0, 0, ""
	for s.Next() {
		chunk := s.Current()
		if !acc.AddChunk(chunk) && foreign == "" {
			foreign = fmt.Sprintf("a chunk has id %q, not the stream's %q: an SDK's accumulator drops it", chunk.ID, acc.ID)
		}
		for _, choice := range chunk.Choices {
			if choice.Delta.Content != "" || hasReasoning(choice.Delta.JSON.ExtraFields) {
				if chunks == 0 {
					ch.TTFTMs = ms(time.Since(start))
				}
				chunks++
			}
			if choice.FinishReason != "" {
				ch.FinishReason = choice.FinishReason
			}
		}
		if chunk.JSON.Usage.Valid() && chunk.Usage.CompletionTokens > 0 {
			usageTokens = int(chunk.Usage.CompletionTokens)
		}
	}
	ch.TotalMs = ms(time.Since(start))
	if err := s.Err(); err != nil {
		ch.Status, ch.Detail = got.failure(c, err)
		if ch.Status == 0 {
			ch.Status = got.status // 200 when the answer started and the stream failed within it
		}
		ch.Done = false
		return ch
	}
	ch.Status = http.StatusOK
	ch.Tokens, ch.TokensFrom = chunks, "chunks"
	if usageTokens > 0 && ch.Done {
		ch.Tokens, ch.TokensFrom = usageTokens, "usage"
	}
	switch {
	case !ch.Done:
		ch.Detail = "the stream ended without data: [DONE]"
	case foreign != "":
		ch.Detail = foreign
	case chunks == 0:
		ch.Detail = "the stream ended with data: [DONE] but carried no text"
	case ch.FinishReason == "":
		ch.Detail = "the stream ended with data: [DONE] but no chunk had a finish_reason"
	default:
		ch.OK = true
		ch.Detail = fmt.Sprintf("first token %.0f ms, %d tokens in %.0f ms, finish_reason %s, ended with data: [DONE]",
			ch.TTFTMs, ch.Tokens, ch.TotalMs, ch.FinishReason)
	}
	return ch
}

// embedding checks POST /v1/embeddings: 200, one vector per input in order, all of one
// non-zero size.
func embedding(ctx context.Context, c *loadgen.Client, model string, timeout time.Duration) EmbeddingCheck {
	var ch EmbeddingCheck
	resp, ok := call(ctx, c, timeout, &ch.Check, func(ctx context.Context, client openai.Client) (*openai.CreateEmbeddingResponse, error) {
		return client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: model, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: EmbeddingInputs},
		})
	})
	if !ok {
		return ch
	}
	ch.Vectors = len(resp.Data)
	if ch.Vectors > 0 {
		ch.Dimensions = len(resp.Data[0].Embedding)
	}
	switch {
	case ch.Vectors != len(EmbeddingInputs):
		ch.Detail = fmt.Sprintf("%d embeddings for %d inputs", ch.Vectors, len(EmbeddingInputs))
	case ch.Dimensions == 0:
		ch.Detail = "the embeddings are empty"
	default:
		for i, d := range resp.Data {
			if int(d.Index) != i || len(d.Embedding) != ch.Dimensions {
				ch.Detail = fmt.Sprintf("embedding %d has index %d and %d dimensions, want index %d and %d", i, d.Index, len(d.Embedding), i, ch.Dimensions)
				return ch
			}
		}
		ch.OK = true
		ch.Detail = fmt.Sprintf("%d vectors of %d dimensions in %.0f ms", ch.Vectors, ch.Dimensions, ch.TotalMs)
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
