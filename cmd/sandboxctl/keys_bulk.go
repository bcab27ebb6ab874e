package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
)

// bulkFormats are the formats of the file keys issue --owners writes.
var bulkFormats = []string{"csv", "jsonl"}

// bulkHeader is the header row of the CSV file keys issue --owners writes.
var bulkHeader = []string{"owner", "team", "keyId", "expiresAt", "key"}

// bulkProgressEvery is how many keys pass between two progress lines on stderr.
const bulkProgressEvery = 25

// ownerLine is one owner label of an owners file and the line it is on.
type ownerLine struct {
	label string
	line  int
}

// readOwners reads the owner labels of an owners file: one label a line (surrounding spaces
// trimmed, blank lines skipped), or, with column, a CSV file with a header row whose column of
// that name holds the labels. Every bad label (empty in a CSV column, too long, with a control
// character) and every label listed twice is reported at once, as path:line: what is wrong.
func readOwners(e env, path, column string) ([]ownerLine, error) {
	f, err := os.Open(inDir(e.cwd, path))
	if err != nil {
		return nil, usagef("--owners: %v", err)
	}
	defer f.Close()
	var owners []ownerLine
	if column == "" {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for n := 1; sc.Scan(); n++ {
			if label := strings.TrimSpace(sc.Text()); label != "" {
				owners = append(owners, ownerLine{label, n})
			}
		}
		if err := sc.Err(); err != nil {
			return nil, usagef("--owners: read %s: %v", path, err)
		}
	} else {
		if owners, err = readOwnerColumn(f, path, column); err != nil {
			return nil, err
		}
	}
	var problems []string
	first := map[string]int{}
	for _, o := range owners {
		if msg := keyregistry.OwnerProblem(o.label); msg != "" {
			problems = append(problems, fmt.Sprintf("%s:%d: owner label %s", path, o.line, msg))
			continue
		}
		if at, ok := first[o.label]; ok {
			problems = append(problems, fmt.Sprintf("%s:%d: owner %q is listed twice (first on line %d): a person gets one key of a team", path, o.line, o.label, at))
			continue
		}
		first[o.label] = o.line
	}
	if len(problems) > 0 {
		return nil, usagef("%s", strings.Join(problems, "\n"))
	}
	if len(owners) == 0 {
		return nil, usagef("--owners: %s holds no owner label", path)
	}
	return owners, nil
}

// readOwnerColumn reads column of a CSV file with a header row; the line of each label is
// where its record starts.
func readOwnerColumn(r io.Reader, path, column string) ([]ownerLine, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, usagef("--owners: %s: want a CSV header row naming column %q: %v", path, column, err)
	}
	col := slices.IndexFunc(header, func(h string) bool { return strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) == column })
	if col < 0 {
		return nil, usagef("--column: %s:1: no column %q (columns: %s)", path, column, strings.Join(header, ", "))
	}
	var owners []ownerLine
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return owners, nil
		}
		if err != nil {
			return nil, usagef("--owners: %v", err)
		}
		line, _ := cr.FieldPos(0)
		if col >= len(rec) {
			return nil, usagef("%s:%d: no column %q on this line (it has %d fields)", path, line, column, len(rec))
		}
		owners = append(owners, ownerLine{strings.TrimSpace(rec[col]), line})
	}
}

