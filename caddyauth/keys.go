package caddyauth

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// MinSecretLength is the shortest configured secret accepted, in bytes.
const MinSecretLength = 32

// keys are the per-purpose keys derived from the installation secret.
// Each purpose gets its own key, so that a token made for one purpose can
// never be replayed as another, and a weakness in one use does not expose
// the others.
type keys struct {
	jwt         []byte // HMAC-SHA256 of access tokens
	cookieHash  []byte // securecookie authentication
	cookieBlock []byte // securecookie encryption (AES-256)
	csrf        []byte // HMAC binding a form's CSRF token to its cookie
	outbox      []byte // AES-256-GCM of queued mail bodies, which carry tokens
	limits      []byte // HMAC of the keys of the brute-force counters
}

func deriveKeys(secret []byte) (keys, error) {
	if len(secret) < MinSecretLength {
		return keys{}, fmt.Errorf("secret must be at least %d bytes, got %d", MinSecretLength, len(secret))
	}
	derive := func(purpose string) ([]byte, error) {
		k, err := hkdf.Key(sha256.New, secret, nil, "gatehouse/v1/"+purpose, 32)
		if err != nil {
			return nil, fmt.Errorf("deriving %s key: %w", purpose, err)
		}
		return k, nil
	}
	var k keys
	var err error
	if k.jwt, err = derive("jwt"); err != nil {
		return k, err
	}
	if k.cookieHash, err = derive("cookie-hash"); err != nil {
		return k, err
	}
	if k.cookieBlock, err = derive("cookie-block"); err != nil {
		return k, err
	}
	if k.csrf, err = derive("csrf"); err != nil {
		return k, err
	}
	if k.outbox, err = derive("outbox"); err != nil {
		return k, err
	}
	if k.limits, err = derive("limits"); err != nil {
		return k, err
	}
	return k, nil
}

// id is a fingerprint of the keys: equal for equal secrets, and no help
// in finding them.
func (k keys) id() uint64 {
	sum := sha256.Sum256(append(append(append([]byte("gatehouse/v1/key-id"), k.jwt...), k.cookieHash...), k.cookieBlock...))
	return binary.BigEndian.Uint64(sum[:8])
}
