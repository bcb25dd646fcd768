package storetest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// lease is how long the tests' ClaimMessages calls lease a message.
const lease = 5 * time.Minute

func testIssueToken(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "owner@example.com")
	createUser(t, s, u)
	now := t0.Add(time.Hour)

	tok := newToken(t, u.ID, store.PurposeResetPassword)
	msg := newMessage(t, "Owner@Example.com")
	want := *msg
	ok, err := s.IssueToken(ctx, tok, msg, store.MailLimit{Max: 3, Window: time.Hour}, now)
	if err != nil || !ok {
		t.Fatalf("IssueToken = %v, %v; want true, nil", ok, err)
	}
	if msg.ID == 0 {
		t.Errorf("IssueToken left msg.ID zero")
	}
	want.ID = msg.ID
	checkTime(t, "msg.CreatedAt after IssueToken", msg.CreatedAt.Truncate(time.Microsecond), want.CreatedAt)
	checkTime(t, "msg.NextAttemptAt after IssueToken", msg.NextAttemptAt.Truncate(time.Microsecond), want.NextAttemptAt)

	got, err := s.TokenByDigest(ctx, store.PurposeResetPassword, tok.Digest)
	if err != nil {
		t.Fatalf("TokenByDigest: %v", err)
	}
	checkToken(t, got, tok)
	if _, err := s.TokenByDigest(ctx, store.PurposeVerifyEmail, tok.Digest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByDigest with the other purpose: err = %v, want ErrNotFound", err)
	}

	// The message is due from its NextAttemptAt, not before.
	if got := claimIDs(t, s, want.NextAttemptAt.Add(-time.Microsecond), 10); len(got) != 0 {
		t.Errorf("ClaimMessages before the message is due = %v, want none", got)
	}
	claimed := claimMessages(t, s, want.NextAttemptAt, 10)
	if len(claimed) != 1 {
		t.Fatalf("ClaimMessages = %d messages, want the one queued", len(claimed))
	}
	want.Attempts++
	want.NextAttemptAt = want.NextAttemptAt.Add(lease)
	checkMessage(t, &claimed[0], &want)
}

// A zero CreatedAt or NextAttemptAt is taken as now.
func testIssueTokenDefaults(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "owner@example.com")
	createUser(t, s, u)
	now := t0.Add(time.Hour)

	msg := newMessage(t, u.Email)
	msg.CreatedAt, msg.NextAttemptAt = time.Time{}, time.Time{}
	ok, err := s.IssueToken(ctx, newToken(t, u.ID, store.PurposeVerifyEmail), msg, store.MailLimit{}, now)
	if err != nil || !ok {
		t.Fatalf("IssueToken = %v, %v; want true, nil", ok, err)
	}
	checkTime(t, "msg.CreatedAt", msg.CreatedAt.Truncate(time.Microsecond), now)
	checkTime(t, "msg.NextAttemptAt", msg.NextAttemptAt.Truncate(time.Microsecond), now)
	if got := claimIDs(t, s, now.Add(-time.Microsecond), 10); len(got) != 0 {
		t.Errorf("ClaimMessages before now = %v, want none: NextAttemptAt must be now", got)
	}
	claimed := claimMessages(t, s, now, 10)
	if len(claimed) != 1 || claimed[0].ID != msg.ID {
		t.Fatalf("ClaimMessages at now = %v, want message %d", ids(claimed), msg.ID)
	}
	checkTime(t, "CreatedAt", claimed[0].CreatedAt, now)
}

// The limit counts the mails IssueToken queued to an address, ignoring
// case; when it refuses, neither the token nor the message is stored.
func testIssueTokenLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "limit@example.com")
	createUser(t, s, u)
	now := t0.Truncate(time.Microsecond)
	limit := store.MailLimit{Max: 2, Window: time.Hour}

	tests := []struct {
		name, first, second, third string
	}{
		{"ASCII", "Limit@Example.com", "limit@example.COM", "LIMIT@EXAMPLE.COM"},
		{"non-ASCII", "ÉLOISE@x.io", "éloise@x.io", "Éloise@X.IO"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var queued []int64
			for i, to := range []string{tc.first, tc.second} {
				msg := newMessage(t, to)
				msg.NextAttemptAt = now
				if !issue(t, s, newToken(t, u.ID, store.PurposeResetPassword), msg, limit, now.Add(time.Duration(i)*time.Minute)) {
					t.Fatalf("IssueToken %d to %q refused, want it within the limit", i+1, to)
				}
				queued = append(queued, msg.ID)
			}

			refused := newToken(t, u.ID, store.PurposeResetPassword)
			msg := newMessage(t, tc.third)
			msg.NextAttemptAt = now
			if issue(t, s, refused, msg, limit, now.Add(2*time.Minute)) {
				t.Fatalf("IssueToken to %q after 2 mails to %q and %q accepted, want it refused", tc.third, tc.first, tc.second)
			}
			if msg.ID != 0 {
				t.Errorf("a refused IssueToken set msg.ID = %d", msg.ID)
			}
			if _, err := s.TokenByDigest(ctx, store.PurposeResetPassword, refused.Digest); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("TokenByDigest of a refused token: err = %v, want ErrNotFound", err)
			}
			if got := claimIDs(t, s, now.Add(time.Hour), 100); !slices.Equal(got, queued) {
				t.Errorf("ClaimMessages after a refused IssueToken = %v, want only the accepted %v", got, queued)
			}

			// Another purpose shares the address's limit.
			if issue(t, s, newToken(t, u.ID, store.PurposeVerifyEmail), newMessage(t, tc.first), limit, now.Add(3*time.Minute)) {
				t.Errorf("IssueToken of another purpose to the same address accepted, want it refused")
			}
		})
	}

	// Another address has its own count, and messages queued with
	// QueueMessage do not count.
	for range 3 {
		queueMessage(t, s, newMessage(t, "other@example.com"))
	}
	for i := range 2 {
		if !issue(t, s, newToken(t, u.ID, store.PurposeResetPassword), newMessage(t, "other@example.com"), limit, now) {
			t.Errorf("IssueToken %d to another address refused", i+1)
		}
	}
}

