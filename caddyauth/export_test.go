package caddyauth

import (
	"context"
	"time"
)

// ParseJWT exposes the access-token parser to the external tests, so that
// they can tell a token refused for its signature, algorithm, audience or
// expiry from one refused because no session was issued with it.
func (s *Service) ParseJWT(token string) error {
	_, err := s.parseJWT(token)
	return err
}

// HoldSlot takes one hashing slot as a hash would (waiting in the queue
// if need be) and returns its release, so that tests can keep the hasher
// busy for exactly as long as they need.
func (h *Hasher) HoldSlot(ctx context.Context) (release func(), err error) {
	if err := h.acquire(ctx, 1); err != nil {
		return nil, err
	}
	return func() { h.slots.Release(1) }, nil
}

// Waiting is the number of callers in the queue.
func (h *Hasher) Waiting() int { return int(h.waiting.Load()) }

// SetHashTime sets the moving average of a hash's duration.
func (h *Hasher) SetHashTime(d time.Duration) { h.hashTime.Store(int64(d)) }
