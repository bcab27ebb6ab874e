package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry/keyregistrytest"
	"github.com/llm-sandbox/llm-sandbox/internal/preflight/preflighttest"
)

// keysStack is a department with two teams of different lifetimes.
const keysStack = `config:
  aws:region: ca-central-1
  llm-sandbox:department: chem
  llm-sandbox:network:
    cidr: 10.20.0.0/16
  llm-sandbox:access:
    mode: internal
    plainHttp: true
  llm-sandbox:pools:
    gpu:
      models: [llama3.1:8b, qwen2.5:7b]
  llm-sandbox:teams:
    students:
      models: [llama3.1:8b]
      maxKeyLifetimeDays: 120
    staff: {}
`

// issuedJSON is keys issue --format json.
type issuedJSON struct {
	Key      string     `json:"key"`
	KeyID    string     `json:"keyId"`
	Team     string     `json:"team"`
	Owner    string     `json:"owner"`
	Created  time.Time  `json:"createdAt"`
	Expires  time.Time  `json:"expiresAt"`
	Revoked  *time.Time `json:"revokedAt"`
	Replaces string     `json:"replaces"`
	Status   string     `json:"status"`
}

// keysEmulator starts moto with the chem registry table and points the SDK at it; it returns
// the project and a function listing the table's items.
func keysEmulator(t *testing.T) (string, func() []map[string]string) {
	t.Helper()
	m := preflighttest.Start(t, nil)
	client := keyregistrytest.CreateTable(t, m.Config("ca-central-1"), "chem")
	m.SetEnv(t)
	dir := tempProject(t, map[string]string{"chem": keysStack})
	return dir, func() []map[string]string { return keyregistrytest.Items(t, client, "chem") }
}

func issue(t *testing.T, dir string, args ...string) issuedJSON {
	t.Helper()
	code, out, errOut := sandboxctl(t, dir, append([]string{"keys", "issue", "chem", "--format", "json"}, args...)...)
	if code != exitOK {
		t.Fatalf("keys issue %v: exit %d\n%s%s", args, code, out, errOut)
	}
	var got issuedJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("keys issue: not JSON: %v\n%s", err, out)
	}
	return got
}