// The window slides: a mail stops counting once it is Window old.
func testIssueTokenWindow(t *testing.T, s store.Store) {
	u := newUser(t, "window@example.com")
	createUser(t, s, u)
	now := t0.Truncate(time.Microsecond)
	limit := store.MailLimit{Max: 2, Window: time.Hour}

	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true},
		{10 * time.Minute, true},
		{59 * time.Minute, false}, // 2 within the hour
		// The mail at 0 is now Window old and no longer counts; the
		// refused attempt at 59m never counted.
		{time.Hour, true},
		{time.Hour + time.Microsecond, false}, // 10m and 1h
		{time.Hour + 10*time.Minute, true},    // 1h only
		{time.Hour + 11*time.Minute, false},
		{5 * time.Hour, true}, // all gone
		{5 * time.Hour, true},
		{5 * time.Hour, false},
	}
	for _, st := range steps {
		got := issue(t, s, newToken(t, u.ID, store.PurposeResetPassword), newMessage(t, u.Email), limit, now.Add(st.at))
		if got != st.want {
			t.Errorf("IssueToken at +%v = %v, want %v", st.at, got, st.want)
		}
	}
}

func testIssueTokenUnlimited(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "many@example.com")
	createUser(t, s, u)
	for _, limit := range []store.MailLimit{{Max: 0, Window: time.Hour}, {Max: -1, Window: time.Hour}, {}} {
		t.Run(fmt.Sprintf("Max %d Window %v", limit.Max, limit.Window), func(t *testing.T) {
			for i := range 10 {
				tok := newToken(t, u.ID, store.PurposeVerifyEmail)
				if !issue(t, s, tok, newMessage(t, u.Email), limit, t0) {
					t.Fatalf("IssueToken %d with %+v refused, want no limit", i+1, limit)
				}
				if _, err := s.TokenByDigest(ctx, store.PurposeVerifyEmail, tok.Digest); err != nil {
					t.Errorf("TokenByDigest %d: %v", i+1, err)
				}
			}
		})
	}
}

// Concurrent callers never exceed the limit together.
func testIssueTokenConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "flood@example.com")
	createUser(t, s, u)
	const n, limitMax = 20, 3
	limit := store.MailLimit{Max: limitMax, Window: time.Hour}
	toks := make([]*store.ActionToken, n)
	for i := range n {
		toks[i] = newToken(t, u.ID, store.PurposeResetPassword)
	}
	oks := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			// Addresses in varying case: the limit ignores it.
			to := "flood@example.com"
			if i%2 == 1 {
				to = "FLOOD@Example.COM"
			}
			oks[i], errs[i] = s.IssueToken(ctx, toks[i], newMessage(t, to), limit, t0)
		})
	}
	close(start)
	wg.Wait()
	accepted, stored := 0, 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("IssueToken in goroutine %d: %v", i, errs[i])
		}
		if oks[i] {
			accepted++
		}
		_, err := s.TokenByDigest(ctx, store.PurposeResetPassword, toks[i].Digest)
		switch {
		case err == nil:
			stored++
			if !oks[i] {
				t.Errorf("goroutine %d: IssueToken refused, but its token is stored", i)
			}
		case !errors.Is(err, store.ErrNotFound):
			t.Fatalf("TokenByDigest: %v", err)
		case oks[i]:
			t.Errorf("goroutine %d: IssueToken accepted, but its token is missing", i)
		}
	}
	if accepted != limitMax || stored != limitMax {
		t.Errorf("%d concurrent IssueToken with Max %d: %d accepted, %d tokens stored; want %d", n, limitMax, accepted, stored, limitMax)
	}
	if got := claimIDs(t, s, t0.Add(time.Hour), 100); len(got) != limitMax {
		t.Errorf("ClaimMessages = %d messages, want %d", len(got), limitMax)
	}
}

func testIssueTokenErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "errors@example.com")
	createUser(t, s, u)
	limit := store.MailLimit{Max: 2, Window: time.Hour}

	first := newToken(t, u.ID, store.PurposeResetPassword)
	firstMsg := newMessage(t, u.Email)
	if !issue(t, s, first, firstMsg, limit, t0) {
		t.Fatal("first IssueToken refused")
	}
	// A digest is unique whatever the purpose.
	for _, p := range []store.Purpose{store.PurposeResetPassword, store.PurposeVerifyEmail} {
		dup := newToken(t, u.ID, p)
		dup.Digest = bytes.Clone(first.Digest)
		ok, err := s.IssueToken(ctx, dup, newMessage(t, u.Email), limit, t0)
		if ok || !errors.Is(err, store.ErrConflict) {
			t.Errorf("IssueToken with a taken digest (purpose %s) = %v, %v; want false, ErrConflict", p, ok, err)
		}
	}
	ghost := newToken(t, newID(t), store.PurposeVerifyEmail)
	ok, err := s.IssueToken(ctx, ghost, newMessage(t, u.Email), limit, t0)
	if ok || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IssueToken for an unknown user = %v, %v; want false, ErrNotFound", ok, err)
	}
	if _, err := s.TokenByDigest(ctx, store.PurposeVerifyEmail, ghost.Digest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByDigest of the unknown user's token: err = %v, want ErrNotFound", err)
	}
	got, err := s.TokenByDigest(ctx, store.PurposeResetPassword, first.Digest)
	if err != nil {
		t.Fatalf("TokenByDigest of the first token: %v", err)
	}
	checkToken(t, got, first)

	// The failed calls queued nothing and did not count against the limit.
	if got := claimIDs(t, s, t0.Add(time.Hour), 100); !slices.Equal(got, []int64{firstMsg.ID}) {
		t.Errorf("ClaimMessages after failed IssueToken calls = %v, want only %d", got, firstMsg.ID)
	}
	if !issue(t, s, newToken(t, u.ID, store.PurposeResetPassword), newMessage(t, u.Email), limit, t0) {
		t.Errorf("IssueToken after failed calls refused: the failed calls counted against the limit")
	}
}

func testTokenByDigest(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "tokens@example.com")
	createUser(t, s, u)
	for _, p := range []store.Purpose{store.PurposeResetPassword, store.PurposeVerifyEmail} {
		tok := newToken(t, u.ID, p)
		tok.Email = "Other.Address@Example.org"
		issueOK(t, s, tok)
		got, err := s.TokenByDigest(ctx, p, tok.Digest)
		if err != nil {
			t.Fatalf("TokenByDigest(%s): %v", p, err)
		}
		checkToken(t, got, tok)
		if !got.UsedAt.IsZero() {
			t.Errorf("UsedAt of an unused token = %v, want zero", got.UsedAt)
		}
	}
	// An expired token is returned until removed.
	expired := newToken(t, u.ID, store.PurposeResetPassword)
	expired.ExpiresAt = expired.CreatedAt.Add(-time.Hour)
	issueOK(t, s, expired)
	got, err := s.TokenByDigest(ctx, store.PurposeResetPassword, expired.Digest)
	if err != nil {
		t.Fatalf("TokenByDigest(expired): %v", err)
	}
	checkToken(t, got, expired)

	unknown := sha256.Sum256([]byte("not a token"))
	for _, digest := range [][]byte{unknown[:], {}, nil} {
		if tok, err := s.TokenByDigest(ctx, store.PurposeResetPassword, digest); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TokenByDigest(%x) = %v, %v; want ErrNotFound", digest, tok, err)
		}
	}
	if tok, err := s.TokenByDigest(ctx, "other", expired.Digest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByDigest with an unknown purpose = %v, %v; want ErrNotFound", tok, err)
	}
}

func testUseToken(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "user@example.com")
	createUser(t, s, u)
	tok := newToken(t, u.ID, store.PurposeVerifyEmail)
	issueOK(t, s, tok)
	other := newToken(t, u.ID, store.PurposeVerifyEmail)
	issueOK(t, s, other)
	at := t0.Add(17*time.Minute + 555555555)

	// The wrong purpose does not use it.
	if err := s.UseToken(ctx, store.PurposeResetPassword, tok.Digest, at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UseToken with the wrong purpose: err = %v, want ErrNotFound", err)
	}
	if err := s.UseToken(ctx, store.PurposeVerifyEmail, tok.Digest, at); err != nil {
		t.Fatalf("UseToken: %v", err)
	}
	want := *tok
	want.UsedAt = at
	got, err := s.TokenByDigest(ctx, store.PurposeVerifyEmail, tok.Digest)
	if err != nil {
		t.Fatalf("TokenByDigest of a used token: %v", err)
	}
	checkToken(t, got, &want)
	if err := s.UseToken(ctx, store.PurposeVerifyEmail, tok.Digest, at.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second UseToken: err = %v, want ErrNotFound", err)
	}
	got, err = s.TokenByDigest(ctx, store.PurposeVerifyEmail, tok.Digest)
	if err != nil {
		t.Fatalf("TokenByDigest: %v", err)
	}
	checkTime(t, "UsedAt after a second UseToken", got.UsedAt, at)

	got, err = s.TokenByDigest(ctx, store.PurposeVerifyEmail, other.Digest)
	if err != nil {
		t.Fatalf("TokenByDigest(other): %v", err)
	}
	checkToken(t, got, other)

	unknown := sha256.Sum256([]byte("not a token"))
	for _, digest := range [][]byte{unknown[:], {}, nil} {
		if err := s.UseToken(ctx, store.PurposeVerifyEmail, digest, at); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UseToken(%x): err = %v, want ErrNotFound", digest, err)
		}
	}
}

func testUseTokenConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "race@example.com")
	createUser(t, s, u)
	tok := newToken(t, u.ID, store.PurposeResetPassword)
	issueOK(t, s, tok)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.UseToken(ctx, store.PurposeResetPassword, tok.Digest, t0.Add(time.Duration(i+1)*time.Second))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("UseToken succeeded in goroutines %d and %d, want exactly one", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("UseToken in goroutine %d: err = %v, want nil or ErrNotFound", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent UseToken succeeded")
	}
	got, err := s.TokenByDigest(ctx, store.PurposeResetPassword, tok.Digest)
	if err != nil {
		t.Fatalf("TokenByDigest: %v", err)
	}
	checkTime(t, "UsedAt", got.UsedAt, t0.Add(time.Duration(winner+1)*time.Second))
}

func testDeleteUserTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newUser(t, "a@example.com")
	b := newUser(t, "b@example.com")
	createUser(t, s, a)
	createUser(t, s, b)
	aReset := []*store.ActionToken{newToken(t, a.ID, store.PurposeResetPassword), newToken(t, a.ID, store.PurposeResetPassword)}
	aVerify := newToken(t, a.ID, store.PurposeVerifyEmail)
	bReset := newToken(t, b.ID, store.PurposeResetPassword)
	for _, tok := range append(slices.Clone(aReset), aVerify, bReset) {
		issueOK(t, s, tok)
	}
	// A used token goes too.
	if err := s.UseToken(ctx, store.PurposeResetPassword, aReset[0].Digest, t0); err != nil {
		t.Fatalf("UseToken: %v", err)
	}

	n, err := s.DeleteUserTokens(ctx, a.ID, store.PurposeResetPassword)
	if err != nil || n != 2 {
		t.Fatalf("DeleteUserTokens = %d, %v; want 2, nil", n, err)
	}
	for _, tok := range aReset {
		if _, err := s.TokenByDigest(ctx, store.PurposeResetPassword, tok.Digest); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TokenByDigest of a deleted token: err = %v, want ErrNotFound", err)
		}
	}
	for _, tok := range []*store.ActionToken{aVerify, bReset} {
		got, err := s.TokenByDigest(ctx, tok.Purpose, tok.Digest)
		if err != nil {
			t.Errorf("TokenByDigest of a token DeleteUserTokens must keep (%s of %s): %v", tok.Purpose, tok.UserID, err)
			continue
		}
		checkToken(t, got, tok)
	}
	for _, id := range []string{a.ID, newID(t)} {
		if n, err := s.DeleteUserTokens(ctx, id, store.PurposeResetPassword); err != nil || n != 0 {
			t.Errorf("DeleteUserTokens with nothing to delete = %d, %v; want 0, nil", n, err)
		}
	}
}

func testDeleteExpiredTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "expiry@example.com")
	createUser(t, s, u)
	now := t0.Truncate(time.Microsecond)
	expiries := []struct {
		expires time.Time
		used    bool
		gone    bool
	}{
		{now.Add(-time.Hour), false, true},
		{now.Add(-time.Hour), true, true},
		{now.Add(-time.Microsecond), false, true},
		{now, false, true}, // "not after now"
		{now.Add(time.Microsecond), false, false},
		{now.Add(time.Hour), true, false},
		{now.Add(time.Hour), false, false},
	}
	var toks []*store.ActionToken
	for i, e := range expiries {
		tok := newToken(t, u.ID, []store.Purpose{store.PurposeResetPassword, store.PurposeVerifyEmail}[i%2])
		tok.CreatedAt = now.Add(-2 * time.Hour)
		tok.ExpiresAt = e.expires
		issueOK(t, s, tok)
		if e.used {
			if err := s.UseToken(ctx, tok.Purpose, tok.Digest, now.Add(-time.Minute)); err != nil {
				t.Fatalf("UseToken: %v", err)
			}
			tok.UsedAt = now.Add(-time.Minute)
		}
		toks = append(toks, tok)
	}
	n, err := s.DeleteExpiredTokens(ctx, now)
	if err != nil || n != 4 {
		t.Errorf("DeleteExpiredTokens = %d, %v; want 4, nil", n, err)
	}
	for i, e := range expiries {
		got, err := s.TokenByDigest(ctx, toks[i].Purpose, toks[i].Digest)
		switch {
		case e.gone && !errors.Is(err, store.ErrNotFound):
			t.Errorf("token expiring at now%+v: err = %v, want ErrNotFound", e.expires.Sub(now), err)
		case !e.gone && err != nil:
			t.Errorf("token expiring at now%+v: %v, want it kept", e.expires.Sub(now), err)
		case !e.gone:
			checkToken(t, got, toks[i])
		}
	}
	if n, err := s.DeleteExpiredTokens(ctx, now); err != nil || n != 0 {
		t.Errorf("second DeleteExpiredTokens = %d, %v; want 0, nil", n, err)
	}
}

