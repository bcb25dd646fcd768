package integration

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// testSecret is the `secret` of configs whose tests mint their own tokens.
const testSecret = "integration-test-secret-0123456789abcdef"

// jwtKey derives the access-token key from a secret as Gatehouse does
// (HKDF-SHA256, info "gatehouse/v1/jwt"). TestBadInput first checks that
// a token it signs with this key is accepted, so that every refusal after
// it is a refusal of the one thing changed.
func jwtKey(t testing.TB, secret string) []byte {
	t.Helper()
	k, err := hkdf.Key(sha256.New, []byte(secret), nil, "gatehouse/v1/jwt", 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var b64 = base64.RawURLEncoding

// jwtClaims decodes the payload of a JWT (no verification).
func jwtClaims(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return claims
}

// signJWT builds a JWT with the given header and claims, signed with
// HMAC-SHA256 under key (nil key: empty signature).
func signJWT(t testing.TB, hdr, claims map[string]any, key []byte) string {
	t.Helper()
	input := b64.EncodeToString(mustJSON(t, hdr)) + "." + b64.EncodeToString(mustJSON(t, claims))
	if key == nil {
		return input + "."
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + b64.EncodeToString(mac.Sum(nil))
}

func with(claims map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range claims {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// wantClientError fails unless the status is a 4xx (never a 500).
func wantClientError(t testing.TB, r *response) {
	t.Helper()
	if r.Status < 400 || r.Status > 499 {
		t.Errorf("status = %d, want a 4xx; body: %s", r.Status, truncate(string(r.Body), 300))
	}
}

// TestBadInput: every malformed input gets the contract's 4xx, never a
// 500, and never reaches the upstream.
func TestBadInput(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "secret "+testSecret, guardedSite(up, "allow /public/*")))
	cl := newClient(c.URL)
	victim := register(t, cl, "victim@example.com", "victim-password")
	other := register(t, cl, "other@example.com", "other-password")
	token := loginJWT(t, cl, "victim@example.com", "victim-password")
	cookie := loginCookie(t, cl, "victim@example.com", "victim-password")
	key := jwtKey(t, testSecret)
	claims := jwtClaims(t, token)
	hs256 := map[string]any{"alg": "HS256", "typ": "JWT"}

	// refused asserts that a bearer token is refused by the API and the
	// guard, and that nothing reaches the upstream.
	refused := func(t *testing.T, opt reqOpt) {
		t.Helper()
		wantDetail(t, cl.get(t, "/users/me", opt), http.StatusUnauthorized, "Unauthorized")
		path := uniquePath("/app")
		wantDetail(t, cl.get(t, path, opt), http.StatusUnauthorized, "Unauthorized")
		up.NeverSaw(t, path)
	}

	t.Run("key derivation sanity", func(t *testing.T) {
		// Signing the issued token's own header and payload with the
		// derived key reproduces its signature: the forgeries below are
		// signed with the real key.
		parts := strings.Split(token, ".")
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(parts[0] + "." + parts[1]))
		if got := b64.EncodeToString(mac.Sum(nil)); got != parts[2] {
			t.Fatalf("derived key does not reproduce the signature")
		}
		if u := me(t, cl, bearer(token)); u.ID != victim.ID {
			t.Fatalf("token is %s's", u.Email)
		}
	})

	t.Run("re-signed claims refused", func(t *testing.T) {
		// The same claims, signed with the real key but encoded anew: only
		// the exact token a login issued opens its session, since the
		// store holds that token's digest.
		refused(t, bearer(signJWT(t, hs256, claims, key)))
	})

	t.Run("tokens", func(t *testing.T) {
		parts := strings.Split(token, ".")
		flipped := []byte(parts[1])
		flipped[len(flipped)/2] ^= 0x01
		otherKey := jwtKey(t, "another-secret-another-secret-another-secret")
		tokens := map[string]string{
			"empty":                "",
			"garbage":              "garbage",
			"three dots":           "a.b.c",
			"long":                 strings.Repeat("A", 6000),
			"flipped payload":      parts[0] + "." + string(flipped) + "." + parts[2],
			"flipped signature":    parts[0] + "." + parts[1] + "." + strings.ToUpper(parts[2]),
			"no signature":         parts[0] + "." + parts[1] + ".",
			"other key":            signJWT(t, hs256, claims, otherKey),
			"other key, other sub": signJWT(t, hs256, with(claims, "sub", other.ID), otherKey),
			"alg none":             signJWT(t, map[string]any{"alg": "none", "typ": "JWT"}, claims, nil),
			"alg None":             signJWT(t, map[string]any{"alg": "None"}, claims, nil),
			"alg HS512":            hs512(t, claims, key),
			"wrong audience":       signJWT(t, hs256, with(claims, "aud", []string{"fastapi-users:verify"}), key),
			"no audience":          signJWT(t, hs256, with(claims, "aud", nil), key),
			"expired":              signJWT(t, hs256, with(claims, "exp", time.Now().Add(-time.Minute).Unix()), key),
			"no exp":               signJWT(t, hs256, with(claims, "exp", nil), key),
			"other sub":            signJWT(t, hs256, with(claims, "sub", other.ID), key),
			"no jti":               signJWT(t, hs256, with(claims, "jti", nil), key),
			"unknown jti":          signJWT(t, hs256, with(claims, "jti", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), key),
			"cookie as bearer":     cookie.Value,
		}
		for name, tok := range tokens {
			t.Run(name, func(t *testing.T) { refused(t, bearer(tok)) })
		}
		t.Run("JWT as cookie", func(t *testing.T) { refused(t, header("Cookie", "gatehouse_session="+token)) })
		t.Run("scheme only", func(t *testing.T) { refused(t, header("Authorization", "Bearer")) })
		t.Run("Basic", func(t *testing.T) { refused(t, header("Authorization", "Basic dXNlcjpwYXNz")) })
		// The real token still works, with any case of the scheme.
		me(t, cl, header("Authorization", "bearer "+token))
	})

	t.Run("expired token on a public path is stripped", func(t *testing.T) {
		// Gatehouse signed it, so it is Gatehouse's credential even though
		// it no longer works: it must not go upstream.
		expired := signJWT(t, hs256, with(claims, "exp", time.Now().Add(-time.Minute).Unix()), key)
		path := uniquePath("/public")
		wantStatus(t, cl.get(t, path, bearer(expired)), http.StatusOK)
		got := up.Last(t, path)
		wantIdentity(t, got, nil)
		if a := got.Values("Authorization"); len(a) != 0 {
			t.Errorf("an expired Gatehouse token reached the upstream: %q", a)
		}
	})

	t.Run("forged cookies", func(t *testing.T) {
		flipped := []byte(cookie.Value)
		flipped[len(flipped)/2] ^= 0x01
		for name, v := range map[string]string{
			"garbage":   "forged",
			"flipped":   string(flipped),
			"truncated": cookie.Value[:len(cookie.Value)-4],
			"doubled":   cookie.Value + cookie.Value,
			"empty":     "",
			"base64":    base64.URLEncoding.EncodeToString([]byte("x|y|z")),
		} {
			t.Run(name, func(t *testing.T) { refused(t, header("Cookie", cookie.Name+"="+v)) })
		}
		me(t, cl, withCookie(cookie))
	})

	t.Run("oversized bodies 413", func(t *testing.T) {
		big := strings.Repeat("a", 65<<10)
		tooLarge := func(r *response) {
			t.Helper()
			wantDetail(t, r, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		}
		tooLarge(cl.postJSON(t, "/auth/register", map[string]any{"email": "big@example.com", "password": "big-password", "full_name": big}))
		tooLarge(cl.postForm(t, "/auth/jwt/login", url.Values{"username": {"victim@example.com"}, "password": {big}}))
		tooLarge(cl.postForm(t, "/auth/cookie/login", url.Values{"username": {big}, "password": {"x"}}))
		tooLarge(cl.postMultipart(t, "/auth/jwt/login", url.Values{"username": {"victim@example.com"}, "password": {big}}))
		tooLarge(cl.patchJSON(t, "/users/me", map[string]any{"full_name": big}, bearer(token)))
		tooLarge(cl.patchJSON(t, "/users/"+other.ID, map[string]any{"full_name": big}, bearer(token)))
		// Just under the limit is read (and refused for what it says).
		r := cl.postJSON(t, "/auth/register", map[string]any{"email": "big@example.com", "password": "big-password",
			"full_name": strings.Repeat("a", 60<<10)})
		if it := want422Loc(t, r, "body", "full_name"); it.Type != "string_too_long" {
			t.Errorf("item type = %q, want string_too_long", it.Type)
		}
	})

	t.Run("control characters never become headers", func(t *testing.T) {
		for _, name := range []string{"Eve\r\nRemote-User: admin@example.com", "Eve\nX: y", "Eve\x00", "Eve\x7f", "Eve\u0085", "\t"} {
			r := cl.postJSON(t, "/auth/register", map[string]any{"email": "eve@example.com", "password": "eve-password", "full_name": name})
			want422Loc(t, r, "body", "full_name")
			want422Loc(t, cl.patchJSON(t, "/users/me", map[string]any{"full_name": name}, bearer(token)), "body", "full_name")
		}
		for _, email := range []string{"eve\r\n@example.com", "eve@example.com\r\nX: y", "e ve@example.com", "\"eve\"@example.com", "eve@exa\x00mple.com"} {
			want422Loc(t, cl.postJSON(t, "/auth/register", map[string]any{"email": email, "password": "eve-password"}), "body", "email")
			want422Loc(t, cl.patchJSON(t, "/users/me", map[string]any{"email": email, "current_password": "victim-password"},
				bearer(token)), "body", "email")
		}
		path := uniquePath("/app")
		wantStatus(t, cl.get(t, path, bearer(token)), http.StatusOK)
		got := up.Last(t, path)
		wantIdentity(t, got, map[string]string{"Remote-User": "victim@example.com", "Remote-Email": "victim@example.com",
			"Remote-User-Id": victim.ID})
		for _, h := range got.Raw {
			if strings.ContainsAny(h.Value, "\r\n\x00\x7f") || strings.Contains(h.Value, "Eve") {
				t.Errorf("upstream header %s: %q", h.Name, h.Value)
			}
		}
	})

	t.Run("wrong types and shapes 422", func(t *testing.T) {
		for body, loc := range map[string]string{
			`{"email":{"a":1},"password":"wrong-types"}`:                                "email",
			`{"email":["victim@example.com"],"password":"wrong-types"}`:                 "email",
			`{"email":"t@example.com","password":12345678}`:                             "password",
			`{"email":"t@example.com","password":null}`:                                 "password",
			`{"email":"t@example.com","password":"wrong-types","full_name":["a"]}`:      "full_name",
			`{"email":"t@example.com","password":"wrong-types","is_active":"notabool"}`: "is_active",
			`{"email":"t@example.com","password":"wrong-types","is_verified":2}`:        "is_verified",
			`{"email":"t@example.com","password":"wrong-types","is_superuser":{}}`:      "is_superuser",
			`{"email":"t@example.com","password":"wrong-types","roles":"admin"}`:        "roles",
			`{"email":"","password":"wrong-types"}`:                                     "email",
			`{"email":"@example.com","password":"wrong-types"}`:                         "email",
			`{"email":"t@","password":"wrong-types"}`:                                   "email",
			`{"email":"t@localhost","password":"wrong-types"}`:                          "email",
			"{\"email\":\"t\xff@example.com\",\"password\":\"wrong-types\"}":            "email",
		} {
			want422Loc(t, cl.postJSON(t, "/auth/register", body), "body", loc)
		}
		for _, body := range []string{`{"email":"t@example.com",}`, `{'email':'x'}`, `{"a":1}{"b":2}`, "\x00",
			strings.Repeat("[", 20000) + strings.Repeat("]", 20000), `{"email":"t@example.com","password":"x"`} {
			r := cl.postJSON(t, "/auth/register", body)
			if it := want422Loc(t, r); it.Type != "json_invalid" {
				t.Errorf("%.40q: item type %q, want json_invalid", body, it.Type)
			}
		}
		r := cl.postJSON(t, "/auth/register", map[string]any{"email": "long@example.com", "password": strings.Repeat("p", 1025)})
		wantDetail(t, r, http.StatusBadRequest, map[string]any{"code": "REGISTER_INVALID_PASSWORD", "reason": "Password should be at most 1024 characters"})
		// A login form that is not a form at all.
		for _, ct := range []string{"multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded; charset=bogus", "text/plain", ""} {
			r := cl.do(t, http.MethodPost, "/auth/jwt/login", strings.NewReader("username=victim%40example.com&password=victim-password%%"),
				header("Content-Type", ct))
			wantClientError(t, r)
		}
	})

	t.Run("malformed ids 404", func(t *testing.T) {
		root := register(t, cl, "root@example.com", "root-password")
		makeSuperuser(t, c.Path("gatehouse.db"), root.ID)
		su := loginJWT(t, cl, "root@example.com", "root-password")
		for _, id := range []string{"x", "%00", "%2e%2e", "..%2fx", "00000000-0000-0000-0000-00000000000g", strings.Repeat("f", 3000),
			"{" + victim.ID + "}x", "%E2%80%AE", victim.ID + "%0d%0aX:%20y"} {
			r := cl.get(t, "/users/"+id, bearer(su))
			wantClientError(t, r)
			if r.Status != http.StatusNotFound && r.Status != http.StatusBadRequest {
				t.Errorf("GET /users/%.40s = %d, want 404", id, r.Status)
			}
		}
		up.NeverSaw(t, "/users/x")
	})

	if n := len(up.RequestsTo("/users/me")); n != 0 {
		t.Errorf("the upstream received %d requests for /users/me", n)
	}
}

// hs512 signs claims with HMAC-SHA512 under key: a valid signature with
// an algorithm the server must not accept.
func hs512(t testing.TB, claims map[string]any, key []byte) string {
	t.Helper()
	input := b64.EncodeToString(mustJSON(t, map[string]any{"alg": "HS512", "typ": "JWT"})) + "." + b64.EncodeToString(mustJSON(t, claims))
	mac := hmac.New(sha512New, key)
	mac.Write([]byte(input))
	return input + "." + b64.EncodeToString(mac.Sum(nil))
}

// TestSessionExpiry: with `session_lifetime 2s`, JWT and cookie sessions
// are refused once it has passed.
func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "session_lifetime 2s", guardedSite(up, "")))
	cl := newClient(c.URL)
	register(t, cl, "short@example.com", "short-lived")
	token := loginJWT(t, cl, "short@example.com", "short-lived")
	cookie := loginCookie(t, cl, "short@example.com", "short-lived")
	start := time.Now()
	if cookie.MaxAge != 2 {
		t.Errorf("cookie Max-Age = %d, want 2", cookie.MaxAge)
	}
	exp := int64(jwtClaims(t, token)["exp"].(float64))
	iat := int64(jwtClaims(t, token)["iat"].(float64))
	if exp-iat != 2 {
		t.Errorf("JWT exp - iat = %d, want 2", exp-iat)
	}
	path := uniquePath("/app")
	wantStatus(t, cl.get(t, path, bearer(token)), http.StatusOK)
	wantStatus(t, cl.get(t, path, withCookie(cookie)), http.StatusOK)
	// The lifetime counts from a whole second; wait it out with margin.
	time.Sleep(3200*time.Millisecond - time.Since(start))
	path = uniquePath("/app")
	wantDetail(t, cl.get(t, path, bearer(token)), http.StatusUnauthorized, "Unauthorized")
	wantDetail(t, cl.get(t, path, withCookie(cookie)), http.StatusUnauthorized, "Unauthorized")
	wantDetail(t, cl.get(t, "/users/me", bearer(token)), http.StatusUnauthorized, "Unauthorized")
	up.NeverSaw(t, path)
}

var sha512New = sha512.New
