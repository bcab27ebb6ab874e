package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
)

// The keys commands work on a local run's key store with --state (no AWS credentials): issue
// stores only the hash in the owner-only file, list and show read it, revoke and rotate
// change it, with the registry's answers; a state directory without a store is a usage error.
func TestLocalKeysIssueListShowRevokeRotate(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_PROFILE", "no-such-profile")
	dir := tempProject(t, map[string]string{"chem": keysStack})
	state := t.TempDir()
	if code, _, errOut := sandboxctl(t, dir, "keys", "list", "chem", "--state", state); code != exitUsage || !strings.Contains(errOut, "no local run of chem") {
		t.Errorf("keys list without a store: exit %d, %s", code, errOut)
	}
	if _, err := keyregistry.CreateFileStore(filepath.Join(state, keyregistry.LocalStoreFile)); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := sandboxctl(t, dir, "keys", "issue", "chem", "--state", state, "--team", "students", "--owner", "alice", "--format", "json")
	var alice issuedJSON
	if err := json.Unmarshal([]byte(out), &alice); code != exitOK || err != nil || alice.Team != "students" {
		t.Fatalf("keys issue --state: exit %d (%v)\n%s%s", code, err, out, errOut)
	}
	data, _ := os.ReadFile(filepath.Join(state, keyregistry.LocalStoreFile))
	if strings.Contains(string(data), alice.Key) || !strings.Contains(string(data), keyregistry.Hash(alice.Key)) {
		t.Errorf("the store holds the key or not its hash:\n%s", data)
	}
	if code, out, _ := sandboxctl(t, dir, "keys", "list", "chem", "--state", state); code != exitOK || !strings.Contains(out, alice.KeyID) {
		t.Errorf("keys list --state: exit %d\n%s", code, out)
	}
	code, out, errOut = sandboxctl(t, dir, "keys", "rotate", "chem", alice.KeyID, "--state", state, "--format", "json")
	var rotated issuedJSON
	if err := json.Unmarshal([]byte(out), &rotated); code != exitOK || err != nil || rotated.Replaces != alice.KeyID {
		t.Fatalf("keys rotate --state: exit %d (%v)\n%s%s", code, err, out, errOut)
	}
	if code, out, _ := sandboxctl(t, dir, "keys", "show", "chem", alice.KeyID, "--state", state); code != exitOK || !strings.Contains(out, "revoked") {
		t.Errorf("keys show of the rotated key: exit %d\n%s", code, out)
	}
	if code, out, _ := sandboxctl(t, dir, "keys", "revoke", "chem", rotated.KeyID, "--state", state); code != exitOK || !strings.HasPrefix(out, "revoked "+rotated.KeyID) {
		t.Errorf("keys revoke --state: exit %d\n%s", code, out)
	}
	if code, _, errOut := sandboxctl(t, dir, "keys", "revoke", "chem", rotated.KeyID, "--state", state); code != exitInvalid || !strings.Contains(errOut, "already revoked") {
		t.Errorf("second revoke --state: exit %d\n%s", code, errOut)
	}
}
