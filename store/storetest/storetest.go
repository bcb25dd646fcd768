package storetest

import (
	"bytes"
	"context"
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

// Run checks that the stores open returns keep the store.Store contract.
// Every sub-test calls open once and runs in parallel with the others, so
// open must return a new, empty store independent of any other it returned.
// The suite closes each store; open may register cleanups (removing files,
// dropping a schema) with t.Cleanup, which run after the store is closed.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		test func(t *testing.T, s store.Store)
	}{
		{"CreateAndGetUser", testCreateAndGetUser},
		{"UserFieldsRoundTrip", testUserFieldsRoundTrip},
		{"UserTimestamps", testUserTimestamps},
		{"DuplicateEmail", testDuplicateEmail},
		{"UnknownUser", testUnknownUser},
		{"UpdateUser", testUpdateUser},
		{"UpdateUserEmailTaken", testUpdateUserEmailTaken},
		{"UpdateUserEmailCase", testUpdateUserEmailCase},
		{"UpdateUnknownUser", testUpdateUnknownUser},
		{"UpdateUserAbort", testUpdateUserAbort},
		{"UpdateUserSerialized", testUpdateUserSerialized},
		{"DeleteUser", testDeleteUser},
		{"ListUsers", testListUsers},
		{"SessionByDigest", testSessionByDigest},
		{"SessionUnknownDigest", testSessionUnknownDigest},
		{"CreateSessionUnknownUser", testCreateSessionUnknownUser},
		{"CreateSessionConflict", testCreateSessionConflict},
		{"TouchSession", testTouchSession},
		{"DeleteSession", testDeleteSession},
		{"DeleteUserSessions", testDeleteUserSessions},
		{"UserSessions", testUserSessions},
		{"DeleteExpiredSessions", testDeleteExpiredSessions},
		{"SettingOrInit", testSettingOrInit},
		{"SettingOrInitConcurrent", testSettingOrInitConcurrent},
		{"IssueToken", testIssueToken},
		{"IssueTokenDefaults", testIssueTokenDefaults},
		{"IssueTokenLimit", testIssueTokenLimit},
		{"NoteMailRequest", testNoteMailRequest},
		{"MessageExpiry", testMessageExpiry},
		{"IssueTokenWindow", testIssueTokenWindow},
		{"IssueTokenUnlimited", testIssueTokenUnlimited},
		{"IssueTokenConcurrent", testIssueTokenConcurrent},
		{"IssueTokenErrors", testIssueTokenErrors},
		{"TokenByDigest", testTokenByDigest},
		{"UseToken", testUseToken},
		{"UseTokenConcurrent", testUseTokenConcurrent},
		{"DeleteUserTokens", testDeleteUserTokens},
		{"DeleteExpiredTokens", testDeleteExpiredTokens},
		{"TokensDeletedWithUser", testTokensDeletedWithUser},
		{"QueueMessage", testQueueMessage},
		{"ClaimMessagesLease", testClaimMessagesLease},
		{"ClaimMessagesOrder", testClaimMessagesOrder},
		{"ClaimMessagesConcurrent", testClaimMessagesConcurrent},
		{"DeleteMessage", testDeleteMessage},
		{"RetryMessage", testRetryMessage},
		{"RecordFailure", testRecordFailure},
		{"RecordFailureWindow", testRecordFailureWindow},
		{"RecordFailureConcurrent", testRecordFailureConcurrent},
		{"ClearFailures", testClearFailures},
		{"LiftLimit", testLiftLimit},
		{"DeleteExpiredLimits", testDeleteExpiredLimits},
		{"ConcurrentWrites", testConcurrentWrites},
		{"CancelledContext", testCancelledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.test(t, s)
		})
	}
}

// t0 has nanoseconds and a zone other than UTC, so that a store that keeps
// neither still compares equal after truncation to microseconds.
var t0 = time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("CEST", 2*60*60))

func testCreateAndGetUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "Foo.Bar@Example.com")
	createUser(t, s, u)

	got, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	checkUser(t, got, u)

	got, err = s.UserByEmail(ctx, "foo.bar@example.COM")
	if err != nil {
		t.Fatalf("UserByEmail in another case: %v", err)
	}
	if got.Email != "Foo.Bar@Example.com" {
		t.Errorf("Email = %q, want it as stored, %q", got.Email, "Foo.Bar@Example.com")
	}
	checkUser(t, got, u)
}

func testUserFieldsRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name   string
		modify func(u *store.User)
	}{
		{"all true", func(u *store.User) { u.IsActive, u.IsSuperuser, u.IsVerified = true, true, true }},
		{"all false", func(u *store.User) { u.IsActive, u.IsSuperuser, u.IsVerified = false, false, false }},
		{"only active", func(u *store.User) { u.IsActive, u.IsSuperuser, u.IsVerified = true, false, false }},
		{"only superuser", func(u *store.User) { u.IsActive, u.IsSuperuser, u.IsVerified = false, true, false }},
		{"only verified", func(u *store.User) { u.IsActive, u.IsSuperuser, u.IsVerified = false, false, true }},
		{"nil roles", func(u *store.User) { u.Roles = nil }},
		{"empty roles", func(u *store.User) { u.Roles = []string{} }},
		{"roles in order", func(u *store.User) { u.Roles = []string{"zeta", "alpha", "mid", "Ünïcode role"} }},
		{"empty full name", func(u *store.User) { u.FullName = "" }},
		{"non-ASCII full name", func(u *store.User) { u.FullName = `Zoë "Z" O'Brien-Łukasiewicz 山田` }},
		{"bcrypt hash", func(u *store.User) { u.HashedPassword = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW" }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser(t, fmt.Sprintf("user%d@example.com", i))
			tc.modify(u)
			createUser(t, s, u)

			byID, err := s.UserByID(ctx, u.ID)
			if err != nil {
				t.Fatalf("UserByID: %v", err)
			}
			checkUser(t, byID, u)
			byEmail, err := s.UserByEmail(ctx, u.Email)
			if err != nil {
				t.Fatalf("UserByEmail: %v", err)
			}
			checkUser(t, byEmail, u)
			all, err := s.ListUsers(ctx)
			if err != nil {
				t.Fatalf("ListUsers: %v", err)
			}
			i := slices.IndexFunc(all, func(x store.User) bool { return x.ID == u.ID })
			if i < 0 {
				t.Fatalf("ListUsers does not list user %s", u.ID)
			}
			checkUser(t, &all[i], u)
		})
	}
}

func testUserTimestamps(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name             string
		created, updated time.Time
	}{
		{"nanoseconds in another zone", t0, t0.Add(36*time.Hour + 987654321)},
		{"UTC whole seconds", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2031, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"before 1970", time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(1960, 1, 1, 0, 0, 0, 500, time.UTC)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser(t, fmt.Sprintf("time%d@example.com", i))
			u.CreatedAt, u.UpdatedAt = tc.created, tc.updated
			createUser(t, s, u)
			got, err := s.UserByID(ctx, u.ID)
			if err != nil {
				t.Fatalf("UserByID: %v", err)
			}
			checkTime(t, "CreatedAt", got.CreatedAt, tc.created)
			checkTime(t, "UpdatedAt", got.UpdatedAt, tc.updated)
		})
	}
}

func testDuplicateEmail(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct{ first, second, lookup string }{
		{"same@example.com", "same@example.com", "same@example.com"},
		{"Foo.Bar@Example.com", "foo.bar@example.COM", "FOO.BAR@EXAMPLE.COM"},
		// Non-ASCII letters fold too: the key is case-folded like Go's
		// strings.ToLower, not like an ASCII-only lower().
		{"ÉLOISE@x.io", "éloise@x.io", "Éloise@X.IO"},
		{"straße@x.io", "STRAßE@x.io", "Straße@x.io"},
	}
	for _, tc := range tests {
		t.Run(tc.first+" vs "+tc.second, func(t *testing.T) {
			first := newUser(t, tc.first)
			createUser(t, s, first)
			second := newUser(t, tc.second)
			err := s.CreateUser(ctx, second)
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("CreateUser(%q) after %q: err = %v, want ErrConflict", tc.second, tc.first, err)
			}
			got, err := s.UserByEmail(ctx, tc.lookup)
			if err != nil {
				t.Fatalf("UserByEmail(%q): %v", tc.lookup, err)
			}
			checkUser(t, got, first)
			if _, err := s.UserByID(ctx, second.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UserByID of the rejected user: err = %v, want ErrNotFound", err)
			}
		})
	}
}

func testUnknownUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	createUser(t, s, newUser(t, "someone@example.com"))
	if u, err := s.UserByID(ctx, newID(t)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByID(unknown) = %v, %v; want ErrNotFound", u, err)
	}
	if u, err := s.UserByEmail(ctx, "nobody@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByEmail(unknown) = %v, %v; want ErrNotFound", u, err)
	}
	if u, err := s.UserByEmail(ctx, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf(`UserByEmail("") = %v, %v; want ErrNotFound`, u, err)
	}
}

func testUpdateUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "before@example.com")
	createUser(t, s, u)

	want := &store.User{
		ID:             u.ID,
		Email:          "After@Example.org",
		HashedPassword: "$argon2id$v=19$m=65536,t=3,p=4$bmV3c2FsdA$bmV3aGFzaA",
		IsActive:       !u.IsActive,
		IsSuperuser:    !u.IsSuperuser,
		IsVerified:     !u.IsVerified,
		FullName:       "Changed Name",
		Roles:          []string{"editor", "admin"},
		CreatedAt:      u.CreatedAt.Add(-24 * time.Hour), // must be ignored
		UpdatedAt:      u.UpdatedAt.Add(time.Hour + 1234567),
	}
	if err := replaceUser(ctx, s, want); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	expected := *want
	expected.CreatedAt = u.CreatedAt
	checkUser(t, got, &expected)

	if _, err := s.UserByEmail(ctx, "before@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByEmail(old email): err = %v, want ErrNotFound", err)
	}
	got, err = s.UserByEmail(ctx, "after@example.ORG")
	if err != nil {
		t.Fatalf("UserByEmail(new email): %v", err)
	}
	checkUser(t, got, &expected)

	// The old email is free again.
	createUser(t, s, newUser(t, "BEFORE@example.com"))
}

