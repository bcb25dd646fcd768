package storetest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// RunCopy checks that the stores open returns keep the store.Copier
// contract: a store exported and imported into another holds the same
// rows and works the same, a copy goes into an empty store only, and a
// failed copy leaves nothing behind. open is as for Run: every call
// returns a new, empty store, which must be a store.Copier; the suite
// closes each.
func RunCopy(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		test func(t *testing.T, open func(t *testing.T) store.Store)
	}{
		{"RoundTrip", testCopyRoundTrip},
		{"ExportSnapshot", testExportSnapshot},
		{"ExportEmitError", testExportEmitError},
		{"ImportNotEmpty", testImportNotEmpty},
		{"ImportSourceFails", testImportSourceFails},
		{"ImportBadRecords", testImportBadRecords},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, func(t *testing.T) store.Store {
				s := open(t)
				t.Cleanup(func() {
					if err := s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
				copier(t, s)
				return s
			})
		})
	}
}

// CopyChain fills stores[0] through the store interfaces, copies it into
// stores[1] (Export, Import), that into stores[2], and so on, and checks
// that the first store exports what was put in it, that every copy
// exports the same rows in the same order (times to the microsecond,
// message IDs aside), and then that every copy works: the same logins,
// sessions, tokens, bans, queued mail, mail limits and secret. The other
// stores must be empty; all must be store.Copier. The caller closes them.
// Stores of different implementations check that the two agree.
func CopyChain(t *testing.T, stores ...store.Store) {
	t.Helper()
	if len(stores) < 2 {
		t.Fatal("CopyChain needs a store and at least one to copy it into")
	}
	f := populate(t, stores[0])
	first := Dump(t, stores[0])
	checkDumpOrder(t, first)
	checkDumpHolds(t, first, f.want)
	for i := 1; i < len(stores); i++ {
		copyStore(t, stores[i-1], stores[i])
		CheckSameDump(t, fmt.Sprintf("copy %d", i), Dump(t, stores[i]), first)
	}
	for i := 1; i < len(stores); i++ {
		t.Run(fmt.Sprintf("copy %d works", i), func(t *testing.T) {
			checkCopyWorks(t, stores[i], f, first)
		})
	}
}

// copier returns s as a store.Copier, failing the test if it is not one.
func copier(t *testing.T, s store.Store) store.Copier {
	t.Helper()
	c, ok := s.(store.Copier)
	if !ok {
		t.Fatalf("%T is not a store.Copier", s)
	}
	return c
}

// copyStore copies src into dst as `caddy gatehouse migrate` does.
func copyStore(t *testing.T, src, dst store.Store) {
	t.Helper()
	ctx := t.Context()
	err := copier(t, dst).Import(ctx, func(emit func(store.Record) error) error {
		return copier(t, src).Export(ctx, emit)
	})
	if err != nil {
		t.Fatalf("copying %T into %T: %v", src, dst, err)
	}
}

