package handlers

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// userKeys are the keys of the user schema, and the only ones.
var userKeys = []string{"email", "full_name", "id", "is_active", "is_superuser", "is_verified", "roles"}

// decodeUser decodes a user body and checks its key set.
func decodeUser(tb testing.TB, body []byte) map[string]any {
	tb.Helper()
	var u map[string]any
	if err := json.Unmarshal(body, &u); err != nil {
		tb.Fatalf("user body %s: %v", body, err)
	}
	if keys := slices.Sorted(maps.Keys(u)); !slices.Equal(keys, userKeys) {
		tb.Fatalf("user keys %v, want %v", keys, userKeys)
	}
	for _, secret := range []string{"password", "hash", "$argon2", "$2"} {
		if strings.Contains(string(body), secret) {
			tb.Fatalf("user body %s contains %q", body, secret)
		}
	}
	return u
}

func TestRegisterCreated(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	// Privileged and unknown fields are ignored.
	w := e.postJSON("POST", "/auth/register", `{"email":" Gawain@Camelot.BT ","password":"`+testPassword+`",
		"full_name":"Sir Gawain","is_superuser":true,"is_active":false,"is_verified":true,"roles":["admin"],
		"id":"00000000-0000-4000-8000-000000000000","unknown":{"x":1}}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	u := decodeUser(t, w.Body.Bytes())
	want := map[string]any{"email": "Gawain@camelot.bt", "full_name": "Sir Gawain", "is_active": true,
		"is_superuser": false, "is_verified": false, "roles": []any{}}
	for k, v := range want {
		if !jsonEqual(u[k], v) {
			t.Errorf("%s = %#v, want %#v", k, u[k], v)
		}
	}
	if id, _ := u["id"].(string); len(id) != 36 || id == "00000000-0000-4000-8000-000000000000" {
		t.Errorf("id %q", u["id"])
	}

	// Without a name: full_name is null, roles an empty list.
	w = e.postJSON("POST", "/auth/register", `{"email":"percival@camelot.bt","password":"`+testPassword+`"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if u := decodeUser(t, w.Body.Bytes()); u["full_name"] != nil || !jsonEqual(u["roles"], []any{}) {
		t.Errorf("full_name %#v, roles %#v", u["full_name"], u["roles"])
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestRegisterAcceptedVariants(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	cases := map[string]struct{ ct, body string }{
		"nulls for ignored and optional fields": {"application/json",
			`{"email":"a@camelot.bt","password":"` + testPassword + `","full_name":null,"is_active":null,"is_superuser":null,"is_verified":null,"roles":null}`},
		"lax booleans":          {"application/json", `{"email":"b@camelot.bt","password":"` + testPassword + `","is_active":"yes","is_superuser":0,"is_verified":"off"}`},
		"+json content type":    {"application/merge-patch+json", `{"email":"c@camelot.bt","password":"` + testPassword + `"}`},
		"charset parameter":     {"application/json; charset=utf-8", `{"email":"d@camelot.bt","password":"` + testPassword + `"}`},
		"upper-case media type": {"Application/JSON", `{"email":"e@camelot.bt","password":"` + testPassword + `"}`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			w := e.serve("POST", "/auth/register", c.body, withHeader("Content-Type", c.ct))
			if w.Code != http.StatusCreated {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if u := decodeUser(t, w.Body.Bytes()); u["is_superuser"] != false || u["is_active"] != true {
				t.Errorf("privileged fields applied: %v", u)
			}
		})
	}
}

func TestRegisterBusinessErrors(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	e.mustUser(t, "king.arthur@camelot.bt")
	cases := []struct {
		name, body string
		status     int
		want       string
	}{
		{"duplicate in other case", `{"email":"King.Arthur@CAMELOT.BT","password":"` + testPassword + `"}`,
			400, `{"detail":"REGISTER_USER_ALREADY_EXISTS"}`},
		{"weak password", `{"email":"lancelot@camelot.bt","password":"short"}`,
			400, `{"detail":{"code":"REGISTER_INVALID_PASSWORD","reason":"Password should be at least 8 characters"}}`},
		{"weak password on a taken email: policy first", `{"email":"king.arthur@camelot.bt","password":"short"}`,
			400, `{"detail":{"code":"REGISTER_INVALID_PASSWORD","reason":"Password should be at least 8 characters"}}`},
		{"password containing the email", `{"email":"lancelot@camelot.bt","password":"my lancelot@camelot.bt"}`,
			400, `{"detail":{"code":"REGISTER_INVALID_PASSWORD","reason":"Password should not contain e-mail"}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantJSON(t, e.postJSON("POST", "/auth/register", c.body), c.status, c.want)
		})
	}
}

func TestRegistrationClosedIsForbidden(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, func(o *caddyauth.Options) { o.RegistrationClosed = true })
	wantJSON(t, e.postJSON("POST", "/auth/register", `{"email":"a@camelot.bt","password":"`+testPassword+`"}`), 403, `{"detail":"Forbidden"}`)
	// Schema errors still come first.
	want422(t, e.postJSON("POST", "/auth/register", `{}`), "missing@body.email", "missing@body.password")
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	pw := `"password":"` + testPassword + `"`
	cases := []struct {
		name, ct, body string
		want           []string
	}{
		{"missing body", "application/json", "", []string{"missing@body"}},
		{"missing body, no content type", "", "", []string{"missing@body"}},
		{"missing body, text/plain", "text/plain", "", []string{"missing@body"}},
		{"JSON null body", "application/json", "null", []string{"missing@body"}},
		{"truncated JSON", "application/json", `{"email":`, []string{"json_invalid@body.#9"}},
		{"blank body", "application/json", "  ", []string{"json_invalid@body.#2"}},
		{"text/plain", "text/plain", `{"email":"a@camelot.bt",` + pw + `}`, []string{"model_attributes_type@body"}},
		{"no content type", "", `{"email":"a@camelot.bt",` + pw + `}`, []string{"model_attributes_type@body"}},
		{"unparsable content type", "application/json; =", `{}`, []string{"model_attributes_type@body"}},
		{"array", "application/json", `[]`, []string{"model_attributes_type@body"}},
		{"string", "application/json", `"foo"`, []string{"model_attributes_type@body"}},
		{"number", "application/json", `42`, []string{"model_attributes_type@body"}},
		{"boolean", "application/json", `true`, []string{"model_attributes_type@body"}},
		{"empty object", "application/json", `{}`, []string{"missing@body.email", "missing@body.password"}},
		{"missing password", "application/json", `{"email":"a@camelot.bt"}`, []string{"missing@body.password"}},
		{"invalid email", "application/json", `{"email":"king.arthur",` + pw + `}`, []string{"value_error@body.email"}},
		{"email with CRLF", "application/json", `{"email":"a@camelot.bt\r\nX-Evil: 1",` + pw + `}`, []string{"value_error@body.email"}},
		{"email not a string", "application/json", `{"email":42,` + pw + `}`, []string{"string_type@body.email"}},
		{"email null", "application/json", `{"email":null,` + pw + `}`, []string{"string_type@body.email"}},
		{"password not a string", "application/json", `{"email":"a@camelot.bt","password":true}`, []string{"string_type@body.password"}},
		{"password null", "application/json", `{"email":"a@camelot.bt","password":null}`, []string{"string_type@body.password"}},
		{"is_superuser notabool", "application/json", `{"email":"a@camelot.bt",` + pw + `,"is_superuser":"notabool"}`, []string{"bool_parsing@body.is_superuser"}},
		{"is_verified 2", "application/json", `{"email":"a@camelot.bt",` + pw + `,"is_verified":2}`, []string{"bool_parsing@body.is_verified"}},
		{"is_active list", "application/json", `{"email":"a@camelot.bt",` + pw + `,"is_active":[]}`, []string{"bool_type@body.is_active"}},
		{"roles not a list", "application/json", `{"email":"a@camelot.bt",` + pw + `,"roles":"admin"}`, []string{"list_type@body.roles"}},
		{"roles of numbers", "application/json", `{"email":"a@camelot.bt",` + pw + `,"roles":["a",1]}`, []string{"string_type@body.roles.#1"}},
		{"full_name not a string", "application/json", `{"email":"a@camelot.bt",` + pw + `,"full_name":5}`, []string{"string_type@body.full_name"}},
		{"full_name with newline", "application/json", `{"email":"a@camelot.bt",` + pw + `,"full_name":"a\nb"}`, []string{"value_error@body.full_name"}},
		{"schema before business: bad email, weak password", "application/json", `{"email":"x","password":"short"}`, []string{"value_error@body.email"}},
		{"several faults at once", "application/json", `{"email":1,"is_superuser":"x"}`,
			[]string{"string_type@body.email", "missing@body.password", "bool_parsing@body.is_superuser"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var opts []reqOpt
			if c.ct != "" {
				opts = append(opts, withHeader("Content-Type", c.ct))
			}
			want422(t, e.serve("POST", "/auth/register", c.body, opts...), c.want...)
		})
	}
	if users, _ := e.db.ListUsers(context.Background()); len(users) != 0 {
		t.Errorf("invalid requests created %d users", len(users))
	}

	t.Run("item details", func(t *testing.T) {
		items := want422(t, e.postJSON("POST", "/auth/register", `{"email":"king.arthur",`+pw+`}`), "value_error@body.email")
		if items[0].Input != "king.arthur" || items[0].Ctx["reason"] != "An email address must have an @-sign." {
			t.Errorf("invalid email item %+v", items[0])
		}
		items = want422(t, e.postJSON("POST", "/auth/register", `{}`), "missing@body.email", "missing@body.password")
		if !jsonEqual(items[0].Input, map[string]any{}) || items[0].Msg != "Field required" {
			t.Errorf("missing field item %+v, want input {} (the received object)", items[0])
		}
		items = want422(t, e.postJSON("POST", "/auth/register", ""), "missing@body")
		if items[0].Input != nil {
			t.Errorf("missing body item %+v, want input null", items[0])
		}
		items = want422(t, e.postJSON("POST", "/auth/register", `{"email":`), "json_invalid@body.#9")
		if items[0].Msg != "JSON decode error" || !jsonEqual(items[0].Input, map[string]any{}) || items[0].Ctx["error"] == nil {
			t.Errorf("json_invalid item %+v", items[0])
		}
	})

	t.Run("malformed JSON offset", func(t *testing.T) {
		for _, body := range []string{`{bad}`, `{"email": tru}`, `{"a":1,}`, `{"a":1}}`, "{\"a\":\"\x01\"}"} {
			w := e.postJSON("POST", "/auth/register", body)
			if w.Code != 422 {
				t.Fatalf("%q: status %d", body, w.Code)
			}
			var out struct {
				Detail []struct {
					Type string `json:"type"`
					Loc  []any  `json:"loc"`
				} `json:"detail"`
			}
			json.Unmarshal(w.Body.Bytes(), &out)
			if len(out.Detail) != 1 || out.Detail[0].Type != "json_invalid" || len(out.Detail[0].Loc) != 2 {
				t.Fatalf("%q: %s", body, w.Body)
			}
			if off, ok := out.Detail[0].Loc[1].(float64); !ok || off < 0 || int(off) > len(body) || off != float64(int(off)) {
				t.Errorf("%q: offset %v is not a position in the body", body, out.Detail[0].Loc[1])
			}
		}
	})
}

func TestLogin(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	e.mustUser(t, "mordred@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsActive = false })

	ok := func(t *testing.T, w *httptest.ResponseRecorder) {
		t.Helper()
		body := w.Body.Bytes()
		if w.Code != http.StatusOK {
			t.Fatalf("status %d: %s", w.Code, body)
		}
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		if keys := slices.Sorted(maps.Keys(out)); !slices.Equal(keys, []string{"access_token", "token_type"}) || out["token_type"] != "bearer" {
			t.Fatalf("login body %s, want exactly access_token and token_type bearer", body)
		}
		tok, _ := out["access_token"].(string)
		if w := e.serve("GET", "/users/me", "", bearer(tok)); w.Code != 200 {
			t.Fatalf("the access token does not work: %d %s", w.Code, w.Body)
		}
	}
	t.Run("urlencoded", func(t *testing.T) {
		w := e.serve("POST", "/auth/jwt/login", form("username", "arthur@camelot.bt", "password", testPassword), formCT())
		ok(t, w)
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
	})
	t.Run("urlencoded with grant_type and OAuth2 extras", func(t *testing.T) {
		w := e.serve("POST", "/auth/jwt/login", form("grant_type", "password", "username", "arthur@camelot.bt",
			"password", testPassword, "scope", "", "client_id", "x", "client_secret", "y"), formCT())
		ok(t, w)
	})
	t.Run("multipart", func(t *testing.T) {
		body, ct := multipartBody(t, "username", "arthur@camelot.bt", "password", testPassword)
		w := e.serve("POST", "/auth/jwt/login", body, withHeader("Content-Type", ct))
		ok(t, w)
	})
	t.Run("email case and spaces", func(t *testing.T) {
		w := e.serve("POST", "/auth/jwt/login", form("username", " ARTHUR@camelot.BT ", "password", testPassword), formCT())
		ok(t, w)
	})

	invalid := []struct {
		name, ct, body string
		want           []string
	}{
		{"JSON body", "application/json", `{"username":"arthur@camelot.bt","password":"` + testPassword + `"}`,
			[]string{"missing@body.username", "missing@body.password"}},
		{"no body", "", "", []string{"missing@body.username", "missing@body.password"}},
		{"empty username", "application/x-www-form-urlencoded", form("username", "", "password", "x"), []string{"missing@body.username"}},
		{"no password", "application/x-www-form-urlencoded", form("username", "a"), []string{"missing@body.password"}},
		{"grant_type other than password", "application/x-www-form-urlencoded",
			form("grant_type", "client_credentials", "username", "arthur@camelot.bt", "password", testPassword),
			[]string{"string_pattern_mismatch@body.grant_type"}},
		{"multipart without boundary", "multipart/form-data", "username=a&password=b",
			[]string{"missing@body.username", "missing@body.password"}},
		{"malformed urlencoding", "application/x-www-form-urlencoded", "username=%zz&password=%",
			[]string{"missing@body.username", "missing@body.password"}},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			var opts []reqOpt
			if c.ct != "" {
				opts = append(opts, withHeader("Content-Type", c.ct))
			}
			want422(t, e.serve("POST", "/auth/jwt/login", c.body, opts...), c.want...)
		})
	}

	bad := map[string][2]string{
		"unknown user":             {"lancelot@camelot.bt", testPassword},
		"wrong password":           {"arthur@camelot.bt", "wrong password"},
		"inactive user":            {"mordred@camelot.bt", testPassword},
		"username not an email":    {"arthur", testPassword},
		"password of another case": {"arthur@camelot.bt", strings.ToUpper(testPassword)},
	}
	for name, c := range bad {
		for _, path := range []string{"/auth/jwt/login", "/auth/cookie/login"} {
			t.Run(name+" "+path, func(t *testing.T) {
				w := e.serve("POST", path, form("username", c[0], "password", c[1]), formCT())
				wantJSON(t, w, 400, `{"detail":"LOGIN_BAD_CREDENTIALS"}`)
				if sc := w.Header().Get("Set-Cookie"); sc != "" {
					t.Errorf("failed login set a cookie: %s", sc)
				}
			})
		}
	}
}

func TestLoginRequireVerified(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, func(o *caddyauth.Options) { o.RequireVerified = true })
	e.mustUser(t, "unverified@camelot.bt")
	e.mustUser(t, "verified@camelot.bt", verified)
	for _, path := range []string{"/auth/jwt/login", "/auth/cookie/login"} {
		wantJSON(t, e.serve("POST", path, form("username", "unverified@camelot.bt", "password", testPassword), formCT()),
			400, `{"detail":"LOGIN_USER_NOT_VERIFIED"}`)
		// Only after the right password.
		wantJSON(t, e.serve("POST", path, form("username", "unverified@camelot.bt", "password", "wrong password"), formCT()),
			400, `{"detail":"LOGIN_BAD_CREDENTIALS"}`)
	}
	e.bearerLogin(t, "verified@camelot.bt")
}

func TestCookieLogin(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	cases := []struct {
		name   string
		host   string
		tls    bool
		secure bool
	}{
		{"public host", "app.example.com", false, true},
		{"public host with port", "app.example.com:8443", false, true},
		{"private address", "10.0.0.1:80", false, true},
		{"TLS on localhost", "localhost", true, true},
		{"localhost", "localhost", false, false},
		{"localhost with port", "localhost:2015", false, false},
		{"sub.localhost", "app.localhost:8080", false, false},
		{"LOCALHOST", "LOCALHOST:80", false, false},
		{"IPv4 loopback", "127.0.0.1:8080", false, false},
		{"IPv6 loopback", "[::1]:8080", false, false},
		{"a name containing localhost", "localhost.example.com", false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := []reqOpt{formCT(), withHost(c.host)}
			if c.tls {
				opts = append(opts, func(r *http.Request) { r.TLS = &tls.ConnectionState{} })
			}
			w := e.serve("POST", "/auth/cookie/login", form("username", "arthur@camelot.bt", "password", testPassword), opts...)
			wantEmpty(t, w, http.StatusNoContent)
			set := w.Header().Values("Set-Cookie")
			if len(set) != 1 {
				t.Fatalf("Set-Cookie %q, want one", set)
			}
			attrs := strings.Split(set[0], "; ")
			name, value, _ := strings.Cut(attrs[0], "=")
			if name != "gatehouse_session" || value == "" {
				t.Fatalf("cookie %q", attrs[0])
			}
			for _, a := range []string{"Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=86400"} {
				if !slices.Contains(attrs, a) {
					t.Errorf("Set-Cookie %q lacks %s", set[0], a)
				}
			}
			if got := slices.Contains(attrs, "Secure"); got != c.secure {
				t.Errorf("Secure = %v, want %v (%s)", got, c.secure, set[0])
			}
			if slices.ContainsFunc(attrs, func(a string) bool { return strings.HasPrefix(a, "Domain=") }) {
				t.Errorf("host-only cookie expected, got %s", set[0])
			}
			if w := e.serve("GET", "/users/me", "", withCookie(name, value)); w.Code != 200 {
				t.Errorf("the cookie does not work: %d", w.Code)
			}
		})
	}
	t.Run("cookie domain", func(t *testing.T) {
		e := newAPIEnv(t, nil)
		e.api.CookieDomain = "example.com"
		e.mustUser(t, "arthur@camelot.bt")
		w := e.serve("POST", "/auth/cookie/login", form("username", "arthur@camelot.bt", "password", testPassword), formCT())
		if sc := w.Header().Get("Set-Cookie"); !strings.Contains(sc, "; Domain=example.com") {
			t.Errorf("Set-Cookie %q lacks the domain", sc)
		}
	})
}

func TestLogout(t *testing.T) {
	t.Parallel()
	t.Run("bearer", func(t *testing.T) {
		t.Parallel()
		e := newAPIEnv(t, nil)
		e.mustUser(t, "arthur@camelot.bt")
		tok, other := e.bearerLogin(t, "arthur@camelot.bt"), e.bearerLogin(t, "arthur@camelot.bt")
		if w := e.serve("GET", "/users/me", "", bearer(tok)); w.Code != 200 { // cache it
			t.Fatal(w.Code)
		}
		w := e.serve("POST", "/auth/jwt/logout", "", bearer(tok))
		wantEmpty(t, w, http.StatusNoContent)
		if w.Header().Get("Set-Cookie") != "" || w.Header().Get("Content-Type") != "" {
			t.Errorf("bearer logout headers %v", w.Header())
		}
		wantJSON(t, e.serve("GET", "/users/me", "", bearer(tok)), 401, `{"detail":"Unauthorized"}`)
		wantJSON(t, e.serve("POST", "/auth/jwt/logout", "", bearer(tok)), 401, `{"detail":"Unauthorized"}`)
		if w := e.serve("GET", "/users/me", "", bearer(other)); w.Code != 200 {
			t.Errorf("the other session was ended too: %d", w.Code)
		}
	})
	t.Run("cookie", func(t *testing.T) {
		t.Parallel()
		e := newAPIEnv(t, nil)
		e.mustUser(t, "arthur@camelot.bt")
		c := e.cookieLogin(t, "arthur@camelot.bt")
		w := e.serve("POST", "/auth/cookie/logout", "", withCookie(c.Name, c.Value))
		wantEmpty(t, w, http.StatusNoContent)
		set := w.Header().Values("Set-Cookie")
		if len(set) != 1 {
			t.Fatalf("Set-Cookie %q", set)
		}
		attrs := strings.Split(set[0], "; ")
		for _, a := range []string{"gatehouse_session=", "Path=/", "Max-Age=0", "HttpOnly", "SameSite=Lax", "Secure"} {
			if !slices.Contains(attrs, a) {
				t.Errorf("clearing cookie %q lacks %s", set[0], a)
			}
		}
		wantJSON(t, e.serve("GET", "/users/me", "", withCookie(c.Name, c.Value)), 401, `{"detail":"Unauthorized"}`)
	})
	t.Run("cookie logout with a bearer token", func(t *testing.T) {
		t.Parallel()
		e := newAPIEnv(t, nil)
		e.mustUser(t, "arthur@camelot.bt")
		tok := e.bearerLogin(t, "arthur@camelot.bt")
		w := e.serve("POST", "/auth/cookie/logout", "", bearer(tok))
		wantEmpty(t, w, http.StatusNoContent)
		if !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
			t.Errorf("no clearing cookie: %v", w.Header())
		}
		wantJSON(t, e.serve("GET", "/users/me", "", bearer(tok)), 401, `{"detail":"Unauthorized"}`)
	})
	t.Run("bearer logout with a cookie", func(t *testing.T) {
		t.Parallel()
		e := newAPIEnv(t, nil)
		e.mustUser(t, "arthur@camelot.bt")
		c := e.cookieLogin(t, "arthur@camelot.bt")
		wantEmpty(t, e.serve("POST", "/auth/jwt/logout", "", withCookie(c.Name, c.Value)), http.StatusNoContent)
		wantJSON(t, e.serve("GET", "/users/me", "", withCookie(c.Name, c.Value)), 401, `{"detail":"Unauthorized"}`)
	})
	t.Run("no credential", func(t *testing.T) {
		t.Parallel()
		e := newAPIEnv(t, nil)
		for _, path := range []string{"/auth/jwt/logout", "/auth/cookie/logout"} {
			w := e.serve("POST", path, "")
			wantJSON(t, w, 401, `{"detail":"Unauthorized"}`)
			if h := w.Header().Get("WWW-Authenticate"); h != "" {
				t.Errorf("WWW-Authenticate %q: fastapi-users sends none", h)
			}
		}
	})
}

func TestUsersMe(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	u := e.mustUser(t, "arthur@camelot.bt", func(nu *caddyauth.NewUser) { nu.FullName = "Arthur"; nu.Roles = []string{"knights"} })
	tok := e.bearerLogin(t, "arthur@camelot.bt")
	c := e.cookieLogin(t, "arthur@camelot.bt")
	want := `{"id":"` + u.ID + `","email":"arthur@camelot.bt","is_active":true,"is_superuser":false,"is_verified":false,"full_name":"Arthur","roles":["knights"]}`

	wantJSON(t, e.serve("GET", "/users/me", "", bearer(tok)), 200, want)
	wantJSON(t, e.serve("GET", "/users/me", "", withHeader("Authorization", "bearer "+tok)), 200, want)
	wantJSON(t, e.serve("GET", "/users/me", "", withHeader("Authorization", "BEARER  "+tok+" ")), 200, want)
	wantJSON(t, e.serve("GET", "/users/me", "", withCookie(c.Name, c.Value)), 200, want)
	// A bad bearer token falls through to a good cookie, as fastapi-users' backends do.
	wantJSON(t, e.serve("GET", "/users/me", "", bearer("garbage"), withCookie(c.Name, c.Value)), 200, want)
	wantJSON(t, e.serve("GET", "/users/me", "", bearer(tok), withCookie(c.Name, "forged")), 200, want)

	unauthorized := map[string][]reqOpt{
		"none":                   nil,
		"Basic":                  {withHeader("Authorization", "Basic YTpi")},
		"Bearer without token":   {withHeader("Authorization", "Bearer ")},
		"token without scheme":   {withHeader("Authorization", tok)},
		"garbage bearer":         {bearer("garbage")},
		"forged cookie":          {withCookie("gatehouse_session", "forged")},
		"cookie under a name":    {withCookie("fastapiusersauth", c.Value)},
		"bearer token as cookie": {withCookie("gatehouse_session", tok)},
		"cookie as bearer":       {bearer(c.Value)},
	}
	for name, opts := range unauthorized {
		t.Run(name, func(t *testing.T) {
			wantJSON(t, e.serve("GET", "/users/me", "", opts...), 401, `{"detail":"Unauthorized"}`)
		})
	}
	t.Run("deactivated", func(t *testing.T) {
		if _, err := e.svc.UpdateUser(context.Background(), u.ID, caddyauth.UserPatch{IsActive: new(bool)}, ""); err != nil {
			t.Fatal(err)
		}
		wantJSON(t, e.serve("GET", "/users/me", "", bearer(tok)), 401, `{"detail":"Unauthorized"}`)
		wantJSON(t, e.serve("GET", "/users/me", "", withCookie(c.Name, c.Value)), 401, `{"detail":"Unauthorized"}`)
	})
}

// TestRequireVerifiedForbidsUnverified: with require_verified on, a user
// who is (or became) unverified gets 403 on logout and /users/*.
func TestRequireVerifiedForbidsUnverified(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, func(o *caddyauth.Options) { o.RequireVerified = true })
	u := e.mustUser(t, "arthur@camelot.bt", verified)
	admin := e.mustUser(t, "admin@camelot.bt", superuser)
	tok, adminTok := e.bearerLogin(t, "arthur@camelot.bt"), e.bearerLogin(t, "admin@camelot.bt")
	for _, id := range []string{u.ID, admin.ID} {
		if _, err := e.svc.UpdateUser(context.Background(), id, caddyauth.UserPatch{IsVerified: new(bool)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	forbidden := `{"detail":"Forbidden"}`
	wantJSON(t, e.serve("GET", "/users/me", "", bearer(tok)), 403, forbidden)
	wantJSON(t, e.postJSON("PATCH", "/users/me", `{}`, bearer(tok)), 403, forbidden)
	wantJSON(t, e.serve("POST", "/auth/jwt/logout", "", bearer(tok)), 403, forbidden)
	// An unverified superuser too.
	wantJSON(t, e.serve("GET", "/users/"+u.ID, "", bearer(adminTok)), 403, forbidden)
}

func TestPatchMe(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*apiEnv, string, string) {
		e := newAPIEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt", verified)
		e.mustUser(t, "bedivere@camelot.bt")
		return e, u.ID, e.bearerLogin(t, "arthur@camelot.bt")
	}
	user := func(id, email, name string, verified bool) string {
		n := "null"
		if name != "" {
			n = `"` + name + `"`
		}
		v := "false"
		if verified {
			v = "true"
		}
		return `{"id":"` + id + `","email":"` + email + `","is_active":true,"is_superuser":false,"is_verified":` + v + `,"full_name":` + n + `,"roles":[]}`
	}
	pwErr := func(reason string) string {
		return `{"detail":{"code":"UPDATE_USER_INVALID_PASSWORD","reason":"` + reason + `"}}`
	}

	t.Run("name", func(t *testing.T) {
		t.Parallel()
		e, id, tok := setup(t)
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{"full_name":"Arthur"}`, bearer(tok)), 200, user(id, "arthur@camelot.bt", "Arthur", true))
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{"full_name":null}`, bearer(tok)), 200, user(id, "arthur@camelot.bt", "", true))
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{}`, bearer(tok)), 200, user(id, "arthur@camelot.bt", "", true))
	})
	t.Run("privileged fields ignored", func(t *testing.T) {
		t.Parallel()
		e, id, tok := setup(t)
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{"is_superuser":true,"is_active":false,"is_verified":false,"roles":["admin"],"id":"x"}`, bearer(tok)),
			200, user(id, "arthur@camelot.bt", "", true))
	})
	t.Run("password needs current_password", func(t *testing.T) {
		t.Parallel()
		e, _, tok := setup(t)
		want422(t, e.postJSON("PATCH", "/users/me", `{"password":"a brand new password"}`, bearer(tok)), "missing@body.current_password")
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{"password":"a brand new password","current_password":"nope"}`, bearer(tok)),
			400, pwErr("Current password is incorrect"))
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{"email":"arthur@avalon.bt","current_password":"nope"}`, bearer(tok)),
			400, pwErr("Current password is incorrect"))
	})
	t.Run("password change keeps this session only", func(t *testing.T) {
		t.Parallel()
		e, id, tok := setup(t)
		other := e.bearerLogin(t, "arthur@camelot.bt")
		c := e.cookieLogin(t, "arthur@camelot.bt")
		w := e.postJSON("PATCH", "/users/me", `{"password":"a brand new password","current_password":"`+testPassword+`"}`, bearer(tok))
		wantJSON(t, w, 200, user(id, "arthur@camelot.bt", "", true))
		if w := e.serve("GET", "/users/me", "", bearer(tok)); w.Code != 200 {
			t.Errorf("the session that changed the password was ended: %d", w.Code)
		}
		wantJSON(t, e.serve("GET", "/users/me", "", bearer(other)), 401, `{"detail":"Unauthorized"}`)
		wantJSON(t, e.serve("GET", "/users/me", "", withCookie(c.Name, c.Value)), 401, `{"detail":"Unauthorized"}`)
		wantJSON(t, e.serve("POST", "/auth/jwt/login", form("username", "arthur@camelot.bt", "password", testPassword), formCT()),
			400, `{"detail":"LOGIN_BAD_CREDENTIALS"}`)
	})
	t.Run("email change unverifies", func(t *testing.T) {
		t.Parallel()
		e, id, tok := setup(t)
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{"email":" Arthur@Avalon.BT ","current_password":"`+testPassword+`"}`, bearer(tok)),
			200, user(id, "Arthur@avalon.bt", "", false))
	})
	t.Run("business errors", func(t *testing.T) {
		t.Parallel()
		e, _, tok := setup(t)
		cur := `,"current_password":"` + testPassword + `"`
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{"email":"BEDIVERE@camelot.bt"`+cur+`}`, bearer(tok)),
			400, `{"detail":"UPDATE_USER_EMAIL_ALREADY_EXISTS"}`)
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{"password":"short"`+cur+`}`, bearer(tok)),
			400, pwErr("Password should be at least 8 characters"))
		// Schema order: the password is checked before the email.
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{"email":"bedivere@camelot.bt","password":"short"`+cur+`}`, bearer(tok)),
			400, pwErr("Password should be at least 8 characters"))
	})
	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		e, id, tok := setup(t)
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{"password":null}`, bearer(tok)), 200, user(id, "arthur@camelot.bt", "", true))
		want422(t, e.postJSON("PATCH", "/users/me", `{"email":null}`, bearer(tok)), "string_type@body.email")
		want422(t, e.postJSON("PATCH", "/users/me", `{"email":"nope"}`, bearer(tok)), "value_error@body.email")
		want422(t, e.postJSON("PATCH", "/users/me", `{"is_superuser":"notabool"}`, bearer(tok)), "bool_parsing@body.is_superuser")
		want422(t, e.postJSON("PATCH", "/users/me", `{"roles":[true]}`, bearer(tok)), "string_type@body.roles.#0")
		want422(t, e.postJSON("PATCH", "/users/me", `{"full_name":"a\u0000b"}`, bearer(tok)), "value_error@body.full_name")
		want422(t, e.postJSON("PATCH", "/users/me", `[1]`, bearer(tok)), "model_attributes_type@body")
		want422(t, e.serve("PATCH", "/users/me", `{}`, bearer(tok)), "model_attributes_type@body")
	})
}

