package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// ollamaAPI talks to the local Ollama's REST API (github.com/ollama/ollama docs/api.md).
type ollamaAPI struct {
	base string
	http *http.Client
}

// apiError is an Ollama answer other than success: an HTTP status, an "error" field or both.
type apiError struct {
	Op     string
	Status int
	Msg    string
}

func (e *apiError) Error() string {
	switch {
	case e.Status != 0 && e.Msg != "":
		return fmt.Sprintf("%s: HTTP %d: %s", e.Op, e.Status, e.Msg)
	case e.Status != 0:
		return fmt.Sprintf("%s: HTTP %d", e.Op, e.Status)
	default:
		return fmt.Sprintf("%s: %s", e.Op, e.Msg)
	}
}

// canonicalModel is the name Ollama lists a model under: a name without a tag is name:latest.
// Model names in the node config never hold a registry host (the config forbids "/"), so a
// colon always separates name from tag.
func canonicalModel(name string) string {
	if strings.Contains(name, ":") {
		return name
	}
	return name + ":latest"
}

func (c *ollamaAPI) do(ctx context.Context, method, path string, body io.Reader, contentLength int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, permanent(err)
	}
	if contentLength >= 0 {
		req.ContentLength = contentLength
	}
	if body != nil && method != http.MethodHead {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, nil
}

// statusError turns a non-2xx response into an apiError (reading Ollama's {"error": "..."}
// body when there is one), permanent for 4xx, transient for 5xx.
func statusError(op string, resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		msg = body.Error
	}
	err := &apiError{Op: op, Status: resp.StatusCode, Msg: msg}
	if transientStatus(resp.StatusCode) {
		return err
	}
	return permanent(err)
}

