package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/loadgen"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/internal/verify"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// envOpenAIPython names the python of the venv holding the official OpenAI Python SDK
// (tools/requirements-openai.txt), which `make e2e-deps` installs.
const envOpenAIPython = "LLM_SANDBOX_OPENAI_PYTHON"

// embedModel is the embedding model the suite's pool serves (a tiny random-weight model under
// its name: Ollama embeds with any model it can load).
const embedModel = "nomic-embed-text"

// contextLength is the pool's context, which the gateway's context check enforces.
const contextLength = 2048

// toolTemplate is a Llama-3-style chat template that takes tools: the tiny model's GGUF carries
// no template, and Ollama refuses tools for a model whose template does not use them. The
// ToolCalls part tells Ollama's tool parser what a call looks like: a JSON object with name
// and arguments.
const toolTemplate = `{{- if .Tools }}<|start_header_id|>system<|end_header_id|>

Tools:{{ range .Tools }} {{ json . }}{{ end }}<|eot_id|>{{ end }}
{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}{{ end }}
{{- else }}{{ .Content }}{{ end }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>

`

// weatherTool and callSchema are the Python script's WEATHER_TOOL and CALL_SCHEMA.
var (
	weatherParameters = map[string]any{
		"type":       "object",
		"properties": map[string]any{"city": map[string]any{"type": "string", "enum": []any{"Paris"}}},
		"required":   []any{"city"},
	}
	callSchema = map[string]any{
		"type": "object",
		"properties": map[string]any{
			"name":      map[string]any{"type": "string", "enum": []any{"get_weather"}},
			"arguments": weatherParameters,
		},
		"required": []any{"name", "arguments"},
	}
)

// suite is the deployment the SDK tests drive: one pool (the real Ollama serving the tiny
// model as the chat model and as the embedding model) behind a recorder, and a gateway (the
// pinned LiteLLM with the rendered config and modules) routing both.
type suite struct {
	pool, gateway *localrun.Node
	rec           *ollamaRecorder
	key, base     string
	marker        string
}

