package gatehouse

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// PasswordHashConfig is the cost of argon2id and how many hashes may run
// and wait at once: the `password_hash` block of the gatehouse app. The
// memory held by running hashes stays within Concurrency × Memory; the
// README gives the process's resident size measured around that bound.
//
// Changing Memory, Time or Threads takes effect at the next config load:
// new hashes use the new parameters, and a stored hash with other
// parameters is replaced at its user's next successful login.
type PasswordHashConfig struct {
	// Memory of one argon2id hash, in bytes (used in whole KiB, rounded
	// down), from 8 MiB to 1 GiB. Default: 64 MiB (67108864), as
	// argon2-cffi and fastapi-users.
	Memory int64 `json:"memory,omitempty"`

	// argon2id passes over the memory, 1 to 64. Default: 3.
	Time int `json:"time,omitempty"`

	// argon2id lanes (parallelism), 1 to 255. Default: 4.
	Threads int `json:"threads,omitempty"`

	// Hashes running at once. Default: the number of CPUs Go may use
	// (GOMAXPROCS, which follows the container's CPU limit).
	Concurrency int `json:"concurrency,omitempty"`

	// Requests that may wait for a free hashing slot; when it is full, a
	// request is answered 503 with Retry-After at once. Default: 32 ×
	// concurrency, what the slots clear within the default wait.
	Queue int `json:"queue,omitempty"`

	// The longest a request waits for a slot before it is answered 503
	// with Retry-After. Default: 10s.
	Wait caddy.Duration `json:"wait,omitempty"`
}

// Range of password_hash memory, in bytes. The floor is a policy: below
// 8 MiB argon2id loses most of its cost to an attacker with GPUs. The
// ceiling is the most Verify reads from a stored hash, so that every hash
// made here can be read back.
const (
	minHashMemory = 8 << 20
	maxHashMemory = 1 << 30
)

// hasherConfig checks c and returns the hasher configuration it names,
// defaults filled in. A nil c is all defaults.
func (c *PasswordHashConfig) hasherConfig() (caddyauth.HasherConfig, error) {
	p := caddyauth.DefaultArgon2Params
	if c == nil {
		return caddyauth.HasherConfig{Params: p}.WithDefaults(), nil
	}
	if c.Memory != 0 {
		if c.Memory < minHashMemory || c.Memory > maxHashMemory {
			return caddyauth.HasherConfig{}, fmt.Errorf("password_hash: memory %d bytes is out of range (%s to %s)",
				c.Memory, humanize.IBytes(minHashMemory), humanize.IBytes(maxHashMemory))
		}
		p.Memory = uint32(c.Memory / 1024)
	}
	if c.Time != 0 {
		if c.Time < 1 || c.Time > 64 {
			return caddyauth.HasherConfig{}, fmt.Errorf("password_hash: time %d is out of range (1 to 64)", c.Time)
		}
		p.Time = uint32(c.Time)
	}
	if c.Threads != 0 {
		if c.Threads < 1 || c.Threads > 255 {
			return caddyauth.HasherConfig{}, fmt.Errorf("password_hash: threads %d is out of range (1 to 255)", c.Threads)
		}
		p.Threads = uint8(c.Threads)
	}
	switch {
	case c.Concurrency < 0:
		return caddyauth.HasherConfig{}, fmt.Errorf("password_hash: concurrency %d is negative", c.Concurrency)
	case c.Queue < 0:
		return caddyauth.HasherConfig{}, fmt.Errorf("password_hash: queue %d is negative", c.Queue)
	case c.Wait < 0:
		return caddyauth.HasherConfig{}, fmt.Errorf("password_hash: wait %v is negative", time.Duration(c.Wait))
	}
	if err := p.Validate(); err != nil {
		return caddyauth.HasherConfig{}, fmt.Errorf("password_hash: %w", err)
	}
	return caddyauth.HasherConfig{Params: p, Concurrency: c.Concurrency, Queue: c.Queue, Wait: time.Duration(c.Wait)}.WithDefaults(), nil
}

// newHasher returns a hasher for c (nil: the defaults), unshared: the
// `caddy gatehouse` command hashes with the server's parameters, in its
// own process.
func newHasher(c *PasswordHashConfig) (*caddyauth.Hasher, error) {
	cfg, err := c.hasherConfig()
	if err != nil {
		return nil, err
	}
	return caddyauth.NewHasher(cfg, rand.Reader)
}

// hasherPool shares one hasher, and so one set of hashing slots and one
// queue, between the configs of this process that hash alike. A reload
// that keeps the password_hash settings keeps the hasher: the old and the
// new config draw on the same slots while both serve requests. A reload
// that changes them gets a new hasher; until the old config's last
// requests finish, both run, so for those moments the bound is the sum of
// the two.
var hasherPool = caddy.NewUsagePool()

// pooledHasher is a hasher in hasherPool; it holds nothing to release.
type pooledHasher struct{ *caddyauth.Hasher }

func (pooledHasher) Destruct() error { return nil }

// openHasher returns the pooled hasher for the app's password_hash
// settings, and records its pool key in a.hashKey for Cleanup to
// release. It logs the memory bound, so that an operator sees what the
// settings commit to.
func (a *App) openHasher() (*caddyauth.Hasher, error) {
	cfg, err := a.PasswordHash.hasherConfig()
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%+v", cfg)
	v, _, err := hasherPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		h, err := caddyauth.NewHasher(cfg, rand.Reader)
		if err != nil {
			return nil, err
		}
		return pooledHasher{h}, nil
	})
	if err != nil {
		return nil, err
	}
	a.hashKey = key
	h := v.(pooledHasher).Hasher
	a.logger.Info("password hashing",
		zap.String("memory_bound", humanize.IBytes(h.MemoryBound())),
		zap.String("memory", humanize.IBytes(uint64(cfg.Params.Memory)*1024)),
		zap.Uint32("time", cfg.Params.Time),
		zap.Uint8("threads", cfg.Params.Threads),
		zap.Int("concurrency", cfg.Concurrency),
		zap.Int("queue", cfg.Queue),
		zap.Duration("wait", cfg.Wait))
	return h, nil
}

// Interface guards
var _ caddy.Destructor = pooledHasher{}
