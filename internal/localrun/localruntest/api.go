package localruntest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// apiClient bounds every request the assertions make.
var apiClient = &http.Client{Timeout: 2 * time.Minute}

// Call sends one request with an optional JSON body and bearer key and returns the status and
// the body.
func Call(t T, method, url, key string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("%v", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return resp.StatusCode, out
}

// GetJSON gets url (with a bearer key unless empty), requires 200 and decodes the body into v.
func GetJSON(t T, url, key string, v any) {
	t.Helper()
	code, body := Call(t, http.MethodGet, url, key, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", url, code, body)
	}
	Decode(t, "GET "+url, body, v)
}

// PostJSON posts req as JSON (with a bearer key unless empty), requires 200 and returns the
// body.
func PostJSON(t T, url, key string, req any) []byte {
	t.Helper()
	code, body := Call(t, http.MethodPost, url, key, req)
	if code != http.StatusOK {
		t.Fatalf("POST %s: HTTP %d: %s", url, code, body)
	}
	return body
}

// Decode unmarshals body into v or fails, naming what it was.
func Decode(t T, what string, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: decode %s: %v", what, body, err)
	}
}

// StreamChat posts a streamed OpenAI chat completion (with a bearer key unless empty) and reads
// the server-sent events until "data: [DONE]", returning the concatenated content of the
// deltas.
func StreamChat(t T, url, key string, req any) string {
	t.Helper()
	data, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("%v", err)
	}
	hreq, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("POST %s (stream): %v", url, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if key != "" {
		hreq.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := apiClient.Do(hreq)
	if err != nil {
		t.Fatalf("POST %s (stream): %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s (stream): HTTP %d: %s", url, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("POST %s (stream): Content-Type %q, want text/event-stream", url, ct)
	}
	var content strings.Builder
	chunks := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		payload, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("POST %s (stream): not a server-sent event line: %q", url, line)
		}
		if payload == "[DONE]" {
			if chunks == 0 {
				t.Fatalf("POST %s (stream): [DONE] before any chunk", url)
			}
			return content.String()
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		Decode(t, "stream chunk", []byte(payload), &chunk)
		for _, c := range chunk.Choices {
			content.WriteString(c.Delta.Content)
		}
		chunks++
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("POST %s (stream): read: %v", url, err)
	}
	t.Fatalf("POST %s (stream): the stream ended without data: [DONE] (%d chunks)", url, chunks)
	return ""
}

// Chat POSTs req, a chat completion request without streaming, to url with key (none when
// empty) and returns the answer's content; it fails t unless there is exactly one choice with
// content.
func Chat(t T, url, key string, req any) string {
	t.Helper()
	body := PostJSON(t, url, key, req)
	var completion struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	Decode(t, "POST "+url, body, &completion)
	if len(completion.Choices) != 1 || strings.TrimSpace(completion.Choices[0].Message.Content) == "" {
		t.Fatalf("POST %s: want one non-empty choice, got %s", url, body)
	}
	return completion.Choices[0].Message.Content
}