func startSuite(t *testing.T) *suite {
	t.Helper()
	h := localruntest.RequireLiteLLM(t)
	d := localrun.NewDeployment(t, h, "")
	d.AddTinyModel(t, embedModel)
	s := &suite{marker: "PRIVACY-MARKER-" + localrun.RandomAlphanumeric(t, 16)}

	s.pool = localrun.NewNode(t, d.NodeDir(t, "pool"), d.Agent)
	s.pool.Start(t, d.OllamaConfig(s.pool.Port, d.Release, localrun.OllamaOptions{
		Models: []string{localrun.ModelName, embedModel}, ContextLength: contextLength,
	}), localrun.BootstrapLimit)
	code, body := localruntest.Call(t, http.MethodPost, s.pool.URL()+"/api/create", "", map[string]any{
		"model": localrun.ModelName, "from": localrun.ModelName, "template": toolTemplate, "stream": false,
	})
	if code != http.StatusOK {
		t.Fatalf("give %s a template that takes tools: HTTP %d: %s", localrun.ModelName, code, body)
	}
	s.rec = newOllamaRecorder(t, s.pool.URL())

	keyFile := filepath.Join(d.Work, "master-key")
	if err := os.WriteFile(keyFile, []byte("sk-"+localrun.RandomAlphanumeric(t, 48)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The client's key, from a local key store: a local gateway refuses the master key.
	store, err := keyregistry.CreateFileStore(filepath.Join(d.Work, keyregistry.LocalStoreFile))
	if err != nil {
		t.Fatal(err)
	}
	team := localrun.HarnessTeam([]string{localrun.ModelName, embedModel})
	issued, err := store.Issue(context.Background(), team.Name, localrun.LocalOwner, time.Now(), time.Now().Add(team.KeyLifetime), "")
	if err != nil {
		t.Fatal(err)
	}
	s.key = issued.Key
	s.gateway = localrun.NewNode(t, d.NodeDir(t, "gateway"), d.Agent)
	s.gateway.Start(t, d.LiteLLMConfig(s.gateway.Port, localrun.GatewayOptions{
		MasterKeyFile: keyFile,
		KeyRegistry:   &node.KeyRegistry{File: store.Path(), Teams: []node.LiteLLMTeam{team.LiteLLMTeam}},
		Routes: []node.LiteLLMModel{
			node.NewLiteLLMModel(localrun.ModelName, s.rec.URL, contextLength),
			node.NewLiteLLMModel(embedModel, s.rec.URL, contextLength),
		},
	}), localrun.BootstrapLimit)
	s.base = s.gateway.URL() + "/v1"
	return s
}

// TestOpenAISDKs drives the loopback deployment with the official OpenAI SDKs, Python and Go,
// as a department's developers do: models, chat, streaming with usage, embeddings, tools and
// structured output, streamed and not, and each error mapped to the SDK's exception. What
// reaches Ollama is recorded: tools and the JSON schema arrive intact, and refused requests
// never arrive. The tiny model's weights are random, so a tool call is obtained honestly only
// by constraining its output to a call's JSON (response_format json_schema), which Ollama's
// parser then reads as a tool call; whether a real model chooses to call a tool is the model's
// business, not the gateway's. Nothing a client sends (prompts, embedding inputs) is written
// to any log or file of either node.
func TestOpenAISDKs(t *testing.T) {
	python := os.Getenv(envOpenAIPython)
	if python == "" {
		localruntest.RequireLiteLLM(t) // skips first when the whole end-to-end set is off
		t.Skipf("the OpenAI SDK is not configured: run `make e2e-deps` and set %s (`make test` does both)", envOpenAIPython)
	}
	s := startSuite(t)

	t.Run("python", func(t *testing.T) { s.pythonSurface(t, python) })
	t.Run("go", s.goSurface)
	t.Run("overload", func(t *testing.T) { s.overload(t, python) })
	t.Run("verify", s.verify)

	s.gateway.StopAll(t)
	s.pool.StopAll(t)
	scan := localruntest.FindInFiles([]string{s.gateway.Dir, s.pool.Dir}, []string{s.marker}, 1<<30)
	if scan.Files == 0 || len(scan.Skipped) > 0 {
		t.Errorf("the privacy scan read %d files and skipped %v", scan.Files, scan.Skipped)
	}
	for _, hit := range scan.Hits {
		t.Errorf("%s holds a prompt's or an embedding input's marker (%s)", hit.Path, hit.Needle)
	}
}

// runSDK runs testdata/openai_sdk.py for one case and decodes what it printed.
func (s *suite) runSDK(t *testing.T, python, which string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, "-s", "-B", filepath.Join("testdata", "openai_sdk.py"),
		s.base, s.key, localrun.ModelName, embedModel, s.marker, which)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("openai_sdk.py %s: %v\n%s", which, err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("openai_sdk.py %s printed %q: %v\n%s", which, stdout.String(), err, stderr.String())
	}
}

// sdkError is how openai_sdk.py reports an exception.
type sdkError struct {
	Exception  *string  `json:"exception"`
	Status     int      `json:"status"`
	Code       *string  `json:"code"`
	Type       *string  `json:"type"`
	BodyKeys   []string `json:"body_keys"`
	RetryAfter *string  `json:"retry_after"`
}

func (e sdkError) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// wantSDKError checks one exception: its class, status, OpenAI's code and type, and the body's
// shape {"error": {"message", "type", "param", "code"}} (the SDK's e.body is the inner object).
func wantSDKError(t *testing.T, name string, got sdkError, exception string, status int, code, typ string) {
	t.Helper()
	if got.Exception == nil || *got.Exception != exception || got.Status != status || got.Code == nil || *got.Code != code ||
		got.Type == nil || *got.Type != typ || !slices.Equal(got.BodyKeys, []string{"code", "message", "param", "type"}) {
		t.Errorf("%s: got %s, want %s (HTTP %d, code %q, type %q, body keys code/message/param/type)", name, got, exception, status, code, typ)
	}
}

type toolCall struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments"`
}