func testUpdateUserEmailTaken(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newUser(t, "a@example.com")
	b := newUser(t, "Bee@Example.com")
	createUser(t, s, a)
	createUser(t, s, b)
	for _, email := range []string{"Bee@Example.com", "bee@example.com", "BEE@EXAMPLE.COM"} {
		moved := *a
		moved.Email = email
		moved.FullName = "should not be stored"
		if err := replaceUser(ctx, s, &moved); !errors.Is(err, store.ErrConflict) {
			t.Errorf("UpdateUser to another user's email %q: err = %v, want ErrConflict", email, err)
		}
	}
	got, err := s.UserByID(ctx, a.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	checkUser(t, got, a)
	got, err = s.UserByEmail(ctx, "bee@example.com")
	if err != nil {
		t.Fatalf("UserByEmail: %v", err)
	}
	checkUser(t, got, b)
}

func testUpdateUserEmailCase(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "eloise@example.com")
	createUser(t, s, u)
	want := *u
	want.Email = "Eloise@EXAMPLE.com"
	if err := replaceUser(ctx, s, &want); err != nil {
		t.Fatalf("UpdateUser changing only the case of its own email: %v", err)
	}
	got, err := s.UserByEmail(ctx, "eloise@example.com")
	if err != nil {
		t.Fatalf("UserByEmail: %v", err)
	}
	if got.Email != "Eloise@EXAMPLE.com" {
		t.Errorf("Email = %q, want %q", got.Email, "Eloise@EXAMPLE.com")
	}
	checkUser(t, got, &want)
}

func testUpdateUnknownUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	someone := newUser(t, "someone@example.com")
	createUser(t, s, someone)
	ghost := newUser(t, "ghost@example.com")
	if err := replaceUser(ctx, s, ghost); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser(unknown): err = %v, want ErrNotFound", err)
	}
	// With an email that is another user's, either answer is in the
	// contract, but nothing may be written.
	ghost.Email = "SOMEONE@example.com"
	if err := replaceUser(ctx, s, ghost); !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateUser(unknown, taken email): err = %v, want ErrNotFound or ErrConflict", err)
	}
	if _, err := s.UserByID(ctx, ghost.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByID after UpdateUser(unknown): err = %v, want ErrNotFound", err)
	}
	got, err := s.UserByEmail(ctx, "someone@example.com")
	if err != nil {
		t.Fatalf("UserByEmail: %v", err)
	}
	checkUser(t, got, someone)
}

func testDeleteUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	gone := newUser(t, "gone@example.com")
	kept := newUser(t, "kept@example.com")
	createUser(t, s, gone)
	createUser(t, s, kept)
	goneSessions := []*store.Session{newSession(t, gone.ID), newSession(t, gone.ID)}
	for _, ss := range goneSessions {
		createSession(t, s, ss)
	}
	keptSession := newSession(t, kept.ID)
	createSession(t, s, keptSession)

	if err := s.DeleteUser(ctx, gone.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.UserByID(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByID after DeleteUser: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UserByEmail(ctx, gone.Email); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByEmail after DeleteUser: err = %v, want ErrNotFound", err)
	}
	for _, ss := range goneSessions {
		if _, _, err := s.SessionByDigest(ctx, ss.TokenDigest); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SessionByDigest of a deleted user's session: err = %v, want ErrNotFound", err)
		}
	}
	if list, err := s.UserSessions(ctx, gone.ID); err != nil || len(list) != 0 {
		t.Errorf("UserSessions of a deleted user = %d sessions, %v; want none", len(list), err)
	}
	gotSession, gotUser, err := s.SessionByDigest(ctx, keptSession.TokenDigest)
	if err != nil {
		t.Fatalf("SessionByDigest of another user's session: %v", err)
	}
	checkSession(t, gotSession, keptSession)
	checkUser(t, gotUser, kept)

	if err := s.DeleteUser(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteUser: err = %v, want ErrNotFound", err)
	}
	// The email is free again.
	createUser(t, s, newUser(t, "GONE@example.com"))
}

func testListUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	all, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatalf("ListUsers on an empty store: %v", err)
	}
	if len(all) != 0 {
		t.Fatalf("ListUsers on an empty store = %d users, want 0", len(all))
	}
	// A byte-wise order would put the capitals first.
	users := map[string]*store.User{}
	for _, email := range []string{"Carol@x.io", "alice@x.io", "dave@x.io", "Bob@x.io", "Erin@x.io"} {
		u := newUser(t, email)
		createUser(t, s, u)
		users[email] = u
	}
	all, err = s.ListUsers(ctx)
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	var got []string
	for _, u := range all {
		got = append(got, u.Email)
	}
	want := []string{"alice@x.io", "Bob@x.io", "Carol@x.io", "dave@x.io", "Erin@x.io"}
	if !slices.Equal(got, want) {
		t.Fatalf("ListUsers order = %q, want %q", got, want)
	}
	for i := range all {
		checkUser(t, &all[i], users[all[i].Email])
	}
}

