package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// target is one way to the model: straight to Ollama, or through LiteLLM.
type target struct {
	name string
	url  string // the chat completions endpoint
	key  string // bearer key, empty for Ollama
}

// sample is one streamed request as the client saw it.
type sample struct {
	ttft   time.Duration // until the first chunk with content
	total  time.Duration // until data: [DONE]
	tokens int           // completion tokens: the usage the server reports, else content chunks
	usage  bool          // tokens came from the server's usage
	err    error
}

// request is the body both paths get: the same model, prompt, temperature and max_tokens.
func request(model, prompt string, maxTokens int) []byte {
	body, _ := json.Marshal(map[string]any{
		"model":          model,
		"messages":       []map[string]string{{"role": "user", "content": prompt}},
		"temperature":    0,
		"max_tokens":     maxTokens,
		"stream":         true,
		"stream_options": map[string]any{"include_usage": true},
	})
	return body
}

// stream sends one streamed chat completion and reads it to data: [DONE].
func stream(ctx context.Context, client *http.Client, tg target, body []byte) sample {
	var s sample
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.url, bytes.NewReader(body))
	if err != nil {
		s.err = err
		return s
	}
	req.Header.Set("Content-Type", "application/json")
	if tg.key != "" {
		req.Header.Set("Authorization", "Bearer "+tg.key)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		s.err = err
		return s
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		s.err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		return s
	}
	chunks := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		payload, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue // blank separators and SSE comments
		}
		if payload == "[DONE]" {
			s.total = time.Since(start)
			if s.ttft == 0 {
				s.err = errors.New("[DONE] before any content")
			}
			if !s.usage {
				s.tokens = chunks
			}
			return s
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(payload), &chunk); err != nil {
			s.err = fmt.Errorf("decode chunk %q: %w", payload, err)
			return s
		}
		for _, c := range chunk.Choices {
			if c.Delta.Content != "" {
				if s.ttft == 0 {
					s.ttft = time.Since(start)
				}
				chunks++
			}
		}
		if chunk.Usage != nil && chunk.Usage.CompletionTokens > 0 {
			s.tokens, s.usage = chunk.Usage.CompletionTokens, true
		}
	}
	if err := sc.Err(); err != nil {
		s.err = err
	} else {
		s.err = errors.New("stream ended without data: [DONE]")
	}
	return s
}

// round runs n requests through tg with c concurrent clients and returns the samples and the
// wall time from the first request to the last answer.
func round(ctx context.Context, client *http.Client, tg target, c, n int, bodies func(i int) []byte) ([]sample, time.Duration) {
	jobs := make(chan int, n)
	for i := range n {
		jobs <- i
	}
	close(jobs)
	samples := make([]sample, n)
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if ctx.Err() != nil {
					samples[i] = sample{err: ctx.Err()}
					continue
				}
				samples[i] = stream(ctx, client, tg, bodies(i))
			}
		}()
	}
	wg.Wait()
	return samples, time.Since(start)
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// pathResult summarises one path at one level.
type pathResult struct {
	Path       string  `json:"path"`
	OK         int     `json:"ok"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"firstError,omitempty"`
	TTFTP50    float64 `json:"ttftP50Ms"`
	TTFTP90    float64 `json:"ttftP90Ms"`
	TTFTP95    float64 `json:"ttftP95Ms"`
	TotalP50   float64 `json:"totalP50Ms"`
	TotalP95   float64 `json:"totalP95Ms"`
	WallS      float64 `json:"wallSeconds"`
	ReqPerS    float64 `json:"requestsPerSecond"`
	TokPerS    float64 `json:"tokensPerSecond"`
	Tokens     int     `json:"tokens"`
	UsageFrom  string  `json:"tokensFrom"` // "usage" when every sample's count came from the server
}

func summarise(name string, samples []sample, wall time.Duration) pathResult {
	r := pathResult{Path: name, WallS: wall.Seconds(), UsageFrom: "usage"}
	var ttft, total []time.Duration
	for _, s := range samples {
		if s.err != nil {
			r.Errors++
			if r.FirstError == "" {
				r.FirstError = s.err.Error()
			}
			continue
		}
		r.OK++
		r.Tokens += s.tokens
		if !s.usage {
			r.UsageFrom = "chunks"
		}
		ttft = append(ttft, s.ttft)
		total = append(total, s.total)
	}
	sort.Slice(ttft, func(i, j int) bool { return ttft[i] < ttft[j] })
	sort.Slice(total, func(i, j int) bool { return total[i] < total[j] })
	r.TTFTP50, r.TTFTP90, r.TTFTP95 = ms(percentile(ttft, 50)), ms(percentile(ttft, 90)), ms(percentile(ttft, 95))
	r.TotalP50, r.TotalP95 = ms(percentile(total, 50)), ms(percentile(total, 95))
	if wall > 0 {
		r.ReqPerS = float64(r.OK) / wall.Seconds()
		r.TokPerS = float64(r.Tokens) / wall.Seconds()
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
