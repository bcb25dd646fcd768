package caddyauth

import (
	"testing"
	"time"
)

// A lookup that began before a revocation must not be cached after it:
// otherwise a logout racing with a request could leave the revoked
// session accepted for a whole cache period.
func TestCacheRefusesLookupsOlderThanADrop(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	entry := func(session, user string) *cacheEntry {
		return &cacheEntry{principal: &Principal{SessionID: session, UserID: user}, fetched: now, validUntil: now.Add(time.Hour)}
	}
	cases := []struct {
		name string
		drop func(c *SessionCache)
	}{
		{"session dropped", func(c *SessionCache) { c.dropSession("s1") }},
		{"user dropped", func(c *SessionCache) { c.dropUser("u1") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewSessionCache()
			began := c.begin()
			tc.drop(c)
			c.put("cred", entry("s1", "u1"), began, now)
			if c.get("cred") != nil {
				t.Fatal("an entry read before the drop was cached after it")
			}
			// A lookup that begins after the drop is cached as usual.
			c.put("cred", entry("s1", "u1"), c.begin(), now)
			if c.get("cred") == nil {
				t.Fatal("an entry read after the drop was not cached")
			}
		})
	}
	t.Run("other sessions unaffected", func(t *testing.T) {
		c := NewSessionCache()
		began := c.begin()
		c.dropSession("s1")
		c.put("cred", entry("s2", "u2"), began, now)
		if c.get("cred") == nil {
			t.Fatal("a drop of another session kept this one out of the cache")
		}
	})
}
