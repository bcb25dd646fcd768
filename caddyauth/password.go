package caddyauth

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2Params are the argon2id cost parameters (RFC 9106).
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// DefaultArgon2Params are those of argon2-cffi ≥ 21.2 (RFC 9106's
// low-memory recommendation), which fastapi-users uses through pwdlib, so
// hashes move between the two without a re-hash.
var DefaultArgon2Params = Argon2Params{Memory: 64 * 1024, Time: 3, Threads: 4}

// Limits on parameters read from a stored hash, so that a tampered or
// imported hash cannot make one verification allocate gigabytes.
const (
	maxArgon2Memory  = 1 << 20 // KiB: 1 GiB
	maxArgon2Time    = 64
	argon2SaltLength = 16
	argon2KeyLength  = 32
	// Each bcrypt cost step doubles the work: a stored "$2b$31$…" would
	// hold a hashing slot for more than a day. 16 is well above what
	// passlib and pwdlib write (12).
	maxBcryptCost = 16
)

// Hasher hashes passwords with argon2id and verifies argon2id and bcrypt
// hashes. At most Concurrency hashes run at once: each argon2id run holds
// Params.Memory KiB, so the bound on memory is Concurrency × Memory.
type Hasher struct {
	params Argon2Params
	rand   io.Reader
	slots  chan struct{}

	dummyOnce sync.Once
	dummy     string
}

// NewHasher returns a hasher with the given parameters, reading salts from
// rand. concurrency ≤ 0 means one hash per CPU.
func NewHasher(params Argon2Params, concurrency int, rand io.Reader) *Hasher {
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	return &Hasher{params: params, rand: rand, slots: make(chan struct{}, concurrency)}
}

// acquire waits for a hashing slot or for ctx to end.
func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting to hash: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.slots }

// Hash returns the PHC string of an argon2id hash of password.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argon2SaltLength)
	if _, err := io.ReadFull(h.rand, salt); err != nil {
		return "", fmt.Errorf("reading salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, argon2KeyLength)
	return encodeArgon2(p, salt, key), nil
}

// Verify reports whether password matches the stored hash, and whether
// the hash should be replaced (bcrypt, or argon2id with other parameters).
// An unrecognised or malformed hash never matches.
func (h *Hasher) Verify(ctx context.Context, password, hash string) (ok, rehash bool, err error) {
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	defer h.release()
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		p, salt, key, perr := decodeArgon2(hash)
		if perr != nil {
			return false, false, nil
		}
		got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
		// Constant-time, so the comparison does not tell an attacker how
		// many leading bytes of a guess were right.
		ok = subtle.ConstantTimeCompare(got, key) == 1
		return ok, ok && p != h.params, nil
	case isBcrypt(hash):
		// bcrypt compares in constant time itself. Hashes made by
		// fastapi-users ≤ v12 (passlib) are bcrypt; they are upgraded on
		// a successful login.
		if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost > maxBcryptCost {
			return false, false, nil
		}
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		return err == nil, err == nil, nil
	default:
		return false, false, nil
	}
}

// VerifyDummy spends the time of one verification against a hash no
// password matches. Login calls it for unknown users so that "no such
// account" takes as long as "wrong password" and the timing does not
// reveal which emails have accounts.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	h.dummyOnce.Do(func() {
		// A hash of random bytes: no typed password can match it.
		var b [32]byte
		_, _ = io.ReadFull(h.rand, b[:])
		h.dummy, _ = h.Hash(context.Background(), base64.RawStdEncoding.EncodeToString(b[:]))
	})
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}

func isBcrypt(hash string) bool {
	for _, prefix := range []string{"$2a$", "$2b$", "$2x$", "$2y$"} {
		if strings.HasPrefix(hash, prefix) {
			return true
		}
	}
	return false
}

// encodeArgon2 writes $argon2id$v=19$m=…,t=…,p=…$salt$key with unpadded
// standard base64, the format of argon2-cffi and the reference library.
func encodeArgon2(p Argon2Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

var errBadHash = errors.New("malformed argon2id hash")

func decodeArgon2(hash string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	parts := strings.Split(hash, "$")
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, key
	if len(parts) != 6 {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &threads); err != nil {
		return p, nil, nil, errBadHash
	}
	if p.Memory == 0 || p.Memory > maxArgon2Memory || p.Time == 0 || p.Time > maxArgon2Time || threads == 0 || threads > 255 {
		return p, nil, nil, errBadHash
	}
	p.Threads = uint8(threads)
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errBadHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}
