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

	// Revocations race with lookups: a request may read a session from
	// the store just before a logout deletes it, and cache it just after
	// the logout emptied the cache. So every drop is numbered, and
	// remembered for a while per session and per user; an entry whose
	// lookup began before a drop that concerns it is not cached.
	generation atomic.Uint64
	drops      map[string]dropMark // "s:"+session id, "u:"+user id
}

type dropMark struct {
	generation uint64
	at         time.Time // wall clock, only to forget old marks
}

// dropMemory is how long drops are remembered: far longer than any
// lookup takes.
const dropMemory = time.Minute

// NewSessionCache returns an empty cache.
func NewSessionCache() *SessionCache {
	return &SessionCache{entries: make(map[string]*cacheEntry), drops: make(map[string]dropMark)}
}

// begin is called before a lookup reads the store; its result goes to put.
func (c *SessionCache) begin() uint64 { return c.generation.Load() }

type cacheEntry struct {
	keyID      uint64     // the keys that verified it (Service.keyID)
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

// put caches e under key, unless the session or user was dropped after
// the lookup that produced e began (begin's generation).
func (c *SessionCache) put(key string, e *cacheEntry, began uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, mark := range []string{"s:" + e.principal.SessionID, "u:" + e.principal.UserID} {
		if d, ok := c.drops[mark]; ok && d.generation > began {
			return
		}
	}
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
		wall := time.Now()
		for k, d := range c.drops {
			if wall.Sub(d.at) > dropMemory {
				delete(c.drops, k)
			}
		}
	}
}

func (c *SessionCache) remove(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// dropSession forgets every credential of one session. Call it after
// the store has changed: lookups that began before are then not cached.
func (c *SessionCache) dropSession(sessionID string) {
	c.drop("s:"+sessionID, func(p *Principal) bool { return p.SessionID == sessionID })
}

// dropUser forgets every credential of one user, as dropSession does.
func (c *SessionCache) dropUser(userID string) {
	c.drop("u:"+userID, func(p *Principal) bool { return p.UserID == userID })
}

func (c *SessionCache) drop(mark string, match func(*Principal) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drops[mark] = dropMark{generation: c.generation.Add(1), at: time.Now()}
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
