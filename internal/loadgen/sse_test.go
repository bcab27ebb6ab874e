package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkedReader returns its data in reads of the given sizes, in turn, so an event or a line
// arrives split across reads at chosen places.
type chunkedReader struct {
	data  []byte
	sizes []int
	i     int
}

func (r *chunkedReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := r.sizes[r.i%len(r.sizes)]
	r.i++
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// readAll reads every event and returns them as "type|data" strings and the final error.
func readAll(t *testing.T, r io.Reader) ([]string, error) {
	t.Helper()
	er := NewEventReader(r)
	var out []string
	for range 10000 {
		ev, err := er.Next()
		if err != nil {
			return out, err
		}
		out = append(out, string(ev.Type)+"|"+string(ev.Data))
	}
	t.Fatal("more than 10000 events")
	return nil, nil
}

const liteLLMStream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\" ten\"}}]}\n\n" +
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" large\"}}]}\n\n" +
	"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n" +
	"data: {\"choices\":[{\"index\":0,\"delta\":{}}],\"usage\":{\"completion_tokens\":2,\"prompt_tokens\":6}}\n\n" +
	"data: [DONE]\n\n"

func TestEventReaderSplitReads(t *testing.T) {
	want := []string{
		`|{"choices":[{"index":0,"delta":{"role":"assistant","content":" ten"}}]}`,
		`|{"choices":[{"index":0,"delta":{"content":" large"}}]}`,
		`|{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`,
		`|{"choices":[{"index":0,"delta":{}}],"usage":{"completion_tokens":2,"prompt_tokens":6}}`,
		`|[DONE]`,
	}
	readers := map[string]func() io.Reader{
		"whole":         func() io.Reader { return strings.NewReader(liteLLMStream) },
		"one byte":      func() io.Reader { return iotest.OneByteReader(strings.NewReader(liteLLMStream)) },
		"uneven splits": func() io.Reader { return &chunkedReader{data: []byte(liteLLMStream), sizes: []int{7, 1, 33, 2, 90}} },
		// "\r\n" split between two reads.
		"crlf split": func() io.Reader {
			crlf := strings.ReplaceAll(liteLLMStream, "\n", "\r\n")
			return &chunkedReader{data: []byte(crlf), sizes: []int{strings.Index(crlf, "\r") + 1, 5, 1000}}
		},
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			got, err := readAll(t, mk())
			if err != io.EOF {
				t.Errorf("final error %v, want io.EOF", err)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestEventReaderFields(t *testing.T) {
	stream := ": keep-alive ping\n\n" + // a comment alone dispatches nothing
		"id: 7\nretry: 1000\ndata:no space\n\n" + // id and retry skipped; no space after the colon
		"data: line one\ndata: line two\n\n" + // data lines join with "\n"
		"event: error\ndata: {\"error\":{\"message\":\"boom\"}}\n\n" +
		"event: ignored-without-data\n\n" + // an event with no data is not dispatched
		"data\n\n" + // a field with no colon: empty data
		"data: after\n\n"
	got, err := readAll(t, strings.NewReader(stream))
	if err != io.EOF {
		t.Errorf("final error %v, want io.EOF", err)
	}
	want := []string{"|no space", "|line one\nline two", `error|{"error":{"message":"boom"}}`, "|", "|after"}
	if strings.Join(got, "\n---\n") != strings.Join(want, "\n---\n") {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestEventReaderCutStreams(t *testing.T) {
	cases := map[string]struct {
		stream string
		events int
		err    error
	}{
		"cut inside a data line":        {"data: {\"a\":1}\n\ndata: {\"choi", 1, ErrIncompleteEvent},
		"cut after a data line":         {"data: {\"a\":1}\n\ndata: {\"b\":2}\n", 1, ErrIncompleteEvent},
		"[DONE] without its blank line": {"data: {\"a\":1}\n\ndata: [DONE]\n", 1, ErrIncompleteEvent},
		"cut between events":            {"data: {\"a\":1}\n\n", 1, io.EOF},
		"empty body":                    {"", 0, io.EOF},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := readAll(t, iotest.OneByteReader(strings.NewReader(c.stream)))
			if len(got) != c.events || !errors.Is(err, c.err) {
				t.Errorf("got %d events %q and %v, want %d events and %v", len(got), got, err, c.events, c.err)
			}
		})
	}
	// A read error mid-stream (a connection reset) comes through as itself.
	reset := errors.New("connection reset by peer")
	_, err := readAll(t, io.MultiReader(strings.NewReader("data: {\"a\":"), iotest.ErrReader(reset)))
	if !errors.Is(err, reset) {
		t.Errorf("read error: got %v, want %v", err, reset)
	}
}

func TestEventReaderLongLinesAndLimit(t *testing.T) {
	// Longer than the 4 KiB read buffer, split across many reads: assembled whole.
	long := strings.Repeat("x", 3*readBufferSize+17)
	got, err := readAll(t, &chunkedReader{data: []byte("data: " + long + "\n\ndata: next\n\n"), sizes: []int{1000, 3}})
	if err != io.EOF || len(got) != 2 || got[0] != "|"+long || got[1] != "|next" {
		t.Errorf("long line: %d events, err %v", len(got), err)
	}
	// Over MaxEventSize: an error, not an ever-growing buffer.
	huge := "data: " + strings.Repeat("y", MaxEventSize+10) + "\n\n"
	if _, err := readAll(t, strings.NewReader(huge)); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("huge line: got %v, want ErrEventTooLarge", err)
	}
	many := strings.Repeat("data: "+strings.Repeat("z", 1000)+"\n", MaxEventSize/1000+5) + "\n"
	if _, err := readAll(t, strings.NewReader(many)); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("many data lines: got %v, want ErrEventTooLarge", err)
	}
}

// The reader holds one event, not the response: reading a long stream keeps its memory at the
// read buffer plus the largest event.
func TestEventReaderDoesNotBufferTheResponse(t *testing.T) {
	event := "data: " + strings.Repeat("t", 200) + "\n\n"
	const n = 20000 // ~4 MB of events
	er := NewEventReader(&repeatReader{unit: []byte(event), left: n})
	count := 0
	for {
		_, err := er.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		count++
	}
	if count != n {
		t.Fatalf("read %d events, want %d", count, n)
	}
	if c := cap(er.data); c > 1024 {
		t.Errorf("the event buffer grew to %d bytes for 200-byte events", c)
	}
	if c := er.br.Size(); c != readBufferSize {
		t.Errorf("read buffer is %d bytes, want %d", c, readBufferSize)
	}
}

// repeatReader yields unit left times.
type repeatReader struct {
	unit []byte
	left int
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && r.left > 0 {
		c := copy(p[n:], r.unit[r.off:])
		n += c
		r.off += c
		if r.off == len(r.unit) {
			r.off = 0
			r.left--
		}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Reading and decoding a chunk allocates nothing once the buffers have grown: the load
// generator's cost per token stays flat at hundreds of streams.
func TestNoAllocationsPerChunk(t *testing.T) {
	event := []byte(`data: {"id":"c15f0c87-2855-468e-9b65-56125af6e2f1","object":"chat.completion.chunk","created":1795846818,"model":"llama3.1:8b","choices":[{"index":0,"delta":{"content":" bright"},"finish_reason":null}]}` + "\n\n")
	src := &repeatReader{unit: event, left: 1 << 30}
	er := NewEventReader(src)
	var c chunk
	step := func() {
		ev, err := er.Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.decode(ev.Data); err != nil {
			t.Fatal(err)
		}
		if !c.hasText() || c.finishReason() != "" || c.hasError() {
			t.Fatalf("decoded %+v", c)
		}
	}
	for range 10 {
		step() // grow the buffers
	}
	if allocs := testing.AllocsPerRun(1000, step); allocs > 0 {
		t.Errorf("%.1f allocations per chunk, want 0", allocs)
	}
}

func TestChunkReuseDoesNotLeakFields(t *testing.T) {
	var c chunk
	for _, data := range []string{
		`{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"},{"delta":{"reasoning_content":"r"}}],"usage":{"completion_tokens":9},"error":{"message":"x"}}`,
		`{"choices":[{"delta":{}}]}`,
	} {
		if err := c.decode([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if c.hasText() || c.finishReason() != "" || c.hasError() {
		t.Errorf("fields of the first chunk survived into the second: %+v", c)
	}
	if _, ok := c.usageTokens(); ok {
		t.Errorf("usage of the first chunk survived into the second")
	}
	for data, want := range map[string]bool{
		`{"choices":[{"delta":{"content":""}}]}`:                    false,
		`{"choices":[{"delta":{"content":null}}]}`:                  false,
		`{"choices":[{"delta":{"role":"assistant"}}]}`:              false,
		`{"choices":[{"delta":{"content":"x"}}]}`:                   true,
		`{"choices":[{"delta":{"reasoning":"thinking"}}]}`:          true,
		`{"choices":[{"delta":{"reasoning_content":"thinking"}}]}`:  true,
		`{"choices":[],"usage":{"completion_tokens":3}}`:            false,
		`{"choices":[{"delta":{"content":"\u00e9"},"index":0}]}`:    true,
		`{"choices":[{"delta":{"content":"x"}}],"error":null}`:      true,
		`{"choices":[{"delta":{"content":"x"}}],"usage":null}`:      true,
		`{"choices":[{"delta":{"content":"x"}}],"extra":{"a":[1]}}`: true,
	} {
		if err := c.decode([]byte(data)); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if c.hasText() != want {
			t.Errorf("%s: hasText %v, want %v", data, !want, want)
		}
	}
	if err := c.decode([]byte(`{"choices":[],"usage":{"completion_tokens":37}}`)); err != nil {
		t.Fatal(err)
	}
	if n, ok := c.usageTokens(); !ok || n != 37 {
		t.Errorf("usageTokens = %d, %v; want 37, true", n, ok)
	}
	if err := c.decode([]byte(`{"choices":[{"delta":{},"finish_reason":"weird_reason"}]}`)); err != nil || c.finishReason() != "weird_reason" {
		t.Errorf("finishReason = %q (%v), want weird_reason", c.finishReason(), err)
	}
	if err := c.decode([]byte(`{"choices":[`)); err == nil {
		t.Errorf("a truncated chunk decoded without error")
	}
	if !bytes.Equal(doneMarker, []byte("[DONE]")) {
		t.Errorf("doneMarker changed: %q", doneMarker)
	}
}

// BenchmarkReadAndDecodeChunk is the client's cost per streamed token, without the network:
// read one LiteLLM-shaped event and decode it.
func BenchmarkReadAndDecodeChunk(b *testing.B) {
	event := []byte(`data: {"id":"c15f0c87-2855-468e-9b65-56125af6e2f1","object":"chat.completion.chunk","created":1795846818,"model":"llama3.1:8b","choices":[{"index":0,"delta":{"content":" bright"}}]}` + "\n\n")
	er := NewEventReader(&repeatReader{unit: event, left: 1 << 40})
	var c chunk
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		ev, err := er.Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := c.decode(ev.Data); err != nil {
			b.Fatal(err)
		}
	}
}

// oracleChunk reads the same fields as chunk with encoding/json, exactly (no case folding):
// the reference the scanner is checked against.
func oracleChunk(data []byte) (text bool, finish string, usage int, hasUsage, hasErr bool, err error) {
	var top map[string]json.RawMessage
	if err = json.Unmarshal(data, &top); err != nil {
		return
	}
	if top == nil { // "null" decodes into a nil map without error, but it is not an object
		err = errors.New("not a JSON object")
		return
	}
	isStr := func(raw json.RawMessage) (string, bool) {
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	var choices []json.RawMessage
	if json.Unmarshal(top["choices"], &choices) == nil {
		for _, raw := range choices {
			var ch map[string]json.RawMessage
			if json.Unmarshal(raw, &ch) != nil {
				continue
			}
			var delta map[string]json.RawMessage
			if json.Unmarshal(ch["delta"], &delta) == nil {
				for _, k := range []string{"content", "reasoning_content", "reasoning"} {
					if s, ok := isStr(delta[k]); ok && s != "" {
						text = true
					}
				}
			}
			if s, ok := isStr(ch["finish_reason"]); ok && s != "" && finish == "" {
				finish = s
			}
		}
	}
	var u map[string]json.RawMessage
	if json.Unmarshal(top["usage"], &u) == nil && u != nil {
		usage, hasUsage = parseCount(u["completion_tokens"])
	}
	if raw, ok := top["error"]; ok && string(raw) != "null" {
		hasErr = true
	}
	return
}

// FuzzChunk checks the scanner against encoding/json on every input encoding/json accepts.
func FuzzChunk(f *testing.F) {
	for _, line := range strings.Split(liteLLMStream, "\n\n") {
		f.Add(strings.TrimPrefix(line, "data: "))
	}
	for _, seed := range []string{
		`{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"},{"delta":{"reasoning_content":"r"}}],"usage":{"completion_tokens":9},"error":{"message":"x"}}`,
		`{"choices":[{"delta":{"content":""},"finish_reason":null}],"usage":null,"error":null}`,
		`{"choices":[{"delta":{"content":"x","content":""}}],"choices":[{"delta":{"reasoning":"y"}}]}`,
		`{"error":"plain","usage":{"completion_tokens":1.5}}`,
		`{"choices":[1,"a",null,{"delta":[]}],"usage":[],"x":{"y":[true,false,-1e5]}}`,
		` { "choices" : [ { "delta" : { "content" : "\"esc\\aped\"" } , "finish_reason" : "length" } ] } `,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		if strings.Contains(data, `\u`) {
			t.Skip("keys spelled with \\u escapes are not recognised by design")
		}
		text, finish, usage, hasUsage, hasErr, oerr := oracleChunk([]byte(data))
		if oerr != nil {
			return // not a JSON object: the scanner may accept or reject it
		}
		var c chunk
		if err := c.decode([]byte(data)); err != nil {
			if oerr == nil {
				t.Fatalf("scanner rejected valid JSON %q: %v", data, err)
			}
			return
		}
		gotUsage, gotHas := c.usageTokens()
		if c.hasText() != text || c.finishReason() != finish || gotUsage != usage || gotHas != hasUsage || c.hasError() != hasErr {
			t.Fatalf("%q: scanner text=%v finish=%q usage=%d,%v error=%v; encoding/json text=%v finish=%q usage=%d,%v error=%v",
				data, c.hasText(), c.finishReason(), gotUsage, gotHas, c.hasError(), text, finish, usage, hasUsage, hasErr)
		}
	})
}
