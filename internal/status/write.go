package status

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSON writes the report as one line of JSON, so that a watch's reports are JSON Lines.
func WriteJSON(w io.Writer, r *Report) error {
	return json.NewEncoder(w).Encode(r)
}

// WriteText writes the report for a terminal: a heading, what needs attention, the alarms that
// are not OK, then one compact table per group (the gateway, then the pools).
func WriteText(w io.Writer, r *Report) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "%s (department %s, %s) at %s; figures over %s from %s\n", r.Stack, r.Department, r.Region,
		r.End.Format("2006-01-02 15:04 MST"), r.Window, r.Start.Format("15:04"))
	fmt.Fprintf(b, "dashboard: %s\n", r.Dashboard)
	if r.OK() {
		fmt.Fprintln(b, "\nOK: no alarm in ALARM, and every group that should serve has a healthy target")
	} else {
		fmt.Fprintln(b, "\nNEEDS ATTENTION:")
		for _, p := range r.Problems {
			fmt.Fprintf(b, "  %s\n", p)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(b, "note: %s\n", n)
	}

	ok := 0
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, a := range r.Alarms {
		if a.State == StateOK {
			ok++
			continue
		}
		since := ""
		if a.Since != nil {
			since = "since " + a.Since.UTC().Format("01-02 15:04")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", a.State, a.Name, since, a.Reason)
	}
	fmt.Fprintf(b, "\nAlarms: %d of %d OK\n", ok, len(r.Alarms))
	tw.Flush()

	fmt.Fprintln(b, "\nUsage (every key of the department)")
	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	writeGraphs(tw, r.Usage)
	tw.Flush()
	for _, g := range r.Groups {
		hours := "serves around the clock"
		if g.Hours != nil {
			state := "outside"
			if g.ShouldServe {
				state = "within"
			}
			hours = fmt.Sprintf("%s its hours %s", state, g.Hours)
		}
		fmt.Fprintf(b, "\n%s (%s; %s)\n", g.Title, g.AutoScalingGroup, hours)
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  now\tdesired %d (min %d, max %d); instances %s; targets %s\n", g.Desired, g.Min, g.Max, counts(g.Lifecycle), counts(g.Targets))
		writeGraphs(tw, g.Graphs)
		tw.Flush()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeGraphs writes one line per graph: each figure's label and value; a figure drawn per
// node gives the highest and then every node's.
func writeGraphs(tw io.Writer, graphs []Graph) {
	for _, graph := range graphs {
		var parts []string
		for _, f := range graph.Figures {
			part := fmt.Sprintf("%s %s", f.Label, FormatValue(f.Value))
			if len(f.Series) > 0 {
				var each []string
				for _, s := range f.Series {
					each = append(each, fmt.Sprintf("%s %s", s.Name, FormatValue(&s.Value)))
				}
				part = fmt.Sprintf("%s max %s (%s)", f.Label, FormatValue(f.Value), strings.Join(each, ", "))
			}
			parts = append(parts, part)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", graph.Title, strings.Join(parts, ", "))
	}
}

// FormatValue spells a figure: up to three decimals without trailing zeros, "-" for no data.
func FormatValue(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(math.Round(*v*1000)/1000, 'f', -1, 64)
}

// Clear is what a terminal needs to draw a watch's next report over the last: cursor home and
// erase the screen (ECMA-48 CUP and ED).
const Clear = "\x1b[H\x1b[2J"

// WindowText spells a window of whole minutes as the --since flag takes it: 1h, 10m, 2h30m.
func WindowText(d time.Duration) string {
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case h == 0:
		return fmt.Sprintf("%dm", m)
	case m == 0:
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%dm", h, m)
}
