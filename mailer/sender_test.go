package mailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// fakeOutbox is an in-memory store.Outbox that honours leases exactly as
// the interface describes: a claimed message's NextAttemptAt moves to the
// lease's end, so no one claims it again before then.
type fakeOutbox struct {
	mu       sync.Mutex
	nextID   int64
	msgs     map[int64]*store.Message
	claims   int // ClaimMessages calls
	claimErr error
	retries  []retryCall
	deleted  []int64
	claimed  chan struct{} // signalled (non-blocking) after each ClaimMessages
}

type retryCall struct {
	ID        int64
	Next      time.Time
	LastError string
}

func newFakeOutbox() *fakeOutbox {
	return &fakeOutbox{msgs: map[int64]*store.Message{}, claimed: make(chan struct{}, 1)}
}

// add queues a message for to, created at created.
func (o *fakeOutbox) add(to string, created time.Time) *store.Message {
	m := &store.Message{
		To: to, Subject: "Verify", Text: "https://app.example.com/auth/verify?token=SECRET-TOKEN-" + to,
		HTML:      "<a href=\"https://app.example.com/auth/verify?token=SECRET-TOKEN\">verify</a>",
		CreatedAt: created, NextAttemptAt: created,
	}
	if err := o.QueueMessage(context.Background(), m); err != nil {
		panic(err)
	}
	return m
}

func (o *fakeOutbox) QueueMessage(_ context.Context, m *store.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.nextID++
	m.ID = o.nextID
	c := *m
	o.msgs[m.ID] = &c
	return nil
}

func (o *fakeOutbox) ClaimMessages(_ context.Context, now, leaseUntil time.Time, n int) ([]store.Message, error) {
	o.mu.Lock()
	defer func() {
		o.claims++
		o.mu.Unlock()
		select {
		case o.claimed <- struct{}{}:
		default:
		}
	}()
	if o.claimErr != nil {
		return nil, o.claimErr
	}
	var due []*store.Message
	for _, m := range o.msgs {
		if !m.NextAttemptAt.After(now) {
			due = append(due, m)
		}
	}
	slices.SortFunc(due, func(a, b *store.Message) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	var out []store.Message
	for _, m := range due[:min(n, len(due))] {
		m.Attempts++
		m.NextAttemptAt = leaseUntil
		out = append(out, *m)
	}
	return out, nil
}

func (o *fakeOutbox) DeleteMessage(_ context.Context, id int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.msgs[id]; !ok {
		return store.ErrNotFound
	}
	delete(o.msgs, id)
	o.deleted = append(o.deleted, id)
	return nil
}

func (o *fakeOutbox) RetryMessage(_ context.Context, id int64, next time.Time, lastError string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	m, ok := o.msgs[id]
	if !ok {
		return store.ErrNotFound
	}
	m.NextAttemptAt = next
	m.LastError = lastError
	o.retries = append(o.retries, retryCall{id, next, lastError})
	return nil
}

func (o *fakeOutbox) get(id int64) (store.Message, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m, ok := o.msgs[id]
	if !ok {
		return store.Message{}, false
	}
	return *m, true
}

func (o *fakeOutbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.msgs)
}

func (o *fakeOutbox) retryCalls() []retryCall {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.retries)
}

// fakeTransport records what it is asked to send and answers with fn.
type fakeTransport struct {
	mu    sync.Mutex
	sent  []int64 // ids, in order of calls
	fn    func(ctx context.Context, m *store.Message) error
	calls chan int64 // optional: each call's id, non-blocking
}

func (f *fakeTransport) Send(ctx context.Context, m *store.Message) error {
	f.mu.Lock()
	f.sent = append(f.sent, m.ID)
	fn := f.fn
	f.mu.Unlock()
	if f.calls != nil {
		select {
		case f.calls <- m.ID:
		default:
		}
	}
	if fn == nil {
		return nil
	}
	return fn(ctx, m)
}

func (f *fakeTransport) sentIDs() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testLogger() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// noSecrets fails if the log shows a body, a token or a full address.
func noSecrets(t *testing.T, log string) {
	t.Helper()
	for _, secret := range []string{"SECRET-TOKEN", "token=", "verify?", "user@", "@example.org>"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log shows %q:\n%s", secret, log)
		}
	}
}