func (s *suite) pythonSurface(t *testing.T, python string) {
	s.rec.take()
	type usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
	var got struct {
		Models []string `json:"models"`
		Chat   struct {
			Object, Content, FinishReason string
			Usage                         *usage
		}
		Stream struct {
			Content string
			Chunks  int
			Usage   *usage
		}
		Legacy struct {
			Object, Text string
			Usage        *usage
		}
		LegacyStream struct {
			Text   string
			Chunks int
		} `json:"legacy_stream"`
		Embeddings struct {
			Object     string
			Count      int
			Indexes    []int
			Dimensions []int
		}
		Tools struct {
			FinishReason string     `json:"finish_reason"`
			ToolCalls    []toolCall `json:"tool_calls"`
		}
		ToolsStream struct {
			FinishReason string     `json:"finish_reason"`
			ToolCalls    []toolCall `json:"tool_calls"`
		} `json:"tools_stream"`
		JSONObject struct{ Content string } `json:"json_object"`
		JSONSchema struct{ Content string } `json:"json_schema"`
		Errors     map[string]sdkError
	}
	s.runSDK(t, python, "surface", &got)
	t.Logf("through the OpenAI Python SDK: chat %q, streamed %q, JSON %q and %q", got.Chat.Content, got.Stream.Content, got.JSONObject.Content, got.JSONSchema.Content)

	if !slices.Contains(got.Models, localrun.ModelName) || !slices.Contains(got.Models, embedModel) {
		t.Errorf("models.list: %v, want %s and %s", got.Models, localrun.ModelName, embedModel)
	}
	if got.Chat.Object != "chat.completion" || strings.TrimSpace(got.Chat.Content) == "" || got.Chat.Usage == nil || got.Chat.Usage.CompletionTokens < 1 {
		t.Errorf("chat: %+v, want a chat.completion with content and usage", got.Chat)
	}
	if strings.TrimSpace(got.Stream.Content) == "" || got.Stream.Chunks < 2 || got.Stream.Usage == nil || got.Stream.Usage.CompletionTokens < 1 ||
		got.Stream.Usage.TotalTokens != got.Stream.Usage.PromptTokens+got.Stream.Usage.CompletionTokens {
		t.Errorf("stream with include_usage: %+v, want content over several chunks and a usage chunk", got.Stream)
	}
	if got.Legacy.Object != "text_completion" || strings.TrimSpace(got.Legacy.Text) == "" || got.Legacy.Usage == nil || got.Legacy.Usage.CompletionTokens < 1 {
		t.Errorf("completions (legacy): %+v, want a text_completion with text and usage", got.Legacy)
	}
	if strings.TrimSpace(got.LegacyStream.Text) == "" || got.LegacyStream.Chunks < 2 {
		t.Errorf("completions (legacy, stream): %+v, want text over several chunks", got.LegacyStream)
	}
	if got.Embeddings.Object != "list" || got.Embeddings.Count != 2 || !slices.Equal(got.Embeddings.Indexes, []int{0, 1}) ||
		len(got.Embeddings.Dimensions) != 2 || got.Embeddings.Dimensions[0] == 0 || got.Embeddings.Dimensions[0] != got.Embeddings.Dimensions[1] {
		t.Errorf("embeddings: %+v, want two vectors of one non-zero size", got.Embeddings)
	}
	wantCall := toolCall{Type: "function", Name: "get_weather", Arguments: map[string]any{"city": "Paris"}}
	if len(got.Tools.ToolCalls) != 1 || got.Tools.FinishReason != "tool_calls" || got.Tools.ToolCalls[0].ID == "" {
		t.Errorf("tools: %+v, want one tool call and finish_reason tool_calls", got.Tools)
	} else if c := got.Tools.ToolCalls[0]; c.Type != wantCall.Type || c.Name != wantCall.Name || !reflect.DeepEqual(c.Arguments, wantCall.Arguments) {
		t.Errorf("tools: call %+v, want %+v", c, wantCall)
	}
	if len(got.ToolsStream.ToolCalls) != 1 || got.ToolsStream.FinishReason != "tool_calls" ||
		got.ToolsStream.ToolCalls[0].Name != "get_weather" || !reflect.DeepEqual(got.ToolsStream.ToolCalls[0].Arguments, wantCall.Arguments) {
		t.Errorf("tools (stream): %+v, want one get_weather call in deltas and finish_reason tool_calls", got.ToolsStream)
	}
	// The tiny model only writes JSON when Ollama's grammar holds it to it.
	if !strings.HasPrefix(strings.TrimSpace(got.JSONObject.Content), "{") {
		t.Errorf("response_format json_object: %q does not start a JSON object", got.JSONObject.Content)
	}
	if c := strings.Join(strings.Fields(got.JSONSchema.Content), ""); !strings.HasPrefix(c, `{"answer":`) {
		t.Errorf("response_format json_schema: %q does not follow the schema {answer: integer}", got.JSONSchema.Content)
	}

	wantSDKError(t, "unknown model", got.Errors["unknown_model"], "NotFoundError", 404, "model_not_found", "invalid_request_error")
	wantSDKError(t, "unknown embedding model", got.Errors["unknown_embedding_model"], "NotFoundError", 404, "model_not_found", "invalid_request_error")
	wantSDKError(t, "prompt over the context", got.Errors["over_context"], "BadRequestError", 400, "context_length_exceeded", "invalid_request_error")
	wantSDKError(t, "embedding input over the context", got.Errors["over_context_embedding"], "BadRequestError", 400, "context_length_exceeded", "invalid_request_error")
	if e := got.Errors["wrong_key"]; e.Exception == nil || *e.Exception != "AuthenticationError" || e.Status != 401 {
		t.Errorf("wrong key: %s, want AuthenticationError (401)", e)
	}

	// What reached Ollama: tools and schemas intact, refused requests not at all.
	reqs := s.rec.take()
	var chats, embeds []map[string]any
	for _, r := range reqs {
		switch r.Path {
		case "/api/chat":
			chats = append(chats, r.Body)
		case "/api/embed":
			embeds = append(embeds, r.Body)
		}
		if text, _ := json.Marshal(r.Body); bytes.Contains(text, []byte(s.marker+"-long")) || bytes.Contains(text, []byte("no-such-")) {
			t.Errorf("a refused request reached Ollama: %s %.200s", r.Path, text)
		}
	}
	var toolRequests, schemaFormats, jsonFormats int
	for _, c := range chats {
		if tools, ok := c["tools"].([]any); ok {
			toolRequests++
			want := []any{map[string]any{"type": "function", "function": map[string]any{
				"name": "get_weather", "description": "The weather in a city.", "parameters": weatherParameters,
			}}}
			if !reflect.DeepEqual(tools, want) {
				t.Errorf("tools reached Ollama as %v, want %v", tools, want)
			}
			if !reflect.DeepEqual(c["format"], callSchema) {
				t.Errorf("the tool request's format reached Ollama as %v, want the schema %v", c["format"], callSchema)
			}
		}
		switch f := c["format"].(type) {
		case string:
			if f == "json" {
				jsonFormats++
			}
		case map[string]any:
			schemaFormats++
		}
	}
	if toolRequests != 2 || jsonFormats != 1 || schemaFormats != 3 {
		t.Errorf("Ollama got %d chat requests with tools (want 2), %d with format json (want 1), %d with a schema (want 3)", toolRequests, jsonFormats, schemaFormats)
	}
	if len(embeds) != 1 || !reflect.DeepEqual(embeds[0]["input"], []any{s.marker + "-embed-one", s.marker + "-embed-two"}) {
		t.Errorf("Ollama's /api/embed got %v, want one request with both inputs", embeds)
	}
}

