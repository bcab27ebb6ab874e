package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
)

// chunk is what the client reads from one OpenAI chat.completion.chunk: whether it carries
// generated text, its finish_reason, its usage block and its error object.
//
// It is filled by a small scanner over the event's bytes rather than by encoding/json, which
// allocates about eight times per chunk (its decode state, one per nested object): at a
// thousand streams of 20 tokens/s that is 160,000 allocations a second for nothing. The scanner
// checks the JSON's structure as it walks it, reads only the fields above and allocates nothing.
// Object keys are compared as written: a key spelled with \u escapes is not recognised (no
// server does that). FuzzChunk checks it against encoding/json.
type chunk struct {
	text     bool   // a choice's delta has a non-empty content, reasoning_content or reasoning
	finish   []byte // the first choice's finish_reason as a JSON string, quotes included; nil if none
	usage    int    // usage.completion_tokens, when hasUsage
	hasUsage bool
	errRaw   []byte // the "error" value when it is not null
	// scan is kept here, not on the stack: the handlers are called through function values,
	// so a scanner on the stack would escape to the heap at every decode.
	scan scanner
}

// maxDepth bounds the nesting the scanner follows, so a hostile chunk cannot exhaust the stack.
const maxDepth = 64

var errSyntax = errors.New("invalid JSON")

// decode scans data, one event's data. The slices it keeps point into data.
func (c *chunk) decode(data []byte) error {
	c.text, c.finish, c.usage, c.hasUsage, c.errRaw = false, nil, 0, false, nil
	c.scan = scanner{data: data, c: c}
	s := &c.scan
	defer func() { s.data, s.choiceFinish = nil, nil }() // keep no reference to the event
	if err := s.topLevel(); err != nil {
		return err
	}
	s.ws()
	if s.pos != len(s.data) {
		return s.errorf("data after the JSON value")
	}
	return nil
}

// hasText reports whether any choice carries generated text. Reasoning models stream their
// reasoning first (LiteLLM and vLLM: reasoning_content; Ollama: reasoning): those are tokens
// the model generated and the user sees arrive, so they count.
func (c *chunk) hasText() bool { return c.text }

// finishReason returns the first choice's finish_reason that is a non-empty string, or "".
func (c *chunk) finishReason() string {
	if c.finish == nil {
		return ""
	}
	return internReason(c.finish)
}

// usageTokens returns usage.completion_tokens and whether the chunk has it.
func (c *chunk) usageTokens() (int, bool) { return c.usage, c.hasUsage }

// hasError reports whether the chunk carries an error object (LiteLLM's way of failing after
// the stream started).
func (c *chunk) hasError() bool { return c.errRaw != nil }

// internReason returns the JSON string raw as a Go string, without allocating for the finish
// reasons the OpenAI API defines.
func internReason(raw []byte) string {
	switch string(raw) {
	case `"stop"`:
		return "stop"
	case `"length"`:
		return "length"
	case `"tool_calls"`:
		return "tool_calls"
	case `"content_filter"`:
		return "content_filter"
	case `"function_call"`:
		return "function_call"
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return string(raw)
	}
	return s
}

// scanner walks one JSON text, filling c.
type scanner struct {
	data  []byte
	pos   int
	depth int
	c     *chunk
	// The choice being read: its delta's text and its finish_reason.
	content, reasoningContent, reasoning bool
	choiceFinish                         []byte
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", errSyntax, s.pos, fmt.Sprintf(format, args...))
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) expect(b byte) error {
	if s.peek() != b {
		return s.errorf("want %q", b)
	}
	s.pos++
	return nil
}

// str reads a string and returns it as written, quotes included.
func (s *scanner) str() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.errorf("want a string")
	}
	start := s.pos
	s.pos++
	for s.pos < len(s.data) {
		switch b := s.data[s.pos]; {
		case b == '"':
			s.pos++
			return s.data[start:s.pos], nil
		case b == '\\':
			s.pos += 2
		case b < 0x20:
			return nil, s.errorf("control character in a string")
		default:
			s.pos++
		}
	}
	return nil, s.errorf("unterminated string")
}

// number reads a number and returns it as written.
func (s *scanner) number() ([]byte, error) {
	s.ws()
	start := s.pos
	if s.pos < len(s.data) && s.data[s.pos] == '-' {
		s.pos++
	}
	digits := 0
	for s.pos < len(s.data) {
		b := s.data[s.pos]
		if b >= '0' && b <= '9' {
			digits++
		} else if b != '.' && b != 'e' && b != 'E' && b != '+' && b != '-' {
			break
		}
		s.pos++
	}
	if digits == 0 {
		return nil, s.errorf("want a value")
	}
	return s.data[start:s.pos], nil
}

