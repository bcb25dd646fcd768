package caddyauth

import (
	"sync"
	"sync/atomic"
	"time"
)

// MaxStaleness bounds how long a change made elsewhere (by another
// instance, by the CLI, or directly in the database) can go unnoticed by
// this process: a deactivation, a role change, a revoked session. Changes
// made through this process take effect at once, because they drop the
// cached entries they affect.
const MaxStaleness = 5 * time.Second

// cacheTTL is how long a verified credential is trusted without asking the
// store again; a little under MaxStaleness.
const cacheTTL = 4 * time.Second

// SessionCache remembers recently verified credentials, so that the guard
// neither re-parses a token nor reads the store on every request.
//
// It is keyed by the raw credential (the JWT, or the cookie value), so a
// hit skips signature checks and decoding entirely; it holds no secret the
// credential itself does not. It is safe for concurrent use and is meant
// to be shared by every Service built on the same store, so that it
// survives a config reload.
type SessionCache struct {
	mu        sync.RWMutex
	entries   map[string]*cacheEntry
	lastSweep time.Time
}

// NewSessionCache returns an empty cache.
func NewSessionCache() *SessionCache {
	return &SessionCache{entries: make(map[string]*cacheEntry)}
}

type cacheEntry struct {
	principal  *Principal // immutable once cached
	fetched    time.Time  // when the store was last asked
	validUntil time.Time  // absolute end: session expiry, or JWT exp if sooner
	idle       time.Duration
	lastSeen   atomic.Int64 // unix µs of the latest use, for sliding idle expiry
}

func (c *SessionCache) get(key string) *cacheEntry {
	c.mu.RLock()
	e := c.entries[key]
	c.mu.RUnlock()
	return e
}

func (c *SessionCache) put(key string, e *cacheEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[key] = e
	// Sweep stale entries now and then, so that the map holds only
	// credentials used within the last few seconds.
	if now.Sub(c.lastSweep) > cacheTTL {
		c.lastSweep = now
		for k, old := range c.entries {
			if now.Sub(old.fetched) > cacheTTL {
				delete(c.entries, k)
			}
		}
	}
}

func (c *SessionCache) remove(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// dropSession forgets every credential of one session.
func (c *SessionCache) dropSession(sessionID string) {
	c.drop(func(p *Principal) bool { return p.SessionID == sessionID })
}

// dropUser forgets every credential of one user.
func (c *SessionCache) dropUser(userID string) {
	c.drop(func(p *Principal) bool { return p.UserID == userID })
}

func (c *SessionCache) drop(match func(*Principal) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if match(e.principal) {
			delete(c.entries, k)
		}
	}
}

// Len reports how many credentials are cached.
func (c *SessionCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
