package keyregistry

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The file holds each record under the table's attribute names, so that the gateway's module
// reads both stores with the same names.
func TestFileRecordUsesTheTableAttributes(t *testing.T) {
	var tags []string
	rt := reflect.TypeOf(fileRecord{})
	for i := range rt.NumField() {
		tags = append(tags, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
	}
	want := []string{AttrKeyID, AttrHash, AttrTeam, AttrOwner, AttrCreated, AttrExpires, AttrPurge, AttrRevoked, AttrReplaces}
	slices.Sort(tags)
	slices.Sort(want)
	if !slices.Equal(tags, want) {
		t.Errorf("file record attributes %v, want the table's %v", tags, want)
	}
}

// A local store answers as the table does: issue stores the hash and never the key, in an
// owner-only file; get, list (sorted, by team) and revoke have the table's errors.
func TestFileStoreIssueGetListRevoke(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state", LocalStoreFile)
	s, err := CreateFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	bob, err := s.Issue(ctx, "staff", "bob", now, now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := s.Issue(ctx, "students", "alice", now, now.Add(2*time.Hour), "")
	carol, _ := s.Issue(ctx, "staff", "carol", now, now.Add(time.Hour), bob.Record.KeyID)

	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file: %v, %v; want mode 0600", fi, err)
	}
	data, _ := os.ReadFile(path)
	for _, k := range []Issued{alice, bob, carol} {
		if strings.Contains(string(data), k.Key) || !strings.Contains(string(data), Hash(k.Key)) {
			t.Errorf("the store holds the key %s, or not its hash:\n%s", k.Record.KeyID, data)
		}
	}
	var raw map[string]map[string]map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	rec := raw["keys"][carol.Record.KeyID]
	if rec[AttrReplaces] != bob.Record.KeyID || rec[AttrPurge].(float64) != float64(carol.Record.Expires.Add(PurgeAfter).Unix()) || rec[AttrRevoked] != nil {
		t.Errorf("carol's record %v: want replaces %s, purgeAt PurgeAfter past expiry, no revokedAt", rec, bob.Record.KeyID)
	}

	got, err := s.Get(ctx, alice.Record.KeyID)
	if err != nil || !reflect.DeepEqual(got, alice.Record) {
		t.Errorf("get alice = %+v, %v; want %+v", got, err, alice.Record)
	}
	if _, err := s.Get(ctx, "aaaaaaaaaaaaaaaa"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get of an unknown id: %v, want ErrNotFound", err)
	}
	all, _ := s.List(ctx, "")
	var owners []string
	for _, r := range all {
		owners = append(owners, r.Team+"/"+r.Owner)
	}
	if !slices.Equal(owners, []string{"staff/bob", "staff/carol", "students/alice"}) {
		t.Errorf("list = %v, want sorted by team and owner", owners)
	}
	if staff, _ := s.List(ctx, "staff"); len(staff) != 2 {
		t.Errorf("list staff = %v, want bob and carol", staff)
	}

	if err := s.Revoke(ctx, bob.Record.KeyID, now); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(ctx, bob.Record.KeyID); r.Status(now) != "revoked" || r.Revoked.Unix() != now.Unix() {
		t.Errorf("bob after revoke: %+v", r)
	}
	if err := s.Revoke(ctx, bob.Record.KeyID, now); !errors.Is(err, ErrRevoked) {
		t.Errorf("second revoke: %v, want ErrRevoked", err)
	}
	if err := s.Revoke(ctx, "aaaaaaaaaaaaaaaa", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke of an unknown id: %v, want ErrNotFound", err)
	}

	// A second open sees the same records; a store that was never created is an error.
	again, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := again.Get(ctx, alice.Record.KeyID); err != nil || r.Owner != "alice" {
		t.Errorf("reopened store: %+v, %v", r, err)
	}
	if _, err := OpenFileStore(filepath.Join(t.TempDir(), LocalStoreFile)); err == nil {
		t.Error("opening a store that does not exist succeeded")
	}
}

// Records past their purge time are dropped at the next write, as the table's time to live
// drops them.
func TestFileStorePurgesPastPurgeTime(t *testing.T) {
	ctx := context.Background()
	s, err := CreateFileStore(filepath.Join(t.TempDir(), LocalStoreFile))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old, _ := s.Issue(ctx, "staff", "gone", now.Add(-PurgeAfter-48*time.Hour), now.Add(-PurgeAfter-time.Hour), "")
	kept, _ := s.Issue(ctx, "staff", "kept", now.Add(-48*time.Hour), now.Add(-time.Hour), "")
	if _, err := s.Get(ctx, old.Record.KeyID); err != nil {
		t.Fatalf("a record within its purge time at the write was dropped: %v", err)
	}
	if _, err := s.Issue(ctx, "staff", "new", now, now.Add(time.Hour), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, old.Record.KeyID); !errors.Is(err, ErrNotFound) {
		t.Errorf("a record past its purge time survived the next write: %v", err)
	}
	if r, err := s.Get(ctx, kept.Record.KeyID); err != nil || r.Status(now) != "expired" {
		t.Errorf("an expired record within PurgeAfter: %+v, %v; want kept, expired", r, err)
	}
}

// Commands issuing at once each keep their record: every change is made under the lock.
func TestFileStoreConcurrentIssuesKeepEveryRecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), LocalStoreFile)
	if _, err := CreateFileStore(path); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := OpenFileStore(path)
			if err == nil {
				_, err = s.Issue(ctx, "staff", "someone", time.Now(), time.Now().Add(time.Hour), "")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, _ := OpenFileStore(path)
	if all, err := s.List(ctx, ""); err != nil || len(all) != n {
		t.Errorf("%d records after %d concurrent issues (%v)", len(all), n, err)
	}
}

// A record that does not hold what the gateway checks is refused by name.
func TestFileStoreRefusesAMalformedRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), LocalStoreFile)
	if err := os.WriteFile(path, []byte(`{"keys": {"aaaaaaaaaaaaaaaa": {"keyId": "aaaaaaaaaaaaaaaa", "team": "staff"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := OpenFileStore(path)
	if _, err := s.List(context.Background(), ""); err == nil || !strings.Contains(err.Error(), `record "aaaaaaaaaaaaaaaa" is malformed`) {
		t.Errorf("list of a malformed store: %v", err)
	}
	if _, err := s.Issue(context.Background(), "staff", "x", time.Now(), time.Now().Add(time.Hour), ""); err == nil {
		t.Error("issue into a malformed store succeeded (and would have overwritten it)")
	}
}
