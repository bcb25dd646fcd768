package caddyauth

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// sealedPrefix marks a mail body sealed by sealBody.
const sealedPrefix = "gh1:"

// sealBody encrypts a mail body for the outbox. A queued mail carries a
// live token in its link, and the store keeps tokens only as digests: the
// outbox must not be the one place where a copy of the database (or a
// backup) holds working reset links. Only this installation's secret
// opens it (AES-256-GCM, key derived for this purpose alone).
func (s *Service) sealBody(plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	aead, err := s.outboxAEAD()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, []byte(plain), []byte(sealedPrefix))
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(sealed), nil
}

// OpenMailBody decrypts a body sealed for the outbox; a body that is not
// sealed is returned as it is. The mail sender calls it just before
// delivery.
func (s *Service) OpenMailBody(body string) (string, error) {
	rest, sealed := strings.CutPrefix(body, sealedPrefix)
	if !sealed {
		return body, nil
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("opening mail body: %w", err)
	}
	aead, err := s.outboxAEAD()
	if err != nil {
		return "", err
	}
	if len(raw) < aead.NonceSize() {
		return "", errors.New("opening mail body: too short")
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(sealedPrefix))
	if err != nil {
		return "", fmt.Errorf("opening mail body (was the secret changed?): %w", err)
	}
	return string(plain), nil
}

func (s *Service) outboxAEAD() (cipher.AEAD, error) {
	block, err := aes.NewCipher(s.keys.outbox)
	if err != nil {
		return nil, fmt.Errorf("outbox cipher: %w", err)
	}
	return cipher.NewGCM(block)
}
