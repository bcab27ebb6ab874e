package keyregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/atomicfile"
)

// LocalStoreFile is the name of a local run's key store in its state directory.
const LocalStoreFile = "keys.json"

// FileStore is the key registry of a local run (`sandboxctl local`): the records the DynamoDB
// registry stores, under the same attribute names and with times in Unix seconds, in one JSON
// file ({"keys": {KEYID: record}}) readable by its owner only. Every change replaces the file
// whole (atomicfile), so the gateway's custom-auth module, which reads it on a cache miss,
// never sees half of it; and every change is made under an exclusive lock on a file beside
// it, so two commands issuing at once never lose each other's record. Records are dropped
// PurgeAfter past their expiry, as the table's time to live drops them.
type FileStore struct {
	path string
}

// fileMode is the store's mode: its owner (the user running the local run) only. Owner labels
// can be personal data.
const fileMode = 0o600

// storeFile is the store's content.
type storeFile struct {
	Keys map[string]fileRecord `json:"keys"`
}

// fileRecord is one record as the file holds it: the table's attributes, by their names
// (TestFileRecordUsesTheTableAttributes keeps the tags equal to the Attr constants).
type fileRecord struct {
	KeyID    string `json:"keyId"`
	Hash     string `json:"keyHash"`
	Team     string `json:"team"`
	Owner    string `json:"owner"`
	Created  int64  `json:"createdAt"`
	Expires  int64  `json:"expiresAt"`
	Purge    int64  `json:"purgeAt"`
	Revoked  *int64 `json:"revokedAt,omitempty"`
	Replaces string `json:"replaces,omitempty"`
}

func toFile(r Record) fileRecord {
	f := fileRecord{KeyID: r.KeyID, Hash: r.Hash, Team: r.Team, Owner: r.Owner, Created: r.Created.Unix(),
		Expires: r.Expires.Unix(), Purge: r.Expires.Add(PurgeAfter).Unix(), Replaces: r.Replaces}
	if r.Revoked != nil {
		at := r.Revoked.Unix()
		f.Revoked = &at
	}
	return f
}

func (f fileRecord) record() Record {
	r := Record{KeyID: f.KeyID, Hash: f.Hash, Team: f.Team, Owner: f.Owner, Created: time.Unix(f.Created, 0).UTC(),
		Expires: time.Unix(f.Expires, 0).UTC(), Replaces: f.Replaces}
	if f.Revoked != nil {
		at := time.Unix(*f.Revoked, 0).UTC()
		r.Revoked = &at
	}
	return r
}

// CreateFileStore returns the store in path, writing an empty one when there is none (a
// local run's first start).
func CreateFileStore(path string) (*FileStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("key store: %w", err)
	}
	s := &FileStore{path: path}
	err := s.change(func(*storeFile) error { return nil })
	return s, err
}

// OpenFileStore returns the store in path, which must exist: the keys commands open the store
// of a local run that was started.
func OpenFileStore(path string) (*FileStore, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("key store %s: %w", path, err)
	}
	return &FileStore{path: path}, nil
}

// Path is the store's file.
func (s *FileStore) Path() string { return s.path }

// Issue is Registry.Issue on the file.
func (s *FileStore) Issue(_ context.Context, team, owner string, now, expires time.Time, replaces string) (Issued, error) {
	issued, err := newIssued(team, owner, now, expires, replaces)
	if err != nil {
		return Issued{}, err
	}
	id := issued.Record.KeyID
	err = s.change(func(f *storeFile) error {
		if _, taken := f.Keys[id]; taken {
			return fmt.Errorf("store key %s in %s: the id is taken", id, s.path)
		}
		f.Keys[id] = toFile(issued.Record)
		purge(f, now)
		return nil
	})
	if err != nil {
		return Issued{}, err
	}
	return issued, nil
}

// Get is Registry.Get on the file.
func (s *FileStore) Get(_ context.Context, id string) (Record, error) {
	f, err := s.read()
	if err != nil {
		return Record{}, err
	}
	r, ok := f.Keys[id]
	if !ok {
		return Record{}, fmt.Errorf("key %s: %w", id, ErrNotFound)
	}
	return r.record(), nil
}

// Revoke is Registry.Revoke on the file.
func (s *FileStore) Revoke(_ context.Context, id string, now time.Time) error {
	return s.change(func(f *storeFile) error {
		r, ok := f.Keys[id]
		switch {
		case !ok:
			return fmt.Errorf("key %s: %w", id, ErrNotFound)
		case r.Revoked != nil:
			return fmt.Errorf("key %s: %w", id, ErrRevoked)
		}
		at := now.UTC().Truncate(time.Second).Unix()
		r.Revoked = &at
		f.Keys[id] = r
		return nil
	})
}

// List is Registry.List on the file.
func (s *FileStore) List(_ context.Context, team string) ([]Record, error) {
	f, err := s.read()
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, r := range f.Keys {
		if team == "" || r.Team == team {
			out = append(out, r.record())
		}
	}
	SortRecords(out)
	return out, nil
}

// purge drops the records whose purge time has come, as the table's time to live does.
func purge(f *storeFile, now time.Time) {
	for id, r := range f.Keys {
		if r.Purge <= now.Unix() {
			delete(f.Keys, id)
		}
	}
}

// read reads the store; a missing file is an error (CreateFileStore makes it).
func (s *FileStore) read() (*storeFile, error) {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return nil, fmt.Errorf("read key store: %w", err)
	}
	return decodeStore(s.path, data)
}

func decodeStore(path string, data []byte) (*storeFile, error) {
	f := &storeFile{}
	if err := json.Unmarshal(data, f); err != nil {
		return nil, fmt.Errorf("key store %s: %w", path, err)
	}
	if f.Keys == nil {
		f.Keys = map[string]fileRecord{}
	}
	for id, r := range f.Keys {
		if r.KeyID != id || r.Hash == "" || r.Team == "" || r.Owner == "" || r.Created == 0 || r.Expires == 0 {
			return nil, fmt.Errorf("key store %s: record %q is malformed (want keyId equal to its name, keyHash, team, owner, createdAt and expiresAt)", path, id)
		}
	}
	return f, nil
}

// change applies edit to the store under the lock and writes the result whole, owner-only.
// A missing store starts empty.
func (s *FileStore) change(edit func(*storeFile) error) error {
	lock, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("lock key store: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock key store %s: %w", s.path, err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	f := &storeFile{Keys: map[string]fileRecord{}}
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read key store: %w", err)
	default:
		if f, err = decodeStore(s.path, data); err != nil {
			return err
		}
	}
	if err := edit(f); err != nil {
		return err
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.path, append(out, '\n'), fileMode)
}