var t0 = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

func TestSenderDeliversAndDeletes(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	ob := newFakeOutbox()
	a := ob.add("user@example.org", t0.Add(-3*time.Second))
	b := ob.add("user@example.net", t0.Add(-2*time.Second))
	later := ob.add("user@example.com", t0.Add(time.Hour)) // not due yet
	ob.mu.Lock()
	ob.msgs[later.ID].NextAttemptAt = t0.Add(time.Hour)
	ob.mu.Unlock()
	tr := &fakeTransport{}
	logger, logs := testLogger()
	s := NewSender(ob, tr, logger, WithClock(clock.Now))

	if n := s.processBatch(context.Background()); n != 2 {
		t.Fatalf("processBatch claimed %d, want 2", n)
	}
	if got := tr.sentIDs(); !slices.Equal(got, []int64{a.ID, b.ID}) {
		t.Errorf("sent %v, want %v, oldest first", got, []int64{a.ID, b.ID})
	}
	if _, ok := ob.get(a.ID); ok {
		t.Error("a delivered message is still in the outbox")
	}
	if _, ok := ob.get(later.ID); !ok {
		t.Error("a message not yet due is gone")
	}
	if got := ob.retryCalls(); len(got) != 0 {
		t.Errorf("RetryMessage called: %v", got)
	}
	log := logs.String()
	if !strings.Contains(log, "mail: delivered") || !strings.Contains(log, "to_domain=example.org") {
		t.Errorf("log lacks the delivery records:\n%s", log)
	}
	noSecrets(t, log)
}

func TestSenderRetriesWithGrowingBackoff(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	ob := newFakeOutbox()
	m := ob.add("user@example.org", t0)
	failures := 5
	tr := &fakeTransport{fn: func(context.Context, *store.Message) error {
		if failures > 0 {
			failures--
			return errors.New("dial tcp 192.0.2.1:587: connection refused")
		}
		return nil
	}}
	logger, logs := testLogger()
	s := NewSender(ob, tr, logger, WithClock(clock.Now))
	s.jitter = func() float64 { return 0.5 } // no spread

	for i, want := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second} {
		before := len(tr.sentIDs())
		s.processBatch(context.Background())
		if got := len(tr.sentIDs()); got != before+1 {
			t.Fatalf("attempt %d: %d sends, want %d", i+1, got, before+1)
		}
		calls := ob.retryCalls()
		if len(calls) != i+1 {
			t.Fatalf("attempt %d: %d RetryMessage calls, want %d", i+1, len(calls), i+1)
		}
		last := calls[i]
		if last.ID != m.ID || !last.Next.Equal(clock.Now().Add(want)) || !strings.Contains(last.LastError, "connection refused") {
			t.Errorf("attempt %d: RetryMessage(%d, %v, %q), want next = now + %v", i+1, last.ID, last.Next, last.LastError, want)
		}
		// Not a moment before it is due...
		clock.Advance(want - time.Millisecond)
		s.processBatch(context.Background())
		if got := len(tr.sentIDs()); got != before+1 {
			t.Fatalf("attempt %d: retried %v early", i+1, time.Millisecond)
		}
		clock.Advance(time.Millisecond)
	}
	s.processBatch(context.Background())
	if _, ok := ob.get(m.ID); ok {
		t.Error("the message is still queued after the successful sixth attempt")
	}
	if got := len(tr.sentIDs()); got != 6 {
		t.Errorf("%d sends, want 6", got)
	}
	log := logs.String()
	if strings.Count(log, "level=WARN msg=\"mail: delivery failed; will retry\"") != 5 || !strings.Contains(log, "attempts=5") {
		t.Errorf("want five WARN records, the last with attempts=5:\n%s", log)
	}
	noSecrets(t, log)
}