// TestPrecedence follows contract §2.5: malformed JSON 422, then 401/403,
// then 404, then schema 422, then 400.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	target := e.mustUser(t, "arthur@camelot.bt")
	e.mustUser(t, "admin@camelot.bt", superuser)
	tok, admin := e.bearerLogin(t, "arthur@camelot.bt"), e.bearerLogin(t, "admin@camelot.bt")
	const unknown = "/users/00000000-0000-4000-8000-000000000000"
	unauthorized, forbidden, notFound := `{"detail":"Unauthorized"}`, `{"detail":"Forbidden"}`, `{"detail":"Not Found"}`

	t.Run("malformed JSON before 401", func(t *testing.T) {
		want422(t, e.postJSON("PATCH", "/users/me", `{"email":`), "json_invalid@body.#9")
		want422(t, e.postJSON("PATCH", "/users/"+target.ID, `{"a":`), "json_invalid@body.#5")
	})
	t.Run("401 before schema", func(t *testing.T) {
		wantJSON(t, e.postJSON("PATCH", "/users/me", `{"is_active":"x"}`), 401, unauthorized)
		wantJSON(t, e.serve("PATCH", "/users/me", ""), 401, unauthorized)
		wantJSON(t, e.postJSON("PATCH", "/users/"+target.ID, `[]`), 401, unauthorized)
	})
	t.Run("403 before 404 and schema", func(t *testing.T) {
		wantJSON(t, e.postJSON("PATCH", "/users/"+target.ID, `{"is_active":"x"}`, bearer(tok)), 403, forbidden)
		wantJSON(t, e.serve("GET", unknown, "", bearer(tok)), 403, forbidden)
		wantJSON(t, e.serve("DELETE", "/users/not-a-uuid", "", bearer(tok)), 403, forbidden)
	})
	t.Run("404 before schema", func(t *testing.T) {
		wantJSON(t, e.serve("PATCH", unknown, "", bearer(admin)), 404, notFound)
		wantJSON(t, e.postJSON("PATCH", "/users/not-a-uuid", `{"is_active":"x"}`, bearer(admin)), 404, notFound)
	})
	t.Run("schema after authentication", func(t *testing.T) {
		want422(t, e.serve("PATCH", "/users/me", "", bearer(tok)), "missing@body")
		want422(t, e.postJSON("PATCH", "/users/"+target.ID, `{"is_active":"x"}`, bearer(admin)), "bool_parsing@body.is_active")
	})
}