// goSurface is the same surface through the official Go SDK, openai-go.
func (s *suite) goSurface(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	client := openai.NewClient(option.WithBaseURL(s.base), option.WithAPIKey(s.key), option.WithMaxRetries(0))
	user := func(what string) []openai.ChatCompletionMessageParamUnion {
		return []openai.ChatCompletionMessageParamUnion{openai.UserMessage(fmt.Sprintf("Reference %s-go-%s: what is the weather?", s.marker, what))}
	}

	page, err := client.Models.List(ctx)
	if err != nil {
		t.Fatalf("Models.List: %v", err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if !slices.Contains(ids, localrun.ModelName) || !slices.Contains(ids, embedModel) {
		t.Errorf("Models.List: %v, want %s and %s", ids, localrun.ModelName, embedModel)
	}

	chat, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: localrun.ModelName, Messages: user("chat"), MaxTokens: openai.Int(8), Temperature: openai.Float(0),
	})
	if err != nil || len(chat.Choices) != 1 || strings.TrimSpace(chat.Choices[0].Message.Content) == "" || chat.Usage.CompletionTokens < 1 {
		t.Errorf("Chat.Completions.New: %v, %+v", err, chat)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: localrun.ModelName, Messages: user("stream"), MaxTokens: openai.Int(8), Temperature: openai.Float(0),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	// The accumulator drops a chunk whose id is not the first chunk's, as OpenAI's chunks all
	// share one id; so does this test.
	var acc openai.ChatCompletionAccumulator
	var content strings.Builder
	chunks := 0
	for stream.Next() {
		chunk := stream.Current()
		if !acc.AddChunk(chunk) {
			t.Errorf("stream chunk %d has id %q, not the stream's %q", chunks, chunk.ID, acc.ID)
		}
		for _, c := range chunk.Choices {
			content.WriteString(c.Delta.Content)
		}
		chunks++
	}
	if err := stream.Err(); err != nil || len(acc.Choices) != 1 || acc.Choices[0].Message.Content != content.String() ||
		strings.TrimSpace(content.String()) == "" || chunks < 2 || acc.Usage.CompletionTokens < 1 {
		t.Errorf("Chat.Completions.NewStreaming with include_usage: %v, %d chunks of %q, accumulated %+v", err, chunks, content.String(), acc.ChatCompletion)
	}

	legacyParams := openai.CompletionNewParams{
		Model:     openai.CompletionNewParamsModel(localrun.ModelName),
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Reference " + s.marker + "-go-legacy: the weather is")},
		MaxTokens: openai.Int(8), Temperature: openai.Float(0),
	}
	legacy, err := client.Completions.New(ctx, legacyParams)
	if err != nil || legacy.Object != "text_completion" || len(legacy.Choices) != 1 || strings.TrimSpace(legacy.Choices[0].Text) == "" || legacy.Usage.CompletionTokens < 1 {
		t.Errorf("Completions.New (legacy): %v, %+v", err, legacy)
	}
	legacyStream := client.Completions.NewStreaming(ctx, legacyParams)
	var legacyText strings.Builder
	legacyChunks := 0
	for legacyStream.Next() {
		for _, c := range legacyStream.Current().Choices {
			legacyText.WriteString(c.Text)
		}
		legacyChunks++
	}
	if err := legacyStream.Err(); err != nil || strings.TrimSpace(legacyText.String()) == "" || legacyChunks < 2 {
		t.Errorf("Completions.NewStreaming (legacy): %v, %d chunks of %q", err, legacyChunks, legacyText.String())
	}

	emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: embedModel, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{s.marker + "-go-embed"}},
	})
	if err != nil || len(emb.Data) != 1 || len(emb.Data[0].Embedding) == 0 {
		t.Errorf("Embeddings.New: %v, %+v", err, emb)
	}

	toolParams := openai.ChatCompletionNewParams{
		Model: localrun.ModelName, Messages: user("tools"), MaxTokens: openai.Int(64), Temperature: openai.Float(0),
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: "get_weather", Description: openai.String("The weather in a city."), Parameters: weatherParameters,
		})},
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "call", Schema: callSchema},
		}},
	}
	call, err := client.Chat.Completions.New(ctx, toolParams)
	if err != nil || len(call.Choices) != 1 || call.Choices[0].FinishReason != "tool_calls" || len(call.Choices[0].Message.ToolCalls) != 1 {
		t.Errorf("Chat.Completions.New with tools: %v, %+v", err, call)
	} else if tc := call.Choices[0].Message.ToolCalls[0]; tc.Function.Name != "get_weather" || strings.Join(strings.Fields(tc.Function.Arguments), "") != `{"city":"Paris"}` {
		t.Errorf("tool call %s(%s), want get_weather({\"city\": \"Paris\"})", tc.Function.Name, tc.Function.Arguments)
	}
	toolStream := client.Chat.Completions.NewStreaming(ctx, toolParams)
	var toolAcc openai.ChatCompletionAccumulator
	for toolStream.Next() {
		toolAcc.AddChunk(toolStream.Current())
	}
	if err := toolStream.Err(); err != nil || len(toolAcc.Choices) != 1 || len(toolAcc.Choices[0].Message.ToolCalls) != 1 ||
		toolAcc.Choices[0].Message.ToolCalls[0].Function.Name != "get_weather" {
		t.Errorf("Chat.Completions.NewStreaming with tools: %v, %+v", err, toolAcc.ChatCompletion)
	}

	js, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: localrun.ModelName, Messages: user("json"), MaxTokens: openai.Int(8), Temperature: openai.Float(0),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}},
	})
	if err != nil || len(js.Choices) != 1 || !strings.HasPrefix(strings.TrimSpace(js.Choices[0].Message.Content), "{") {
		t.Errorf("Chat.Completions.New with JSON mode: %v, %+v", err, js)
	}

	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "no-such-model:1b", Messages: user("unknown")})
	wantGoError(t, "unknown model", err, http.StatusNotFound, "model_not_found", "invalid_request_error")
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: localrun.ModelName, MaxTokens: openai.Int(8),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(s.marker + "-long " + strings.Repeat("word ", 3000))},
	})
	wantGoError(t, "prompt over the context", err, http.StatusBadRequest, "context_length_exceeded", "invalid_request_error")
	wrong := openai.NewClient(option.WithBaseURL(s.base), option.WithAPIKey("sk-wrong"), option.WithMaxRetries(0))
	_, err = wrong.Models.List(ctx)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong key: %v, want an *openai.Error with status 401", err)
	}
}

