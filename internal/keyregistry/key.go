// Package keyregistry is the department's key registry: one record per person's API key in a
// DynamoDB table of the department's account, holding the key's id, a hash of the key, its
// team, its owner label, when it was issued and until when it is valid, and when it was
// revoked. The key itself is never stored: it is printed once when issued.
//
// Teams are code (llm-sandbox:teams in the stack file); keys are data, written with the
// operator's AWS credentials by `sandboxctl keys` and read by the gateway.
package keyregistry

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// TableName is the registry table of a department.
func TableName(department string) string { return "llm-sandbox-" + department + "-keys" }

// A key reads "sk-lsb-<id>_<secret>": the prefix says whose key it is (and "sk-" is the shape
// OpenAI clients and secret scanners expect), the id names the registry record, and the secret
// is 32 random bytes. The id is part of the key so that the gateway finds the record with one
// GetItem and the operator can revoke a key by its id without ever seeing the key again.
const (
	// KeyPrefix starts every key.
	KeyPrefix = "sk-lsb-"
	// idBytes random bytes make an id: 80 bits, so that ids of a department never collide
	// (a collision would only fail the conditional write of the issue; nothing is lost).
	idBytes = 10
	// IDLength is the id's length: idBytes in lowercase base32 without padding.
	IDLength = 16
	// secretBytes random bytes make the secret: 256 bits.
	secretBytes = 32
	// secretLength is the secret's length: secretBytes in base64url without padding.
	secretLength = 43
	// KeyLength is a whole key's length.
	KeyLength = len(KeyPrefix) + IDLength + 1 + secretLength
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewKey draws a key and its id from r (crypto/rand.Reader outside tests).
func NewKey(r io.Reader) (key, id string, err error) {
	buf := make([]byte, idBytes+secretBytes)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", "", fmt.Errorf("read random bytes: %w", err)
	}
	id = idEncoding.EncodeToString(buf[:idBytes])
	key = KeyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(buf[idBytes:])
	return key, id, nil
}

// NewRandomKey is NewKey with crypto/rand.
func NewRandomKey() (key, id string, err error) { return NewKey(rand.Reader) }

// KeyID returns the id a key names, or false when the string is not shaped like a key. It
// does not say the key is valid: only the registry's hash does.
func KeyID(key string) (string, bool) {
	if len(key) != KeyLength || !strings.HasPrefix(key, KeyPrefix) || key[len(KeyPrefix)+IDLength] != '_' {
		return "", false
	}
	id := key[len(KeyPrefix) : len(KeyPrefix)+IDLength]
	if !ValidID(id) {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(key[len(KeyPrefix)+IDLength+1:]); err != nil {
		return "", false
	}
	return id, true
}

// ValidID reports whether id is shaped like a key id.
func ValidID(id string) bool {
	if len(id) != IDLength {
		return false
	}
	_, err := idEncoding.DecodeString(id)
	return err == nil
}

// Hash is what the registry stores of a key: the lowercase hex SHA-256 of the whole key.
//
// A plain, unsalted SHA-256 is enough because the key is 256 random bits, not a password: a
// slow or salted hash (bcrypt, scrypt, Argon2) defends a low-entropy secret against guessing,
// and guessing 2^256 values is out of reach at any hash speed, so it would only add its cost to
// every request the gateway checks. An HMAC with a server-side pepper would protect only
// against someone who can read the table and also brute-force the key, which the key's entropy
// already rules out.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Matches reports whether key hashes to hash, in constant time.
func Matches(key, hash string) bool {
	want := Hash(key)
	return subtle.ConstantTimeCompare([]byte(want), []byte(hash)) == 1
}
