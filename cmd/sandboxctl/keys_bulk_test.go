package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
)

// writeRoster writes lines into name in dir.
func writeRoster(t *testing.T, dir, name string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readKeyCSV reads a file keys issue --owners wrote as CSV: its rows by owner, after checking
// the header and that the file is its owner's only.
func readKeyCSV(t *testing.T, path string) map[string][]string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) == 0 || !slices.Equal(rows[0], bulkHeader) {
		t.Fatalf("%s: not a CSV file with header %v (%v): %v", path, bulkHeader, err, rows)
	}
	out := map[string][]string{}
	for _, r := range rows[1:] {
		if _, dup := out[r[0]]; dup {
			t.Errorf("%s: owner %q twice", path, r[0])
		}
		out[r[0]] = r
	}
	return out
}

// A roster of owners gets one key each, written once into a new owner-only file with
// progress on stderr; the registry holds the hash of each; running the command again issues
// keys only for owners with no active key of the team (a new one, or one revoked since) and
// names the skipped ones by file and line; an existing output file is never overwritten.
func TestKeysIssueOwners(t *testing.T) {
	dir, items := keysEmulator(t)
	var roster []string
	for i := 1; i <= 30; i++ {
		roster = append(roster, fmt.Sprintf("s%07d", i))
	}
	// Spaces around a label and blank lines are not labels; a label may hold commas.
	roster = append(roster, "", "  Dr. Ada Lovelace, TA  ", "")
	writeRoster(t, dir, "students.txt", roster...)

	code, out, errOut := sandboxctl(t, dir, "keys", "issue", "chem", "--team", "students", "--owners", "students.txt", "--out", "keys.csv", "--expires", "30d")
	if code != exitOK {
		t.Fatalf("keys issue --owners: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"issued 25/31 keys of team students\n", "issued 31/31 keys of team students\n"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("no progress line %q on stderr:\n%s", want, errOut)
		}
	}
	if strings.Contains(out+errOut, keyregistry.KeyPrefix) {
		t.Errorf("a key was printed:\n%s%s", out, errOut)
	}
	if !strings.Contains(out, "issued 31 keys of team students") || !strings.Contains(out, "keys.csv") {
		t.Errorf("summary:\n%s", out)
	}
	rows := readKeyCSV(t, filepath.Join(dir, "keys.csv"))
	if len(rows) != 31 || rows["Dr. Ada Lovelace, TA"] == nil || rows["s0000030"] == nil {
		t.Fatalf("keys.csv holds %d owners, want the 31 of the roster: %v", len(rows), slices.Collect(maps.Keys(rows)))
	}
	hashes := map[string]string{}
	for _, item := range items() {
		hashes[item[keyregistry.AttrKeyID]] = item[keyregistry.AttrHash] + " " + item[keyregistry.AttrTeam] + " " + item[keyregistry.AttrOwner]
	}
	seen := map[string]bool{}
	for owner, r := range rows {
		key, id := r[4], r[2]
		if got, ok := keyregistry.KeyID(key); !ok || got != id || seen[key] {
			t.Errorf("%s: key %q (id %q), want a new key naming id %s", owner, key, got, id)
		}
		seen[key] = true
		if want := keyregistry.Hash(key) + " students " + owner; hashes[id] != want || r[1] != "students" {
			t.Errorf("%s: registry holds %q, want %q", owner, hashes[id], want)
		}
	}

	// Again, with two more owners, into JSON Lines: only those two are issued.
	writeRoster(t, dir, "students.txt", append(roster, "s0000031", "s0000032")...)
	code, out, errOut = sandboxctl(t, dir, "keys", "issue", "chem", "--team", "students", "--owners", "students.txt", "--out", "more.jsonl", "--format", "jsonl")
	if code != exitOK || !strings.Contains(out, "issued 2 keys") || !strings.Contains(out, "skipped 31 owners") {
		t.Fatalf("second run: exit %d, want 2 issued and 31 skipped\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, `skipped students.txt:32 "Dr. Ada Lovelace, TA": holds active key `+rows["Dr. Ada Lovelace, TA"][2]) {
		t.Errorf("the skipped owner is not named by file and line:\n%s", errOut)
	}
	data, err := os.ReadFile(filepath.Join(dir, "more.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var owners []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var k issuedJSON
		if err := json.Unmarshal([]byte(line), &k); err != nil || k.Team != "students" || k.Status != "active" {
			t.Fatalf("more.jsonl line %q: %+v (%v)", line, k, err)
		}
		if id, ok := keyregistry.KeyID(k.Key); !ok || id != k.KeyID {
			t.Errorf("more.jsonl: key %q does not name id %s", k.Key, k.KeyID)
		}
		owners = append(owners, k.Owner)
	}
	if !slices.Equal(owners, []string{"s0000031", "s0000032"}) {
		t.Errorf("more.jsonl holds keys of %v, want s0000031 and s0000032", owners)
	}

	// A revoked owner gets a new key on the next run; everyone holding one, nothing is written.
	if code, _, errOut := sandboxctl(t, dir, "keys", "revoke", "chem", rows["s0000007"][2]); code != exitOK {
		t.Fatalf("revoke: %s", errOut)
	}
	code, out, errOut = sandboxctl(t, dir, "keys", "issue", "chem", "--team", "students", "--owners", "students.txt", "--out", "again.csv")
	if again := readKeyCSV(t, filepath.Join(dir, "again.csv")); code != exitOK || len(again) != 1 || again["s0000007"] == nil {
		t.Errorf("after a revoke: exit %d, %d keys, want s0000007's alone\n%s%s", code, len(again), out, errOut)
	}
	code, out, _ = sandboxctl(t, dir, "keys", "issue", "chem", "--team", "students", "--owners", "students.txt", "--out", "none.csv")
	if _, err := os.Stat(filepath.Join(dir, "none.csv")); code != exitOK || !strings.Contains(out, "nothing to issue") || err == nil {
		t.Errorf("nothing to issue: exit %d, file written (%v):\n%s", code, err, out)
	}

	// The output file is never overwritten, and nothing is issued.
	before := len(items())
	writeRoster(t, dir, "late.txt", "s0000099")
	code, _, errOut = sandboxctl(t, dir, "keys", "issue", "chem", "--team", "students", "--owners", "late.txt", "--out", "keys.csv")
	if code != exitUsage || !strings.Contains(errOut, "keys.csv exists") {
		t.Errorf("existing --out: exit %d, want 2 naming the file:\n%s", code, errOut)
	}
	if n := len(items()); n != before {
		t.Errorf("%d items after a refused run, want %d", n, before)
	}
	if again := readKeyCSV(t, filepath.Join(dir, "keys.csv")); len(again) != 31 || again["s0000001"][4] != rows["s0000001"][4] {
		t.Errorf("keys.csv changed")
	}
}

// A CSV roster gives its labels from the named column, the lines of an error counting the
// header.
func TestKeysIssueOwnersColumn(t *testing.T) {
	dir, items := keysEmulator(t)
	writeRoster(t, dir, "roster.csv", "name,student number,section", `"Lovelace, Ada",s1,A`, "Turing,s2,B")
	code, out, errOut := sandboxctl(t, dir, "keys", "issue", "chem", "--team", "staff", "--owners", "roster.csv", "--column", "student number", "--out", "k.csv")
	rows := readKeyCSV(t, filepath.Join(dir, "k.csv"))
	if code != exitOK || len(rows) != 2 || rows["s1"] == nil || rows["s2"] == nil || rows["s1"][1] != "staff" {
		t.Fatalf("--column: exit %d, rows %v\n%s%s", code, rows, out, errOut)
	}
	writeRoster(t, dir, "bad.csv", "name,student number", "Lovelace,s1", "Turing,")
	code, _, errOut = sandboxctl(t, dir, "keys", "issue", "chem", "--team", "staff", "--owners", "bad.csv", "--column", "student number", "--out", "k2.csv")
	if code != exitUsage || !strings.Contains(errOut, "bad.csv:3: owner label must be 1 to 128 characters (got 0)") {
		t.Errorf("an empty cell: exit %d, want 2 naming bad.csv:3:\n%s", code, errOut)
	}
	code, _, errOut = sandboxctl(t, dir, "keys", "issue", "chem", "--team", "staff", "--owners", "roster.csv", "--column", "id", "--out", "k3.csv")
	if code != exitUsage || !strings.Contains(errOut, `roster.csv:1: no column "id" (columns: name, student number, section)`) {
		t.Errorf("an unknown column: exit %d:\n%s", code, errOut)
	}
	if n := len(items()); n != 2 {
		t.Errorf("%d items, want the 2 of the good roster", n)
	}
}

// A roster with a bad or repeated label is refused as a whole, every problem named by file and
// line, before any key is issued or any file written; so are flags that do not go together.
func TestKeysIssueOwnersRefusals(t *testing.T) {
	dir, items := keysEmulator(t)
	writeRoster(t, dir, "roster.txt", "s1", "s2", "s\t3", "s1", strings.Repeat("x", 129))
	writeRoster(t, dir, "ok.txt", "s1")
	writeRoster(t, dir, "empty.txt", "", " ")
	if err := os.WriteFile(filepath.Join(dir, "taken.csv"), []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--team", "students", "--owners", "roster.txt", "--out", "k.csv"}, []string{
			`roster.txt:3: owner label must not hold control characters (got "s\t3")`,
			`roster.txt:4: owner "s1" is listed twice (first on line 1)`,
			"roster.txt:5: owner label must be 1 to 128 characters (got 129)",
		}},
		{[]string{"--team", "students", "--owners", "empty.txt", "--out", "k.csv"}, []string{"empty.txt holds no owner label"}},
		{[]string{"--team", "students", "--owners", "missing.txt", "--out", "k.csv"}, []string{"--owners: open", "missing.txt"}},
		{[]string{"--team", "students", "--owners", "ok.txt"}, []string{"--owners needs --out FILE"}},
		{[]string{"--team", "students", "--owners", "ok.txt", "--owner", "x", "--out", "k.csv"}, []string{"--owner and --owners exclude each other"}},
		{[]string{"--team", "students", "--owner", "x", "--out", "k.csv"}, []string{"--out and --column go with --owners"}},
		{[]string{"--team", "students", "--owners", "ok.txt", "--out", "k.csv", "--format", "json"}, []string{"--format must be one of csv, jsonl"}},
		{[]string{"--team", "student", "--owners", "ok.txt", "--out", "k.csv"}, []string{`declares no team "student"`}},
		{[]string{"--team", "students", "--owners", "ok.txt", "--out", "taken.csv"}, []string{"taken.csv exists"}},
		{[]string{"--team", "students", "--owners", "ok.txt", "--out", "k.csv", "--expires", "121d"}, []string{"beyond team students's maxKeyLifetimeDays 120"}},
	} {
		code, _, errOut := sandboxctl(t, dir, append([]string{"keys", "issue", "chem"}, tc.args...)...)
		if code != exitUsage {
			t.Errorf("keys issue %q: exit %d, want 2:\n%s", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("keys issue %q: stderr lacks %q:\n%s", tc.args, w, errOut)
			}
		}
	}
	if n := len(items()); n != 0 {
		t.Errorf("%d items written by refused commands", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "k.csv")); err == nil {
		t.Errorf("a refused command wrote k.csv")
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "taken.csv")); string(data) != "keep me\n" {
		t.Errorf("taken.csv was overwritten: %q", data)
	}
}
