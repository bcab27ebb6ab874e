package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Limits of the server-sent event reader.
const (
	// readBufferSize is the reader's fixed buffer: a chat completion chunk is a few hundred
	// bytes, so one read usually holds several events.
	readBufferSize = 4 << 10
	// MaxEventSize bounds one event's data; a longer event is an error, not a reason to buffer
	// without limit.
	MaxEventSize = 1 << 20
)

// ErrIncompleteEvent is returned by EventReader.Next when the stream ends inside an event: data
// lines were read but the blank line that dispatches them never came. Per the server-sent
// events specification the partial event is discarded; for a chat completion stream it means
// the stream was cut.
var ErrIncompleteEvent = errors.New("the stream ended inside an event (no blank line after its data)")

// ErrEventTooLarge is returned when one event's data exceeds MaxEventSize.
var ErrEventTooLarge = fmt.Errorf("an event's data exceeds %d bytes", MaxEventSize)

// Event is one server-sent event. Its slices are only valid until the next call to Next.
type Event struct {
	// Type is the event's "event:" field, empty for the default "message" type.
	Type []byte
	// Data is the event's "data:" lines joined with "\n".
	Data []byte
}

// EventReader reads server-sent events (text/event-stream) one at a time from a stream, holding
// at most one event and a fixed read buffer: it never buffers a whole response. Lines end with
// "\n" or "\r\n" (a lone "\r" line ending, which no chat completion server sends, is not
// recognised). Comments (":" lines) and the id and retry fields are skipped. One EventReader
// can serve many responses in turn with Reset, so a streaming client allocates its buffers once.
type EventReader struct {
	br    *bufio.Reader
	line  []byte // a line longer than the read buffer, assembled
	data  []byte // the current event's data
	typ   []byte // the current event's type
	ready bool   // data holds at least one data line
}

// NewEventReader returns a reader of the events in r.
func NewEventReader(r io.Reader) *EventReader {
	return &EventReader{br: bufio.NewReaderSize(r, readBufferSize)}
}

// Reset discards any state and reads from r next, keeping the buffers.
func (e *EventReader) Reset(r io.Reader) {
	e.br.Reset(r)
	e.line, e.data, e.typ, e.ready = e.line[:0], e.data[:0], e.typ[:0], false
}

// Next returns the next event. At the end of the stream it returns io.EOF when the stream ended
// between events, ErrIncompleteEvent when it ended inside one, or the underlying read error.
func (e *EventReader) Next() (Event, error) {
	e.data, e.typ, e.ready = e.data[:0], e.typ[:0], false
	for {
		line, err := e.readLine()
		if err != nil {
			if err == io.EOF && (e.ready || len(e.typ) > 0) {
				return Event{}, ErrIncompleteEvent
			}
			return Event{}, err
		}
		if len(line) == 0 { // a blank line dispatches the event, if it has data
			if e.ready {
				return Event{Type: e.typ, Data: e.data}, nil
			}
			e.typ = e.typ[:0]
			continue
		}
		if line[0] == ':' {
			continue // a comment, such as a keep-alive ping
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) { // the conversion does not allocate in a switch
		case "data":
			if e.ready {
				e.data = append(e.data, '\n')
			}
			if len(e.data)+len(value) > MaxEventSize {
				return Event{}, ErrEventTooLarge
			}
			e.data = append(e.data, value...)
			e.ready = true
		case "event":
			e.typ = append(e.typ[:0], value...)
		}
	}
}

// readLine returns the next line without its line ending. The slice is valid until the next
// call. A final line without a line ending is returned as the stream ends (io.EOF next).
func (e *EventReader) readLine() ([]byte, error) {
	line, err := e.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// Longer than the read buffer: assemble it in e.line.
		e.line = append(e.line[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(e.line) > MaxEventSize {
				return nil, ErrEventTooLarge
			}
			line, err = e.br.ReadSlice('\n')
			e.line = append(e.line, line...)
		}
		line = e.line
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			return trimEOL(line), nil // a last line without "\n"; io.EOF comes next call
		}
		return nil, err
	}
	return trimEOL(line), nil
}

func trimEOL(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}
