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
	return generateToken(r, masterKeyPrefix, masterKeyLength)
}

// cacheTokenLength is the length of the rate-limit cache's AUTH token: ElastiCache takes 16 to
// 128 printable characters (Amazon ElastiCache User Guide, "Authenticating with the Valkey and
// Redis OSS AUTH command"); 64 letters and digits carry about 381 bits, and the node agent
// writes them unquoted into its environment file.
const cacheTokenLength = 64

// generateCacheToken returns cacheTokenLength characters drawn uniformly from
// masterKeyAlphabet with bytes from r.
func generateCacheToken(r io.Reader) (string, error) {
	return generateToken(r, "", cacheTokenLength)
}

// generateToken returns prefix and n characters drawn uniformly from masterKeyAlphabet with
// bytes from r.
func generateToken(r io.Reader, prefix string, n int) (string, error) {
	// Rejection sampling: bytes at or above the largest multiple of the alphabet size are
	// dropped, so that every character is equally likely (a plain modulo would favour the first
	// 256 % 62 letters).
	limit := byte(256 - 256%len(masterKeyAlphabet))
	out := make([]byte, 0, len(prefix)+n)
	out = append(out, prefix...)
	buf := make([]byte, n)
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