func TestSenderBackoffBounds(t *testing.T) {
	t.Parallel()
	s := NewSender(newFakeOutbox(), &fakeTransport{}, nil)
	for _, tc := range []struct {
		attempt int
		base    time.Duration
	}{
		{1, 5 * time.Second}, {2, 10 * time.Second}, {3, 20 * time.Second}, {8, 640 * time.Second},
		{9, 15 * time.Minute}, {10, 15 * time.Minute}, {1000, 15 * time.Minute},
	} {
		for _, j := range []float64{0, 0.5, 0.999999} {
			s.jitter = func() float64 { return j }
			got := s.backoff(tc.attempt)
			lo, hi := tc.base*8/10, tc.base*12/10
			if got < lo || got > hi {
				t.Errorf("backoff(%d) with jitter %v = %v, want within [%v, %v]", tc.attempt, j, got, lo, hi)
			}
		}
	}
	s.jitter = func() float64 { return 0 }
	if a, b := s.backoff(1), s.backoff(2); a != 4*time.Second || b != 8*time.Second {
		t.Errorf("lowest jitter: %v, %v; want 4s, 8s", a, b)
	}
	// Real jitter spreads.
	s = NewSender(newFakeOutbox(), &fakeTransport{}, nil, WithBackoff(time.Minute, time.Hour))
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[s.backoff(3)] = true
	}
	if len(seen) < 10 {
		t.Errorf("50 backoffs took only %d values: no jitter", len(seen))
	}
}

func TestSenderPermanentFailureDeletes(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	ob := newFakeOutbox()
	m := ob.add("user@example.org", t0)
	tr := &fakeTransport{fn: func(context.Context, *store.Message) error {
		return fmt.Errorf("mail smtp: %w", Permanent(errors.New("550 5.1.1 mailbox unavailable")))
	}}
	logger, logs := testLogger()
	s := NewSender(ob, tr, logger, WithClock(clock.Now))
	s.processBatch(context.Background())
	if _, ok := ob.get(m.ID); ok {
		t.Error("a permanently failed message is still queued")
	}
	if got := ob.retryCalls(); len(got) != 0 {
		t.Errorf("a permanent failure was retried: %v", got)
	}
	log := logs.String()
	for _, want := range []string{"level=ERROR", "given up", fmt.Sprintf("id=%d", m.ID), "to_domain=example.org", "attempts=1", "550 5.1.1 mailbox unavailable"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	noSecrets(t, log)
}

func TestSenderGivesUpAfterMaxAge(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	ob := newFakeOutbox()
	old := ob.add("user@example.org", t0.Add(-72*time.Hour-time.Second))
	edge := ob.add("user@example.net", t0.Add(-72*time.Hour))
	tr := &fakeTransport{}
	logger, logs := testLogger()
	s := NewSender(ob, tr, logger, WithClock(clock.Now))
	s.processBatch(context.Background())
	if got := tr.sentIDs(); !slices.Equal(got, []int64{edge.ID}) {
		t.Errorf("sent %v, want only the message exactly 72h old (%d)", got, edge.ID)
	}
	if ob.len() != 0 {
		t.Errorf("%d messages left, want 0", ob.len())
	}
	log := logs.String()
	if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "maximum age") || !strings.Contains(log, fmt.Sprintf("id=%d", old.ID)) {
		t.Errorf("no ERROR record for the expired message:\n%s", log)
	}

	// Configurable.
	ob = newFakeOutbox()
	ob.add("user@example.org", t0.Add(-2*time.Hour))
	tr = &fakeTransport{}
	NewSender(ob, tr, nil, WithClock(clock.Now), WithMaxAge(time.Hour)).processBatch(context.Background())
	if len(tr.sentIDs()) != 0 || ob.len() != 0 {
		t.Errorf("WithMaxAge(1h): sent %v, %d left; want a 2h-old message dropped unsent", tr.sentIDs(), ob.len())
	}
}

func TestSenderBatches(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	ob := newFakeOutbox()
	for i := range 7 {
		ob.add(fmt.Sprintf("u%d@example.org", i), t0.Add(time.Duration(i)*time.Second-time.Hour))
	}
	tr := &fakeTransport{}
	s := NewSender(ob, tr, nil, WithClock(clock.Now), WithBatchSize(3))
	if n := s.processBatch(context.Background()); n != 3 {
		t.Errorf("first batch %d, want 3", n)
	}
	// Run drains full batches back to back.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for ob.len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if got := tr.sentIDs(); !slices.Equal(got, []int64{1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("sent %v, want 1…7 in order", got)
	}
}

