package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// RunShared checks what several Caddy instances sharing one database rely
// on: that what one store value does is seen by the others, and that
// concurrent calls through different ones are serialised by the database
// itself, not by anything inside one process. open(t, n) returns n stores
// on one new, empty database, each opened as a separate process would
// open it; the suite closes none of them, so open registers their Close
// with t.Cleanup.
func RunShared(t *testing.T, open func(t *testing.T, n int) []store.Store) {
	tests := []struct {
		name   string
		stores int
		test   func(t *testing.T, stores []store.Store)
	}{
		{"RegistrationRace", 2, testSharedRegistrationRace},
		{"Failures", 2, testSharedFailures},
		{"ClaimMessages", 4, testSharedClaimMessages},
		{"IssueToken", 3, testSharedIssueToken},
		{"SettingOrInit", 4, testSharedSettingOrInit},
		{"UpdateUser", 2, testSharedUpdateUser},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, open(t, tc.stores))
		})
	}
}

// Registrations of one email through two instances at once: exactly one
// succeeds, the others get ErrConflict, whatever the case of the email.
func testSharedRegistrationRace(t *testing.T, stores []store.Store) {
	ctx := t.Context()
	const perStore = 8
	for round := range 10 {
		email := fmt.Sprintf("Race%d@Example.com", round)
		users := make([][]*store.User, len(stores))
		for i := range stores {
			for j := range perStore {
				e := email
				if j%2 == 1 {
					e = strings.ToUpper(email)
				}
				users[i] = append(users[i], newUser(t, e))
			}
		}
		var (
			wg         sync.WaitGroup
			mu         sync.Mutex
			ok, denied int
		)
		start := make(chan struct{})
		for i, s := range stores {
			for _, u := range users[i] {
				wg.Go(func() {
					<-start
					err := s.CreateUser(ctx, u)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						ok++
					case errors.Is(err, store.ErrConflict):
						denied++
					default:
						t.Errorf("CreateUser through store %d: %v", i, err)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		total := len(stores) * perStore
		if ok != 1 || denied != total-1 {
			t.Errorf("round %d: %d registrations of %q: %d succeeded, %d got ErrConflict; want 1 and %d",
				round, total, email, ok, denied, total-1)
		}
		for i, s := range stores {
			if _, err := s.UserByEmail(ctx, email); err != nil {
				t.Errorf("round %d: UserByEmail through store %d: %v", round, i, err)
			}
		}
	}
}

// Failures recorded through two instances add up: the ban starts at the
// Max-th failure counted by either, exactly once, and holds on both.
func testSharedFailures(t *testing.T, stores []store.Store) {
	ctx := t.Context()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	l := store.Limit{Max: 10, Window: time.Hour, Ban: 15 * time.Minute}

	// Max − 1 failures, alternating: no ban.
	for i := range l.Max - 1 {
		if until, started, err := stores[i%2].RecordFailure(ctx, "seq", l, now); err != nil || started || !until.IsZero() {
			t.Fatalf("failure %d = %v, %v, %v; want no ban", i+1, until, started, err)
		}
	}
	until, started, err := stores[1].RecordFailure(ctx, "seq", l, now)
	if err != nil || !started || !until.Equal(now.Add(l.Ban)) {
		t.Fatalf("failure %d, through the other store = %v, %v, %v; want a ban until %v", l.Max, until, started, err, now.Add(l.Ban))
	}
	for i, s := range stores {
		if got, err := s.BannedUntil(ctx, "seq", now); err != nil || !got.Equal(until) {
			t.Errorf("BannedUntil through store %d = %v, %v; want %v", i, got, err, until)
		}
	}

	// Concurrently: 4 × Max failures through both, none lost, one ban.
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		starts int
	)
	start := make(chan struct{})
	for i := range 4 * l.Max {
		wg.Go(func() {
			<-start
			_, started, err := stores[i%2].RecordFailure(ctx, "concurrent", l, now)
			if err != nil {
				t.Errorf("RecordFailure: %v", err)
			}
			if started {
				mu.Lock()
				starts++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if starts != 1 {
		t.Errorf("%d concurrent failures through two stores started %d bans, want 1", 4*l.Max, starts)
	}

	// Max − 1 concurrent failures of a fresh key: all counted, none bans;
	// one more does. Several rounds, as a lost count shows only when two
	// calls meet.
	for round := range 10 {
		key := fmt.Sprintf("count %d", round)
		start := make(chan struct{})
		for i := range l.Max - 1 {
			wg.Go(func() {
				<-start
				if _, started, err := stores[i%2].RecordFailure(ctx, key, l, now); err != nil || started {
					t.Errorf("RecordFailure = %v, %v; want no ban", started, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if _, started, err := stores[round%2].RecordFailure(ctx, key, l, now); err != nil || !started {
			t.Fatalf("round %d: failure %d after %d concurrent ones = %v, %v; want it to start the ban: failures were lost",
				round, l.Max, l.Max-1, started, err)
		}
	}
}

// Senders in several instances claim side by side: every message is
// claimed once, by one sender.
func testSharedClaimMessages(t *testing.T, stores []store.Store) {
	ctx := t.Context()
	const messages = 200
	now := t0.Add(time.Hour)
	for i := range messages {
		queueMessage(t, stores[i%len(stores)], newMessage(t, fmt.Sprintf("to%d@example.com", i)))
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		owner = map[int64]string{}
	)
	start := make(chan struct{})
	for i, s := range stores {
		for j := range 2 {
			sender := fmt.Sprintf("store %d sender %d", i, j)
			wg.Go(func() {
				<-start
				for {
					msgs, err := s.ClaimMessages(ctx, now, now.Add(time.Minute), 3)
					if err != nil {
						t.Errorf("ClaimMessages by %s: %v", sender, err)
						return
					}
					if len(msgs) == 0 {
						return
					}
					mu.Lock()
					for _, m := range msgs {
						if other, dup := owner[m.ID]; dup {
							t.Errorf("message %d claimed by %s and %s", m.ID, other, sender)
						}
						if m.Attempts != 1 {
							t.Errorf("message %d claimed with Attempts %d, want 1", m.ID, m.Attempts)
						}
						owner[m.ID] = sender
					}
					mu.Unlock()
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if len(owner) != messages {
		t.Errorf("%d messages claimed, want %d", len(owner), messages)
	}
	// All leased: nothing is due until the lease ends.
	if msgs, err := stores[0].ClaimMessages(ctx, now, now.Add(time.Minute), 10); err != nil || len(msgs) != 0 {
		t.Errorf("ClaimMessages with everything leased = %d messages, %v; want none", len(msgs), err)
	}
}

// The mail limit holds across instances: concurrent IssueToken and
// NoteMailRequest calls through several stores accept no more than Max
// together, and exactly the accepted tokens' mails are queued.
func testSharedIssueToken(t *testing.T, stores []store.Store) {
	ctx := t.Context()
	u := newUser(t, "flood@example.com")
	createUser(t, stores[0], u)
	const perStore, limitMax = 6, 4
	limit := store.MailLimit{Max: limitMax, Window: time.Hour}
	now := t0.Add(30 * time.Minute)
	queued := 0
	for round := range 5 {
		address := fmt.Sprintf("flood%d@example.com", round)
		tokens := make([][]*store.ActionToken, len(stores))
		for i := range stores {
			for range perStore {
				tokens[i] = append(tokens[i], newToken(t, u.ID, store.PurposeResetPassword))
			}
		}
		var (
			wg                    sync.WaitGroup
			mu                    sync.Mutex
			accepted, withMessage int
		)
		start := make(chan struct{})
		for i, s := range stores {
			for j, tok := range tokens[i] {
				wg.Go(func() {
					<-start
					var (
						ok  bool
						err error
					)
					if j%3 == 2 { // a request that sends nothing counts the same
						ok, err = s.NoteMailRequest(ctx, strings.ToUpper(address), limit, now)
					} else {
						ok, err = s.IssueToken(ctx, tok, newMessage(t, address), limit, now)
					}
					if err != nil {
						t.Errorf("through store %d: %v", i, err)
						return
					}
					if ok {
						mu.Lock()
						accepted++
						if j%3 != 2 {
							withMessage++
						}
						mu.Unlock()
					}
				})
			}
		}
		close(start)
		wg.Wait()
		if accepted != limitMax {
			t.Errorf("round %d: %d requests through %d stores with Max %d: %d accepted, want %d",
				round, perStore*len(stores), len(stores), limitMax, accepted, limitMax)
		}
		queued += withMessage
	}
	msgs, err := stores[0].ClaimMessages(ctx, now, now.Add(time.Minute), 100)
	if err != nil || len(msgs) != queued {
		t.Errorf("ClaimMessages = %d messages, %v; want the %d of the accepted tokens", len(msgs), err, queued)
	}
}

// Every instance starting at once gets the same generated secret.
func testSharedSettingOrInit(t *testing.T, stores []store.Store) {
	ctx := t.Context()
	const perStore = 5
	for round := range 10 {
		key := fmt.Sprintf("secret %d", round)
		values := make([][]byte, len(stores)*perStore)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, s := range stores {
			for j := range perStore {
				wg.Go(func() {
					<-start
					v, err := s.SettingOrInit(ctx, key, fmt.Appendf(nil, "value %d/%d", i, j))
					if err != nil {
						t.Errorf("SettingOrInit through store %d: %v", i, err)
					}
					values[i*perStore+j] = v
				})
			}
		}
		close(start)
		wg.Wait()
		for i, v := range values {
			if string(v) != string(values[0]) || !strings.HasPrefix(string(v), "value ") {
				t.Errorf("round %d: SettingOrInit call %d = %q, call 0 got %q", round, i, v, values[0])
			}
		}
	}
}

// UpdateUser through two instances never loses a change.
func testSharedUpdateUser(t *testing.T, stores []store.Store) {
	ctx := t.Context()
	u := newUser(t, "serial@example.com")
	u.Roles = []string{}
	createUser(t, stores[0], u)
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := stores[i%2].UpdateUser(ctx, u.ID, func(cur *store.User) error {
				cur.Roles = append(cur.Roles, fmt.Sprintf("r%02d", i))
				return nil
			})
			if err != nil {
				t.Errorf("UpdateUser: %v", err)
			}
		})
	}
	wg.Wait()
	got, err := stores[1].UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Roles) != n {
		t.Errorf("after %d concurrent role additions through two stores the user has %d roles: %v", n, len(got.Roles), got.Roles)
	}
}
