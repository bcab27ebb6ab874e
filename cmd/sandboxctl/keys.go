package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
)

// keysTimeout bounds one keys command; a registry call takes milliseconds.
const keysTimeout = 2 * time.Minute

const keysUsage = `Usage: sandboxctl [--project DIR] keys <subcommand> STACK [arguments]

Manages the per-person API keys of STACK's department in its key registry (the DynamoDB
table llm-sandbox-<department>-keys in the stack's aws:region), with the operator's own AWS
credentials: who may issue keys is decided by IAM (docs/keys.md gives the policy) and
recorded by CloudTrail. Teams and their models and limits are in the stack file
(llm-sandbox:teams); keys are data.

Subcommands:
  issue STACK --team TEAM --owner LABEL [--expires WHEN] [--format F]
                  draw a new key for a person of TEAM and print it, once: the registry
                  stores only its SHA-256. --expires is a duration (90d, 36h) or a date
                  (2027-06-30, or RFC 3339); the default and the most is the team's
                  maxKeyLifetimeDays. F: text (default), plain (the key alone),
                  env (export OPENAI_API_KEY=...), json
  issue STACK --team TEAM --owners FILE [--column NAME] --out OUT [--expires WHEN]
        [--format csv|jsonl]
                  a key of TEAM for each owner label of FILE (one a line; or, with
                  --column, a CSV file whose column NAME holds them), written once
                  into OUT, a new file readable by you only (never overwritten):
                  CSV (owner,team,keyId,expiresAt,key) or JSON Lines, a row per key
                  as it is issued. Owners who hold an active key of TEAM are skipped
                  (named on stderr), so the same command can be run again; progress
                  goes to stderr. Every bad or repeated label is named as FILE:LINE
                  before any key is issued
  list STACK [--team TEAM] [--all] [--format text|json]
                  the keys of the department (of TEAM), without the keys themselves;
                  revoked and expired ones only with --all
  show STACK KEYID [--format text|json]
                  one key's record
  revoke STACK KEYID
                  refuse the key from now on (every gateway node within 60 s)
  rotate STACK KEYID [--expires WHEN] [--format F]
                  issue a new key of the same team and owner, then revoke KEYID
  usage STACK [--team TEAM] [--key KEYID] [--since WHEN] [--format text|json]
                  requests, prompt and completion tokens, errors and 429s per team
                  and key id since WHEN (a duration back from now: 24h, 30d; or a
                  date or RFC 3339 time; default 24h), from the CloudWatch metrics
                  the gateway publishes (namespace LLMSandbox/Usage): counts only

With --local (or --state DIR), every subcommand works on the key store of STACK's local
run (sandboxctl local) instead: keys.json in its state directory (default <user
cache>/llm-sandbox/local/STACK), owner-only, holding what the registry table holds. No AWS
credentials are needed; the running local gateway refuses a revoked key within 20 s.

Credentials come from the standard AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, SSO, an instance role); AWS_ENDPOINT_URL points every call
elsewhere (an emulator).

Exit codes: 0 done (issue --owners: every owner holds an active key), 1 the stack file
is invalid, the registry refused (unknown or already revoked key; issue --owners stops
there, with the keys issued so far in OUT) or CloudWatch refused, 2 usage error (a bad
owners file, an OUT that exists) or no AWS credentials.
`

// keysCredentialsHelp says how to give the keys commands credentials.
const keysCredentialsHelp = `Provide the AWS credentials of a key issuer the usual way: AWS_PROFILE=<profile> (after
"aws sso login --profile <profile>" for SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
(and AWS_SESSION_TOKEN). docs/keys.md gives the IAM policy of an issuer.`

func runKeys(e env, projectFlag string, args []string) int {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(e.stdout, keysUsage)
		if len(args) == 0 {
			return exit(e, "keys", usagef("want a subcommand: issue, list, show, revoke, rotate or usage"))
		}
		return exitOK
	}
	sub, rest := args[0], args[1:]
	var err error
	switch sub {
	case "issue":
		err = keysIssue(e, projectFlag, rest)
	case "list":
		err = keysList(e, projectFlag, rest)
	case "show":
		err = keysShow(e, projectFlag, rest)
	case "revoke":
		err = keysRevoke(e, projectFlag, rest)
	case "rotate":
		err = keysRotate(e, projectFlag, rest)
	case "usage":
		err = keysUsageReport(e, projectFlag, rest)
	default:
		err = usagef("unknown keys subcommand %q (issue, list, show, revoke, rotate, usage)", sub)
	}
	return exit(e, "keys "+sub, err)
}

