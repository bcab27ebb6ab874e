package keyregistry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestNewKeyShapeAndID(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		key, id, err := NewRandomKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(key) != KeyLength || !strings.HasPrefix(key, KeyPrefix+id+"_") || len(id) != IDLength {
			t.Fatalf("key %q id %q: want %s<%d-char id>_<43-char secret>", key, id, KeyPrefix, IDLength)
		}
		got, ok := KeyID(key)
		if !ok || got != id {
			t.Fatalf("KeyID(%q) = %q, %t; want %q", key, got, ok, id)
		}
		if seen[key] || seen[id] {
			t.Fatalf("repeated key or id %q", key)
		}
		seen[key], seen[id] = true, true
	}
	// The same bytes give the same key: the secret is the bytes after the id's.
	r := bytes.Repeat([]byte{0xff}, idBytes+secretBytes)
	key, id, _ := NewKey(bytes.NewReader(r))
	if id != "7777777777777777" || key != KeyPrefix+id+"_"+strings.Repeat("_", 42)+"8" {
		t.Errorf("NewKey(0xff...) = %q, %q", key, id)
	}
	if _, _, err := NewKey(bytes.NewReader(r[:10])); err == nil {
		t.Error("NewKey accepted too few random bytes")
	}
}

func TestKeyIDRefusesWhatIsNotAKey(t *testing.T) {
	key, _, _ := NewRandomKey()
	for _, bad := range []string{
		"", "sk-AbCdEf", key[:len(key)-1], key + "A", strings.Replace(key, KeyPrefix, "sk-xyz-", 1),
		strings.Replace(key, "_", "-", 1)[:len(KeyPrefix)+IDLength] + "-" + key[len(KeyPrefix)+IDLength+1:],
		KeyPrefix + "ABCDEFGHIJKLMNOP_" + key[len(KeyPrefix)+IDLength+1:],
		key[:len(key)-1] + "=",
	} {
		if id, ok := KeyID(bad); ok {
			t.Errorf("KeyID(%q) = %q, true; want false", bad, id)
		}
	}
}

func TestHashIsSHA256OfTheWholeKey(t *testing.T) {
	key, _, _ := NewRandomKey()
	sum := sha256.Sum256([]byte(key))
	if Hash(key) != hex.EncodeToString(sum[:]) {
		t.Errorf("Hash(%q) = %s", key, Hash(key))
	}
	if !Matches(key, Hash(key)) || Matches(key+"x", Hash(key)) || Matches(key, strings.ToUpper(Hash(key))) || Matches(key, "") {
		t.Error("Matches accepts a wrong key or hash, or refuses the right one")
	}
}

func TestOwnerProblem(t *testing.T) {
	for _, ok := range []string{"a", "alice@example.edu", "Zoë Ng (CHEM 101)", strings.Repeat("x", MaxOwnerLength)} {
		if msg := OwnerProblem(ok); msg != "" {
			t.Errorf("OwnerProblem(%q) = %s", ok, msg)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxOwnerLength+1), "a\nb", "tab\there", "del\x7f"} {
		if OwnerProblem(bad) == "" {
			t.Errorf("OwnerProblem(%q) accepted", bad)
		}
	}
}

func TestRecordStatus(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	revoked := now.Add(-time.Hour)
	for _, tc := range []struct {
		r    Record
		want string
	}{
		{Record{Expires: now.Add(time.Second)}, "active"},
		{Record{Expires: now}, "expired"},
		{Record{Expires: now.Add(time.Hour), Revoked: &revoked}, "revoked"},
	} {
		if got := tc.r.Status(now); got != tc.want {
			t.Errorf("%+v: status %s, want %s", tc.r, got, tc.want)
		}
	}
}

func TestDecodeNamesWhatIsMissing(t *testing.T) {
	item := map[string]types.AttributeValue{
		AttrKeyID:   &types.AttributeValueMemberS{Value: "aaaaaaaaaaaaaaaa"},
		AttrHash:    &types.AttributeValueMemberS{Value: "00"},
		AttrTeam:    &types.AttributeValueMemberS{Value: "staff"},
		AttrCreated: &types.AttributeValueMemberN{Value: "1700000000"},
		AttrExpires: &types.AttributeValueMemberN{Value: "soon"},
	}
	_, err := decode(item)
	if err == nil || !strings.Contains(err.Error(), AttrOwner) || !strings.Contains(err.Error(), AttrExpires) || !strings.Contains(err.Error(), "aaaaaaaaaaaaaaaa") {
		t.Errorf("decode = %v; want the id, owner and expiresAt named", err)
	}
	item[AttrOwner] = &types.AttributeValueMemberS{Value: "Bob"}
	item[AttrExpires] = &types.AttributeValueMemberN{Value: "1800000000"}
	rec, err := decode(item)
	if err != nil || rec.Owner != "Bob" || rec.Expires.Unix() != 1800000000 || rec.Revoked != nil {
		t.Errorf("decode = %+v, %v", rec, err)
	}
}
