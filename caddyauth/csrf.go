package caddyauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
)

// NewCSRFSecret returns a random value for a browser's CSRF cookie.
func (s *Service) NewCSRFSecret() (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// CSRFToken is the token that forms carry for a browser whose CSRF cookie
// holds secret: an HMAC of it under a key derived from the installation
// secret. Another site can make a browser send the cookie, but can read
// neither it nor the token, nor compute one without the key.
func (s *Service) CSRFToken(secret string) string {
	mac := hmac.New(sha256.New, s.keys.csrf)
	mac.Write([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// CheckCSRF reports whether token is the one for secret. The comparison is
// constant-time, so that timing does not reveal how much of a guess was
// right.
func (s *Service) CheckCSRF(secret, token string) bool {
	if secret == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(s.CSRFToken(secret)), []byte(token))
}

// VerifyOnRegister reports whether registering mails a verification link.
func (s *Service) VerifyOnRegister() bool { return s.verifyOnRegister }