// verify runs sandboxctl verify's checks, which go through openai-go: chat and stream for the
// chat model, an embedding for the embedding model.
func (s *suite) verify(t *testing.T) {
	c := loadgen.NewClient(s.base, s.key, 2)
	defer c.Close()
	r := verify.Run(context.Background(), c, verify.Options{Models: []string{localrun.ModelName, embedModel}, Timeout: time.Minute})
	report, _ := json.MarshalIndent(r, "", "  ")
	if !r.OK || len(r.Models) != 2 {
		t.Fatalf("verify failed:\n%s", report)
	}
	chat, embed := r.Models[0], r.Models[1]
	if chat.Chat == nil || chat.Stream == nil || chat.Embedding != nil || !chat.Stream.Done || chat.Stream.TokensFrom != "usage" {
		t.Errorf("verify checked %s as %s", chat.Model, report)
	}
	if embed.Embedding == nil || embed.Chat != nil || embed.Stream != nil || embed.Embedding.Vectors != len(verify.EmbeddingInputs) || embed.Embedding.Dimensions == 0 {
		t.Errorf("verify checked %s as %s", embed.Model, report)
	}
}

// wantGoError checks that err is openai-go's *openai.Error with OpenAI's status, code and type.
func wantGoError(t *testing.T, name string, err error, status int, code, typ string) {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != status || apiErr.Code != code || apiErr.Type != typ {
		t.Errorf("%s: %v, want an *openai.Error with status %d, code %q, type %q", name, err, status, code, typ)
	}
}