// A user's tokens go with the user; the mail already queued stays.
func testTokensDeletedWithUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	gone := newUser(t, "gone@example.com")
	kept := newUser(t, "kept@example.com")
	createUser(t, s, gone)
	createUser(t, s, kept)
	goneTok := newToken(t, gone.ID, store.PurposeVerifyEmail)
	goneMsg := newMessage(t, gone.Email)
	if !issue(t, s, goneTok, goneMsg, store.MailLimit{}, t0) {
		t.Fatal("IssueToken refused")
	}
	keptTok := newToken(t, kept.ID, store.PurposeVerifyEmail)
	issueOK(t, s, keptTok)

	if err := s.DeleteUser(ctx, gone.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.TokenByDigest(ctx, store.PurposeVerifyEmail, goneTok.Digest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByDigest of a deleted user's token: err = %v, want ErrNotFound", err)
	}
	if err := s.UseToken(ctx, store.PurposeVerifyEmail, goneTok.Digest, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UseToken of a deleted user's token: err = %v, want ErrNotFound", err)
	}
	got, err := s.TokenByDigest(ctx, store.PurposeVerifyEmail, keptTok.Digest)
	if err != nil {
		t.Fatalf("TokenByDigest of another user's token: %v", err)
	}
	checkToken(t, got, keptTok)
	if got := claimIDs(t, s, t0.Add(time.Hour), 100); !slices.Contains(got, goneMsg.ID) {
		t.Errorf("ClaimMessages after DeleteUser = %v, want it to include the deleted user's message %d", got, goneMsg.ID)
	}
}

func testQueueMessage(t *testing.T, s store.Store) {
	tests := []struct {
		name   string
		modify func(m *store.Message)
	}{
		{"every field", func(m *store.Message) {}},
		{"non-ASCII", func(m *store.Message) {
			m.To = "Zoë <zoë@exämple.com>"
			m.Subject = "Réinitialisez votre mot de passe — 山田"
			m.Text = "Bonjour\r\n\r\nLigne 2, après un CRLF\tet une tabulation"
			m.HTML = "<p>Bonjour &amp; <b>bienvenue</b></p>"
		}},
		{"empty bodies", func(m *store.Message) { m.Subject, m.Text, m.HTML = "", "", "" }},
		{"earlier attempts", func(m *store.Message) { m.Attempts, m.LastError = 4, "dial tcp: connection refused" }},
	}
	seen := map[int64]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := newMessage(t, "queue@example.com")
			tc.modify(msg)
			want := *msg
			queueMessage(t, s, msg)
			if msg.ID == 0 || seen[msg.ID] {
				t.Fatalf("QueueMessage set ID %d, want a new non-zero one (seen %v)", msg.ID, seen)
			}
			seen[msg.ID] = true
			want.ID = msg.ID

			claimed := claimMessages(t, s, msg.NextAttemptAt, 10)
			if len(claimed) != 1 {
				t.Fatalf("ClaimMessages = %v, want message %d", ids(claimed), msg.ID)
			}
			want.Attempts++
			want.NextAttemptAt = want.NextAttemptAt.Add(lease)
			checkMessage(t, &claimed[0], &want)
		})
	}

	// A zero NextAttemptAt is due at once.
	msg := newMessage(t, "now@example.com")
	msg.NextAttemptAt = time.Time{}
	queueMessage(t, s, msg)
	if got := claimIDs(t, s, time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), 10); !slices.Equal(got, []int64{msg.ID}) {
		t.Errorf("ClaimMessages of a message with a zero NextAttemptAt = %v, want %d", got, msg.ID)
	}
}

// A claimed message is leased: not claimed again before leaseUntil, and
// claimed again from then on, one attempt more.
func testClaimMessagesLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := t0.Truncate(time.Microsecond)
	msg := newMessage(t, "lease@example.com")
	msg.NextAttemptAt = now
	queueMessage(t, s, msg)

	leaseUntil := now.Add(lease)
	for attempt := 1; attempt <= 3; attempt++ {
		got, err := s.ClaimMessages(ctx, now, leaseUntil, 10)
		if err != nil {
			t.Fatalf("ClaimMessages: %v", err)
		}
		if len(got) != 1 || got[0].ID != msg.ID {
			t.Fatalf("ClaimMessages, attempt %d = %v, want message %d", attempt, ids(got), msg.ID)
		}
		if got[0].Attempts != attempt {
			t.Errorf("Attempts after claim %d = %d, want %d", attempt, got[0].Attempts, attempt)
		}
		checkTime(t, "NextAttemptAt of a claimed message", got[0].NextAttemptAt, leaseUntil)
		for _, at := range []time.Time{now, leaseUntil.Add(-time.Microsecond)} {
			if again := claimIDs(t, s, at, 10); len(again) != 0 {
				t.Errorf("ClaimMessages at %v, inside the lease ending %v = %v, want none", at, leaseUntil, again)
			}
		}
		now, leaseUntil = leaseUntil, leaseUntil.Add(lease)
	}
}

func testClaimMessagesOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := t0.Truncate(time.Microsecond)
	// Queued out of order: claims go by CreatedAt, then ID, not by
	// insertion or by NextAttemptAt.
	created := []time.Duration{3, 0, 4, 1, 1, 2, -5}
	var msgs []*store.Message
	for i, c := range created {
		msg := newMessage(t, fmt.Sprintf("order%d@example.com", i))
		msg.CreatedAt = now.Add(c * time.Minute)
		msg.NextAttemptAt = now.Add(-time.Duration(i) * time.Second)
		queueMessage(t, s, msg)
		msgs = append(msgs, msg)
	}
	// The oldest one is not due yet.
	msgs[6].NextAttemptAt = now.Add(time.Microsecond)
	if err := s.RetryMessage(ctx, msgs[6].ID, msgs[6].NextAttemptAt, ""); err != nil {
		t.Fatalf("RetryMessage: %v", err)
	}
	order := []int64{msgs[1].ID, msgs[3].ID, msgs[4].ID, msgs[5].ID, msgs[0].ID, msgs[2].ID}

	if got, err := s.ClaimMessages(ctx, now, now.Add(lease), 0); err != nil || len(got) != 0 {
		t.Errorf("ClaimMessages with n = 0 = %v, %v; want none", ids(got), err)
	}
	if got := claimIDs(t, s, now, 2); !slices.Equal(got, order[:2]) {
		t.Errorf("ClaimMessages(n = 2) = %v, want %v", got, order[:2])
	}
	if got := claimIDs(t, s, now, 3); !slices.Equal(got, order[2:5]) {
		t.Errorf("ClaimMessages(n = 3) = %v, want %v", got, order[2:5])
	}
	if got := claimIDs(t, s, now, 10); !slices.Equal(got, order[5:]) {
		t.Errorf("ClaimMessages(n = 10) = %v, want %v", got, order[5:])
	}
	if got := claimIDs(t, s, now, 10); len(got) != 0 {
		t.Errorf("ClaimMessages with everything leased = %v, want none", got)
	}
	if got := claimIDs(t, s, now.Add(time.Microsecond), 10); !slices.Equal(got, []int64{msgs[6].ID}) {
		t.Errorf("ClaimMessages once the last one is due = %v, want %d", got, msgs[6].ID)
	}
}