// Dump returns everything s, a store.Copier, exports, in order.
func Dump(t *testing.T, s store.Store) []store.Record {
	t.Helper()
	var recs []store.Record
	err := copier(t, s).Export(t.Context(), func(r store.Record) error {
		if r.Kind() == "" {
			return fmt.Errorf("export emitted a record carrying %s", recordString(r))
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	return recs
}

// recordString writes every field of r that a copy keeps: times in UTC to
// the microsecond, without the message ID (a copy numbers its own).
func recordString(r store.Record) string {
	ts := func(t time.Time) string { return t.Truncate(time.Microsecond).UTC().Format(time.RFC3339Nano) }
	var parts []string
	if st := r.Setting; st != nil {
		parts = append(parts, fmt.Sprintf("setting{key=%q value=%x}", st.Key, st.Value))
	}
	if u := r.User; u != nil {
		parts = append(parts, fmt.Sprintf("user{id=%s email=%q hash=%q active=%v superuser=%v verified=%v name=%q roles=%q created=%s updated=%s}",
			u.ID, u.Email, u.HashedPassword, u.IsActive, u.IsSuperuser, u.IsVerified, u.FullName, u.Roles,
			ts(u.CreatedAt), ts(u.UpdatedAt)))
	}
	if ss := r.Session; ss != nil {
		parts = append(parts, fmt.Sprintf("session{id=%s user=%s digest=%x transport=%s created=%s seen=%s expires=%s agent=%q ip=%q}",
			ss.ID, ss.UserID, ss.TokenDigest, ss.Transport, ts(ss.CreatedAt), ts(ss.LastSeenAt), ts(ss.ExpiresAt),
			ss.UserAgent, ss.IP))
	}
	if tok := r.Token; tok != nil {
		used := "unused"
		if !tok.UsedAt.IsZero() {
			used = ts(tok.UsedAt)
		}
		parts = append(parts, fmt.Sprintf("token{digest=%x user=%s purpose=%s email=%q created=%s expires=%s used=%s}",
			tok.Digest, tok.UserID, tok.Purpose, tok.Email, ts(tok.CreatedAt), ts(tok.ExpiresAt), used))
	}
	if m := r.Message; m != nil {
		expires := "none"
		if !m.ExpiresAt.IsZero() {
			expires = ts(m.ExpiresAt)
		}
		parts = append(parts, fmt.Sprintf("message{to=%q subject=%q text=%q html=%q created=%s attempts=%d next=%s error=%q expires=%s}",
			m.To, m.Subject, m.Text, m.HTML, ts(m.CreatedAt), m.Attempts, ts(m.NextAttemptAt), m.LastError, expires))
	}
	if e := r.MailLog; e != nil {
		parts = append(parts, fmt.Sprintf("mail{key=%q sent=%s}", e.EmailKey, ts(e.SentAt)))
	}
	if l := r.Limit; l != nil {
		banned := "none"
		if !l.BannedUntil.IsZero() {
			banned = ts(l.BannedUntil)
		}
		parts = append(parts, fmt.Sprintf("limit{key=%q failures=%d window=%s banned=%s}",
			l.Key, l.Failures, ts(l.WindowEndsAt), banned))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, " + ")
}

func recordStrings(recs []store.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = recordString(r)
	}
	return out
}

// CheckSameDump fails unless got holds the records of want (as Dump
// returns them), in the same order: times in UTC to the microsecond,
// message IDs aside. name names got in the failures.
func CheckSameDump(t *testing.T, name string, got, want []store.Record) {
	t.Helper()
	g, w := recordStrings(got), recordStrings(want)
	if slices.Equal(g, w) {
		return
	}
	t.Errorf("%s exports %d records, the original %d", name, len(g), len(w))
	for i := range max(len(g), len(w)) {
		var gi, wi string
		if i < len(g) {
			gi = g[i]
		}
		if i < len(w) {
			wi = w[i]
		}
		if gi != wi {
			t.Errorf("%s: record %d\n got  %s\n want %s", name, i, gi, wi)
		}
	}
}

// checkDumpHolds fails unless got holds the records of want, in any order.
func checkDumpHolds(t *testing.T, got, want []store.Record) {
	t.Helper()
	g, w := slices.Sorted(slices.Values(recordStrings(got))), slices.Sorted(slices.Values(recordStrings(want)))
	for _, missing := range difference(w, g) {
		t.Errorf("Export lacks %s", missing)
	}
	for _, extra := range difference(g, w) {
		t.Errorf("Export has an unexpected %s", extra)
	}
}

// difference returns the elements of sorted a not matched in sorted b,
// counting repeats.
func difference(a, b []string) []string {
	var out []string
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j < len(b) && b[j] == x {
			j++
			continue
		}
		out = append(out, x)
	}
	return out
}

// kindOrder is the order of store.Copier's Export.
var kindOrder = []string{store.KindSetting, store.KindUser, store.KindSession, store.KindToken,
	store.KindMessage, store.KindMailLog, store.KindLimit}

// checkDumpOrder fails unless the kinds come in kindOrder and the messages
// oldest first.
func checkDumpOrder(t *testing.T, recs []store.Record) {
	t.Helper()
	last := 0
	var lastMessage time.Time
	for i, r := range recs {
		k := slices.Index(kindOrder, r.Kind())
		if k < last {
			t.Errorf("record %d is a %s after a %s: want the order %q", i, r.Kind(), kindOrder[last], kindOrder)
		}
		last = max(last, k)
		if m := r.Message; m != nil {
			if m.CreatedAt.Before(lastMessage) {
				t.Errorf("record %d: message created at %v after one created at %v: want the oldest first", i, m.CreatedAt, lastMessage)
			}
			lastMessage = m.CreatedAt
		}
	}
}

// copyFixture is what populate put in a store: the records it must
// export, and what the checks of a copy look up.
type copyFixture struct {
	want    []store.Record
	now     time.Time
	secret  []byte
	unicode *store.User    // non-ASCII email, superuser, roles
	bearer  *store.Session // of unicode
	// Tokens by purpose: used and unused.
	usedReset, unusedReset, usedVerify, unusedVerify *store.ActionToken
	banned                                           string // a key banned until bannedUntil
	bannedUntil                                      time.Time
	limited                                          string // an address mailLimit.Max mails went to
	mailLimit                                        store.MailLimit
	subjects                                         []string // of the queued messages, oldest first
}

// copyLimit is the brute-force limit populate records failures with.
var copyLimit = store.Limit{Max: 3, Window: 10 * time.Minute, Ban: 15 * time.Minute}

// populate fills s with every kind of row, through the store interfaces
// only, and returns what it put there.
func populate(t *testing.T, s store.Store) *copyFixture {
	t.Helper()
	ctx := t.Context()
	now := t0.Add(time.Hour)
	f := &copyFixture{now: now, mailLimit: store.MailLimit{Max: 2, Window: time.Hour}}
	add := func(recs ...store.Record) { f.want = append(f.want, recs...) }

	// The secret, with bytes that are not text, and an empty value.
	f.secret = make([]byte, 32)
	if _, err := rand.Read(f.secret); err != nil {
		t.Fatal(err)
	}
	f.secret[0], f.secret[1] = 0, 0xff
	for _, st := range []store.Setting{{Key: "secret", Value: f.secret}, {Key: "empty", Value: []byte{}}} {
		got, err := s.SettingOrInit(ctx, st.Key, st.Value)
		if err != nil || !bytes.Equal(got, st.Value) {
			t.Fatalf("SettingOrInit(%q) = %x, %v", st.Key, got, err)
		}
		add(store.Record{Setting: &st})
	}

	// Users: every flag both ways, roles and none, a non-ASCII email.
	f.unicode = newUser(t, "Ünïcödé.Ökçe@Exämple.org")
	f.unicode.IsSuperuser = true
	f.unicode.FullName = "Ünïcödé Ökçe 山田"
	f.unicode.Roles = []string{"zeta", "admin", "Ünï:role"}
	inactive := newUser(t, "inactive@example.com")
	inactive.IsActive, inactive.IsVerified = false, false
	inactive.Roles = nil
	inactive.FullName = ""
	inactive.HashedPassword = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
	plain := newUser(t, "Plain@Example.com")
	plain.IsVerified = false
	plain.Roles = []string{}
	for _, u := range []*store.User{f.unicode, inactive, plain} {
		createUser(t, s, u)
		add(store.Record{User: u})
	}

	// Sessions of both transports.
	f.bearer = newSession(t, f.unicode.ID)
	f.bearer.Transport = store.TransportBearer
	f.bearer.UserAgent, f.bearer.IP = "", ""
	cookie := newSession(t, f.unicode.ID)
	cookie.IP = "2001:db8::7"
	other := newSession(t, plain.ID)
	other.ExpiresAt = t0.Add(-time.Hour) // expired, kept until removed
	for _, ss := range []*store.Session{f.bearer, cookie, other} {
		createSession(t, s, ss)
		add(store.Record{Session: ss})
	}

	// Tokens of both purposes, used and unused, each mailed: each queues a
	// message and counts against the address's mail limit.
	f.limited = plain.Email
	issueAt := func(tok *store.ActionToken, to, subject string, at time.Time) {
		t.Helper()
		msg := newMessage(t, to)
		msg.Subject = subject
		msg.CreatedAt = at
		msg.NextAttemptAt = at.Add(time.Second)
		if !issue(t, s, tok, msg, f.mailLimit, at) {
			t.Fatalf("IssueToken of %q refused", subject)
		}
		add(store.Record{Token: tok}, store.Record{Message: msg}, store.Record{MailLog: &store.MailLogEntry{EmailKey: store.EmailKey(to), SentAt: at}})
		f.subjects = append(f.subjects, subject)
	}
	f.usedReset = newToken(t, f.unicode.ID, store.PurposeResetPassword)
	f.unusedReset = newToken(t, plain.ID, store.PurposeResetPassword)
	f.usedVerify = newToken(t, f.unicode.ID, store.PurposeVerifyEmail)
	f.unusedVerify = newToken(t, plain.ID, store.PurposeVerifyEmail)
	f.unusedVerify.Email = plain.Email
	issueAt(f.usedReset, f.unicode.Email, "reset 1", now.Add(-50*time.Minute))
	issueAt(f.unusedReset, "plain@example.COM", "reset 2", now.Add(-40*time.Minute))
	issueAt(f.usedVerify, f.unicode.Email, "verify 1", now.Add(-30*time.Minute))
	issueAt(f.unusedVerify, f.limited, "verify 2", now.Add(-20*time.Minute))
	for i, tok := range []*store.ActionToken{f.usedReset, f.usedVerify} {
		tok.UsedAt = now.Add(-time.Duration(10+i) * time.Minute)
		if err := s.UseToken(ctx, tok.Purpose, tok.Digest, tok.UsedAt); err != nil {
			t.Fatalf("UseToken: %v", err)
		}
	}

	// Messages without a token: one failed twice already, due at once
	// (zero NextAttemptAt), without a deadline; one with a deadline.
	failed := newMessage(t, "ops@example.com")
	failed.Subject = "notice 1"
	failed.CreatedAt = now.Add(-10 * time.Minute)
	failed.NextAttemptAt = time.Time{}
	failed.Attempts = 2
	failed.LastError = "451 4.3.0 Temporary failure; ünïcode"
	deadline := newMessage(t, "ops@example.com")
	deadline.Subject = "notice 2"
	deadline.CreatedAt = now.Add(-5 * time.Minute)
	deadline.ExpiresAt = now.Add(time.Hour)
	for _, m := range []*store.Message{failed, deadline} {
		queueMessage(t, s, m)
		add(store.Record{Message: m})
		f.subjects = append(f.subjects, m.Subject)
	}

	// A request for mail to an address without an account is logged too.
	ghost := "Ghost@Exämple.org"
	if under, err := s.NoteMailRequest(ctx, ghost, f.mailLimit, now.Add(-time.Minute)); err != nil || !under {
		t.Fatalf("NoteMailRequest = %v, %v", under, err)
	}
	add(store.Record{MailLog: &store.MailLogEntry{EmailKey: store.EmailKey(ghost), SentAt: now.Add(-time.Minute)}})

	// A key banned now, and one with a failure counted but no ban.
	f.banned = "account:" + newID(t)
	first := now.Add(-3 * time.Minute)
	for i := range copyLimit.Max {
		until, started := recordFailure(t, s, f.banned, copyLimit, first.Add(time.Duration(i)*time.Minute))
		if i == copyLimit.Max-1 {
			if !started {
				t.Fatal("RecordFailure did not start a ban")
			}
			f.bannedUntil = until
		}
	}
	add(store.Record{Limit: &store.LimitState{Key: f.banned, Failures: 0, WindowEndsAt: first.Add(copyLimit.Window), BannedUntil: f.bannedUntil}})
	counted := "client:192.0.2.1"
	recordFailure(t, s, counted, copyLimit, now)
	add(store.Record{Limit: &store.LimitState{Key: counted, Failures: 1, WindowEndsAt: now.Add(copyLimit.Window)}})
	return f
}

// checkCopyWorks checks through the store interfaces that s, a copy of
// the store f describes, whose export was dumped, works as the original.
func checkCopyWorks(t *testing.T, s store.Store, f *copyFixture, dumped []store.Record) {
	ctx := t.Context()

	// The secret is the original's, byte for byte: a server on the copy
	// keeps accepting the tokens it signed.
	if got, err := s.SettingOrInit(ctx, "secret", []byte("a new secret")); err != nil || !bytes.Equal(got, f.secret) {
		t.Errorf("SettingOrInit(secret) on the copy = %x, %v; want the original %x", got, err, f.secret)
	}

	// Emails are found ignoring case, non-ASCII letters included.
	u, err := s.UserByEmail(ctx, strings.ToUpper(f.unicode.Email))
	if err != nil {
		t.Fatalf("UserByEmail(%q) on the copy: %v", strings.ToUpper(f.unicode.Email), err)
	}
	checkUser(t, u, f.unicode)
	if err := s.CreateUser(ctx, newUser(t, strings.ToLower(f.unicode.Email))); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateUser with a copied email in another case: err = %v, want ErrConflict", err)
	}

	ss, su, err := s.SessionByDigest(ctx, f.bearer.TokenDigest)
	if err != nil {
		t.Fatalf("SessionByDigest on the copy: %v", err)
	}
	checkSession(t, ss, f.bearer)
	checkUser(t, su, f.unicode)

	for _, tok := range []*store.ActionToken{f.usedReset, f.unusedReset, f.usedVerify, f.unusedVerify} {
		got, err := s.TokenByDigest(ctx, tok.Purpose, tok.Digest)
		if err != nil {
			t.Fatalf("TokenByDigest on the copy: %v", err)
		}
		checkToken(t, got, tok)
	}
	if err := s.UseToken(ctx, f.usedReset.Purpose, f.usedReset.Digest, f.now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UseToken of a token used before the copy: err = %v, want ErrNotFound", err)
	}
	if err := s.UseToken(ctx, f.unusedVerify.Purpose, f.unusedVerify.Digest, f.now); err != nil {
		t.Errorf("UseToken of a token unused before the copy: %v", err)
	}

	if got := bannedUntil(t, s, f.banned, f.now); !got.Equal(f.bannedUntil) {
		t.Errorf("BannedUntil on the copy = %v, want %v", got, f.bannedUntil)
	}

	// The mail log came along: the address that had its mails is at its
	// limit on the copy too.
	if issue(t, s, newToken(t, f.unicode.ID, store.PurposeResetPassword), newMessage(t, strings.ToUpper(f.limited)), f.mailLimit, f.now) {
		t.Errorf("IssueToken to %s, which had %d mails within the window, accepted on the copy", f.limited, f.mailLimit.Max)
	}

	// The outbox: the same messages, oldest first, under new IDs that a
	// message queued afterwards does not reuse.
	claimed := claimMessages(t, s, f.now.Add(time.Hour), 100)
	var subjects []string
	for _, m := range claimed {
		subjects = append(subjects, m.Subject)
	}
	if !slices.Equal(subjects, f.subjects) {
		t.Errorf("ClaimMessages on the copy = %q, want %q", subjects, f.subjects)
	}
	for _, r := range dumped {
		if r.Message == nil {
			continue
		}
		i := slices.IndexFunc(claimed, func(m store.Message) bool { return m.Subject == r.Message.Subject })
		if i < 0 {
			continue // reported above
		}
		want := *r.Message
		want.ID = claimed[i].ID
		want.Attempts++
		want.NextAttemptAt = f.now.Add(time.Hour + lease)
		checkMessage(t, &claimed[i], &want)
	}
	later := newMessage(t, "later@example.com")
	queueMessage(t, s, later)
	for _, m := range claimed {
		if later.ID <= m.ID {
			t.Errorf("a message queued on the copy got ID %d, not above the copied ID %d", later.ID, m.ID)
		}
	}
}

