package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/cwclient"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	usagemetrics "github.com/llm-sandbox/llm-sandbox/internal/usage"
)

// usageRetention is how far back CloudWatch keeps metrics (hourly data for 455 days, CloudWatch
// User Guide, "Metrics retention"): --since earlier than that reads nothing.
const usageRetention = 455 * 24 * time.Hour

func keysUsageReport(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "keys usage", "keys usage STACK [--team TEAM] [--key KEYID] [--since WHEN] [--format text|json]",
		"Prints the requests, prompt and completion tokens, errors and 429s of each team and key id\n"+
			"of the department since WHEN, summed from the CloudWatch metrics the gateway publishes\n"+
			"(namespace "+usagemetrics.Namespace+"; each gateway worker publishes once a minute). Counts\n"+
			"only: the metrics hold no prompt, no completion, no address and no owner label. Keys\n"+
			"come from the registry and from CloudWatch, so a key with no use shows zeros.")
	team := fs.String("team", "", "only the keys of this `team`")
	keyID := fs.String("key", "", "only this `keyid`")
	since := fs.String("since", "24h", "start of the range (`WHEN`): a duration back from now (24h, 30d) or a date (2026-12-01, or RFC 3339)")
	format := formatFlag(fs)
	positional, err := parseArgs(fs, args, format)
	if err != nil {
		return err
	}
	if *keyID != "" && !keyregistry.ValidID(*keyID) {
		return usagef("--key must be a key id of %d lowercase letters and digits 2-7, as keys list shows it (got %q)", keyregistry.IDLength, *keyID)
	}
	now := time.Now().UTC()
	start, err := usageSince(*since, now)
	if err != nil {
		return err
	}
	s, _, cancel, err := openRegistry(e, projectFlag, positional, 0, storeFlags{})
	if err != nil {
		return err
	}
	defer cancel()
	// The registry names the keys CloudWatch no longer lists (it lists metrics with data in
	// the past two weeks only).
	recs, err := s.listTeam(*team)
	if err != nil {
		return err
	}
	known := map[string]string{}
	for _, r := range recs {
		known[r.KeyID] = r.Team
	}
	report, err := usagemetrics.Read(s.ctx, cwclient.New(s.cfg), usagemetrics.Query{
		Department: s.spec.Department, Team: *team, KeyID: *keyID, Start: start, End: now, Known: known,
	})
	if err != nil {
		return err
	}
	return writeUsage(e.stdout, *format, s.spec.Stack, report)
}

// usageSince reads --since: a duration in days (30d) or Go's units (24h) back from now, a date
// (its start, UTC) or RFC 3339. It must be in the past and within CloudWatch's retention.
func usageSince(flagValue string, now time.Time) (time.Time, error) {
	var start time.Time
	if d, ok := strings.CutSuffix(flagValue, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return time.Time{}, usagef("--since: want a number of days such as 30d (got %q)", flagValue)
		}
		start = now.Add(-time.Duration(n) * 24 * time.Hour)
	} else if d, err := time.ParseDuration(flagValue); err == nil {
		start = now.Add(-d)
	} else if day, err := time.Parse(time.DateOnly, flagValue); err == nil {
		start = day
	} else if at, err := time.Parse(time.RFC3339, flagValue); err == nil {
		start = at.UTC()
	} else {
		return time.Time{}, usagef("--since: want a duration (24h, 30d) or a date (2026-12-01 or RFC 3339) (got %q)", flagValue)
	}
	switch {
	case !start.Before(now):
		return time.Time{}, usagef("--since: %s is not in the past", start.Format(time.RFC3339))
	case now.Sub(start) > usageRetention:
		return time.Time{}, usagef("--since: %s is more than %d days ago, beyond what CloudWatch keeps", start.Format(time.RFC3339), int(usageRetention.Hours()/24))
	}
	return start, nil
}

// usageJSON is keys usage --format json.
type usageJSON struct {
	Stack string `json:"stack"`
	usagemetrics.Report
}

func writeUsage(w io.Writer, format, stack string, r usagemetrics.Report) error {
	if format == "json" {
		out, _ := json.MarshalIndent(usageJSON{stack, r}, "", "  ")
		fmt.Fprintln(w, string(out))
		return nil
	}
	fmt.Fprintf(w, "usage of %s (department %s) from %s to %s\n\n", stack, r.Department, r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(team, key string, c usagemetrics.Counts) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", team, key, c.Requests, c.PromptTokens, c.CompletionTokens, c.Errors, c.Throttles)
	}
	fmt.Fprintln(tw, "TEAM\tKEY ID\tREQUESTS\tPROMPT TOKENS\tCOMPLETION TOKENS\tERRORS\t429S")
	for _, t := range r.Teams {
		keys := fmt.Sprintf("(%d keys)", len(t.Keys))
		if len(t.Keys) == 1 {
			keys = "(1 key)"
		}
		row(t.Team, keys, t.Counts)
		for _, k := range t.Keys {
			row(t.Team, k.KeyID, k.Counts)
		}
	}
	row("all teams", "", r.Total)
	return tw.Flush()
}