// A key is issued for a person of a team, stored only as its SHA-256 with its team, owner and
// dates, listed and shown without the key, revoked, and rotated into a new key of the same
// team and owner.
func TestKeysIssueListShowRevokeRotate(t *testing.T) {
	dir, items := keysEmulator(t)
	before := time.Now().UTC().Truncate(time.Second)
	alice := issue(t, dir, "--team", "students", "--owner", "alice@example.edu", "--expires", "30d")
	bob := issue(t, dir, "--team", "staff", "--owner", "Bob")

	if id, ok := keyregistry.KeyID(alice.Key); !ok || id != alice.KeyID {
		t.Errorf("key %q names id %q (%t), want %s", alice.Key, id, ok, alice.KeyID)
	}
	if alice.Team != "students" || alice.Owner != "alice@example.edu" || alice.Status != "active" {
		t.Errorf("issued %+v", alice)
	}
	if d := alice.Expires.Sub(before); d < 30*24*time.Hour || d > 30*24*time.Hour+time.Minute {
		t.Errorf("alice's key expires %s after issue, want 30 days", d)
	}
	if d := bob.Expires.Sub(before); d < 180*24*time.Hour || d > 180*24*time.Hour+time.Minute {
		t.Errorf("bob's key expires %s after issue, want staff's default 180 days", d)
	}

	// Only the hash is stored: no attribute of any item holds a key.
	stored := items()
	if len(stored) != 2 {
		t.Fatalf("%d items, want 2", len(stored))
	}
	for _, item := range stored {
		for k, v := range item {
			if strings.Contains(v, keyregistry.KeyPrefix) {
				t.Errorf("item %s attribute %s holds a key: %q", item[keyregistry.AttrKeyID], k, v)
			}
		}
		want := map[string]string{alice.KeyID: keyregistry.Hash(alice.Key), bob.KeyID: keyregistry.Hash(bob.Key)}[item[keyregistry.AttrKeyID]]
		if item[keyregistry.AttrHash] != want || len(want) != 64 {
			t.Errorf("item %s hash %q, want the key's SHA-256 %q", item[keyregistry.AttrKeyID], item[keyregistry.AttrHash], want)
		}
		exp, _ := strconv.ParseInt(item[keyregistry.AttrExpires], 10, 64)
		purge, _ := strconv.ParseInt(item[keyregistry.AttrPurge], 10, 64)
		if time.Duration(purge-exp)*time.Second != keyregistry.PurgeAfter {
			t.Errorf("item %s purged %d s after expiry, want %s", item[keyregistry.AttrKeyID], purge-exp, keyregistry.PurgeAfter)
		}
	}

	code, out, errOut := sandboxctl(t, dir, "keys", "list", "chem", "--team", "students")
	if code != exitOK || !strings.Contains(out, alice.KeyID) || strings.Contains(out, bob.KeyID) || strings.Contains(out, keyregistry.KeyPrefix) {
		t.Errorf("keys list --team students: exit %d, want alice's id and not bob's, no key:\n%s%s", code, out, errOut)
	}
	code, out, _ = sandboxctl(t, dir, "keys", "show", "chem", bob.KeyID, "--format", "json")
	var shown issuedJSON
	if err := json.Unmarshal([]byte(out), &shown); code != exitOK || err != nil || shown.Owner != "Bob" || shown.Team != "staff" || shown.Key != "" {
		t.Errorf("keys show: exit %d, %+v (%v)", code, shown, err)
	}

	code, out, errOut = sandboxctl(t, dir, "keys", "revoke", "chem", alice.KeyID)
	if code != exitOK || !strings.HasPrefix(out, "revoked "+alice.KeyID) {
		t.Errorf("keys revoke: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = sandboxctl(t, dir, "keys", "revoke", "chem", alice.KeyID)
	if code != exitInvalid || !strings.Contains(errOut, "already revoked") {
		t.Errorf("second revoke: exit %d, want 1 and 'already revoked':\n%s", code, errOut)
	}
	code, _, errOut = sandboxctl(t, dir, "keys", "revoke", "chem", "aaaaaaaaaaaaaaaa")
	if code != exitInvalid || !strings.Contains(errOut, "no such key") {
		t.Errorf("revoke of an unknown id: exit %d, want 1 and 'no such key':\n%s", code, errOut)
	}
	_, out, _ = sandboxctl(t, dir, "keys", "list", "chem")
	if strings.Contains(out, alice.KeyID) || !strings.Contains(out, bob.KeyID) {
		t.Errorf("keys list shows revoked keys or hides active ones:\n%s", out)
	}
	_, out, _ = sandboxctl(t, dir, "keys", "list", "chem", "--all", "--format", "json")
	var all []issuedJSON
	if err := json.Unmarshal([]byte(out), &all); err != nil || len(all) != 2 {
		t.Fatalf("keys list --all: %v\n%s", err, out)
	}
	for _, k := range all {
		if (k.KeyID == alice.KeyID) != (k.Status == "revoked" && k.Revoked != nil) {
			t.Errorf("keys list --all: %s status %s revoked %v", k.KeyID, k.Status, k.Revoked)
		}
	}

	code, out, errOut = sandboxctl(t, dir, "keys", "rotate", "chem", bob.KeyID, "--format", "json")
	var rotated issuedJSON
	if err := json.Unmarshal([]byte(out), &rotated); code != exitOK || err != nil {
		t.Fatalf("keys rotate: exit %d (%v)\n%s%s", code, err, out, errOut)
	}
	if rotated.KeyID == bob.KeyID || rotated.Key == bob.Key || rotated.Team != "staff" || rotated.Owner != "Bob" || rotated.Replaces != bob.KeyID {
		t.Errorf("rotated %+v, want a new key of staff for Bob replacing %s", rotated, bob.KeyID)
	}
	code, out, _ = sandboxctl(t, dir, "keys", "show", "chem", bob.KeyID)
	if code != exitOK || !strings.Contains(out, "revoked") {
		t.Errorf("the rotated key is not revoked:\n%s", out)
	}
	code, _, errOut = sandboxctl(t, dir, "keys", "rotate", "chem", bob.KeyID)
	if code != exitInvalid || !strings.Contains(errOut, "is revoked") {
		t.Errorf("rotating a revoked key: exit %d, want 1:\n%s", code, errOut)
	}
}

// The key is printed once, in the form asked for.
func TestKeysIssueFormats(t *testing.T) {
	dir, items := keysEmulator(t)
	key := regexp.MustCompile(`sk-lsb-[a-z2-7]{16}_[A-Za-z0-9_-]{43}`)
	for format, want := range map[string]*regexp.Regexp{
		"plain": regexp.MustCompile(`^` + key.String() + `\n$`),
		"env":   regexp.MustCompile(`^export OPENAI_API_KEY=` + key.String() + `\n$`),
		"text":  regexp.MustCompile(`(?s)^key id:  [a-z2-7]{16}\nteam:    staff\nowner:   "Carol"\n.*\nexport OPENAI_API_KEY=` + key.String() + `\n$`),
	} {
		code, out, errOut := sandboxctl(t, dir, "keys", "issue", "chem", "--team", "staff", "--owner", "Carol", "--format", format)
		if code != exitOK || !want.MatchString(out) {
			t.Errorf("--format %s: exit %d, output does not match %s:\n%s%s", format, code, want, out, errOut)
		}
	}
	if n := len(items()); n != 3 {
		t.Errorf("%d items after three issues", n)
	}
}

// What the registry would refuse or the stack does not allow is refused before anything is
// written: an undeclared team, a lifetime beyond the team's, an expiry in the past, a bad
// owner label, a malformed key id.
func TestKeysIssueRefusals(t *testing.T) {
	dir, items := keysEmulator(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"issue", "chem", "--team", "student", "--owner", "x"}, `declares no team "student" (teams: staff, students)`},
		{[]string{"issue", "chem", "--team", "students", "--owner", "x", "--expires", "121d"}, "beyond team students's maxKeyLifetimeDays 120"},
		{[]string{"issue", "chem", "--team", "students", "--owner", "x", "--expires", "2020-01-01"}, "is not in the future"},
		{[]string{"issue", "chem", "--team", "students", "--owner", "x", "--expires", "soon"}, "want a duration"},
		{[]string{"issue", "chem", "--team", "students", "--owner", "a\nb"}, "control characters"},
		{[]string{"issue", "chem", "--team", "students"}, "want --team and --owner"},
		{[]string{"issue", "chem", "--team", "students", "--owner", "x", "--format", "yaml"}, "--format must be one of"},
		{[]string{"revoke", "chem", "sk-lsb-whatever"}, "KEYID must be a key id"},
		{[]string{"show", "chem"}, "want STACK KEYID"},
		{[]string{"frobnicate", "chem"}, `unknown keys subcommand "frobnicate"`},
	} {
		code, _, errOut := sandboxctl(t, dir, append([]string{"keys"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("keys %q: exit %d, want 2 and %q:\n%s", tc.args, code, tc.want, errOut)
		}
	}
	if n := len(items()); n != 0 {
		t.Errorf("%d items written by refused commands", n)
	}
}

// Without AWS credentials the command says how to give them (exit 2).
func TestKeysWithoutCredentials(t *testing.T) {
	preflighttest.Isolate(t)
	dir := tempProject(t, map[string]string{"chem": keysStack})
	code, _, errOut := sandboxctl(t, dir, "keys", "list", "chem")
	if code != exitUsage || !strings.Contains(errOut, "no AWS credentials") || !strings.Contains(errOut, "docs/keys.md") {
		t.Errorf("exit %d, want 2 with how to give credentials:\n%s", code, errOut)
	}
}

// --expires reads days, Go durations, dates (to the end of the day, UTC) and RFC 3339.
func TestKeysExpiry(t *testing.T) {
	now := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	team := config.Team{Name: "students", MaxKeyLifetimeDays: 120}
	for in, want := range map[string]time.Time{
		"":                     now.Add(120 * 24 * time.Hour),
		"90d":                  now.Add(90 * 24 * time.Hour),
		"36h":                  now.Add(36 * time.Hour),
		"2027-01-31":           time.Date(2027, 1, 31, 23, 59, 59, 0, time.UTC),
		"2027-01-31T12:00:00Z": time.Date(2027, 1, 31, 12, 0, 0, 0, time.UTC),
		"120d":                 now.Add(120 * 24 * time.Hour),
	} {
		got, err := expiry(in, team, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("expiry(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"121d", "0d", "-1h", "2026-12-03", "2027-06-01", "xd", "tomorrow"} {
		if _, err := expiry(in, team, now); err == nil {
			t.Errorf("expiry(%q) accepted", in)
		}
	}
}

// docs/keys.md shows keys --help as the command prints it.
func TestKeysHelpIsDocumented(t *testing.T) {
	helpIsDocumented(t, "docs/keys.md", "keys")
	code, out, _ := sandboxctl(t, projectRoot(t), "--help")
	if code != exitOK || !strings.Contains(out, "keys SUBCOMMAND STACK") {
		t.Errorf("sandboxctl --help does not list keys:\n%s", out)
	}
}
