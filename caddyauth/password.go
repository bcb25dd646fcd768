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
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/semaphore"
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

// Defaults of the hashing queue.
const (
	// DefaultHashQueuePerSlot is how many callers may wait per hashing
	// slot. One argon2id hash with DefaultArgon2Params takes about 80 to
	// 150 ms on current x86 machines with every slot busy, and up to
	// twice that in a process that has just started (its heap is still
	// growing), so a full queue of this depth is cleared within
	// DefaultHashWait even then (32 × 300 ms = 9.6 s): a burst the queue
	// holds is served, not refused — 64 clients registering at once on
	// two cores all get their account — and a flood beyond it is refused
	// at once instead of after a wait that would fail anyway. A waiter
	// costs a goroutine and a connection, not hashing memory.
	DefaultHashQueuePerSlot = 32
	// DefaultHashWait is the longest a caller waits for a slot: long
	// enough to clear a full queue (above), which the hasher's estimate of
	// the wait must also believe, or it refuses the queue's tail at once;
	// short enough that a person at a login form gets a 503 and
	// Retry-After to act on rather than a hang. It is only reached under a
	// burst that fills the queue.
	DefaultHashWait = 10 * time.Second
)

// HasherConfig is the cost of new hashes and the bound on the work and
// memory that hashing may take at once. The zero value is production.
type HasherConfig struct {
	// Params are the argon2id cost of new hashes. Zero: DefaultArgon2Params.
	Params Argon2Params
	// Concurrency is how many hashes run at once. 0 or less: GOMAXPROCS
	// (the CPUs this process may use).
	Concurrency int
	// Queue is how many callers may wait for a slot; the next one is
	// refused at once. 0 or less: DefaultHashQueuePerSlot × Concurrency.
	Queue int
	// Wait is how long a caller waits for a slot before it is refused.
	// 0 or less: DefaultHashWait.
	Wait time.Duration
}

// WithDefaults returns c with its zero fields set to their defaults, as
// NewHasher uses it.
func (c HasherConfig) WithDefaults() HasherConfig {
	if c.Params == (Argon2Params{}) {
		c.Params = DefaultArgon2Params
	}
	if c.Concurrency <= 0 {
		c.Concurrency = runtime.GOMAXPROCS(0)
	}
	if c.Queue <= 0 {
		c.Queue = DefaultHashQueuePerSlot * c.Concurrency
	}
	if c.Wait <= 0 {
		c.Wait = DefaultHashWait
	}
	return c
}

// Validate reports parameters that RFC 9106 forbids or that Verify would
// refuse to read back (so that no hash made here is unreadable here).
func (p Argon2Params) Validate() error {
	switch {
	case p.Threads < 1:
		return errors.New("argon2id threads must be at least 1")
	case p.Time < 1 || p.Time > maxArgon2Time:
		return fmt.Errorf("argon2id time %d is out of range (1 to %d)", p.Time, maxArgon2Time)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgon2Memory:
		return fmt.Errorf("argon2id memory %d KiB is out of range (8 × threads to %d KiB)", p.Memory, maxArgon2Memory)
	}
	return nil
}

// Hasher hashes passwords with argon2id and verifies argon2id and bcrypt
// hashes, behind a bounded queue.
//
// Memory is the resource to protect: each argon2id run allocates its m
// KiB afresh. The hasher has Concurrency slots of Params.Memory each; a
// hash takes one slot, or as many as its memory needs when a stored hash
// has a larger m (at most all of them: such a hash runs alone). So the
// memory held by running hashes stays within MemoryBound, whatever is
// stored. Callers that find no free slot wait in a queue of at most Queue
// places, first come first served, for at most Wait; a caller that finds
// the queue full, or waits in vain, gets a *RetryError with Busy set (503
// with Retry-After), never an unbounded pile-up of allocations.
type Hasher struct {
	cfg     HasherConfig
	rand    io.Reader
	slots   *semaphore.Weighted
	waiting atomic.Int64
	// hashTime is a moving average of one hash's duration, in
	// nanoseconds (0 until the first): with it a caller that the slots
	// could not serve within Wait is refused at once, rather than after
	// waiting in vain, so the queue's real depth follows the machine.
	hashTime atomic.Int64
	// dummy is what VerifyDummy verifies against: the current parameters,
	// a zero salt and a zero key. No password is known to hash to it, and
	// it does not matter: its only use is to cost what a real
	// verification costs. It needs no hashing to make, so that making it
	// neither waits in the queue nor can fail under load.
	dummy string
}

// NewHasher returns a hasher for cfg (zero fields take their defaults),
// reading salts from rand. It refuses parameters that Argon2Params.Validate
// refuses.
func NewHasher(cfg HasherConfig, rand io.Reader) (*Hasher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Params.Validate(); err != nil {
		return nil, err
	}
	return &Hasher{
		cfg:   cfg,
		rand:  rand,
		slots: semaphore.NewWeighted(int64(cfg.Concurrency)),
		dummy: encodeArgon2(cfg.Params, make([]byte, argon2SaltLength), make([]byte, argon2KeyLength)),
	}, nil
}

// Config returns the hasher's configuration, defaults filled in.
func (h *Hasher) Config() HasherConfig { return h.cfg }