func testSessionByDigest(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "Session.Owner@example.com")
	u.Roles = []string{"b", "a"}
	createUser(t, s, u)
	tests := []struct {
		name   string
		modify func(ss *store.Session)
	}{
		{"bearer", func(ss *store.Session) { ss.Transport = store.TransportBearer }},
		{"cookie", func(ss *store.Session) { ss.Transport = store.TransportCookie }},
		{"IPv6 and long user agent", func(ss *store.Session) {
			ss.IP = "2001:db8::1"
			ss.UserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Ünïcode"
		}},
		{"empty user agent and IP", func(ss *store.Session) { ss.UserAgent, ss.IP = "", "" }},
		{"expired", func(ss *store.Session) { ss.ExpiresAt = ss.CreatedAt.Add(-time.Hour) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ss := newSession(t, u.ID)
			tc.modify(ss)
			createSession(t, s, ss)
			gotSession, gotUser, err := s.SessionByDigest(ctx, ss.TokenDigest)
			if err != nil {
				t.Fatalf("SessionByDigest: %v", err)
			}
			checkSession(t, gotSession, ss)
			checkUser(t, gotUser, u)
		})
	}
}

func testSessionUnknownDigest(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "someone@example.com")
	createUser(t, s, u)
	createSession(t, s, newSession(t, u.ID))
	unknown := sha256.Sum256([]byte("not a token"))
	for _, digest := range [][]byte{unknown[:], {}, nil} {
		if ss, su, err := s.SessionByDigest(ctx, digest); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SessionByDigest(%x) = %v, %v, %v; want ErrNotFound", digest, ss, su, err)
		}
	}
}

func testCreateSessionUnknownUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	createUser(t, s, newUser(t, "someone@example.com"))
	ss := newSession(t, newID(t))
	if err := s.CreateSession(ctx, ss); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateSession for an unknown user: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.SessionByDigest(ctx, ss.TokenDigest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SessionByDigest after a rejected CreateSession: err = %v, want ErrNotFound", err)
	}
}

func testCreateSessionConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newUser(t, "a@example.com")
	b := newUser(t, "b@example.com")
	createUser(t, s, a)
	createUser(t, s, b)
	orig := newSession(t, a.ID)
	createSession(t, s, orig)

	sameDigest := newSession(t, b.ID)
	sameDigest.TokenDigest = bytes.Clone(orig.TokenDigest)
	if err := s.CreateSession(ctx, sameDigest); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateSession with a taken digest: err = %v, want ErrConflict", err)
	}
	sameID := newSession(t, b.ID)
	sameID.ID = orig.ID
	if err := s.CreateSession(ctx, sameID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateSession with a taken id: err = %v, want ErrConflict", err)
	}

	gotSession, gotUser, err := s.SessionByDigest(ctx, orig.TokenDigest)
	if err != nil {
		t.Fatalf("SessionByDigest: %v", err)
	}
	checkSession(t, gotSession, orig)
	checkUser(t, gotUser, a)
	if list, err := s.UserSessions(ctx, b.ID); err != nil || len(list) != 0 {
		t.Errorf("UserSessions of the user whose sessions were rejected = %d sessions, %v; want none", len(list), err)
	}
}

func testTouchSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "toucher@example.com")
	createUser(t, s, u)
	ss := newSession(t, u.ID)
	other := newSession(t, u.ID)
	createSession(t, s, ss)
	createSession(t, s, other)

	seen := ss.LastSeenAt.Add(17*time.Minute + 555555555)
	if err := s.TouchSession(ctx, ss.ID, seen); err != nil {
		t.Fatalf("TouchSession: %v", err)
	}
	want := *ss
	want.LastSeenAt = seen
	got, _, err := s.SessionByDigest(ctx, ss.TokenDigest)
	if err != nil {
		t.Fatalf("SessionByDigest: %v", err)
	}
	checkSession(t, got, &want)
	got, _, err = s.SessionByDigest(ctx, other.TokenDigest)
	if err != nil {
		t.Fatalf("SessionByDigest(other): %v", err)
	}
	checkSession(t, got, other)

	if err := s.TouchSession(ctx, newID(t), seen); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchSession(unknown): err = %v, want ErrNotFound", err)
	}
}

func testDeleteSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newUser(t, "a@example.com")
	b := newUser(t, "b@example.com")
	createUser(t, s, a)
	createUser(t, s, b)
	ss := newSession(t, a.ID)
	other := newSession(t, a.ID)
	createSession(t, s, ss)
	createSession(t, s, other)

	// Another user cannot end a's session by naming its id.
	if err := s.DeleteSession(ctx, b.ID, ss.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteSession by the wrong user: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.SessionByDigest(ctx, ss.TokenDigest); err != nil {
		t.Fatalf("SessionByDigest after DeleteSession by the wrong user: %v", err)
	}

	if err := s.DeleteSession(ctx, a.ID, ss.ID); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	if _, _, err := s.SessionByDigest(ctx, ss.TokenDigest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SessionByDigest after DeleteSession: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.SessionByDigest(ctx, other.TokenDigest); err != nil {
		t.Errorf("SessionByDigest of the user's other session: %v", err)
	}
	if err := s.DeleteSession(ctx, a.ID, ss.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteSession: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteSession(ctx, a.ID, newID(t)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteSession(unknown id): err = %v, want ErrNotFound", err)
	}
}

func testDeleteUserSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newUser(t, "a@example.com")
	b := newUser(t, "b@example.com")
	c := newUser(t, "c@example.com")
	for _, u := range []*store.User{a, b, c} {
		createUser(t, s, u)
	}
	var as []*store.Session
	for range 3 {
		ss := newSession(t, a.ID)
		createSession(t, s, ss)
		as = append(as, ss)
	}
	bs := newSession(t, b.ID)
	createSession(t, s, bs)

	n, err := s.DeleteUserSessions(ctx, a.ID, as[1].ID)
	if err != nil {
		t.Fatalf("DeleteUserSessions with keep: %v", err)
	}
	if n != 2 {
		t.Errorf("DeleteUserSessions with keep = %d, want 2", n)
	}
	checkSessionIDs(t, s, a.ID, as[1].ID)
	checkSessionIDs(t, s, b.ID, bs.ID)

	// Keeping another user's session keeps nothing of a's.
	createSession(t, s, as[0])
	n, err = s.DeleteUserSessions(ctx, a.ID, bs.ID)
	if err != nil {
		t.Fatalf("DeleteUserSessions keeping another user's session: %v", err)
	}
	if n != 2 {
		t.Errorf("DeleteUserSessions keeping another user's session = %d, want 2", n)
	}
	checkSessionIDs(t, s, a.ID)
	checkSessionIDs(t, s, b.ID, bs.ID)

	createSession(t, s, as[0])
	createSession(t, s, as[2])
	n, err = s.DeleteUserSessions(ctx, a.ID, "")
	if err != nil {
		t.Fatalf("DeleteUserSessions without keep: %v", err)
	}
	if n != 2 {
		t.Errorf("DeleteUserSessions without keep = %d, want 2", n)
	}
	checkSessionIDs(t, s, a.ID)
	checkSessionIDs(t, s, b.ID, bs.ID)

	for _, id := range []string{c.ID, newID(t)} {
		n, err = s.DeleteUserSessions(ctx, id, "")
		if err != nil || n != 0 {
			t.Errorf("DeleteUserSessions of a user without sessions = %d, %v; want 0, nil", n, err)
		}
	}
	checkSessionIDs(t, s, b.ID, bs.ID)
}

func testUserSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newUser(t, "a@example.com")
	b := newUser(t, "b@example.com")
	createUser(t, s, a)
	createUser(t, s, b)
	if list, err := s.UserSessions(ctx, a.ID); err != nil || len(list) != 0 {
		t.Fatalf("UserSessions of a user without sessions = %d sessions, %v; want none", len(list), err)
	}

	// Inserted out of order: the listing orders by CreatedAt, not insertion.
	var want []*store.Session
	for i := range 4 {
		ss := newSession(t, a.ID)
		ss.CreatedAt = t0.Add(time.Duration(i) * time.Hour)
		ss.LastSeenAt = ss.CreatedAt.Add(time.Minute)
		want = append(want, ss)
	}
	for _, i := range []int{2, 0, 3, 1} {
		createSession(t, s, want[i])
	}
	createSession(t, s, newSession(t, b.ID))
	slices.Reverse(want)

	got, err := s.UserSessions(ctx, a.ID)
	if err != nil {
		t.Fatalf("UserSessions: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("UserSessions = %d sessions, want %d", len(got), len(want))
	}
	for i := range got {
		checkSession(t, &got[i], want[i])
	}
}

func testDeleteExpiredSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newUser(t, "a@example.com")
	b := newUser(t, "b@example.com")
	createUser(t, s, a)
	createUser(t, s, b)
	now := t0.Truncate(time.Microsecond)
	expiries := []struct {
		owner   *store.User
		expires time.Time
		gone    bool
	}{
		{a, now.Add(-time.Hour), true},
		{b, now.Add(-time.Microsecond), true},
		{a, now, true}, // "not after now"
		{b, now.Add(time.Microsecond), false},
		{a, now.Add(time.Hour), false},
	}
	var sessions []*store.Session
	for _, e := range expiries {
		ss := newSession(t, e.owner.ID)
		ss.CreatedAt, ss.LastSeenAt = now.Add(-2*time.Hour), now.Add(-2*time.Hour)
		ss.ExpiresAt = e.expires
		createSession(t, s, ss)
		sessions = append(sessions, ss)
	}

	n, err := s.DeleteExpiredSessions(ctx, now)
	if err != nil {
		t.Fatalf("DeleteExpiredSessions: %v", err)
	}
	if n != 3 {
		t.Errorf("DeleteExpiredSessions = %d, want 3", n)
	}
	for i, e := range expiries {
		got, _, err := s.SessionByDigest(ctx, sessions[i].TokenDigest)
		switch {
		case e.gone && !errors.Is(err, store.ErrNotFound):
			t.Errorf("session expiring at now%+v: err = %v, want ErrNotFound", e.expires.Sub(now), err)
		case !e.gone && err != nil:
			t.Errorf("session expiring at now%+v: %v, want it kept", e.expires.Sub(now), err)
		case !e.gone:
			checkSession(t, got, sessions[i])
		}
	}
	if n, err := s.DeleteExpiredSessions(ctx, now); err != nil || n != 0 {
		t.Errorf("second DeleteExpiredSessions = %d, %v; want 0, nil", n, err)
	}
}

