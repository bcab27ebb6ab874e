package keys

import (
	"fmt"
	"io"
)

const (
	// masterKeyPrefix is required by LiteLLM: a master_key must start with "sk-".
	masterKeyPrefix = "sk-"
	// masterKeyLength is the number of random characters after the prefix: 48 characters of a
	// 62-letter alphabet carry about 285 bits.
	masterKeyLength   = 48
	masterKeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// generateMasterKey returns "sk-" and masterKeyLength characters drawn uniformly from
// masterKeyAlphabet with bytes from r (crypto/rand.Reader outside tests).
func generateMasterKey(r io.Reader) (string, error) {
	// Rejection sampling: bytes at or above the largest multiple of the alphabet size are
	// dropped, so that every character is equally likely (a plain modulo would favour the first
	// 256 % 62 letters).
	limit := byte(256 - 256%len(masterKeyAlphabet))
	out := make([]byte, 0, len(masterKeyPrefix)+masterKeyLength)
	out = append(out, masterKeyPrefix...)
	buf := make([]byte, masterKeyLength)
	for len(out) < cap(out) {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("read random bytes: %w", err)
		}
		for _, b := range buf {
			if b < limit && len(out) < cap(out) {
				out = append(out, masterKeyAlphabet[int(b)%len(masterKeyAlphabet)])
			}
		}
	}
	return string(out), nil
}
