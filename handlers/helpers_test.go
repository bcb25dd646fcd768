package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
	"github.com/gatehouse-caddy/gatehouse/store/sqlite"
)

const testPassword = "correct horse battery"

var testSecret = bytes.Repeat([]byte{0x5e}, 32)

// fakeClock is the service's injected clock.
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

// apiEnv is the API on a fresh SQLite database, with cheap hashing.
type apiEnv struct {
	api   *API
	svc   *caddyauth.Service
	db    *sqlite.Store
	clock *fakeClock
}

func newAPIEnv(tb testing.TB, tweak func(*caddyauth.Options)) *apiEnv {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "gatehouse.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	hasher, err := caddyauth.NewHasher(caddyauth.HasherConfig{Params: caddyauth.Argon2Params{Memory: 64, Time: 1, Threads: 1}}, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	opts := caddyauth.Options{
		Store:                  db,
		Secret:                 testSecret,
		Hasher:                 hasher,
		Now:                    clock.Now,
		RequireCurrentPassword: true,
	}
	if tweak != nil {
		tweak(&opts)
	}
	svc, err := caddyauth.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	// Links in mails need a trusted origin: base_url, a host TLS vouched
	// for, or loopback (TestMailLinks covers each). httptest's requests
	// go to example.com.
	return &apiEnv{api: &API{Service: svc, BaseURL: "http://example.com"}, svc: svc, db: db, clock: clock}
}

// notOurs is the status the test handler answers with when ServeAPI
// passes a request on.
const notOurs = 599

func (e *apiEnv) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !e.api.ServeAPI(w, r) {
			w.WriteHeader(notOurs)
		}
	})
}

// reqOpt changes a request before it is served.
type reqOpt func(*http.Request)

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }
func bearer(tok string) reqOpt      { return withHeader("Authorization", "Bearer "+tok) }
func jsonCT() reqOpt                { return withHeader("Content-Type", "application/json") }
func withCookie(name, value string) reqOpt {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: name, Value: value}) }
}
func withHost(h string) reqOpt { return func(r *http.Request) { r.Host = h } }

// serve runs one request through the API.
func (e *apiEnv) serve(method, target, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	e.handler().ServeHTTP(w, r)
	return w
}

// postJSON sends a JSON body with the JSON content type.
func (e *apiEnv) postJSON(method, target, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	return e.serve(method, target, body, append([]reqOpt{jsonCT()}, opts...)...)
}

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

func formCT() reqOpt { return withHeader("Content-Type", "application/x-www-form-urlencoded") }

// multipartBody encodes fields as multipart/form-data.
func multipartBody(tb testing.TB, kv ...string) (string, string) {
	tb.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(kv); i += 2 {
		if err := mw.WriteField(kv[i], kv[i+1]); err != nil {
			tb.Fatal(err)
		}
	}
	mw.Close()
	return buf.String(), mw.FormDataContentType()
}

// mustUser creates a user through the core.
func (e *apiEnv) mustUser(tb testing.TB, email string, mods ...func(*caddyauth.NewUser)) *store.User {
	tb.Helper()
	nu := caddyauth.NewUser{Email: email, Password: testPassword, IsActive: true}
	for _, m := range mods {
		m(&nu)
	}
	u, err := e.svc.CreateUser(context.Background(), nu)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func superuser(nu *caddyauth.NewUser) { nu.IsSuperuser, nu.IsVerified = true, true }
func verified(nu *caddyauth.NewUser)  { nu.IsVerified = true }

// bearerLogin logs in through the API and returns the access token.
func (e *apiEnv) bearerLogin(tb testing.TB, email string) string {
	tb.Helper()
	w := e.serve("POST", "/auth/jwt/login", form("username", email, "password", testPassword), formCT())
	if w.Code != http.StatusOK {
		tb.Fatalf("login %s: %d %s", email, w.Code, w.Body)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.AccessToken == "" {
		tb.Fatalf("login %s: body %s", email, w.Body)
	}
	return out.AccessToken
}

// cookieLogin logs in through the API and returns the session cookie.
func (e *apiEnv) cookieLogin(tb testing.TB, email string) *http.Cookie {
	tb.Helper()
	w := e.serve("POST", "/auth/cookie/login", form("username", email, "password", testPassword), formCT())
	if w.Code != http.StatusNoContent {
		tb.Fatalf("cookie login %s: %d %s", email, w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == e.svc.CookieName() {
			return c
		}
	}
	tb.Fatalf("cookie login %s: no session cookie in %v", email, w.Header())
	return nil
}

// wantJSON asserts the status, the JSON content type and a body equal (as
// JSON) to want.
func wantJSON(tb testing.TB, w *httptest.ResponseRecorder, status int, want string) {
	tb.Helper()
	if w.Code != status {
		tb.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type %q, want application/json", ct)
	}
	var got, exp any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		tb.Fatalf("body %q is not JSON: %v", w.Body, err)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		tb.Fatalf("test's want %q is not JSON: %v", want, err)
	}
	if !reflect.DeepEqual(got, exp) {
		tb.Fatalf("body %s\nwant %s", w.Body, want)
	}
}

// wantEmpty asserts a status with no body.
func wantEmpty(tb testing.TB, w *httptest.ResponseRecorder, status int) {
	tb.Helper()
	if w.Code != status || w.Body.Len() != 0 {
		tb.Fatalf("got %d %q, want %d with an empty body", w.Code, w.Body, status)
	}
}

// vItem is one item of a 422 list as received.
type vItem struct {
	Type  string         `json:"type"`
	Loc   []any          `json:"loc"`
	Msg   string         `json:"msg"`
	Input any            `json:"input"`
	Ctx   map[string]any `json:"ctx"`
}

// want422 asserts a 422 whose detail is a list holding, in order, items
// of these types at these locations ("type@loc0.loc1").
func want422(tb testing.TB, w *httptest.ResponseRecorder, want ...string) []vItem {
	tb.Helper()
	if w.Code != http.StatusUnprocessableEntity {
		tb.Fatalf("status %d, want 422; body %s", w.Code, w.Body)
	}
	var body struct {
		Detail []vItem `json:"detail"`
	}
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		tb.Fatalf("422 body %s: %v", w.Body, err)
	}
	var got []string
	for _, it := range body.Detail {
		if it.Msg == "" || len(it.Loc) == 0 || it.Loc[0] != "body" {
			tb.Errorf("malformed item %+v", it)
		}
		got = append(got, it.Type+"@"+locString(it.Loc))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		tb.Fatalf("422 items %v, want %v; body %s", got, want, w.Body)
	}
	return body.Detail
}

func locString(loc []any) string {
	parts := make([]string, len(loc))
	for i, l := range loc {
		switch v := l.(type) {
		case string:
			parts[i] = v
		case json.Number:
			parts[i] = "#" + v.String()
		default:
			parts[i] = "?"
		}
	}
	return strings.Join(parts, ".")
}