// bulkIssue is keys issue --owners: a key of team t for each owner of the file who holds no
// active key of t yet, all written to out (created owner-only; never overwritten) as each is
// issued, so that no issued key is ever lost.
func bulkIssue(e env, s *keysSession, t config.Team, owners []ownerLine, ownersPath, out, format string, until time.Time) error {
	recs, err := s.listTeam(t.Name)
	if err != nil {
		return err
	}
	holds := map[string]string{}
	for _, r := range recs {
		if r.Status(s.now) == "active" {
			holds[r.Owner] = r.KeyID
		}
	}
	var todo []ownerLine
	for _, o := range owners {
		if id, ok := holds[o.label]; ok {
			fmt.Fprintf(e.stderr, "skipped %s:%d %q: holds active key %s of team %s (keys rotate %s %s replaces it)\n", ownersPath, o.line, o.label, id, t.Name, s.spec.Stack, id)
			continue
		}
		todo = append(todo, o)
	}
	skipped := len(owners) - len(todo)
	// keysTimeout bounds a command of a few registry calls; this one makes one per key.
	ctx, cancel := context.WithTimeout(context.Background(), keysTimeout+time.Duration(len(todo))*time.Second)
	defer cancel()
	s.ctx = ctx
	if len(todo) == 0 {
		fmt.Fprintf(e.stdout, "nothing to issue: all %d owners of %s hold an active key of team %s; %s not written\n", len(owners), ownersPath, t.Name, out)
		return nil
	}
	f, err := os.OpenFile(inDir(e.cwd, out), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return usagef("--out: %s exists: it may hold keys shown only once, so it is never overwritten (choose another name)", out)
	}
	if err != nil {
		return usagef("--out: %v", err)
	}
	w := newKeyFileWriter(f, format)
	issued := 0
	fail := func(err error) error {
		closeErr := f.Close()
		return errors.Join(fmt.Errorf("issued %d of %d keys of team %s, written to %s; stopped: %w\nrun the same command again with another --out to issue the rest: owners who hold an active key are skipped", issued, len(todo), t.Name, out, err), closeErr)
	}
	if err := w.header(); err != nil {
		return fail(fmt.Errorf("write %s: %w", out, err))
	}
	for _, o := range todo {
		k, err := s.registry.Issue(s.ctx, t.Name, o.label, s.now, until, "")
		if err != nil {
			return fail(fmt.Errorf("%s:%d %q: %w", ownersPath, o.line, o.label, err))
		}
		if err := w.write(k); err != nil {
			// The key is in no file: nobody can ever use it, so it is revoked at once.
			if rerr := s.registry.Revoke(s.ctx, k.Record.KeyID, s.now); rerr != nil {
				err = errors.Join(err, fmt.Errorf("revoke the unwritten key %s (run keys revoke %s %s): %w", k.Record.KeyID, s.spec.Stack, k.Record.KeyID, rerr))
			}
			return fail(fmt.Errorf("write %s: %w", out, err))
		}
		issued++
		if issued%bulkProgressEvery == 0 || issued == len(todo) {
			fmt.Fprintf(e.stderr, "issued %d/%d keys of team %s\n", issued, len(todo), t.Name)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("write %s: %w", out, err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("issued %d keys of team %s, but closing %s failed: %w", issued, t.Name, out, err)
	}
	fmt.Fprintf(e.stdout, "issued %d keys of team %s, expiring %s, into %s (readable by you only; each key is shown there once)\n",
		issued, t.Name, until.UTC().Truncate(time.Second).Format(time.RFC3339), out)
	if skipped > 0 {
		fmt.Fprintf(e.stdout, "skipped %d owners who hold an active key of team %s (listed on stderr)\n", skipped, t.Name)
	}
	fmt.Fprintln(e.stdout, "Hand each key to its owner alone, then delete the file.")
	return nil
}

// inDir is path relative to dir, the command's working directory, unless it is absolute.
func inDir(dir, path string) string {
	if dir == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// keyFileWriter writes issued keys one per row (CSV) or line (JSON Lines), flushing each so
// that the file holds every key issued even when the run stops half-way.
type keyFileWriter struct {
	w      io.Writer
	csv    *csv.Writer
	format string
}

func newKeyFileWriter(w io.Writer, format string) *keyFileWriter {
	k := &keyFileWriter{w: w, format: format}
	if format == "csv" {
		k.csv = csv.NewWriter(w)
	}
	return k
}

func (k *keyFileWriter) header() error {
	if k.csv == nil {
		return nil
	}
	if err := k.csv.Write(bulkHeader); err != nil {
		return err
	}
	k.csv.Flush()
	return k.csv.Error()
}

func (k *keyFileWriter) write(issued keyregistry.Issued) error {
	r := issued.Record
	if k.csv != nil {
		if err := k.csv.Write([]string{r.Owner, r.Team, r.KeyID, r.Expires.Format(time.RFC3339), issued.Key}); err != nil {
			return err
		}
		k.csv.Flush()
		return k.csv.Error()
	}
	line, err := json.Marshal(struct {
		Key string `json:"key"`
		keyView
	}{issued.Key, view(r, r.Created)})
	if err != nil {
		return err
	}
	_, err = k.w.Write(append(line, '\n'))
	return err
}
