package caddyauth_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
	"github.com/gatehouse-caddy/gatehouse/store/sqlite"
)

// testSecret is the fixed 32-byte installation secret of every test.
var testSecret = bytes.Repeat([]byte{0x5e}, 32)

// cheapParams make argon2id cost almost nothing, so tests that log in
// often stay fast. Production parameters are tested on their own.
var cheapParams = caddyauth.Argon2Params{Memory: 64, Time: 1, Threads: 1}

// testPassword satisfies the default policy.
const testPassword = "correct horse battery"

// fakeClock is the injected clock: it moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
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

// countingStore counts every call into the store it wraps, to observe
// what the service asks of the database.
type countingStore struct {
	store.Store
	calls atomic.Int64
	mu    sync.Mutex
	names []string
}

func (c *countingStore) count(name string) {
	c.calls.Add(1)
	c.mu.Lock()
	c.names = append(c.names, name)
	c.mu.Unlock()
}

// reset zeroes the counter and returns the calls made since the last reset.
func (c *countingStore) reset() (int64, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := c.names
	c.names = nil
	return c.calls.Swap(0), names
}

func (c *countingStore) CreateUser(ctx context.Context, u *store.User) error {
	c.count("CreateUser")
	return c.Store.CreateUser(ctx, u)
}

func (c *countingStore) UserByID(ctx context.Context, id string) (*store.User, error) {
	c.count("UserByID")
	return c.Store.UserByID(ctx, id)
}

func (c *countingStore) UserByEmail(ctx context.Context, email string) (*store.User, error) {
	c.count("UserByEmail")
	return c.Store.UserByEmail(ctx, email)
}

func (c *countingStore) UpdateUser(ctx context.Context, id string, change func(*store.User) error) (*store.User, error) {
	c.count("UpdateUser")
	return c.Store.UpdateUser(ctx, id, change)
}

// replaceUser overwrites the stored user with v, behind the service's back.
func replaceUser(ctx context.Context, db store.Store, v *store.User) error {
	_, err := db.UpdateUser(ctx, v.ID, func(cur *store.User) error {
		*cur = *v
		return nil
	})
	return err
}

func (c *countingStore) DeleteUser(ctx context.Context, id string) error {
	c.count("DeleteUser")
	return c.Store.DeleteUser(ctx, id)
}

func (c *countingStore) ListUsers(ctx context.Context) ([]store.User, error) {
	c.count("ListUsers")
	return c.Store.ListUsers(ctx)
}

func (c *countingStore) CreateSession(ctx context.Context, s *store.Session) error {
	c.count("CreateSession")
	return c.Store.CreateSession(ctx, s)
}

func (c *countingStore) SessionByDigest(ctx context.Context, digest []byte) (*store.Session, *store.User, error) {
	c.count("SessionByDigest")
	return c.Store.SessionByDigest(ctx, digest)
}

func (c *countingStore) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	c.count("TouchSession")
	return c.Store.TouchSession(ctx, id, lastSeen)
}

func (c *countingStore) DeleteSession(ctx context.Context, userID, id string) error {
	c.count("DeleteSession")
	return c.Store.DeleteSession(ctx, userID, id)
}

func (c *countingStore) DeleteUserSessions(ctx context.Context, userID, keep string) (int, error) {
	c.count("DeleteUserSessions")
	return c.Store.DeleteUserSessions(ctx, userID, keep)
}

func (c *countingStore) UserSessions(ctx context.Context, userID string) ([]store.Session, error) {
	c.count("UserSessions")
	return c.Store.UserSessions(ctx, userID)
}

func (c *countingStore) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	c.count("DeleteExpiredSessions")
	return c.Store.DeleteExpiredSessions(ctx, now)
}

func (c *countingStore) SettingOrInit(ctx context.Context, key string, value []byte) ([]byte, error) {
	c.count("SettingOrInit")
	return c.Store.SettingOrInit(ctx, key, value)
}

// env is one service on a fresh SQLite database.
type env struct {
	svc     *caddyauth.Service
	db      *sqlite.Store  // the real store, to change things behind the service's back
	counter *countingStore // what the service talks to
	clock   *fakeClock
	opts    caddyauth.Options
}

// openStore opens a SQLite store in a per-test directory, closed at cleanup.
func openStore(tb testing.TB) *sqlite.Store {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "gatehouse.db"))
	if err != nil {
		tb.Fatalf("opening store: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// newEnv builds a service with cheap hashing and a fake clock; tweak may
// change the options before the service is built.
func newEnv(tb testing.TB, tweak func(*caddyauth.Options)) *env {
	tb.Helper()
	db := openStore(tb)
	counter := &countingStore{Store: db}
	clock := newFakeClock()
	opts := caddyauth.Options{
		Store:  counter,
		Secret: testSecret,
		Hasher: cheapHasher(tb),
		Now:    clock.Now,
	}
	if tweak != nil {
		tweak(&opts)
	}
	svc, err := caddyauth.New(opts)
	if err != nil {
		tb.Fatalf("caddyauth.New: %v", err)
	}
	return &env{svc: svc, db: db, counter: counter, clock: clock, opts: opts}
}

// mustUser creates an active user with testPassword.
func (e *env) mustUser(tb testing.TB, email string, mods ...func(*caddyauth.NewUser)) *store.User {
	tb.Helper()
	nu := caddyauth.NewUser{Email: email, Password: testPassword, IsActive: true}
	for _, m := range mods {
		m(&nu)
	}
	u, err := e.svc.CreateUser(context.Background(), nu)
	if err != nil {
		tb.Fatalf("creating user %s: %v", email, err)
	}
	return u
}

// login logs in with testPassword and fails the test on error.
func (e *env) login(tb testing.TB, email string, t store.Transport) *caddyauth.LoginResult {
	tb.Helper()
	res, err := e.svc.Login(context.Background(), email, testPassword, t, caddyauth.ClientInfo{UserAgent: "test", IP: "192.0.2.1"})
	if err != nil {
		tb.Fatalf("login %s (%s): %v", email, t, err)
	}
	return res
}

// auth authenticates a credential of the given transport.
func (e *env) auth(t store.Transport, credential string) (*caddyauth.Principal, error) {
	if t == store.TransportBearer {
		return e.svc.AuthenticateBearer(context.Background(), credential)
	}
	return e.svc.AuthenticateCookie(context.Background(), credential)
}

// mustAuth asserts that the credential is accepted.
func (e *env) mustAuth(tb testing.TB, t store.Transport, credential string) *caddyauth.Principal {
	tb.Helper()
	p, err := e.auth(t, credential)
	if err != nil {
		tb.Fatalf("authenticate (%s): %v, want accepted", t, err)
	}
	return p
}

// mustRefuse asserts that the credential is refused as unauthenticated
// (not as a failure of the store).
func (e *env) mustRefuse(tb testing.TB, t store.Transport, credential string) {
	tb.Helper()
	p, err := e.auth(t, credential)
	if !errors.Is(err, caddyauth.ErrUnauthenticated) {
		tb.Fatalf("authenticate (%s) = %v, %v; want ErrUnauthenticated", t, p, err)
	}
}

var transports = []store.Transport{store.TransportBearer, store.TransportCookie}

func ptr[T any](v T) *T { return &v }