// MemoryBound is the most memory, in bytes, that the hashes running at
// once may hold: Concurrency × Params.Memory. The one exception is a
// stored hash whose own m is larger than that: it runs alone, with its m
// (at most 1 GiB, the most Verify reads). The Go runtime keeps freed
// memory for a while, so the process's resident size may exceed this;
// the README gives measured figures.
func (h *Hasher) MemoryBound() uint64 {
	return uint64(h.cfg.Concurrency) * uint64(h.cfg.Params.Memory) * 1024
}

// slotsFor is the number of slots a hash of memory KiB takes: enough
// slots of Params.Memory each to hold it, at least one, at most all.
func (h *Hasher) slotsFor(memory uint32) int64 {
	n := (int64(memory) + int64(h.cfg.Params.Memory) - 1) / int64(h.cfg.Params.Memory)
	return min(max(n, 1), int64(h.cfg.Concurrency))
}

// acquire takes n slots. With none free it waits in the queue, if there
// is a place, until the slots are free, Wait passes (a busy RetryError)
// or ctx ends (ctx's error). A caller that stops waiting leaves the queue
// at once, so a client that hangs up frees its place.
func (h *Hasher) acquire(ctx context.Context, n int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting to hash: %w", err)
	}
	// TryAcquire fails while anyone is queued, so a newcomer never
	// overtakes a waiter.
	if h.slots.TryAcquire(n) {
		return nil
	}
	if pos := h.waiting.Add(1); pos > int64(h.cfg.Queue) || h.servedTooLate(pos) {
		h.waiting.Add(-1)
		return h.busy()
	}
	defer h.waiting.Add(-1)
	wctx, cancel := context.WithTimeout(ctx, h.cfg.Wait)
	defer cancel()
	if err := h.slots.Acquire(wctx, n); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("waiting to hash: %w", ctx.Err())
		}
		return h.busy()
	}
	return nil
}

// servedTooLate reports whether the caller at place pos of the queue
// would likely still be waiting at Wait: the slots serve the queue
// Concurrency at a time, each round taking about one hash.
func (h *Hasher) servedTooLate(pos int64) bool {
	avg := h.hashTime.Load()
	if avg == 0 {
		return false
	}
	rounds := (pos + int64(h.cfg.Concurrency) - 1) / int64(h.cfg.Concurrency)
	return time.Duration(rounds*avg) > h.cfg.Wait
}

// observe adds the duration of one hash to the moving average (weight
// 1/8, so a change of load shows within a few dozen hashes).
func (h *Hasher) observe(d time.Duration) {
	for {
		old := h.hashTime.Load()
		avg := int64(d)
		if old != 0 {
			avg = old + (int64(d)-old)/8
		}
		if h.hashTime.CompareAndSwap(old, avg) {
			return
		}
	}
}

// busy is the refusal of a caller that found no slot in time. Retry-After
// is the wait: the queue is sized to drain in about that long.
func (h *Hasher) busy() error { return &RetryError{Busy: true, RetryAfter: h.cfg.Wait} }

// Hash returns the PHC string of an argon2id hash of password.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argon2SaltLength)
	if _, err := io.ReadFull(h.rand, salt); err != nil {
		return "", fmt.Errorf("reading salt: %w", err)
	}
	if err := h.acquire(ctx, 1); err != nil {
		return "", err
	}
	defer h.slots.Release(1)
	p := h.cfg.Params
	start := time.Now()
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, argon2KeyLength)
	h.observe(time.Since(start))
	return encodeArgon2(p, salt, key), nil
}

// Verify reports whether password matches the stored hash, and whether
// the hash should be replaced (bcrypt, or argon2id with other parameters).
// An unrecognised or malformed hash never matches, and costs nothing. The
// only errors are those of the queue: a *RetryError, or ctx's error.
func (h *Hasher) Verify(ctx context.Context, password, hash string) (ok, rehash bool, err error) {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		p, salt, key, perr := decodeArgon2(hash)
		if perr != nil {
			return false, false, nil
		}
		n := h.slotsFor(p.Memory)
		if err := h.acquire(ctx, n); err != nil {
			return false, false, err
		}
		defer h.slots.Release(n)
		start := time.Now()
		got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
		if p == h.cfg.Params {
			// Only hashes of the current cost say how fast the queue moves.
			h.observe(time.Since(start))
		}
		// Constant-time, so the comparison does not tell an attacker how
		// many leading bytes of a guess were right.
		ok = subtle.ConstantTimeCompare(got, key) == 1
		return ok, ok && p != h.cfg.Params, nil
	case isBcrypt(hash):
		// bcrypt compares in constant time itself. Hashes made by
		// fastapi-users ≤ v12 (passlib) are bcrypt; they are upgraded on
		// a successful login. bcrypt needs 4 KiB: one slot is plenty.
		if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost > maxBcryptCost {
			return false, false, nil
		}
		if err := h.acquire(ctx, 1); err != nil {
			return false, false, err
		}
		defer h.slots.Release(1)
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		return err == nil, err == nil, nil
	default:
		return false, false, nil
	}
}

// VerifyDummy spends the time of one verification against a hash no
// password matches. Login calls it for unknown users so that "no such
// account" takes as long as "wrong password" and the timing does not
// reveal which emails have accounts. It waits in the same queue as a real
// verification and fails as one does when the server is busy, so a flood
// of unknown emails neither skips the bound nor answers faster.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
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