func (c *ollamaAPI) getJSON(ctx context.Context, path string, out any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil, -1)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError("GET "+path, resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

// version returns the server's version; any answer but 200 is an error.
func (c *ollamaAPI) version(ctx context.Context) (string, error) {
	var v struct {
		Version string `json:"version"`
	}
	err := c.getJSON(ctx, "/api/version", &v)
	return v.Version, err
}

// tags returns the canonical names of the models present on disk.
func (c *ollamaAPI) tags(ctx context.Context) (map[string]bool, error) {
	var v struct {
		Models []struct {
			Name  string `json:"name"`
			Model string `json:"model"`
		} `json:"models"`
	}
	if err := c.getJSON(ctx, "/api/tags", &v); err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, m := range v.Models {
		for _, n := range []string{m.Name, m.Model} {
			if n != "" {
				present[canonicalModel(n)] = true
			}
		}
	}
	return present, nil
}

// runningModel is one entry of GET /api/ps.
type runningModel struct {
	Name     string `json:"name"`
	Model    string `json:"model"`
	Size     int64  `json:"size"`
	SizeVRAM int64  `json:"size_vram"`
}

// ps returns the loaded models keyed by canonical name.
func (c *ollamaAPI) ps(ctx context.Context) (map[string]runningModel, error) {
	var v struct {
		Models []runningModel `json:"models"`
	}
	if err := c.getJSON(ctx, "/api/ps", &v); err != nil {
		return nil, err
	}
	loaded := map[string]runningModel{}
	for _, m := range v.Models {
		for _, n := range []string{m.Name, m.Model} {
			if n != "" {
				loaded[canonicalModel(n)] = m
			}
		}
	}
	return loaded, nil
}

// streamStatus is one line of a streamed pull or create: its status and, while a pull
// downloads a layer, the layer's bytes so far and its size.
type streamStatus struct {
	Status    string `json:"status"`
	Completed int64  `json:"completed"`
	Total     int64  `json:"total"`
}

// stream POSTs a JSON request to an endpoint that answers with JSON lines ({"status": ...} or
// {"error": ...}) and reads them until {"status": "success"}. An "error" line is returned as
// an apiError; a stream that ends without success is an error too. onStatus sees each new
// status and each line that reports a download's progress (for progress logs).
func (c *ollamaAPI) stream(ctx context.Context, path string, request any, onStatus func(streamStatus)) error {
	data, err := json.Marshal(request)
	if err != nil {
		return permanent(err)
	}
	op := "POST " + path
	resp, err := c.do(ctx, http.MethodPost, path, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(op, resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	last := ""
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var msg struct {
			streamStatus
			Error string `json:"error"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			return fmt.Errorf("%s: bad stream line %q: %w", op, line, err)
		}
		if msg.Error != "" {
			return &apiError{Op: op, Msg: msg.Error}
		}
		if msg.Status == "success" {
			return nil
		}
		if msg.Status != "" && (msg.Status != last || msg.Total > 0) && onStatus != nil {
			onStatus(msg.streamStatus)
		}
		if msg.Status != "" {
			last = msg.Status
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: read stream: %w", op, err)
	}
	return fmt.Errorf("%s: stream ended before success (last status %q)", op, last)
}

// pull downloads a model from the registry: POST /api/pull.
func (c *ollamaAPI) pull(ctx context.Context, name string, onStatus func(streamStatus)) error {
	return c.stream(ctx, "/api/pull", map[string]any{"model": name}, onStatus)
}

// create makes a model from an uploaded GGUF blob: POST /api/create with "files".
func (c *ollamaAPI) create(ctx context.Context, name, digest string, onStatus func(streamStatus)) error {
	req := map[string]any{"model": name, "files": map[string]string{"model.gguf": digest}}
	return c.stream(ctx, "/api/create", req, onStatus)
}

// hasBlob reports whether the server holds a blob: HEAD /api/blobs/<digest> is 200 or 404.
func (c *ollamaAPI) hasBlob(ctx context.Context, digest string) (bool, error) {
	resp, err := c.do(ctx, http.MethodHead, "/api/blobs/"+digest, nil, -1)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	default:
		return false, statusError("HEAD /api/blobs/"+digest, resp)
	}
}

// pushBlob uploads a file as a blob: POST /api/blobs/<digest> answers 201 Created. Ollama
// hashes the upload itself and rejects a digest mismatch.
func (c *ollamaAPI) pushBlob(ctx context.Context, digest, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return permanent(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/blobs/"+digest, f)
	if err != nil {
		return permanent(err)
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST /api/blobs/%s: %w", digest, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return statusError("POST /api/blobs/"+digest, resp)
	}
	return nil
}

// preloadPrompt is what the preload asks a model, for one token (or embeds, for an embedding
// model): enough to prove it answers.
const preloadPrompt = "Hello"

// preload loads a model, keeps it loaded and proves it answers, with keep_alive -1
// (docs/api.md: a negative keep_alive keeps the model loaded indefinitely). A chat model
// generates one token on POST /api/generate: an empty prompt would only load the model, and a
// model can load and still crash its runner on the first token (a KV-cache type its shapes do
// not suit). An embedding model cannot generate (Ollama answers 400, "does not support
// generate"), so it embeds the prompt on POST /api/embed and must return one non-empty vector.
func (c *ollamaAPI) preload(ctx context.Context, m Model) error {
	if m.Embedding {
		var out struct {
			Embeddings [][]float64 `json:"embeddings"`
		}
		op := "POST /api/embed"
		if err := c.postJSON(ctx, op, "/api/embed", map[string]any{
			"model": m.Name, "input": preloadPrompt, "keep_alive": -1,
		}, &out); err != nil {
			return err
		}
		if len(out.Embeddings) != 1 || len(out.Embeddings[0]) == 0 {
			return fmt.Errorf("%s: model %s loaded but returned %d embeddings (want one non-empty vector)", op, m.Name, len(out.Embeddings))
		}
		return nil
	}
	var out struct {
		Done      bool `json:"done"`
		EvalCount int  `json:"eval_count"`
	}
	op := "POST /api/generate"
	if err := c.postJSON(ctx, op, "/api/generate", map[string]any{
		"model": m.Name, "prompt": preloadPrompt, "keep_alive": -1, "stream": false,
		"options": map[string]any{"num_predict": 1, "temperature": 0},
	}, &out); err != nil {
		return err
	}
	if !out.Done || out.EvalCount < 1 {
		return fmt.Errorf("%s: model %s loaded but generated no token (done %v, eval_count %d)", op, m.Name, out.Done, out.EvalCount)
	}
	return nil
}

// postJSON POSTs request as JSON to path and decodes a 200 answer into out; any other status,
// or an "error" field in the answer, is an error naming op.
func (c *ollamaAPI) postJSON(ctx context.Context, op, path string, request, out any) error {
	data, err := json.Marshal(request)
	if err != nil {
		return permanent(err)
	}
	resp, err := c.do(ctx, http.MethodPost, path, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(op, resp)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: read: %w", op, err)
	}
	var failed struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &failed); err != nil {
		return fmt.Errorf("%s: decode: %w", op, err)
	}
	if failed.Error != "" {
		return &apiError{Op: op, Msg: failed.Error}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: decode: %w", op, err)
	}
	return nil
}
