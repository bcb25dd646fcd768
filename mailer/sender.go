package mailer

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// Sender defaults.
const (
	DefaultPollInterval = time.Second
	DefaultBatchSize    = 10
	DefaultLease        = 2 * time.Minute
	DefaultMinBackoff   = 5 * time.Second
	DefaultMaxBackoff   = 15 * time.Minute
	DefaultMaxAge       = 72 * time.Hour
)

// leaseMargin is kept free at the end of a lease: a delivery must be
// finished, and its outcome recorded, that long before the lease ends
// (see Sender). For leases shorter than 2 min it is an eighth of the
// lease.
const leaseMargin = 15 * time.Second

// maxLastError bounds the error text stored with a message.
const maxLastError = 1000

// Sender delivers the outbox: it claims due messages, hands each to its
// Transport, deletes it when delivered or given up, and otherwise
// reschedules it with exponential backoff and jitter (5 s, 10 s, 20 s, …,
// at most 15 min by default). A message that fails permanently
// (IsPermanent), or that is still undelivered after the maximum age
// (72 h by default), is deleted and logged at ERROR.
//
// Several Senders may work on one outbox, in this process or in others
// sharing the database: correctness rests on the outbox's leases.
// ClaimMessages hands a message to one Sender until its lease ends
// (DefaultLease); no other Sender claims it before then. Each delivery
// runs under a deadline 15 s short of the lease's end (an eighth of the
// lease for leases under 2 min), so that the
// Sender records the outcome (DeleteMessage, RetryMessage) while it still
// holds the message. Claimed messages that can no longer be started in
// time are left alone: their lease runs out and any Sender takes them
// again. So the lease must comfortably exceed the transport's timeout. A
// message is delivered at least once; it is delivered twice only when the
// process dies, or the outbox cannot be written, between the transport's
// success and the deletion.
//
// Nothing a Sender logs contains a message body (tokens): only the outbox
// id, the recipient's domain, the attempt count and the error as the
// transport reported it (an SMTP rejection may quote the recipient).
type Sender struct {
	outbox    store.Outbox
	transport Transport
	logger    *slog.Logger

	now          func() time.Time
	jitter       func() float64 // in [0, 1)
	pollInterval time.Duration
	batchSize    int
	lease        time.Duration
	minBackoff   time.Duration
	maxBackoff   time.Duration
	maxAge       time.Duration

	wake chan struct{}
}

// SenderOption configures a Sender. Options given non-positive values
// keep the default.
type SenderOption func(*Sender)

// WithPollInterval sets how often the outbox is checked for due messages
// (default 1 s). Wake makes a Sender check at once.
func WithPollInterval(d time.Duration) SenderOption {
	return func(s *Sender) {
		if d > 0 {
			s.pollInterval = d
		}
	}
}

// WithBatchSize sets how many messages are claimed at a time (default 10).
func WithBatchSize(n int) SenderOption {
	return func(s *Sender) {
		if n > 0 {
			s.batchSize = n
		}
	}
}

// WithLease sets how long a claimed message stays reserved to this Sender
// (default 2 min). It must exceed the transport's timeout plus 15 s.
func WithLease(d time.Duration) SenderOption {
	return func(s *Sender) {
		if d > 0 {
			s.lease = d
		}
	}
}

// WithBackoff sets the delay after the first failed attempt (default 5 s),
// doubled after each further failure, and its maximum (default 15 min).
func WithBackoff(first, limit time.Duration) SenderOption {
	return func(s *Sender) {
		if first > 0 {
			s.minBackoff = first
		}
		if limit > 0 {
			s.maxBackoff = limit
		}
	}
}

// WithMaxAge sets how long after it was queued a message is given up
// (default 72 h).
func WithMaxAge(d time.Duration) SenderOption {
	return func(s *Sender) {
		if d > 0 {
			s.maxAge = d
		}
	}
}

// WithClock sets the clock used for claiming, backoff and age (default
// time.Now).
func WithClock(now func() time.Time) SenderOption {
	return func(s *Sender) {
		if now != nil {
			s.now = now
		}
	}
}

// NewSender returns a Sender delivering outbox's messages through t. A nil
// logger discards.
func NewSender(outbox store.Outbox, t Transport, logger *slog.Logger, opts ...SenderOption) *Sender {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Sender{
		outbox:       outbox,
		transport:    t,
		logger:       logger,
		now:          time.Now,
		jitter:       rand.Float64,
		pollInterval: DefaultPollInterval,
		batchSize:    DefaultBatchSize,
		lease:        DefaultLease,
		minBackoff:   DefaultMinBackoff,
		maxBackoff:   DefaultMaxBackoff,
		maxAge:       DefaultMaxAge,
		wake:         make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(s)
	}
	if s.maxBackoff < s.minBackoff {
		s.maxBackoff = s.minBackoff
	}
	return s
}

// Wake makes Run check the outbox now rather than at the next poll. It
// never blocks; wakes that arrive while Run is busy are merged into one.
// The core calls it right after queueing a message.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, checking the outbox at once, after every
// poll interval, and on Wake. When ctx ends, the delivery in flight is
// aborted and its message, with the rest of the claimed batch, is handed
// back to the outbox to be due at once; then Run returns. Run is meant to
// be called once per Sender, in its own goroutine.
func (s *Sender) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
		// A full batch suggests more are due: go on without waiting.
		for {
			n := s.processBatch(ctx)
			if n < s.batchSize || ctx.Err() != nil {
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		timer.Reset(s.pollInterval)
	}
}