// The export is one snapshot: rows written while it runs are not in it.
func testExportSnapshot(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	f := populate(t, s)
	late := newUser(t, "late@example.com")
	var recs []store.Record
	err := copier(t, s).Export(ctx, func(r store.Record) error {
		if len(recs) == 0 {
			// Written after the export read its first row.
			if err := s.CreateUser(ctx, late); err != nil {
				return err
			}
			if err := s.CreateSession(ctx, newSession(t, late.ID)); err != nil {
				return err
			}
			if _, err := s.SettingOrInit(ctx, "late", []byte("x")); err != nil {
				return err
			}
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	checkDumpHolds(t, recs, f.want)
	// Written, all the same.
	if _, err := s.UserByID(ctx, late.ID); err != nil {
		t.Errorf("the user created during the export: %v", err)
	}
	if n := len(Dump(t, s)); n != len(recs)+3 {
		t.Errorf("a second export has %d records, want the %d of the first and the 3 written meanwhile", n, len(recs))
	}
}

// An error of emit stops the export at once and is returned as it is.
func testExportEmitError(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	populate(t, s)
	stop := errors.New("target full")
	calls := 0
	err := copier(t, s).Export(t.Context(), func(r store.Record) error {
		calls++
		if r.User != nil {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Errorf("Export with a failing emit: err = %v, want emit's own error", err)
	}
	if calls != 3 { // the two settings, then the first user
		t.Errorf("emit called %d times, want 3: the export must stop at the first error", calls)
	}
	// The store is usable afterwards: the read transaction ended.
	if _, err := s.SettingOrInit(t.Context(), "after", []byte("x")); err != nil {
		t.Errorf("SettingOrInit after the failed export: %v", err)
	}
}

// Import refuses a store holding any row, settings included (a server
// started on the target has already made its secret there), and writes
// nothing.
func testImportNotEmpty(t *testing.T, open func(t *testing.T) store.Store) {
	src := open(t)
	populate(t, src)
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		fill func(t *testing.T, s store.Store)
	}{
		{"setting", func(t *testing.T, s store.Store) {
			if _, err := s.SettingOrInit(ctx, "secret", []byte("the target's own secret")); err != nil {
				t.Fatal(err)
			}
		}},
		{"user", func(t *testing.T, s store.Store) { createUser(t, s, newUser(t, "there@example.com")) }},
		{"message", func(t *testing.T, s store.Store) { queueMessage(t, s, newMessage(t, "there@example.com")) }},
		{"mail log", func(t *testing.T, s store.Store) {
			if _, err := s.NoteMailRequest(ctx, "there@example.com", store.MailLimit{Max: 5, Window: time.Hour}, t0); err != nil {
				t.Fatal(err)
			}
		}},
		{"limit", func(t *testing.T, s store.Store) { recordFailure(t, s, "k", copyLimit, t0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := open(t)
			tc.fill(t, dst)
			before := Dump(t, dst)
			called := false
			err := copier(t, dst).Import(ctx, func(emit func(store.Record) error) error {
				called = true
				return copier(t, src).Export(ctx, emit)
			})
			if !errors.Is(err, store.ErrNotEmpty) {
				t.Fatalf("Import into a store holding a %s: err = %v, want ErrNotEmpty", tc.name, err)
			}
			if called {
				t.Errorf("Import into a store holding a %s called the source", tc.name)
			}
			CheckSameDump(t, "the target after the refused import", Dump(t, dst), before)
		})
	}
}

// A source that fails midway leaves the target empty, and ready for
// another try.
func testImportSourceFails(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	src, dst := open(t), open(t)
	populate(t, src)
	original := Dump(t, src)
	boom := errors.New("source connection lost")
	for _, after := range []int{1, 4, len(original) - 1} {
		n := 0
		err := copier(t, dst).Import(ctx, func(emit func(store.Record) error) error {
			return copier(t, src).Export(ctx, func(r store.Record) error {
				if n == after {
					return boom
				}
				n++
				return emit(r)
			})
		})
		if err != boom {
			t.Fatalf("Import from a source failing after %d records: err = %v, want the source's own error", after, err)
		}
		if got := Dump(t, dst); len(got) != 0 {
			t.Fatalf("after a copy failing after %d records the target exports %d records, want none:\n%s",
				after, len(got), strings.Join(recordStrings(got), "\n"))
		}
	}
	copyStore(t, src, dst)
	CheckSameDump(t, "the copy after failed tries", Dump(t, dst), original)
}

// Records that cannot be written fail the whole import.
func testImportBadRecords(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	u := newUser(t, "bad@example.com")
	for _, tc := range []struct {
		name string
		recs []store.Record
	}{
		{"empty record", []store.Record{{User: u}, {}}},
		{"two rows in one record", []store.Record{{User: u, Setting: &store.Setting{Key: "k", Value: []byte("v")}}}},
		{"session of a missing user", []store.Record{{User: u}, {Session: newSession(t, newID(t))}}},
		{"email taken, in another case", []store.Record{{User: u}, {User: newUser(t, "BAD@example.com")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := open(t)
			err := copier(t, dst).Import(ctx, func(emit func(store.Record) error) error {
				for _, r := range tc.recs {
					if err := emit(r); err != nil {
						return err
					}
				}
				return nil
			})
			if err == nil {
				t.Fatal("Import succeeded")
			}
			t.Logf("Import: %v", err)
			if got := Dump(t, dst); len(got) != 0 {
				t.Errorf("after a failed import the target exports %d records, want none", len(got))
			}
		})
	}
}

func testCopyRoundTrip(t *testing.T, open func(t *testing.T) store.Store) {
	CopyChain(t, open(t), open(t), open(t))
}