// keysSession is one keys command's stack and registry.
type keysSession struct {
	spec     *config.Spec
	cfg      aws.Config
	registry keyregistry.Store
	ctx      context.Context
	now      time.Time
}

// listTeam lists the keys of team, every key when team is empty; a team the stack does not
// declare is a usage error naming the teams it does.
func (s *keysSession) listTeam(team string) ([]keyregistry.Record, error) {
	if _, ok := s.spec.Teams[team]; team != "" && !ok {
		return nil, usagef("--team: %s declares no team %q (teams: %s)", s.spec.Source, team, strings.Join(s.spec.TeamNames(), ", "))
	}
	return s.registry.List(s.ctx, team)
}

// openRegistry parses the command's arguments (the stack, then want more positional ones),
// loads the stack and connects to its registry with the operator's credentials.
func openRegistry(e env, projectFlag string, positional []string, want int, where storeFlags) (*keysSession, []string, context.CancelFunc, error) {
	if len(positional) != want+1 {
		return nil, nil, nil, usagef("want STACK%s (got %d argument(s))", strings.Repeat(" KEYID", want), len(positional))
	}
	sa, err := findStacks(e, projectFlag, positional[:1], false)
	if err != nil {
		return nil, nil, nil, err
	}
	spec, err := config.LoadChecked(sa.project, positional[0])
	if err != nil {
		return nil, nil, nil, asProblems(positional[0], err)
	}
	if where.isLocal() {
		return openLocalStore(spec, positional, *where.state)
	}
	ctx, cancel := context.WithTimeout(context.Background(), keysTimeout)
	cfg, err := loadCredentials(ctx, spec.Region, keysCredentialsHelp)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	s := &keysSession{
		spec:     spec,
		cfg:      cfg,
		registry: keyregistry.New(dynamodb.NewFromConfig(cfg), keyregistry.TableName(spec.Department)),
		ctx:      ctx,
		now:      time.Now().UTC(),
	}
	return s, positional[1:], cancel, nil
}

// openKey is openRegistry for the commands on one key (STACK KEYID): it returns the checked
// key id.
func openKey(e env, projectFlag string, positional []string, where storeFlags) (*keysSession, string, context.CancelFunc, error) {
	s, ids, cancel, err := openRegistry(e, projectFlag, positional, 1, where)
	if err != nil {
		return nil, "", nil, err
	}
	if !keyregistry.ValidID(ids[0]) {
		cancel()
		return nil, "", nil, usagef("KEYID must be a key id of %d lowercase letters and digits 2-7, as keys list shows it (got %q)", keyregistry.IDLength, ids[0])
	}
	return s, ids[0], cancel, nil
}

// issueFormats are the output formats of issue and rotate.
var issueFormats = []string{"text", "plain", "env", "json"}

func keysIssue(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "keys issue", "keys issue STACK --team TEAM (--owner LABEL | --owners FILE [--column NAME] --out FILE) [--expires WHEN] [--format F]",
		"Draws a new key for a person of TEAM and prints it once (--owner), or a key for each owner\n"+
			"of FILE and writes them once into a new file (--owners); see sandboxctl keys --help.")
	where := addStoreFlags(fs)
	team := fs.String("team", "", "the key's `team`, a key of llm-sandbox:teams")
	owner := fs.String("owner", "", "who holds the key: a `label` the department chooses (a name, an email, a course seat)")
	owners := fs.String("owners", "", "a `file` of owner labels, one a line (or a CSV column, with --column): a key for each owner who holds no active key of TEAM")
	column := fs.String("column", "", "with --owners: the file is CSV with a header row, and the labels are in the column of this `name`")
	out := fs.String("out", "", "with --owners: the new `file` the keys are written to, readable by you only; never overwritten")
	expires := fs.String("expires", "", "when the key stops working: a duration (90d, 36h) or a date (2027-06-30); default the team's maxKeyLifetimeDays")
	format := fs.String("format", "", "output `format`: text (default), plain, env or json; with --owners, the file's: csv (default) or jsonl")
	positional, err := parseArgs(fs, args, nil)
	if err != nil {
		return err
	}
	bulk := *owners != ""
	formats, def := issueFormats, "text"
	if bulk {
		formats, def = bulkFormats, "csv"
	}
	if *format == "" {
		*format = def
	}
	if !slices.Contains(formats, *format) {
		return usagef("--format must be one of %s (got %q)", strings.Join(formats, ", "), *format)
	}
	switch {
	case *team == "" || (*owner == "" && !bulk):
		return usagef("want --team and --owner (or --owners FILE --out FILE)")
	case *owner != "" && bulk:
		return usagef("--owner and --owners exclude each other: one person, or a file of them")
	case bulk && *out == "":
		return usagef("--owners needs --out FILE: the new file the keys are written to")
	case !bulk && (*out != "" || *column != ""):
		return usagef("--out and --column go with --owners")
	}
	var list []ownerLine
	if bulk {
		if _, err := os.Lstat(inDir(e.cwd, *out)); err == nil {
			return usagef("--out: %s exists: it may hold keys shown only once, so it is never overwritten (choose another name)", *out)
		}
		if list, err = readOwners(e, *owners, *column); err != nil {
			return err
		}
	} else if msg := keyregistry.OwnerProblem(*owner); msg != "" {
		return usagef("--owner: %s", msg)
	}
	s, _, cancel, err := openRegistry(e, projectFlag, positional, 0, where)
	if err != nil {
		return err
	}
	defer cancel()
	t, ok := s.spec.Teams[*team]
	if !ok {
		return usagef("--team: %s declares no team %q (teams: %s)", s.spec.Source, *team, strings.Join(s.spec.TeamNames(), ", "))
	}
	until, err := expiry(*expires, t, s.now)
	if err != nil {
		return err
	}
	if bulk {
		return bulkIssue(e, s, t, list, *owners, *out, *format, until)
	}
	issued, err := s.registry.Issue(s.ctx, t.Name, *owner, s.now, until, "")
	if err != nil {
		return err
	}
	writeIssued(e.stdout, *format, issued, "")
	return nil
}