// processBatch claims and handles one batch; it returns how many messages
// it claimed.
func (s *Sender) processBatch(ctx context.Context) int {
	now := s.now()
	leaseUntil := now.Add(s.lease)
	msgs, err := s.outbox.ClaimMessages(ctx, now, leaseUntil, s.batchSize)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.LogAttrs(ctx, slog.LevelError, "mail: claiming outbox messages", slog.String("error", err.Error()))
		}
		return 0
	}
	for i := range msgs {
		if ctx.Err() != nil {
			s.release(msgs[i:], "")
			break
		}
		s.deliver(ctx, &msgs[i], leaseUntil)
	}
	return len(msgs)
}

// deliver handles one claimed message.
func (s *Sender) deliver(ctx context.Context, m *store.Message, leaseUntil time.Time) {
	now := s.now()
	if !m.CreatedAt.IsZero() && now.Sub(m.CreatedAt) > s.maxAge {
		s.giveUp(ctx, m, "undelivered after the maximum age ("+s.maxAge.String()+")", m.LastError)
		return
	}
	if !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt) {
		// Its link (a reset or verify token) no longer works: a mail
		// that arrives now would only mislead.
		s.giveUp(ctx, m, "undelivered before its link expired", m.LastError)
		return
	}
	remaining := leaseUntil.Sub(now) - min(leaseMargin, s.lease/8)
	if remaining <= 0 {
		// Too late to finish under this lease: leave the message alone.
		// Touching it now could undo another Sender's fresh claim; the
		// lease runs out and the message is claimed again.
		s.logger.LogAttrs(ctx, slog.LevelWarn, "mail: lease too short to start a delivery; left for the next claim",
			slog.Int64("id", m.ID))
		return
	}
	sendCtx, cancel := context.WithTimeout(ctx, remaining)
	err := s.transport.Send(sendCtx, m)
	cancel()
	now = s.now()

	// Outcomes are recorded even when ctx has just ended: the message is
	// still ours, and recording promptly saves it a wait for the lease.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()

	switch {
	case err == nil:
		if derr := s.outbox.DeleteMessage(rctx, m.ID); derr != nil && !errors.Is(derr, store.ErrNotFound) {
			// Delivered but still queued: it will be delivered again
			// once the lease ends.
			s.logger.LogAttrs(ctx, slog.LevelError, "mail: delivered, but removing it from the outbox failed",
				s.attrs(m, derr)...)
			return
		}
		s.logger.LogAttrs(ctx, slog.LevelInfo, "mail: delivered", s.attrs(m, nil)...)
	case ctx.Err() != nil:
		// Stopping: hand the message back, due at once, for the next
		// Sender or the next start.
		s.release([]store.Message{*m}, truncate("delivery interrupted: "+err.Error()))
	case IsPermanent(err):
		s.giveUp(ctx, m, "permanent failure", err.Error())
	default:
		next := now.Add(s.backoff(m.Attempts))
		if rerr := s.outbox.RetryMessage(rctx, m.ID, next, truncate(err.Error())); rerr != nil {
			s.logger.LogAttrs(ctx, slog.LevelError, "mail: recording a failed attempt",
				s.attrs(m, rerr)...)
			return
		}
		s.logger.LogAttrs(ctx, slog.LevelWarn, "mail: delivery failed; will retry",
			append(s.attrs(m, err), slog.Time("next_attempt", next))...)
	}
}

// giveUp deletes a message that will not be delivered.
func (s *Sender) giveUp(ctx context.Context, m *store.Message, reason, lastError string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	attrs := append(s.attrs(m, nil), slog.String("reason", reason), slog.String("error", lastError))
	if err := s.outbox.DeleteMessage(rctx, m.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.logger.LogAttrs(ctx, slog.LevelError, "mail: giving up a message, but removing it failed",
			append(attrs, slog.String("delete_error", err.Error()))...)
		return
	}
	s.logger.LogAttrs(ctx, slog.LevelError, "mail: message given up, not delivered", attrs...)
}

// release hands claimed messages back, due now, keeping their last error
// unless lastError is given.
func (s *Sender) release(msgs []store.Message, lastError string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := s.now()
	for _, m := range msgs {
		e := lastError
		if e == "" {
			e = m.LastError
		}
		if err := s.outbox.RetryMessage(ctx, m.ID, now, e); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.logger.LogAttrs(ctx, slog.LevelWarn, "mail: handing a message back to the outbox; it waits for its lease to end",
				s.attrs(&m, err)...)
		}
	}
}

// backoff is the delay after the attempt-th failed attempt: minBackoff
// doubled attempt-1 times, at most maxBackoff, then spread by ±20 % so
// that messages failing together do not retry together.
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.minBackoff
	for i := 1; i < attempt && d < s.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.maxBackoff)
	spread := time.Duration((s.jitter()*0.4 - 0.2) * float64(d))
	return d + spread
}

// attrs are the log attributes of a message: never its body; of the
// address, the domain only.
func (s *Sender) attrs(m *store.Message, err error) []slog.Attr {
	a := []slog.Attr{
		slog.Int64("id", m.ID),
		slog.String("to_domain", recipientDomain(m.To)),
		slog.Int("attempts", m.Attempts),
	}
	if err != nil {
		a = append(a, slog.String("error", err.Error()))
	}
	return a
}

func truncate(s string) string {
	if len(s) <= maxLastError {
		return s
	}
	// Cut on a rune boundary.
	cut := maxLastError
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}