func testSettingOrInit(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := []byte("first value \x00\xff")
	got, err := s.SettingOrInit(ctx, "secret", first)
	if err != nil {
		t.Fatalf("SettingOrInit: %v", err)
	}
	if !bytes.Equal(got, first) {
		t.Fatalf("SettingOrInit on an empty store = %q, want %q", got, first)
	}
	for range 2 {
		got, err = s.SettingOrInit(ctx, "secret", []byte("second value"))
		if err != nil {
			t.Fatalf("SettingOrInit again: %v", err)
		}
		if !bytes.Equal(got, first) {
			t.Errorf("SettingOrInit again = %q, want the first value %q", got, first)
		}
	}
	other, err := s.SettingOrInit(ctx, "other", []byte("other value"))
	if err != nil {
		t.Fatalf("SettingOrInit(other key): %v", err)
	}
	if !bytes.Equal(other, []byte("other value")) {
		t.Errorf("SettingOrInit(other key) = %q, want %q", other, "other value")
	}
}

func testSettingOrInitConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 20
	results := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.SettingOrInit(ctx, "secret", []byte(fmt.Sprintf("value %d", i)))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("SettingOrInit in goroutine %d: %v", i, err)
		}
	}
	winner := results[0]
	if !bytes.HasPrefix(winner, []byte("value ")) {
		t.Fatalf("SettingOrInit = %q, want one of the values offered", winner)
	}
	for i, got := range results {
		if !bytes.Equal(got, winner) {
			t.Errorf("SettingOrInit in goroutine %d = %q, goroutine 0 got %q", i, got, winner)
		}
	}
	got, err := s.SettingOrInit(ctx, "secret", []byte("late"))
	if err != nil || !bytes.Equal(got, winner) {
		t.Errorf("SettingOrInit afterwards = %q, %v; want %q", got, err, winner)
	}
}

func testConcurrentWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 50
	users := make([]*store.User, n)
	sessions := make([]*store.Session, n)
	for i := range n {
		users[i] = newUser(t, fmt.Sprintf("user%02d@example.com", i))
		sessions[i] = newSession(t, users[i].ID)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			u, ss := users[i], sessions[i]
			if err := s.CreateUser(ctx, u); err != nil {
				t.Errorf("CreateUser %d: %v", i, err)
				return
			}
			if err := s.CreateSession(ctx, ss); err != nil {
				t.Errorf("CreateSession %d: %v", i, err)
				return
			}
			if _, _, err := s.SessionByDigest(ctx, ss.TokenDigest); err != nil {
				t.Errorf("SessionByDigest %d: %v", i, err)
			}
			if err := s.TouchSession(ctx, ss.ID, ss.LastSeenAt.Add(time.Second)); err != nil {
				t.Errorf("TouchSession %d: %v", i, err)
			}
			if _, err := s.UserSessions(ctx, u.ID); err != nil {
				t.Errorf("UserSessions %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	all, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	if len(all) != n {
		t.Fatalf("ListUsers = %d users, want %d", len(all), n)
	}
	for i, u := range users {
		list, err := s.UserSessions(ctx, u.ID)
		if err != nil || len(list) != 1 || list[0].ID != sessions[i].ID {
			t.Errorf("UserSessions of user %d = %d sessions, %v; want its one session", i, len(list), err)
		}
	}
}

func testCancelledContext(t *testing.T, s store.Store) {
	u := newUser(t, "existing@example.com")
	createUser(t, s, u)
	ss := newSession(t, u.ID)
	createSession(t, s, ss)
	tok := newToken(t, u.ID, store.PurposeResetPassword)
	tokMsg := newMessage(t, u.Email)
	if !issue(t, s, tok, tokMsg, store.MailLimit{}, t0) {
		t.Fatal("IssueToken without a limit refused")
	}
	msg := newMessage(t, u.Email)
	queueMessage(t, s, msg)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// A cancelled lookup must fail, and must not look like a missing row:
	// a caller would take that for "no such user" or "logged out".
	calls := []struct {
		name string
		call func() error
	}{
		{"UserByID", func() error { _, err := s.UserByID(ctx, u.ID); return err }},
		{"UserByEmail", func() error { _, err := s.UserByEmail(ctx, u.Email); return err }},
		{"ListUsers", func() error { _, err := s.ListUsers(ctx); return err }},
		{"SessionByDigest", func() error { _, _, err := s.SessionByDigest(ctx, ss.TokenDigest); return err }},
		{"UserSessions", func() error { _, err := s.UserSessions(ctx, u.ID); return err }},
		{"CreateUser", func() error { return s.CreateUser(ctx, newUser(t, "new@example.com")) }},
		{"UpdateUser", func() error { return replaceUser(ctx, s, u) }},
		{"CreateSession", func() error { return s.CreateSession(ctx, newSession(t, u.ID)) }},
		{"TouchSession", func() error { return s.TouchSession(ctx, ss.ID, time.Now()) }},
		{"DeleteSession", func() error { return s.DeleteSession(ctx, u.ID, ss.ID) }},
		{"DeleteUserSessions", func() error { _, err := s.DeleteUserSessions(ctx, u.ID, ""); return err }},
		{"DeleteExpiredSessions", func() error { _, err := s.DeleteExpiredSessions(ctx, time.Now()); return err }},
		{"SettingOrInit", func() error { _, err := s.SettingOrInit(ctx, "k", []byte("v")); return err }},
		{"IssueToken", func() error {
			_, err := s.IssueToken(ctx, newToken(t, u.ID, store.PurposeVerifyEmail), newMessage(t, u.Email), store.MailLimit{Max: 5, Window: time.Hour}, t0)
			return err
		}},
		{"TokenByDigest", func() error { _, err := s.TokenByDigest(ctx, tok.Purpose, tok.Digest); return err }},
		{"UseToken", func() error { return s.UseToken(ctx, tok.Purpose, tok.Digest, t0) }},
		{"DeleteUserTokens", func() error { _, err := s.DeleteUserTokens(ctx, u.ID, tok.Purpose); return err }},
		{"DeleteExpiredTokens", func() error { _, err := s.DeleteExpiredTokens(ctx, t0.Add(24*time.Hour)); return err }},
		{"QueueMessage", func() error { return s.QueueMessage(ctx, newMessage(t, u.Email)) }},
		{"ClaimMessages", func() error { _, err := s.ClaimMessages(ctx, t0.Add(time.Hour), t0.Add(2*time.Hour), 10); return err }},
		{"RetryMessage", func() error { return s.RetryMessage(ctx, msg.ID, t0, "x") }},
		{"DeleteMessage", func() error { return s.DeleteMessage(ctx, msg.ID) }},
		{"DeleteUser", func() error { return s.DeleteUser(ctx, u.ID) }},
	}
	for _, c := range calls {
		err := c.call()
		if err == nil {
			t.Errorf("%s with a cancelled context: no error", c.name)
		} else if errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s with a cancelled context: err = %v, must not be ErrNotFound", c.name, err)
		}
	}

	// The store still works afterwards.
	live := t.Context()
	got, gotUser, err := s.SessionByDigest(live, ss.TokenDigest)
	if err != nil {
		t.Fatalf("SessionByDigest after cancelled calls: %v", err)
	}
	checkSession(t, got, ss)
	checkUser(t, gotUser, u)
	createUser(t, s, newUser(t, "after@example.com"))
	if v, err := s.SettingOrInit(live, "k", []byte("v")); err != nil || string(v) != "v" {
		t.Errorf("SettingOrInit after cancelled calls = %q, %v; want %q", v, err, "v")
	}
	// Nothing the cancelled calls were asked to do was done.
	gotTok, err := s.TokenByDigest(live, tok.Purpose, tok.Digest)
	if err != nil {
		t.Fatalf("TokenByDigest after cancelled calls: %v", err)
	}
	checkToken(t, gotTok, tok)
	if got := claimIDs(t, s, t0.Add(time.Hour), 10); !slices.Equal(got, []int64{tokMsg.ID, msg.ID}) {
		t.Errorf("ClaimMessages after cancelled calls = %v, want only %d and %d", got, tokMsg.ID, msg.ID)
	}
}

// newID returns a random lowercase hyphenated UUID (version 4).
func newID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("reading random bytes: %v", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newUser returns a user with every field set.
func newUser(t *testing.T, email string) *store.User {
	t.Helper()
	return &store.User{
		ID:             newID(t),
		Email:          email,
		HashedPassword: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
		IsActive:       true,
		IsSuperuser:    false,
		IsVerified:     true,
		FullName:       "Test User",
		Roles:          []string{"staff", "billing"},
		CreatedAt:      t0,
		UpdatedAt:      t0.Add(90*time.Minute + 42),
	}
}

// newSession returns a session of userID with every field set and a
// random token digest.
func newSession(t *testing.T, userID string) *store.Session {
	t.Helper()
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		t.Fatalf("reading random bytes: %v", err)
	}
	digest := sha256.Sum256(token)
	return &store.Session{
		ID:          newID(t),
		UserID:      userID,
		TokenDigest: digest[:],
		Transport:   store.TransportCookie,
		CreatedAt:   t0,
		LastSeenAt:  t0.Add(5*time.Minute + 999),
		ExpiresAt:   t0.Add(14 * 24 * time.Hour),
		UserAgent:   "storetest/1.0",
		IP:          "192.0.2.7",
	}
}

// replaceUser overwrites the stored user u.ID with u (but CreatedAt).
func replaceUser(ctx context.Context, s store.Store, u *store.User) error {
	_, err := s.UpdateUser(ctx, u.ID, func(cur *store.User) error {
		*cur = *u
		return nil
	})
	return err
}