func keysRotate(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "keys rotate", "keys rotate STACK KEYID [--expires WHEN] [--format text|plain|env|json]",
		"Issues a new key of KEYID's team and owner, prints it once, then revokes KEYID.")
	where := addStoreFlags(fs)
	expires := fs.String("expires", "", "when the new key stops working, as for issue; default the team's maxKeyLifetimeDays")
	format := fs.String("format", "text", "output `format`: text, plain, env or json")
	positional, err := parseArgs(fs, args, nil)
	if err != nil {
		return err
	}
	if !slices.Contains(issueFormats, *format) {
		return usagef("--format must be one of %s (got %q)", strings.Join(issueFormats, ", "), *format)
	}
	s, id, cancel, err := openKey(e, projectFlag, positional, where)
	if err != nil {
		return err
	}
	defer cancel()
	old, err := s.registry.Get(s.ctx, id)
	if err != nil {
		return err
	}
	if st := old.Status(s.now); st != "active" {
		return fmt.Errorf("key %s is %s: issue a new key instead of rotating it", old.KeyID, st)
	}
	t, ok := s.spec.Teams[old.Team]
	if !ok {
		return fmt.Errorf("key %s belongs to team %q, which %s no longer declares: issue a key of another team instead", old.KeyID, old.Team, s.spec.Source)
	}
	until, err := expiry(*expires, t, s.now)
	if err != nil {
		return err
	}
	issued, err := s.registry.Issue(s.ctx, old.Team, old.Owner, s.now, until, old.KeyID)
	if err != nil {
		return err
	}
	// The new key is printed even when the revoke fails, so it is never lost: the message
	// then says to revoke the old one by hand.
	revokeErr := s.registry.Revoke(s.ctx, old.KeyID, s.now)
	writeIssued(e.stdout, *format, issued, old.KeyID)
	if revokeErr != nil {
		return fmt.Errorf("issued %s, but revoking the old key failed (run keys revoke %s %s): %w", issued.Record.KeyID, s.spec.Stack, old.KeyID, revokeErr)
	}
	return nil
}

func keysRevoke(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "keys revoke", "keys revoke STACK KEYID",
		"Revokes KEYID: every gateway node refuses it within 60 s. The record stays, for keys list --all.")
	where := addStoreFlags(fs)
	positional, err := parseArgs(fs, args, nil)
	if err != nil {
		return err
	}
	s, id, cancel, err := openKey(e, projectFlag, positional, where)
	if err != nil {
		return err
	}
	defer cancel()
	if err := s.registry.Revoke(s.ctx, id, s.now); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked %s at %s\n", id, s.now.Format(time.RFC3339))
	return nil
}

func keysShow(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "keys show", "keys show STACK KEYID [--format text|json]", "Prints KEYID's record (never the key).")
	where := addStoreFlags(fs)
	format := formatFlag(fs)
	positional, err := parseArgs(fs, args, format)
	if err != nil {
		return err
	}
	s, id, cancel, err := openKey(e, projectFlag, positional, where)
	if err != nil {
		return err
	}
	defer cancel()
	rec, err := s.registry.Get(s.ctx, id)
	if err != nil {
		return err
	}
	return writeRecords(e.stdout, *format, []keyView{view(rec, s.now)}, true)
}