// Two senders never get the same message.
func testClaimMessagesConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const messages, senders, batch = 60, 8, 4
	want := map[int64]bool{}
	for i := range messages {
		msg := newMessage(t, fmt.Sprintf("c%02d@example.com", i))
		queueMessage(t, s, msg)
		want[msg.ID] = true
	}
	now := t0.Add(time.Hour)
	claimed := make([][]int64, senders)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range senders {
		wg.Go(func() {
			<-start
			for {
				got, err := s.ClaimMessages(ctx, now, now.Add(lease), batch)
				if err != nil {
					t.Errorf("ClaimMessages in sender %d: %v", i, err)
					return
				}
				if len(got) == 0 {
					return
				}
				if len(got) > batch {
					t.Errorf("ClaimMessages(n = %d) returned %d messages", batch, len(got))
				}
				for _, m := range got {
					claimed[i] = append(claimed[i], m.ID)
					if m.Attempts != 1 {
						t.Errorf("message %d claimed with Attempts %d, want 1: claimed twice", m.ID, m.Attempts)
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	owner := map[int64]int{}
	for i, list := range claimed {
		for _, id := range list {
			if j, dup := owner[id]; dup {
				t.Errorf("message %d claimed by senders %d and %d", id, j, i)
			}
			owner[id] = i
		}
	}
	for id := range want {
		if _, ok := owner[id]; !ok {
			t.Errorf("message %d never claimed", id)
		}
	}
	if len(owner) != len(want) {
		t.Errorf("%d messages claimed, want %d", len(owner), len(want))
	}
}

func testDeleteMessage(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newMessage(t, "a@example.com")
	b := newMessage(t, "b@example.com")
	queueMessage(t, s, a)
	queueMessage(t, s, b)
	// Delivered while leased, as a sender does.
	if got := claimIDs(t, s, a.NextAttemptAt, 1); !slices.Equal(got, []int64{a.ID}) {
		t.Fatalf("ClaimMessages = %v, want %d", got, a.ID)
	}
	if err := s.DeleteMessage(ctx, a.ID); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	if err := s.DeleteMessage(ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteMessage: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteMessage(ctx, b.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteMessage(unknown): err = %v, want ErrNotFound", err)
	}
	if err := s.RetryMessage(ctx, a.ID, t0, "too late"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RetryMessage of a deleted message: err = %v, want ErrNotFound", err)
	}
	if got := claimIDs(t, s, t0.Add(24*time.Hour), 10); !slices.Equal(got, []int64{b.ID}) {
		t.Errorf("ClaimMessages after DeleteMessage = %v, want only %d", got, b.ID)
	}
}

func testRetryMessage(t *testing.T, s store.Store) {
	ctx := t.Context()
	msg := newMessage(t, "retry@example.com")
	other := newMessage(t, "other@example.com")
	other.NextAttemptAt = t0.Add(48 * time.Hour)
	queueMessage(t, s, msg)
	queueMessage(t, s, other)
	now := msg.NextAttemptAt
	if got := claimIDs(t, s, now, 10); !slices.Equal(got, []int64{msg.ID}) {
		t.Fatalf("ClaimMessages = %v, want %d", got, msg.ID)
	}
	// Due again before the lease would end: a sender that failed at once.
	next := now.Add(time.Minute + 123456789)
	if err := s.RetryMessage(ctx, msg.ID, next, "454 4.7.0 TLS not available"); err != nil {
		t.Fatalf("RetryMessage: %v", err)
	}
	if got := claimIDs(t, s, next.Add(-time.Microsecond), 10); len(got) != 0 {
		t.Errorf("ClaimMessages before the retry time = %v, want none", got)
	}
	got := claimMessages(t, s, next, 10)
	if len(got) != 1 {
		t.Fatalf("ClaimMessages at the retry time = %v, want %d", ids(got), msg.ID)
	}
	want := *msg
	want.Attempts += 2
	want.NextAttemptAt = next.Add(lease)
	want.LastError = "454 4.7.0 TLS not available"
	checkMessage(t, &got[0], &want)

	if err := s.RetryMessage(ctx, other.ID+1000, next, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RetryMessage(unknown): err = %v, want ErrNotFound", err)
	}
}

// newToken returns a token of userID with every field set but UsedAt, and
// a random digest.
func newToken(t *testing.T, userID string, purpose store.Purpose) *store.ActionToken {
	t.Helper()
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		t.Fatalf("reading random bytes: %v", err)
	}
	digest := sha256.Sum256(token)
	return &store.ActionToken{
		Digest:    digest[:],
		UserID:    userID,
		Purpose:   purpose,
		Email:     "Token.Owner@Example.com",
		CreatedAt: t0.Add(time.Minute + 111),
		ExpiresAt: t0.Add(time.Hour + 222),
	}
}

// newMessage returns a message to to with every field set but ID.
func newMessage(t *testing.T, to string) *store.Message {
	t.Helper()
	return &store.Message{
		To:            to,
		Subject:       "Reset your password",
		Text:          "Follow https://example.com/auth/reset-password?token=abc\n",
		HTML:          `<p><a href="https://example.com/auth/reset-password?token=abc">Reset</a></p>`,
		CreatedAt:     t0.Add(2*time.Minute + 333),
		NextAttemptAt: t0.Add(3*time.Minute + 444),
	}
}

// issue calls IssueToken, failing the test on error.
func issue(t *testing.T, s store.Store, tok *store.ActionToken, msg *store.Message, limit store.MailLimit, now time.Time) bool {
	t.Helper()
	ok, err := s.IssueToken(t.Context(), tok, msg, limit, now)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	return ok
}

// issueOK issues tok, with a message to its Email, without a limit.
func issueOK(t *testing.T, s store.Store, tok *store.ActionToken) {
	t.Helper()
	if !issue(t, s, tok, newMessage(t, tok.Email), store.MailLimit{}, t0) {
		t.Fatal("IssueToken without a limit refused")
	}
}

func queueMessage(t *testing.T, s store.Store, msg *store.Message) {
	t.Helper()
	if err := s.QueueMessage(t.Context(), msg); err != nil {
		t.Fatalf("QueueMessage: %v", err)
	}
}

// claimMessages claims up to n messages due at now, leased for lease.
func claimMessages(t *testing.T, s store.Store, now time.Time, n int) []store.Message {
	t.Helper()
	got, err := s.ClaimMessages(t.Context(), now, now.Add(lease), n)
	if err != nil {
		t.Fatalf("ClaimMessages: %v", err)
	}
	if len(got) > n {
		t.Fatalf("ClaimMessages(n = %d) returned %d messages", n, len(got))
	}
	return got
}

// claimIDs is claimMessages returning the ids, in the order returned.
func claimIDs(t *testing.T, s store.Store, now time.Time, n int) []int64 {
	t.Helper()
	return ids(claimMessages(t, s, now, n))
}

func ids(msgs []store.Message) []int64 {
	out := []int64{}
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

// checkToken reports every field of got that differs from want.
func checkToken(t *testing.T, got, want *store.ActionToken) {
	t.Helper()
	if got == nil {
		t.Fatalf("token is nil, want %x", want.Digest)
	}
	if !bytes.Equal(got.Digest, want.Digest) {
		t.Errorf("Digest = %x, want %x", got.Digest, want.Digest)
	}
	if got.UserID != want.UserID {
		t.Errorf("UserID = %q, want %q", got.UserID, want.UserID)
	}
	if got.Purpose != want.Purpose {
		t.Errorf("Purpose = %q, want %q", got.Purpose, want.Purpose)
	}
	if got.Email != want.Email {
		t.Errorf("Email = %q, want %q", got.Email, want.Email)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	if want.UsedAt.IsZero() {
		if !got.UsedAt.IsZero() {
			t.Errorf("UsedAt = %v, want zero (unused)", got.UsedAt)
		}
	} else {
		checkTime(t, "UsedAt", got.UsedAt, want.UsedAt)
	}
}

// checkMessage reports every field of got that differs from want.
func checkMessage(t *testing.T, got, want *store.Message) {
	t.Helper()
	if got.ID != want.ID {
		t.Errorf("ID = %d, want %d", got.ID, want.ID)
	}
	if got.To != want.To {
		t.Errorf("To = %q, want %q", got.To, want.To)
	}
	if got.Subject != want.Subject {
		t.Errorf("Subject = %q, want %q", got.Subject, want.Subject)
	}
	if got.Text != want.Text {
		t.Errorf("Text = %q, want %q", got.Text, want.Text)
	}
	if got.HTML != want.HTML {
		t.Errorf("HTML = %q, want %q", got.HTML, want.HTML)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	if got.Attempts != want.Attempts {
		t.Errorf("Attempts = %d, want %d", got.Attempts, want.Attempts)
	}
	checkTime(t, "NextAttemptAt", got.NextAttemptAt, want.NextAttemptAt)
	if got.LastError != want.LastError {
		t.Errorf("LastError = %q, want %q", got.LastError, want.LastError)
	}
}

// A request that sends no mail counts against the address's limit like
// one that does, and stores no token or message.
func testNoteMailRequest(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	limit := store.MailLimit{Max: 2, Window: time.Hour}
	for i, want := range []bool{true, true, false} {
		under, err := s.NoteMailRequest(ctx, "Ghost@Example.com", limit, now.Add(time.Duration(i)*time.Second))
		if err != nil || under != want {
			t.Fatalf("NoteMailRequest #%d = %v, %v; want %v", i+1, under, err, want)
		}
	}
	if msgs, err := s.ClaimMessages(ctx, now.Add(time.Hour), now.Add(2*time.Hour), 10); err != nil || len(msgs) != 0 {
		t.Fatalf("ClaimMessages = %v, %v; want nothing queued", msgs, err)
	}
	// The same address (another case), now with an account: at its limit.
	u := newUser(t, "ghost@example.COM")
	createUser(t, s, u)
	if issue(t, s, newToken(t, u.ID, store.PurposeResetPassword), newMessage(t, u.Email), limit, now.Add(time.Minute)) {
		t.Fatal("IssueToken went past a limit reached by NoteMailRequest")
	}
	// Past the window it is free again.
	if !issue(t, s, newToken(t, u.ID, store.PurposeResetPassword), newMessage(t, u.Email), limit, now.Add(time.Hour+2*time.Second)) {
		t.Fatal("IssueToken refused after the window")
	}
	// No limit: always under.
	if under, err := s.NoteMailRequest(ctx, "ghost@example.com", store.MailLimit{}, now); err != nil || !under {
		t.Fatalf("NoteMailRequest without a limit = %v, %v", under, err)
	}
}

// A mail that carries a token is worth delivering only while the token
// works: IssueToken gives the message the token's expiry (or the
// message's own, if sooner), and the outbox returns it with the message.
func testMessageExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "expiry@example.com")
	createUser(t, s, u)
	now := t0.Add(time.Hour)

	tok := newToken(t, u.ID, store.PurposeResetPassword)
	msg := newMessage(t, u.Email)
	msg.NextAttemptAt = now
	if ok, err := s.IssueToken(ctx, tok, msg, store.MailLimit{}, now); err != nil || !ok {
		t.Fatalf("IssueToken = %v, %v", ok, err)
	}
	checkTime(t, "msg.ExpiresAt after IssueToken", msg.ExpiresAt.Truncate(time.Microsecond), tok.ExpiresAt.Truncate(time.Microsecond))

	sooner := newToken(t, u.ID, store.PurposeVerifyEmail)
	msg2 := newMessage(t, u.Email)
	msg2.NextAttemptAt = now
	msg2.ExpiresAt = sooner.ExpiresAt.Add(-time.Minute).Truncate(time.Microsecond)
	want2 := msg2.ExpiresAt
	if ok, err := s.IssueToken(ctx, sooner, msg2, store.MailLimit{}, now); err != nil || !ok {
		t.Fatalf("IssueToken = %v, %v", ok, err)
	}

	plain := newMessage(t, "notice@example.com")
	plain.NextAttemptAt = now
	if err := s.QueueMessage(ctx, plain); err != nil {
		t.Fatal(err)
	}
	claimed := claimMessages(t, s, now, 10)
	if len(claimed) != 3 {
		t.Fatalf("claimed %d messages, want 3", len(claimed))
	}
	for _, m := range claimed {
		switch m.ID {
		case msg.ID:
			checkTime(t, "claimed ExpiresAt (token's)", m.ExpiresAt, tok.ExpiresAt.Truncate(time.Microsecond))
		case msg2.ID:
			checkTime(t, "claimed ExpiresAt (message's own, sooner)", m.ExpiresAt, want2)
		case plain.ID:
			if !m.ExpiresAt.IsZero() {
				t.Errorf("a message queued without a deadline has ExpiresAt %v", m.ExpiresAt)
			}
		}
	}
}