func (s *scanner) literal(word string) error {
	s.ws()
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.errorf("want %s", word)
	}
	s.pos += len(word)
	return nil
}

// null consumes a null if one is next and reports whether it did.
func (s *scanner) null() bool {
	return s.peek() == 'n' && s.literal("null") == nil
}

// skip reads any value.
func (s *scanner) skip() error {
	switch s.peek() {
	case '{':
		return s.object(skipField)
	case '[':
		return s.array(skipElem)
	case '"':
		_, err := s.str()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case 0:
		return s.errorf("unexpected end")
	}
	_, err := s.number()
	return err
}

// object reads an object, calling field with each key (without its quotes) and the scanner at
// the key's value, which field consumes.
func (s *scanner) object(field func(s *scanner, key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.depth++; s.depth > maxDepth {
		return s.errorf("nested deeper than %d", maxDepth)
	}
	if s.peek() == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		key, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := field(s, key[1:len(key)-1]); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errorf("want , or }")
		}
	}
}

// array reads an array, calling elem with the scanner at each element, which elem consumes.
func (s *scanner) array(elem func(s *scanner) error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.depth++; s.depth > maxDepth {
		return s.errorf("nested deeper than %d", maxDepth)
	}
	if s.peek() == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if err := elem(s); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errorf("want , or ]")
		}
	}
}

// The handlers below are functions, not closures, so passing them allocates nothing; what
// they fill is on the scanner. Where a key appears twice in an object the last one wins, as
// with encoding/json.

func skipField(s *scanner, _ []byte) error { return s.skip() }
func skipElem(s *scanner) error            { return s.skip() }

// topLevel reads the chunk object.
func (s *scanner) topLevel() error {
	if s.peek() != '{' {
		return s.errorf("a chunk must be a JSON object")
	}
	return s.object(topField)
}

func topField(s *scanner, key []byte) error {
	c := s.c
	switch string(key) {
	case "choices":
		c.text, c.finish = false, nil
		if s.peek() != '[' {
			return s.skip()
		}
		return s.array(choiceElem)
	case "usage":
		c.usage, c.hasUsage = 0, false
		if s.null() {
			return nil
		}
		if s.peek() != '{' {
			return s.skip()
		}
		return s.object(usageField)
	case "error":
		c.errRaw = nil
		if s.null() {
			return nil
		}
		start := s.afterSpace()
		if err := s.skip(); err != nil {
			return err
		}
		c.errRaw = s.data[start:s.pos]
		return nil
	}
	return s.skip()
}

// afterSpace skips white space and returns the position.
func (s *scanner) afterSpace() int {
	s.ws()
	return s.pos
}

func choiceElem(s *scanner) error {
	if s.peek() != '{' {
		return s.skip()
	}
	s.content, s.reasoningContent, s.reasoning, s.choiceFinish = false, false, false, nil
	if err := s.object(choiceField); err != nil {
		return err
	}
	c := s.c
	c.text = c.text || s.content || s.reasoningContent || s.reasoning
	if c.finish == nil {
		c.finish = s.choiceFinish
	}
	return nil
}

func choiceField(s *scanner, key []byte) error {
	switch string(key) {
	case "delta":
		s.content, s.reasoningContent, s.reasoning = false, false, false
		if s.peek() != '{' {
			return s.skip()
		}
		return s.object(deltaField)
	case "finish_reason":
		s.choiceFinish = nil
		if s.peek() != '"' {
			return s.skip()
		}
		raw, err := s.str()
		if err != nil {
			return err
		}
		if len(raw) > 2 {
			s.choiceFinish = raw
		}
		return nil
	}
	return s.skip()
}

func deltaField(s *scanner, key []byte) error {
	var flag *bool
	switch string(key) {
	case "content":
		flag = &s.content
	case "reasoning_content":
		flag = &s.reasoningContent
	case "reasoning":
		flag = &s.reasoning
	default:
		return s.skip()
	}
	*flag = false
	if s.peek() != '"' {
		return s.skip()
	}
	raw, err := s.str()
	if err != nil {
		return err
	}
	*flag = len(raw) > 2
	return nil
}

func usageField(s *scanner, key []byte) error {
	if string(key) != "completion_tokens" {
		return s.skip()
	}
	s.c.usage, s.c.hasUsage = 0, false
	b := s.peek()
	if b < '0' || b > '9' {
		return s.skip()
	}
	raw, err := s.number()
	if err != nil {
		return err
	}
	n, ok := parseCount(raw)
	s.c.usage, s.c.hasUsage = n, ok
	return nil
}

// parseCount parses a token count: digits only, at most nine of them.
func parseCount(raw []byte) (int, bool) {
	if len(raw) == 0 || len(raw) > 9 {
		return 0, false
	}
	n := 0
	for _, b := range raw {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int(b-'0')
	}
	return n, true
}