func TestSenderClaimErrorIsLogged(t *testing.T) {
	t.Parallel()
	ob := newFakeOutbox()
	ob.claimErr = errors.New("database is locked")
	logger, logs := testLogger()
	s := NewSender(ob, &fakeTransport{}, logger)
	if n := s.processBatch(context.Background()); n != 0 {
		t.Errorf("processBatch = %d with a failing outbox", n)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "database is locked") {
		t.Errorf("claim error not logged:\n%s", logs.String())
	}
}

func TestSenderWake(t *testing.T) {
	t.Parallel()
	ob := newFakeOutbox()
	tr := &fakeTransport{calls: make(chan int64, 10)}
	// A poll interval far beyond the test's life: only Wake can explain
	// a delivery.
	s := NewSender(ob, tr, nil, WithPollInterval(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	select { // Run checks once at start
	case <-ob.claimed:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not check the outbox at start")
	}
	m := ob.add("user@example.org", time.Now())
	s.Wake()
	select {
	case id := <-tr.calls:
		if id != m.ID {
			t.Errorf("sent %d, want %d", id, m.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wake did not make Run deliver")
	}

	// Wake never blocks, however often it is called.
	start := time.Now()
	for range 1000 {
		s.Wake()
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 Wakes took %v", d)
	}
}

func TestSenderPolls(t *testing.T) {
	t.Parallel()
	ob := newFakeOutbox()
	tr := &fakeTransport{calls: make(chan int64, 10)}
	s := NewSender(ob, tr, nil, WithPollInterval(20*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	<-ob.claimed
	m := ob.add("user@example.org", time.Now()) // no Wake
	select {
	case id := <-tr.calls:
		if id != m.ID {
			t.Errorf("sent %d, want %d", id, m.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the poll did not pick the message up")
	}
}

func TestSenderRunStopsOnCancel(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		s := NewSender(newFakeOutbox(), &fakeTransport{}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	})
	t.Run("mid-delivery", func(t *testing.T) {
		t.Parallel()
		clock := &fakeClock{t: t0}
		ob := newFakeOutbox()
		first := ob.add("a@example.org", t0.Add(-2*time.Second))
		second := ob.add("b@example.org", t0.Add(-time.Second))
		inFlight := make(chan struct{})
		tr := &fakeTransport{fn: func(ctx context.Context, m *store.Message) error {
			close(inFlight)
			<-ctx.Done() // a transport that honours ctx, as SMTP does
			return fmt.Errorf("mail smtp: %w", ctx.Err())
		}}
		s := NewSender(ob, tr, nil, WithClock(clock.Now))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		<-inFlight
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if got := tr.sentIDs(); !slices.Equal(got, []int64{first.ID}) {
			t.Errorf("sent %v, want only the first message (the second was not started)", got)
		}
		// Both handed back, due at once, not dropped.
		for _, id := range []int64{first.ID, second.ID} {
			m, ok := ob.get(id)
			if !ok {
				t.Fatalf("message %d was dropped", id)
			}
			if !m.NextAttemptAt.Equal(t0) {
				t.Errorf("message %d due at %v, want now (%v): released, not left to its lease", id, m.NextAttemptAt, t0)
			}
		}
		if m, _ := ob.get(first.ID); !strings.Contains(m.LastError, "interrupted") {
			t.Errorf("interrupted message's last error %q", m.LastError)
		}
	})
}

func TestSenderLeavesMessagesWhoseLeaseRanOut(t *testing.T) {
	t.Parallel()
	// The first delivery takes so long that the rest of the batch's
	// lease is nearly over: the second message must not be started, nor
	// touched (another sender may hold it by now), only left to expire.
	clock := &fakeClock{t: t0}
	ob := newFakeOutbox()
	first := ob.add("a@example.org", t0.Add(-2*time.Second))
	second := ob.add("b@example.org", t0.Add(-time.Second))
	tr := &fakeTransport{fn: func(_ context.Context, m *store.Message) error {
		if m.ID == first.ID {
			clock.Advance(DefaultLease - 10*time.Second)
		}
		return nil
	}}
	logger, logs := testLogger()
	s := NewSender(ob, tr, logger, WithClock(clock.Now))
	s.processBatch(context.Background())
	if got := tr.sentIDs(); !slices.Equal(got, []int64{first.ID}) {
		t.Errorf("sent %v, want only %d", got, first.ID)
	}
	m, ok := ob.get(second.ID)
	if !ok || !m.NextAttemptAt.Equal(t0.Add(DefaultLease)) || len(ob.retryCalls()) != 0 {
		t.Errorf("second message %+v (present %v, retries %v); want it untouched, due when its lease ends", m, ok, ob.retryCalls())
	}
	if !strings.Contains(logs.String(), "lease") {
		t.Errorf("no log record about the skipped message:\n%s", logs.String())
	}
	// Once the lease is over, it is claimed and sent.
	clock.Advance(10 * time.Second)
	s.processBatch(context.Background())
	if got := tr.sentIDs(); !slices.Equal(got, []int64{first.ID, second.ID}) {
		t.Errorf("sent %v after the lease ended, want %v", got, []int64{first.ID, second.ID})
	}
}

func TestTwoSendersNeverDeliverTwice(t *testing.T) {
	t.Parallel()
	ob := newFakeOutbox()
	const n = 300
	for i := range n {
		ob.add(fmt.Sprintf("u%d@example.org", i), time.Now().Add(-time.Minute))
	}
	var (
		mu        sync.Mutex
		delivered = map[int64]int{}
		by        = map[string]int{}
	)
	transport := func(name string) Transport {
		return &fakeTransport{fn: func(_ context.Context, m *store.Message) error {
			time.Sleep(time.Duration(m.ID%3) * 100 * time.Microsecond)
			mu.Lock()
			delivered[m.ID]++
			by[name]++
			mu.Unlock()
			if m.ID%17 == 0 && m.Attempts == 1 {
				return errors.New("451 4.3.0 try again") // some need a second try
			}
			return nil
		}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var senders []*Sender
	for _, name := range []string{"a", "b"} {
		s := NewSender(ob, transport(name), nil, WithPollInterval(time.Millisecond), WithBatchSize(4),
			WithBackoff(time.Millisecond, time.Millisecond))
		senders = append(senders, s)
		wg.Go(func() { s.Run(ctx) })
	}
	deadline := time.Now().Add(20 * time.Second)
	for ob.len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		for _, s := range senders {
			s.Wake()
		}
	}
	cancel()
	wg.Wait()

	if left := ob.len(); left != 0 {
		t.Fatalf("%d messages left undelivered", left)
	}
	for id := int64(1); id <= n; id++ {
		want := 1
		if id%17 == 0 {
			want = 2 // the failed attempt and the successful one
		}
		if delivered[id] != want {
			t.Errorf("message %d handed to a transport %d times, want %d", id, delivered[id], want)
		}
	}
	if by["a"] == 0 || by["b"] == 0 {
		t.Logf("one sender did all the work (%v); the test still shows no duplicates", by)
	}
}

// A message whose link has expired is dropped unsent: it would only
// mislead.
func TestSenderDropsMessagesPastTheirDeadline(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: t0}
	ob := newFakeOutbox()
	queue := func(to string, deadline time.Time) *store.Message {
		m := &store.Message{To: to, Subject: "Reset", Text: "link", CreatedAt: t0.Add(-time.Hour),
			NextAttemptAt: t0.Add(-time.Hour), ExpiresAt: deadline}
		if err := ob.QueueMessage(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	expired := queue("user@example.org", t0)
	live := queue("user@example.net", t0.Add(time.Second))
	tr := &fakeTransport{}
	logger, logs := testLogger()
	NewSender(ob, tr, logger, WithClock(clock.Now)).processBatch(context.Background())
	if got := tr.sentIDs(); !slices.Equal(got, []int64{live.ID}) {
		t.Errorf("sent %v, want only the message whose link still works (%d)", got, live.ID)
	}
	if ob.len() != 0 {
		t.Errorf("%d messages left, want 0", ob.len())
	}
	if log := logs.String(); !strings.Contains(log, "link expired") || !strings.Contains(log, fmt.Sprintf("id=%d", expired.ID)) {
		t.Errorf("no record of the dropped message:\n%s", log)
	}
}