func keysList(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "keys list", "keys list STACK [--team TEAM] [--all] [--format text|json]",
		"Lists the department's keys (never the keys themselves), active ones unless --all.")
	where := addStoreFlags(fs)
	team := fs.String("team", "", "only the keys of this `team`")
	all := fs.Bool("all", false, "also revoked and expired keys")
	format := formatFlag(fs)
	positional, err := parseArgs(fs, args, format)
	if err != nil {
		return err
	}
	s, _, cancel, err := openRegistry(e, projectFlag, positional, 0, where)
	if err != nil {
		return err
	}
	defer cancel()
	recs, err := s.listTeam(*team)
	if err != nil {
		return err
	}
	views := []keyView{}
	for _, r := range recs {
		v := view(r, s.now)
		if *all || v.Status == "active" {
			views = append(views, v)
		}
	}
	return writeRecords(e.stdout, *format, views, false)
}

// keyView is a record as list, show and issue print it.
type keyView struct {
	keyregistry.Record
	Status string `json:"status"`
}

func view(r keyregistry.Record, now time.Time) keyView { return keyView{r, r.Status(now)} }

func writeRecords(w io.Writer, format string, views []keyView, one bool) error {
	if format == "json" {
		var v any = views
		if one {
			v = views[0]
		}
		out, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(w, string(out))
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tTEAM\tOWNER\tCREATED\tEXPIRES\tSTATUS")
	for _, v := range views {
		status := v.Status
		if v.Revoked != nil {
			status += " " + v.Revoked.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.KeyID, v.Team, strconv.Quote(v.Owner), v.Created.Format(time.RFC3339), v.Expires.Format(time.RFC3339), status)
	}
	return tw.Flush()
}

// writeIssued prints a new key in format; replaced names the key a rotation revoked.
func writeIssued(w io.Writer, format string, issued keyregistry.Issued, replaced string) {
	r := issued.Record
	switch format {
	case "plain":
		fmt.Fprintln(w, issued.Key)
	case "env":
		fmt.Fprintf(w, "export OPENAI_API_KEY=%s\n", issued.Key)
	case "json":
		out, _ := json.MarshalIndent(struct {
			Key string `json:"key"`
			keyView
		}{issued.Key, view(r, r.Created)}, "", "  ")
		fmt.Fprintln(w, string(out))
	default:
		fmt.Fprintf(w, "key id:  %s\nteam:    %s\nowner:   %q\nexpires: %s\n", r.KeyID, r.Team, r.Owner, r.Expires.Format(time.RFC3339))
		if replaced != "" {
			fmt.Fprintf(w, "replaces %s, now revoked\n", replaced)
		}
		fmt.Fprintf(w, "\nThe key is shown this once (the registry keeps only its SHA-256); hand it to its owner:\n\n")
		fmt.Fprintf(w, "export OPENAI_API_KEY=%s\n", issued.Key)
	}
}

// expiry turns --expires into a time: a duration in days (90d) or Go's units (36h), a date
// (the end of that day in UTC), or RFC 3339. Empty is the team's longest lifetime; later than
// that, or not in the future, is refused.
func expiry(flagValue string, t config.Team, now time.Time) (time.Time, error) {
	longest := now.Add(time.Duration(t.MaxKeyLifetimeDays) * 24 * time.Hour)
	if flagValue == "" {
		return longest, nil
	}
	var until time.Time
	if d, ok := strings.CutSuffix(flagValue, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return time.Time{}, usagef("--expires: want a number of days such as 90d (got %q)", flagValue)
		}
		until = now.Add(time.Duration(n) * 24 * time.Hour)
	} else if d, err := time.ParseDuration(flagValue); err == nil {
		until = now.Add(d)
	} else if day, err := time.Parse(time.DateOnly, flagValue); err == nil {
		until = day.Add(24*time.Hour - time.Second)
	} else if at, err := time.Parse(time.RFC3339, flagValue); err == nil {
		until = at
	} else {
		return time.Time{}, usagef("--expires: want a duration (90d, 36h) or a date (2027-06-30 or RFC 3339) (got %q)", flagValue)
	}
	switch {
	case !until.After(now):
		return time.Time{}, usagef("--expires: %s is not in the future", until.UTC().Format(time.RFC3339))
	case until.After(longest):
		return time.Time{}, usagef("--expires: %s is beyond team %s's maxKeyLifetimeDays %d (at most %s)", until.UTC().Format(time.RFC3339), t.Name, t.MaxKeyLifetimeDays, longest.Format(time.RFC3339))
	}
	return until, nil
}
