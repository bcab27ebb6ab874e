package orchestrate

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Lines reach the shared output whole and prefixed, however the CLI's writes split them; a last
// line without its newline comes out on Flush; colour codes are dropped.
func TestPrefixWriterWritesWholePrefixedLines(t *testing.T) {
	var out bytes.Buffer
	w := newPrefixWriter(&out, "[chemistry] ")
	for _, chunk := range []string{"Updating (chem", "istry):\n\n +  pulumi:pulumi:Stack \x1b[32mcreat", "ing\x1b[0m\r\nDur", "ation: 1s"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
		if strings.Count(out.String(), "\n") != strings.Count(out.String(), "[chemistry] ") {
			t.Fatalf("a partial line reached the output: %q", out.String())
		}
	}
	w.Flush()
	want := "[chemistry] Updating (chemistry):\n[chemistry] \n[chemistry]  +  pulumi:pulumi:Stack creating\n[chemistry] Duration: 1s\n"
	if out.String() != want {
		t.Errorf("got:\n%q\nwant:\n%q", out.String(), want)
	}
}

func TestErrorSummaryIsOneLine(t *testing.T) {
	log := newEventLog()
	log.errs = []string{"an unhandled error occurred: 1 error occurred:\n\t* the broken program failed", "second"}
	got := errorSummary(errFake("failed to run update: exit status 255\ncode: 255\nstdout: ..."), log)
	if want := "an unhandled error occurred: 1 error occurred: the broken program failed; second"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Without diagnostics (the CLI failed before the engine ran), the error's first line.
	if got := errorSummary(errFake("failed to select stack: exit status 255\nstderr: ..."), nil); got != "failed to select stack: exit status 255" {
		t.Errorf("got %q", got)
	}
}

type errFake string

func (e errFake) Error() string { return string(e) }

func TestSummaryTextAndJSON(t *testing.T) {
	report := Report{Operation: Up, Results: []Result{
		{Stack: "chemistry", Operation: Up, Status: Succeeded, Duration: 83 * time.Second,
			Changes: map[string]int{"same": 3, "delete": 1, "create": 2, "update": 1, "create-replacement": 1}},
		{Stack: "physics", Operation: Up, Status: Failed, Duration: 1500 * time.Millisecond,
			Changes: map[string]int{}, Error: "quota exceeded"},
		{Stack: "dev", Operation: Up, Status: NotStarted, Changes: map[string]int{}},
	}}
	var text bytes.Buffer
	if err := report.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	want := `STACK      OPERATION  RESULT       CHANGES                                                     DURATION
chemistry  up         succeeded    2 create, 1 update, 1 delete, 1 create-replacement, 3 same  1m23s
physics    up         failed       -                                                           1.5s
dev        up         not started  -                                                           -
physics: quota exceeded
up: 3 stack(s): 1 succeeded, 1 failed, 1 not started
`
	if text.String() != want {
		t.Errorf("text summary:\n%s\nwant:\n%s", text.String(), want)
	}

	var js bytes.Buffer
	if err := report.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Operation string
		OK        bool
		Stacks    []map[string]any
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, js.String())
	}
	if doc.Operation != "up" || doc.OK || len(doc.Stacks) != 3 {
		t.Fatalf("json summary: %+v", doc)
	}
	first := doc.Stacks[0]
	if first["stack"] != "chemistry" || first["result"] != "succeeded" || first["durationSeconds"] != 83.0 ||
		first["changes"].(map[string]any)["create"] != 2.0 || first["error"] != nil {
		t.Errorf("json row: %v", first)
	}
	if doc.Stacks[1]["error"] != "quota exceeded" || doc.Stacks[2]["result"] != "not started" {
		t.Errorf("json rows: %v", doc.Stacks[1:])
	}
}
