package handlers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// FuzzParseJSONBody feeds arbitrary bodies and content types to the JSON
// reader, then to two routes that read a body without writing anything:
// whatever arrives, the answer is a 4xx with a JSON `detail`, never a
// 500 and never a panic.
func FuzzParseJSONBody(f *testing.F) {
	seeds := []struct{ body, ct string }{
		{`{"email":"a@camelot.bt","password":"correct horse battery"}`, "application/json"},
		{`{"email":"a@camelot.bt","password":"x","full_name":null,"roles":["a","a"],"is_superuser":"yes"}`, "application/json"},
		{`{"email":`, "application/json"},
		{`{bad}`, "application/json"},
		{"", "application/json"},
		{"  ", "application/json"},
		{"null", "application/json"},
		{`[]`, "application/json"},
		{`"foo"`, "application/vnd.api+json"},
		{`{"is_superuser":"notabool","is_active":[],"is_verified":2,"roles":"x"}`, "application/json; charset=utf-8"},
		{`{"roles":[1,{"a":1},null],"email":null,"password":1e999}`, "application/json"},
		{`{"email":"a@b.co\r\nX: 1","full_name":"\u0000"}`, "application/json"},
		{"{\"email\":\"\xff@b.co\"}", "application/json"},
		{`{"a":1}`, "text/plain"},
		{`{"a":1}`, ""},
		{`{"a":1}`, "application/json; ="},
		{strings.Repeat("[", 10000), "application/json"},
		{`{"password":"` + strings.Repeat("x", 2000) + `"}`, "application/json"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.ct)
	}
	open := newAPIEnv(f, nil)
	closed := newAPIEnv(f, func(o *caddyauth.Options) { o.RegistrationClosed = true })

	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		newReq := func(method, target string) *http.Request {
			r := httptest.NewRequest(method, target, bytes.NewReader(body))
			if ct != "" {
				r.Header["Content-Type"] = []string{ct}
			}
			return r
		}

		// The reader itself.
		w := httptest.NewRecorder()
		b, syntax, err := parseJSONBody(w, newReq("POST", "/auth/register"))
		switch {
		case len(body) > MaxBodyBytes:
			if !errors.Is(err, errBodyTooLarge) {
				t.Fatalf("%d bytes read without errBodyTooLarge: %v", len(body), err)
			}
			return
		case err != nil:
			t.Fatalf("parseJSONBody failed: %v", err)
		case syntax != nil:
			// Malformed JSON, or JSON nested too deeply (the depth read
			// here with a decoder, apart from the reader's own scan).
			malformed := !json.Valid(body) || jsonDepth(t, body) > maxJSONDepth
			if b != nil || len(syntax) != 1 || syntax[0].Type != "json_invalid" || !malformed || !isJSONContentType(ct) {
				t.Fatalf("syntax fault %+v for %q (%q)", syntax, body, ct)
			}
			off, ok := syntax[0].Loc[1].(int)
			if !ok || off < 0 || off > len(body) {
				t.Fatalf("json_invalid at %v in %d bytes", syntax[0].Loc, len(body))
			}
		default:
			if b == nil || b.fields == nil {
				t.Fatal("no body and no fault")
			}
			if b.objectOK() && (!isJSONContentType(ct) || !json.Valid(body) || bytes.TrimSpace(body)[0] != '{') {
				t.Fatalf("accepted %q (%q) as a JSON object", body, ct)
			}
			if b.raw != nil && jsonDepth(t, body) > maxJSONDepth {
				t.Fatalf("accepted %q, nested deeper than %d", body, maxJSONDepth)
			}
			for _, it := range b.errs {
				if len(it.Loc) == 0 || it.Loc[0] != "body" {
					t.Fatalf("fault without a body location: %+v", it)
				}
			}
			// Reading the fields of a patch, as PATCH /users/{id} does.
			w := httptest.NewRecorder()
			if _, ok := readPatch(w, b, true); !ok {
				checkAnswer(t, w, http.StatusUnprocessableEntity)
			} else if w.Body.Len() != 0 {
				t.Fatalf("readPatch accepted and wrote %s", w.Body)
			}
		}

		// Whole routes that never write to the store.
		w = httptest.NewRecorder()
		open.handler().ServeHTTP(w, newReq("PATCH", "/users/me"))
		checkAnswer(t, w, http.StatusUnauthorized, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
		w = httptest.NewRecorder()
		closed.handler().ServeHTTP(w, newReq("POST", "/auth/register"))
		checkAnswer(t, w, http.StatusForbidden, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
	})
}