// overload makes the pool answer as a full Ollama queue does and checks that every client gets
// 503 with Retry-After at once (LiteLLM retries once, then answers), never a hang.
func (s *suite) overload(t *testing.T, python string) {
	s.rec.busy.Store(true)
	defer s.rec.busy.Store(false)
	start := time.Now()
	var got map[string]sdkError
	s.runSDK(t, python, "overload", &got)
	for _, name := range []string{"chat", "stream", "embeddings"} {
		e := got[name]
		wantSDKError(t, "full queue ("+name+")", e, "InternalServerError", 503, "server_busy", "server_error")
		if want := fmt.Sprint(node.OverloadRetryAfterSeconds); e.RetryAfter == nil || *e.RetryAfter != want {
			t.Errorf("full queue (%s): Retry-After %v, want %s", name, e.RetryAfter, want)
		}
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("three requests to a full pool took %s; want prompt 503s", took)
	}

	client := openai.NewClient(option.WithBaseURL(s.base), option.WithAPIKey(s.key), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: localrun.ModelName, MaxTokens: openai.Int(8),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(s.marker + "-go-busy")},
	})
	wantGoError(t, "full queue (Go)", err, http.StatusServiceUnavailable, "server_busy", "server_error")
	var apiErr *openai.Error
	if errors.As(err, &apiErr) && apiErr.Response.Header.Get("Retry-After") != fmt.Sprint(node.OverloadRetryAfterSeconds) {
		t.Errorf("full queue (Go): Retry-After %q", apiErr.Response.Header.Get("Retry-After"))
	}
	if reqs := s.rec.take(); len(reqs) == 0 {
		t.Errorf("no request reached the pool while it was busy: the 503s did not come from it")
	}
}