func testUpdateUserAbort(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "abort@example.com")
	createUser(t, s, u)
	stop := errors.New("changed my mind")
	got, err := s.UpdateUser(ctx, u.ID, func(cur *store.User) error {
		cur.FullName = "never stored"
		return stop
	})
	if err != stop || got != nil {
		t.Fatalf("UpdateUser with a failing change = %v, %v; want nil and the change's own error", got, err)
	}
	stored, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkUser(t, stored, u)
	// The change sees the stored row and its result is returned.
	got, err = s.UpdateUser(ctx, u.ID, func(cur *store.User) error {
		if cur.Email != u.Email || cur.FullName != u.FullName {
			return fmt.Errorf("change saw %+v", cur)
		}
		cur.FullName = "Renamed"
		cur.ID = "someone-else" // ignored: the id is not the change's to make
		return nil
	})
	if err != nil || got.FullName != "Renamed" || got.ID != u.ID {
		t.Fatalf("UpdateUser = %+v, %v", got, err)
	}
}

// Concurrent read-modify-write updates must not lose each other: a
// deactivation racing with a profile change must stay a deactivation.
func testUpdateUserSerialized(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := newUser(t, "serial@example.com")
	u.Roles = []string{}
	createUser(t, s, u)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateUser(ctx, u.ID, func(cur *store.User) error {
				cur.Roles = append(cur.Roles, fmt.Sprintf("r%02d", i))
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent UpdateUser: %v", err)
		}
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Roles) != n {
		t.Fatalf("after %d concurrent role additions the user has %d roles: %v", n, len(got.Roles), got.Roles)
	}
}

func createUser(t *testing.T, s store.Store, u *store.User) {
	t.Helper()
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%q): %v", u.Email, err)
	}
}

func createSession(t *testing.T, s store.Store, ss *store.Session) {
	t.Helper()
	if err := s.CreateSession(t.Context(), ss); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
}

// checkUser reports every field of got that differs from want. Roles read
// from a store are never nil; times compare at microsecond precision.
func checkUser(t *testing.T, got, want *store.User) {
	t.Helper()
	if got == nil {
		t.Fatalf("user is nil, want %s", want.ID)
	}
	if got.ID != want.ID {
		t.Errorf("ID = %q, want %q", got.ID, want.ID)
	}
	if got.Email != want.Email {
		t.Errorf("Email = %q, want %q", got.Email, want.Email)
	}
	if got.HashedPassword != want.HashedPassword {
		t.Errorf("HashedPassword = %q, want %q", got.HashedPassword, want.HashedPassword)
	}
	if got.IsActive != want.IsActive {
		t.Errorf("IsActive = %v, want %v", got.IsActive, want.IsActive)
	}
	if got.IsSuperuser != want.IsSuperuser {
		t.Errorf("IsSuperuser = %v, want %v", got.IsSuperuser, want.IsSuperuser)
	}
	if got.IsVerified != want.IsVerified {
		t.Errorf("IsVerified = %v, want %v", got.IsVerified, want.IsVerified)
	}
	if got.FullName != want.FullName {
		t.Errorf("FullName = %q, want %q", got.FullName, want.FullName)
	}
	if got.Roles == nil {
		t.Errorf("Roles = nil, want a non-nil slice")
	}
	if !slices.Equal(got.Roles, want.Roles) {
		t.Errorf("Roles = %q, want %q", got.Roles, want.Roles)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
}

// checkSession reports every field of got that differs from want.
func checkSession(t *testing.T, got, want *store.Session) {
	t.Helper()
	if got == nil {
		t.Fatalf("session is nil, want %s", want.ID)
	}
	if got.ID != want.ID {
		t.Errorf("ID = %q, want %q", got.ID, want.ID)
	}
	if got.UserID != want.UserID {
		t.Errorf("UserID = %q, want %q", got.UserID, want.UserID)
	}
	if !bytes.Equal(got.TokenDigest, want.TokenDigest) {
		t.Errorf("TokenDigest = %x, want %x", got.TokenDigest, want.TokenDigest)
	}
	if got.Transport != want.Transport {
		t.Errorf("Transport = %q, want %q", got.Transport, want.Transport)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "LastSeenAt", got.LastSeenAt, want.LastSeenAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	if got.UserAgent != want.UserAgent {
		t.Errorf("UserAgent = %q, want %q", got.UserAgent, want.UserAgent)
	}
	if got.IP != want.IP {
		t.Errorf("IP = %q, want %q", got.IP, want.IP)
	}
}

// checkTime compares at the microsecond precision stores keep, in UTC.
func checkTime(t *testing.T, name string, got, want time.Time) {
	t.Helper()
	w := want.Truncate(time.Microsecond).UTC()
	if !got.UTC().Equal(w) {
		t.Errorf("%s = %v, want %v", name, got.UTC(), w)
	}
}

// checkSessionIDs checks that userID's sessions are exactly ids.
func checkSessionIDs(t *testing.T, s store.Store, userID string, ids ...string) {
	t.Helper()
	list, err := s.UserSessions(t.Context(), userID)
	if err != nil {
		t.Fatalf("UserSessions: %v", err)
	}
	var got []string
	for _, ss := range list {
		got = append(got, ss.ID)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(got, want) {
		t.Errorf("sessions of user %s = %q, want %q", userID, got, want)
	}
}
