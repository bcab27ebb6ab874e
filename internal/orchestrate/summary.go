package orchestrate

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the summary table: one row per stack (stack, operation, result, changes per
// kind, duration), then the reason of each failure and a count per result.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STACK\tOPERATION\tRESULT\tCHANGES\tDURATION")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", res.Stack, res.Operation, res.Status,
			formatChanges(res.Changes), formatDuration(res.Duration))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	counts := map[Status]int{}
	for _, res := range r.Results {
		if res.Status == Failed {
			fmt.Fprintf(w, "%s: %s\n", res.Stack, res.Error)
		}
		counts[res.Status]++
	}
	var parts []string
	for _, s := range []Status{Succeeded, Failed, Cancelled, NotStarted} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	_, err := fmt.Fprintf(w, "%s: %d stack(s): %s\n", r.Operation, len(r.Results), strings.Join(parts, ", "))
	return err
}

// jsonResult is a Result as --format json prints it.
type jsonResult struct {
	Result
	DurationSeconds float64 `json:"durationSeconds"`
}

// WriteJSON writes {"operation", "ok", "stacks": [{"stack", "operation", "result", "changes",
// "durationSeconds", "error"}]}.
func (r Report) WriteJSON(w io.Writer) error {
	doc := struct {
		Operation Operation    `json:"operation"`
		OK        bool         `json:"ok"`
		Stacks    []jsonResult `json:"stacks"`
	}{Operation: r.Operation, OK: r.OK(), Stacks: []jsonResult{}}
	for _, res := range r.Results {
		doc.Stacks = append(doc.Stacks, jsonResult{
			Result:          res,
			DurationSeconds: math.Round(res.Duration.Seconds()*10) / 10,
		})
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(out))
	return err
}

// formatChanges prints change counts as "2 create, 1 update, 3 same", or "-" for none.
func formatChanges(changes map[string]int) string {
	if len(changes) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(changes))
	for _, k := range ChangeKinds(changes) {
		parts = append(parts, fmt.Sprintf("%d %s", changes[k], k))
	}
	return strings.Join(parts, ", ")
}

func formatDuration(d time.Duration) string {
	if d == 0 { // not started
		return "-"
	}
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