func TestUsersByID(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	u := e.mustUser(t, "arthur@camelot.bt")
	e.mustUser(t, "bedivere@camelot.bt")
	e.mustUser(t, "admin@camelot.bt", superuser)
	tok, admin := e.bearerLogin(t, "arthur@camelot.bt"), e.bearerLogin(t, "admin@camelot.bt")
	want := `{"id":"` + u.ID + `","email":"arthur@camelot.bt","is_active":true,"is_superuser":false,"is_verified":false,"full_name":null,"roles":[]}`

	t.Run("id forms", func(t *testing.T) {
		ids := map[string]string{
			"canonical":  u.ID,
			"upper case": strings.ToUpper(u.ID),
			"no hyphens": strings.ReplaceAll(u.ID, "-", ""),
			"braces":     "{" + u.ID + "}",
			"urn":        "urn:uuid:" + u.ID,
		}
		for name, id := range ids {
			t.Run(name, func(t *testing.T) {
				wantJSON(t, e.serve("GET", "/users/"+id, "", bearer(admin)), 200, want)
			})
		}
		for _, id := range []string{"not-a-uuid", "1234", "me2", u.ID + "0", u.ID[:35], "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "%20" + u.ID} {
			t.Run("malformed "+id, func(t *testing.T) {
				for _, method := range []string{"GET", "PATCH", "DELETE"} {
					wantJSON(t, e.postJSON(method, "/users/"+id, `{}`, bearer(admin)), 404, `{"detail":"Not Found"}`)
				}
			})
		}
	})
	t.Run("DELETE /users/me is /users/{id} with the id me", func(t *testing.T) {
		wantJSON(t, e.serve("DELETE", "/users/me", ""), 401, `{"detail":"Unauthorized"}`)
		wantJSON(t, e.serve("DELETE", "/users/me", "", bearer(tok)), 403, `{"detail":"Forbidden"}`)
		wantJSON(t, e.serve("DELETE", "/users/me", "", bearer(admin)), 404, `{"detail":"Not Found"}`)
		if w := e.serve("GET", "/users/me", "", bearer(admin)); w.Code != 200 {
			t.Errorf("the superuser was deleted: %d", w.Code)
		}
	})
	t.Run("access", func(t *testing.T) {
		wantJSON(t, e.serve("GET", "/users/"+u.ID, "", bearer(tok)), 403, `{"detail":"Forbidden"}`)
		wantJSON(t, e.serve("GET", "/users/"+u.ID, ""), 401, `{"detail":"Unauthorized"}`)
		wantJSON(t, e.serve("DELETE", "/users/"+u.ID, "", bearer(tok)), 403, `{"detail":"Forbidden"}`)
	})
	t.Run("patch", func(t *testing.T) {
		got := e.postJSON("PATCH", "/users/"+u.ID,
			`{"is_superuser":true,"is_verified":true,"roles":["knights","admin","knights"],"full_name":"Arthur","email":"Arthur@Avalon.bt"}`, bearer(admin))
		wantJSON(t, got, 200, `{"id":"`+u.ID+`","email":"Arthur@avalon.bt","is_active":true,"is_superuser":true,"is_verified":true,"full_name":"Arthur","roles":["knights","admin"]}`)
		// The target's cached session shows the change at once.
		wantJSON(t, e.serve("GET", "/users/me", "", bearer(tok)), 200, `{"id":"`+u.ID+`","email":"Arthur@avalon.bt","is_active":true,"is_superuser":true,"is_verified":true,"full_name":"Arthur","roles":["knights","admin"]}`)
		want422(t, e.postJSON("PATCH", "/users/"+u.ID, `{"roles":["round table"]}`, bearer(admin)), "value_error@body.roles")
		wantJSON(t, e.postJSON("PATCH", "/users/"+u.ID, `{"email":"bedivere@CAMELOT.bt"}`, bearer(admin)), 400, `{"detail":"UPDATE_USER_EMAIL_ALREADY_EXISTS"}`)
		// No current password is needed by a superuser.
		if w := e.postJSON("PATCH", "/users/"+u.ID, `{"password":"another good password","current_password":"ignored"}`, bearer(admin)); w.Code != 200 {
			t.Fatalf("password change: %d %s", w.Code, w.Body)
		}
	})
	t.Run("deactivate", func(t *testing.T) {
		victim := e.mustUser(t, "mordred@camelot.bt")
		vt := e.bearerLogin(t, "mordred@camelot.bt")
		w := e.postJSON("PATCH", "/users/"+victim.ID, `{"is_active":false}`, bearer(admin))
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"is_active":false`) {
			t.Fatalf("deactivate: %d %s", w.Code, w.Body)
		}
		wantJSON(t, e.serve("GET", "/users/me", "", bearer(vt)), 401, `{"detail":"Unauthorized"}`)
	})
	t.Run("delete", func(t *testing.T) {
		victim := e.mustUser(t, "lancelot@camelot.bt")
		vt := e.bearerLogin(t, "lancelot@camelot.bt")
		wantEmpty(t, e.serve("DELETE", "/users/"+strings.ToUpper(victim.ID), "", bearer(admin)), http.StatusNoContent)
		wantJSON(t, e.serve("GET", "/users/"+victim.ID, "", bearer(admin)), 404, `{"detail":"Not Found"}`)
		wantJSON(t, e.serve("DELETE", "/users/"+victim.ID, "", bearer(admin)), 404, `{"detail":"Not Found"}`)
		wantJSON(t, e.serve("GET", "/users/me", "", bearer(vt)), 401, `{"detail":"Unauthorized"}`)
	})
	t.Run("a superuser deletes themself", func(t *testing.T) {
		self := e.mustUser(t, "root@camelot.bt", superuser)
		st := e.bearerLogin(t, "root@camelot.bt")
		wantEmpty(t, e.serve("DELETE", "/users/"+self.ID, "", bearer(st)), http.StatusNoContent)
		wantJSON(t, e.serve("GET", "/users/me", "", bearer(st)), 401, `{"detail":"Unauthorized"}`)
	})
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	cases := []struct{ method, path, allow string }{
		{"PUT", "/auth/register", "GET, HEAD, POST"},
		{"PUT", "/auth/jwt/login", "POST"},
		{"GET", "/auth/jwt/logout", "POST"},
		{"GET", "/auth/cookie/login", "POST"},
		{"DELETE", "/auth/cookie/logout", "POST"},
		{"POST", "/users/me", "GET, PATCH, DELETE"},
		{"PUT", "/users/me", "GET, PATCH, DELETE"},
		{"PUT", "/users/00000000-0000-4000-8000-000000000000", "GET, PATCH, DELETE"},
		{"POST", "/users/not-a-uuid", "GET, PATCH, DELETE"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			w := e.serve(c.method, c.path, "")
			wantJSON(t, w, 405, `{"detail":"Method Not Allowed"}`)
			if got := w.Header().Get("Allow"); got != c.allow {
				t.Errorf("Allow %q, want %q", got, c.allow)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	t.Run("trailing slash", func(t *testing.T) {
		cases := map[string]string{
			"POST /auth/register/":        "/auth/register",
			"POST /auth/register/?next=1": "/auth/register?next=1",
			"GET /users/me/":              "/users/me",
			"POST /auth/jwt/login/":       "/auth/jwt/login",
		}
		for req, loc := range cases {
			method, target, _ := strings.Cut(req, " ")
			w := e.serve(method, target, `{}`, jsonCT())
			if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != loc {
				t.Errorf("%s: %d Location %q, want 307 %q", req, w.Code, w.Header().Get("Location"), loc)
			}
		}
	})
	t.Run("unknown paths under the prefixes", func(t *testing.T) {
		for _, p := range []string{"/auth", "/auth/", "/auth/nothing", "/auth/jwt", "/users", "/users/", "/users/me/x", "/auth/register/x"} {
			wantJSON(t, e.serve("GET", p, ""), 404, `{"detail":"Not Found"}`)
		}
	})
	t.Run("other paths pass on", func(t *testing.T) {
		for _, p := range []string{"/", "/authx", "/usersx/me", "/app/auth/register", "/Auth/register"} {
			if w := e.serve("POST", p, ""); w.Code != notOurs {
				t.Errorf("%s: answered %d, want passed on", p, w.Code)
			}
		}
	})
	t.Run("custom prefixes", func(t *testing.T) {
		e := newAPIEnv(t, nil)
		e.api.APIPrefix, e.api.UsersPrefix = "/account/", "/people"
		e.mustUser(t, "arthur@camelot.bt")
		w := e.serve("POST", "/account/jwt/login", form("username", "arthur@camelot.bt", "password", testPassword), formCT())
		if w.Code != 200 {
			t.Fatalf("login under /account: %d %s", w.Code, w.Body)
		}
		var out struct {
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal(w.Body.Bytes(), &out)
		if w := e.serve("GET", "/people/me", "", bearer(out.AccessToken)); w.Code != 200 {
			t.Errorf("/people/me: %d", w.Code)
		}
		if w := e.serve("POST", "/auth/register", ""); w.Code != notOurs {
			t.Errorf("/auth/register under other prefixes: %d", w.Code)
		}
	})
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	tok := e.bearerLogin(t, "arthur@camelot.bt")
	tooLarge := `{"email":"a@camelot.bt","password":"` + testPassword + `","pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	const want = `{"detail":"Request Entity Too Large"}`
	wantJSON(t, e.postJSON("POST", "/auth/register", tooLarge), 413, want)
	wantJSON(t, e.postJSON("PATCH", "/users/me", tooLarge, bearer(tok)), 413, want)
	wantJSON(t, e.postJSON("PATCH", "/users/me", tooLarge), 413, want)
	wantJSON(t, e.serve("POST", "/auth/jwt/login", form("username", "arthur@camelot.bt", "password", testPassword, "pad", strings.Repeat("x", MaxBodyBytes)), formCT()), 413, want)
	body, ct := multipartBody(t, "username", "arthur@camelot.bt", "password", testPassword, "pad", strings.Repeat("x", MaxBodyBytes))
	wantJSON(t, e.serve("POST", "/auth/cookie/login", body, withHeader("Content-Type", ct)), 413, want)

	// Just under the limit is read.
	pad := MaxBodyBytes - len(`{"email":"b@camelot.bt","password":"`+testPassword+`","pad":""}`)
	fits := `{"email":"b@camelot.bt","password":"` + testPassword + `","pad":"` + strings.Repeat("x", pad) + `"}`
	if len(fits) != MaxBodyBytes {
		t.Fatalf("test setup: %d bytes", len(fits))
	}
	if w := e.postJSON("POST", "/auth/register", fits); w.Code != http.StatusCreated {
		t.Errorf("a body of exactly MaxBodyBytes: %d %s", w.Code, w.Body)
	}
}