// jsonDepth is the nesting depth of a valid JSON text, read with a
// decoder's tokens (0 for one that is not valid).
func jsonDepth(t *testing.T, body []byte) int {
	t.Helper()
	if !json.Valid(body) {
		return 0
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // 1e999 is valid JSON, and no float64
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return deepest
		}
		if err != nil {
			t.Fatalf("decoding valid JSON %q: %v", body, err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// checkAnswer asserts one of the statuses and a JSON body with a detail;
// a 422 detail must be a list of items located in the body.
func checkAnswer(t *testing.T, w *httptest.ResponseRecorder, statuses ...int) {
	t.Helper()
	ok := false
	for _, s := range statuses {
		ok = ok || w.Code == s
	}
	if !ok {
		t.Fatalf("status %d (want one of %v): %s", w.Code, statuses, w.Body)
	}
	var out struct {
		Detail json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Detail == nil {
		t.Fatalf("body %q is not {\"detail\": …}: %v", w.Body, err)
	}
	if w.Code != http.StatusUnprocessableEntity {
		return
	}
	var items []vItem
	dec := json.NewDecoder(bytes.NewReader(out.Detail))
	dec.UseNumber() // inputs are echoed as sent: 1e999 is no float64
	if err := dec.Decode(&items); err != nil || len(items) == 0 {
		t.Fatalf("422 detail %s is not a list of items: %v", out.Detail, err)
	}
	for _, it := range items {
		if it.Type == "" || it.Msg == "" || len(it.Loc) == 0 || it.Loc[0] != "body" {
			t.Fatalf("malformed 422 item %+v", it)
		}
	}
}

func TestIsJSONContentType(t *testing.T) {
	t.Parallel()
	yes := []string{"application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.api+json", "application/merge-patch+json"}
	no := []string{"", "text/plain", "text/json", "application/jsonx", "application/x-www-form-urlencoded", "multipart/form-data", "application/json; =", "json", "+json", "application/+json/x"}
	for _, ct := range yes {
		if !isJSONContentType(ct) {
			t.Errorf("%q refused", ct)
		}
	}
	for _, ct := range no {
		if isJSONContentType(ct) {
			t.Errorf("%q accepted", ct)
		}
	}
}

func TestJSONTooDeep(t *testing.T) {
	t.Parallel()
	nested := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	cases := []struct {
		body   string
		deep   bool
		offset int
	}{
		{`{}`, false, 0},
		// The object itself is level one.
		{`{"a":` + nested(maxJSONDepth-1) + `}`, false, 0},
		{`{"a":` + nested(maxJSONDepth) + `}`, true, 5 + maxJSONDepth - 1},
		{strings.Repeat(`{"a":`, maxJSONDepth+1), true, 5 * maxJSONDepth},
		// Brackets in strings, escaped quotes included, are text.
		{`{"a":"` + strings.Repeat("[", 100) + `"}`, false, 0},
		{`{"a":"\"` + strings.Repeat("{", 100) + `"}`, false, 0},
		{`{"a":"\\\\",` + `"b":` + nested(maxJSONDepth) + `}`, true, 16 + maxJSONDepth - 1},
		// Closing brackets do not count up.
		{strings.Repeat("]", 100) + "[", false, 0},
	}
	for _, c := range cases {
		off, deep := jsonTooDeep([]byte(c.body))
		if deep != c.deep || off != c.offset {
			t.Errorf("jsonTooDeep(%.60q…) = %d, %v; want %d, %v", c.body, off, deep, c.offset, c.deep)
		}
	}

	// Through a route: up to the bound a body is read as ever, past it
	// it is malformed JSON (FastAPI's json_invalid, located at the bracket).
	e := newAPIEnv(t, nil)
	register := func(extra string) string {
		return `{"email":"deep@camelot.bt","password":"` + testPassword + `","x":` + extra + `}`
	}
	w := e.postJSON("POST", "/auth/register", register(nested(maxJSONDepth-1)))
	if w.Code != http.StatusCreated {
		t.Fatalf("%d levels: %d %s, want 201", maxJSONDepth, w.Code, w.Body)
	}
	body := register(nested(maxJSONDepth))
	items := want422(t, e.postJSON("POST", "/auth/register", body),
		fmt.Sprintf("json_invalid@body.#%d", strings.Index(body, "[")+maxJSONDepth-1))
	if ctx := items[0].Ctx; ctx["error"] != fmt.Sprintf("nested deeper than %d levels", maxJSONDepth) {
		t.Errorf("ctx %v", ctx)
	}
	// Before authentication, as any malformed body (contract §2.5).
	want422(t, e.postJSON("PATCH", "/users/me", `{"roles":`+nested(maxJSONDepth)+`}`),
		fmt.Sprintf("json_invalid@body.#%d", len(`{"roles":`)+maxJSONDepth-1))
}

// TestFieldLimits: every string field the API takes has a bound, and a
// value past it has a definite 4xx: the contract's where it fixes one.
func TestFieldLimits(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	admin := e.bearerLogin(t, e.mustUser(t, "admin@camelot.bt", superuser).Email)
	target := e.mustUser(t, "gawain@camelot.bt")
	me := e.bearerLogin(t, "arthur@camelot.bt")

	// The longest address NormalizeEmail keeps, in 4-byte letters: 254
	// characters, 998 bytes. Its owner can log in: the username bound is
	// in bytes, and above it.
	wide := strings.Repeat("𠀀", 64) + "@" + strings.Repeat("𠀀", 63) + "." + strings.Repeat("𠀀", 63) + "." +
		strings.Repeat("𠀀", 58) + ".jp"
	// The longest password the policy takes, in 4-byte characters.
	widest := strings.Repeat("𝔸", 1024)
	w := e.postJSON("POST", "/auth/register", fmt.Sprintf(`{"email":%q,"password":%q}`, wide, widest))
	if w.Code != http.StatusCreated {
		t.Fatalf("registering %d-byte address: %d %s", len(wide), w.Code, w.Body)
	}
	if len(wide) > maxLoginUsernameBytes || len(widest) != maxLoginPasswordBytes {
		t.Fatalf("test values: %d-byte address, %d-byte password", len(wide), len(widest))
	}
	for _, username := range []string{wide, "  " + wide + "\t"} {
		w := e.serve("POST", "/auth/jwt/login", form("username", username, "password", widest), formCT())
		if w.Code != http.StatusOK {
			t.Fatalf("login with the longest address and password: %d %s", w.Code, w.Body)
		}
	}

	badLogin := `{"detail":"LOGIN_BAD_CREDENTIALS"}`
	mp, mpCT := multipartBody(t, "username", "arthur@camelot.bt", "password", strings.Repeat("x", maxLoginPasswordBytes+1))
	for name, c := range map[string]struct {
		method, path, body string
		opts               []reqOpt
		status             int
		want               string   // the body, for statuses other than 422
		items              []string // the 422 items
	}{
		// Login fields: fastapi-users takes any string, and answers 400
		// LOGIN_BAD_CREDENTIALS for any that matches no account (§3, §4.1).
		"login username": {"POST", "/auth/jwt/login",
			form("username", strings.Repeat("a", maxLoginUsernameBytes+1), "password", testPassword), []reqOpt{formCT()}, 400, badLogin, nil},
		"login password": {"POST", "/auth/cookie/login",
			form("username", "arthur@camelot.bt", "password", strings.Repeat("x", maxLoginPasswordBytes+1)), []reqOpt{formCT()}, 400, badLogin, nil},
		"login password, multipart": {"POST", "/auth/jwt/login", mp, []reqOpt{withHeader("Content-Type", mpCT)}, 400, badLogin, nil},
		// Still after the form's 422s, which FastAPI answers first (§2.5).
		"login username, no password": {"POST", "/auth/jwt/login",
			form("username", strings.Repeat("a", maxLoginUsernameBytes+1)), []reqOpt{formCT()}, 422, "", []string{"missing@body.password"}},
		// email: EmailStr, 254 characters (RFC 5321), a 422 as pydantic's.
		"register email": {"POST", "/auth/register",
			fmt.Sprintf(`{"email":"%s@%s.bt","password":%q}`, strings.Repeat("a", 64), strings.Repeat("b.", 94), testPassword),
			[]reqOpt{jsonCT()}, 422, "", []string{"value_error@body.email"}},
		"forgot-password email": {"POST", "/auth/forgot-password", `{"email":"` + strings.Repeat("a", 65) + `@camelot.bt"}`,
			[]reqOpt{jsonCT()}, 422, "", []string{"value_error@body.email"}},
		"patch email": {"PATCH", "/users/me", `{"email":"` + strings.Repeat("a", 65) + `@camelot.bt","current_password":"` + testPassword + `"}`,
			[]reqOpt{jsonCT(), bearer(me)}, 422, "", []string{"value_error@body.email"}},
		// New passwords: the policy's maximum (1024 characters), the
		// route's *_INVALID_PASSWORD with a reason, before any hashing.
		"register password": {"POST", "/auth/register",
			fmt.Sprintf(`{"email":"new@camelot.bt","password":%q}`, strings.Repeat("x", caddyauth.MaxPasswordLength+1)), []reqOpt{jsonCT()}, 400,
			`{"detail":{"code":"REGISTER_INVALID_PASSWORD","reason":"Password should be at most 1024 characters"}}`, nil},
		"patch password": {"PATCH", "/users/" + target.ID,
			fmt.Sprintf(`{"password":%q}`, strings.Repeat("x", caddyauth.MaxPasswordLength+1)), []reqOpt{jsonCT(), bearer(admin)}, 400,
			`{"detail":{"code":"UPDATE_USER_INVALID_PASSWORD","reason":"Password should be at most 1024 characters"}}`, nil},
		// current_password: no bound of its own but the body's; a value
		// no password can be is simply wrong.
		"current password": {"PATCH", "/users/me",
			fmt.Sprintf(`{"password":"a new correct horse","current_password":%q}`, strings.Repeat("x", 50000)), []reqOpt{jsonCT(), bearer(me)}, 400,
			`{"detail":{"code":"UPDATE_USER_INVALID_PASSWORD","reason":"Current password is incorrect"}}`, nil},
		// Tokens: any string that is no live token is the route's BAD_TOKEN (§4.5, §4.7).
		"reset token": {"POST", "/auth/reset-password", fmt.Sprintf(`{"token":%q,"password":"a new correct horse"}`, strings.Repeat("t", 600)),
			[]reqOpt{jsonCT()}, 400, `{"detail":"RESET_PASSWORD_BAD_TOKEN"}`, nil},
		"verify token": {"POST", "/auth/verify", fmt.Sprintf(`{"token":%q}`, strings.Repeat("t", 600)),
			[]reqOpt{jsonCT()}, 400, `{"detail":"VERIFY_USER_BAD_TOKEN"}`, nil},
		// full_name (Gatehouse's): 255 characters, pydantic's string_too_long.
		"register full_name": {"POST", "/auth/register",
			fmt.Sprintf(`{"email":"named@camelot.bt","password":%q,"full_name":%q}`, testPassword, strings.Repeat("n", caddyauth.MaxFullNameLength+1)),
			[]reqOpt{jsonCT()}, 422, "", []string{"string_too_long@body.full_name"}},
		"patch full_name": {"PATCH", "/users/me", fmt.Sprintf(`{"full_name":%q}`, strings.Repeat("n", caddyauth.MaxFullNameLength+1)),
			[]reqOpt{jsonCT(), bearer(me)}, 422, "", []string{"string_too_long@body.full_name"}},
		// roles (Gatehouse's): 64 names of 64 characters.
		"too many roles": {"PATCH", "/users/" + target.ID, `{"roles":["r` + strings.Repeat(`","r`, caddyauth.MaxRoles) + `"]}`,
			[]reqOpt{jsonCT(), bearer(admin)}, 422, "", []string{"too_long@body.roles"}},
		"role too long": {"PATCH", "/users/" + target.ID, `{"roles":["` + strings.Repeat("r", caddyauth.MaxRoleLength+1) + `"]}`,
			[]reqOpt{jsonCT(), bearer(admin)}, 422, "", []string{"value_error@body.roles"}},
	} {
		t.Run(name, func(t *testing.T) {
			w := e.serve(c.method, c.path, c.body, c.opts...)
			if c.status == http.StatusUnprocessableEntity {
				want422(t, w, c.items...)
				return
			}
			wantJSON(t, w, c.status, c.want)
		})
	}
	// At the bounds, the fields pass: the longest name, the most roles.
	w = e.postJSON("PATCH", "/users/"+target.ID, fmt.Sprintf(`{"full_name":%q,"roles":["%s"%s]}`,
		strings.Repeat("n", caddyauth.MaxFullNameLength), strings.Repeat("r", caddyauth.MaxRoleLength),
		strings.Repeat(`,"r"`, caddyauth.MaxRoles-1)), bearer(admin))
	if w.Code != http.StatusOK {
		t.Fatalf("fields at their bounds: %d %s", w.Code, w.Body)
	}
}

// TestOverlongCredentials: a bearer token longer than maxCredentialBytes
// is no credential at all, and is not parsed: as without one, a session
// cookie decides. An over-long cookie is refused alike.
func TestOverlongCredentials(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n  int
		ok bool
	}{{maxCredentialBytes, true}, {maxCredentialBytes + 1, false}} {
		token := strings.Repeat("a", c.n)
		h := http.Header{"Authorization": {"Bearer " + token}}
		if _, ok := bearerToken(h); ok != c.ok {
			t.Errorf("bearer token of %d bytes: ok %v, want %v", c.n, ok, c.ok)
		}
		if got, ok := parseBearer("Bearer " + token); !ok || got != token {
			t.Errorf("parseBearer of a %d-byte token: %v", c.n, ok)
		}
	}
	e := newAPIEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	c := e.cookieLogin(t, "arthur@camelot.bt")
	long := strings.Repeat("a", maxCredentialBytes+1)
	w := e.serve("GET", "/users/me", "", bearer(long), withCookie(c.Name, c.Value))
	if w.Code != http.StatusOK {
		t.Fatalf("over-long bearer token and a session cookie: %d %s", w.Code, w.Body)
	}
	unauthorized := `{"detail":"Unauthorized"}`
	wantJSON(t, e.serve("GET", "/users/me", "", bearer(long)), 401, unauthorized)
	wantJSON(t, e.serve("GET", "/users/me", "", withCookie(c.Name, c.Value+strings.Repeat("A", maxCredentialBytes))), 401, unauthorized)
}

// TestBodyReadTimeout: a client that sends its headers and then stalls
// gets 408 once bodyReadTimeout has passed, on every route that reads a
// body (JSON and both form encodings), and its connection is closed.
func TestBodyReadTimeout(t *testing.T) {
	// Not parallel: it shortens bodyReadTimeout, and parallel tests only
	// run once the sequential ones are done.
	shortenBodyReadTimeout(t, 200*time.Millisecond)
	e := newAPIEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	srv := httptest.NewServer(e.handler())
	t.Cleanup(srv.Close)
	mp, mpCT := multipartBody(t, "username", "arthur@camelot.bt", "password", testPassword)
	cases := map[string]struct{ path, ct, body string }{
		"json":           {"/auth/register", "application/json", `{"email":"slow@camelot.bt","password":"` + testPassword + `"}`},
		"embedded json":  {"/auth/forgot-password", "application/json", `{"email":"arthur@camelot.bt"}`},
		"urlencoded":     {"/auth/jwt/login", "application/x-www-form-urlencoded", form("username", "arthur@camelot.bt", "password", testPassword)},
		"multipart form": {"/auth/cookie/login", mpCT, mp},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // the test's own bound
			// The headers and half the body, then nothing.
			start := time.Now()
			if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
				c.path, c.ct, len(c.body), c.body[:len(c.body)/2]); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if elapsed := time.Since(start); elapsed < bodyReadTimeout/2 || elapsed > 5*time.Second {
				t.Errorf("answered after %v; the timeout is %v", elapsed, bodyReadTimeout)
			}
			if res.StatusCode != http.StatusRequestTimeout || string(body) != `{"detail":"Request Timeout"}` ||
				res.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %s %q, want 408 {\"detail\":\"Request Timeout\"}", res.StatusCode, res.Header.Get("Content-Type"), body)
			}
			// The rest of the body is not waited for: the connection ends.
			if n, err := br.ReadByte(); err != io.EOF {
				t.Errorf("connection still open after the 408: %v, %v", n, err)
			}
		})
	}
	// The same requests, sent whole, are read as ever.
	for name, c := range cases {
		res, err := http.Post(srv.URL+c.path, c.ct, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusRequestTimeout || res.StatusCode >= 500 {
			t.Errorf("%s sent whole: %d", name, res.StatusCode)
		}
	}
}

// TestBodyReadDeadlineLifted: once the body is read, the deadline is
// gone, and a handler may take longer than bodyReadTimeout without its
// request's context ending under it; with an empty body too, whose
// connection the server watches for the client going away.
func TestBodyReadDeadlineLifted(t *testing.T) {
	shortenBodyReadTimeout(t, 100*time.Millisecond)
	type outcome struct {
		body   string
		err    error
		ctxErr error
	}
	got := make(chan outcome, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r)
		time.Sleep(3 * bodyReadTimeout)
		got <- outcome{string(body), err, r.Context().Err()}
	}))
	t.Cleanup(srv.Close)
	for _, body := range []string{"", `{"a":1}`} {
		res, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if o := <-got; o.body != body || o.err != nil || o.ctxErr != nil {
			t.Errorf("body %q: read %q, %v; context %v", body, o.body, o.err, o.ctxErr)
		}
	}
}

// shortenBodyReadTimeout sets bodyReadTimeout for one (sequential) test.
func shortenBodyReadTimeout(t *testing.T, d time.Duration) {
	t.Helper()
	old := bodyReadTimeout
	bodyReadTimeout = d
	t.Cleanup(func() { bodyReadTimeout = old })
}

// FuzzLoginForm posts a login form of arbitrary fields, urlencoded or
// multipart, to the form reader and to the login route. Each field read
// is the one sent, byte for byte; a fault is the contract's 422 item for
// it; a value no account can have is LOGIN_BAD_CREDENTIALS; the route
// answers 4xx with a JSON detail, and 200 only for the right password.
func FuzzLoginForm(f *testing.F) {
	for _, s := range []struct {
		username, password, grantType string
		multipart                     bool
	}{
		{"arthur@camelot.bt", testPassword, "", false},
		{" ARTHUR@camelot.bt\t", testPassword, "password", true},
		{"arthur@camelot.bt", "wrong", "client_credentials", false},
		{"", "", "", true},
		{"a=b&password=x", "%zz\r\n--", "", false},
		{"\xff\x00", "\u00e9\u0301", "PASSWORD", true},
	} {
		f.Add(s.username, s.password, s.grantType, s.multipart)
	}
	e := newAPIEnv(f, nil)
	e.mustUser(f, "arthur@camelot.bt")

	f.Fuzz(func(t *testing.T, username, password, grantType string, asMultipart bool) {
		kv := []string{"username", username, "password", password}
		if grantType != "" {
			kv = append(kv, "grant_type", grantType)
		}
		body, ct := form(kv...), "application/x-www-form-urlencoded"
		if asMultipart {
			body, ct = multipartBody(t, kv...)
		}
		newReq := func() *http.Request {
			r := httptest.NewRequest("POST", "/auth/jwt/login", strings.NewReader(body))
			r.Header.Set("Content-Type", ct)
			return r
		}

		lf, items, err := parseLoginForm(httptest.NewRecorder(), newReq())
		var want []string
		if username == "" {
			want = append(want, "missing@body.username")
		}
		if password == "" {
			want = append(want, "missing@body.password")
		}
		if grantType != "" && grantType != "password" {
			want = append(want, "string_pattern_mismatch@body.grant_type")
		}
		tooLong := len(strings.TrimSpace(username)) > maxLoginUsernameBytes || len(password) > maxLoginPasswordBytes
		switch {
		case len(body) > MaxBodyBytes:
			if !errors.Is(err, errBodyTooLarge) {
				t.Fatalf("%d-byte form: %v, want errBodyTooLarge", len(body), err)
			}
		case len(want) == 0 && tooLong:
			if !errors.Is(err, caddyauth.ErrBadCredentials) || lf != nil || items != nil {
				t.Fatalf("over-long field: %v, %v, %v; want ErrBadCredentials", lf, items, err)
			}
		case err != nil:
			t.Fatalf("parseLoginForm: %v", err)
		default:
			var got []string
			for _, it := range items {
				got = append(got, it.Type+"@"+locString(it.Loc))
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("items %v, want %v", got, want)
			}
			if lf.username != username || lf.password != password {
				t.Fatalf("read %q/%q, sent %q/%q", lf.username, lf.password, username, password)
			}
		}

		w := httptest.NewRecorder()
		e.handler().ServeHTTP(w, newReq())
		if w.Code == http.StatusOK {
			if !strings.EqualFold(strings.TrimSpace(username), "arthur@camelot.bt") || password != testPassword {
				t.Fatalf("logged in as %q with %q", username, password)
			}
			return
		}
		checkAnswer(t, w, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusTooManyRequests)
	})
}
