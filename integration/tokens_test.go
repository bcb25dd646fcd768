package integration

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// plantSession inserts a live session row (an hour to go) whose token
// digest is SHA-256(token), as the server stores for a token it issued.
// A token the test forges then passes the store lookup, so that when the
// server refuses it, the reason is the one thing forged (its signature,
// algorithm, audience, expiry, subject...), not merely that no session
// has its digest.
func plantSession(t testing.TB, db, id, userID, transport, token string) {
	t.Helper()
	digest := sha256.Sum256([]byte(token))
	now := time.Now()
	dbExec(t, db, `INSERT INTO sessions (id, user_id, token_digest, transport, created_at, last_seen_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, id, userID, digest[:], transport, now.UnixMicro(), now.UnixMicro(), now.Add(time.Hour).UnixMicro())
}

// newSessionID is a session id as the server makes them: 16 random bytes
// in hex.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// macJWT builds a JWT whose header names alg, signed with HMAC-h under
// key.
func macJWT(t testing.TB, alg string, h func() hash.Hash, claims map[string]any, key []byte) string {
	t.Helper()
	input := b64.EncodeToString(mustJSON(t, map[string]any{"alg": alg, "typ": "JWT"})) + "." + b64.EncodeToString(mustJSON(t, claims))
	mac := hmac.New(h, key)
	mac.Write([]byte(input))
	return input + "." + b64.EncodeToString(mac.Sum(nil))
}

// withPayload replaces the payload of token, keeping its header and
// signature.
func withPayload(t testing.TB, token string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	return parts[0] + "." + b64.EncodeToString(mustJSON(t, claims)) + "." + parts[2]
}

// TestTokens: only a credential the server issued, for a session that is
// still live, of an active user who still exists, opens the guard and
// GET /users/me; everything else is 401 at both. Tokens are signed here
// with the key derived from the configured secret as Gatehouse derives
// it, and a token so signed is accepted, so that each refusal is a
// refusal of the one thing changed. (TestBadInput covers malformed
// credentials against a live session: garbage, flipped bytes, a JWT as
// the cookie, a cookie as the bearer token.)
func TestTokens(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "secret "+testSecret, guardedSite(up, "allow /public/*")))
	cl := newClient(c.URL)
	db := c.Path("gatehouse.db")
	key := jwtKey(t, testSecret)
	hs256 := map[string]any{"alg": "HS256", "typ": "JWT"}

	victim := register(t, cl, "victim@example.com", "victim-password")
	other := register(t, cl, "other@example.com", "other-password")
	root := register(t, cl, "root@example.com", "root-password")
	makeSuperuser(t, db, root.ID)
	su := loginJWT(t, cl, "root@example.com", "root-password")
	token := loginJWT(t, cl, "victim@example.com", "victim-password")
	cookie := loginCookie(t, cl, "victim@example.com", "victim-password")

	// accepted asserts that the credential opens both the guard, as
	// user, and GET /users/me.
	accepted := func(t *testing.T, user apiUser, opt reqOpt) {
		t.Helper()
		if u := me(t, cl, opt); u.ID != user.ID {
			t.Fatalf("GET /users/me answered %s, want %s", u.Email, user.Email)
		}
		path := uniquePath("/app")
		wantStatus(t, cl.get(t, path, opt), http.StatusOK)
		wantIdentity(t, up.Last(t, path), map[string]string{"Remote-User": user.Email, "Remote-Email": user.Email, "Remote-User-Id": user.ID})
	}
	// refused asserts 401 at GET /users/me and at the guard, and that
	// nothing reached the upstream.
	refused := func(t *testing.T, opt reqOpt) {
		t.Helper()
		wantDetail(t, cl.get(t, "/users/me", opt), http.StatusUnauthorized, "Unauthorized")
		path := uniquePath("/app")
		wantDetail(t, cl.get(t, path, opt), http.StatusUnauthorized, "Unauthorized")
		up.NeverSaw(t, path)
	}

	t.Run("an issued token", func(t *testing.T) {
		// The claim set forged tokens copy (DESIGN §4), and the key: HMAC
		// of the issued header and payload under the derived key is the
		// issued signature. If the derivation changed, every session
		// outstanding at an upgrade would end.
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q is not a JWS", token)
		}
		header := jwtHeader(t, token)
		if len(header) != 2 || header["alg"] != "HS256" || header["typ"] != "JWT" {
			t.Errorf("header = %v, want alg HS256, typ JWT", header)
		}
		claims := jwtClaims(t, token)
		var names []string
		for k := range claims {
			names = append(names, k)
		}
		slices.Sort(names)
		if strings.Join(names, ",") != "aud,exp,iat,jti,nonce,sub" {
			t.Errorf("claims %v, want aud, exp, iat, jti, nonce, sub", claims)
		}
		// The nonce is what a copy of the database cannot give back: 16
		// random bytes, stored nowhere.
		if nonce, _ := claims["nonce"].(string); len(nonce) != 22 {
			t.Errorf("nonce %q, want 22 base64url characters", nonce)
		}
		aud, _ := claims["aud"].([]any)
		if claims["sub"] != victim.ID || len(aud) != 1 || aud[0] != "fastapi-users:auth" {
			t.Errorf("sub %v, aud %v; want %s, [fastapi-users:auth]", claims["sub"], claims["aud"], victim.ID)
		}
		if jti, _ := claims["jti"].(string); len(jti) != 32 {
			t.Errorf("jti %q, want 32 hex digits", jti)
		}
		exp, _ := claims["exp"].(float64)
		if iat, _ := claims["iat"].(float64); exp-iat != (24 * time.Hour).Seconds() {
			t.Errorf("exp - iat = %vs, want the default session_lifetime 24h", exp-iat)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(parts[0] + "." + parts[1]))
		if got := b64.EncodeToString(mac.Sum(nil)); got != parts[2] {
			t.Fatalf("HKDF-SHA256(secret, info gatehouse/v1/jwt) does not reproduce the issued signature")
		}
		accepted(t, victim, bearer(token))
		accepted(t, victim, withCookie(cookie))
	})

	t.Run("re-signed claims of a live session", func(t *testing.T) {
		// The same claims signed with the right key, but encoded by this
		// test (keys in another order): refused by design, because the
		// store keeps the SHA-256 of the exact token it issued, and only
		// that token opens the session. The controls are the issued token
		// above and the planted sessions below.
		resigned := signJWT(t, hs256, jwtClaims(t, token), key)
		if resigned == token {
			t.Fatal("the re-signed token is the issued one; this case proves nothing")
		}
		refused(t, bearer(resigned))
		accepted(t, victim, bearer(token))
	})

	// live returns the claims of a fresh session of user: the claim set
	// of an issued token, with a new jti.
	live := func(user apiUser) map[string]any {
		now := time.Now()
		return map[string]any{"sub": user.ID, "aud": []string{"fastapi-users:auth"}, "iat": now.Unix(),
			"exp": now.Add(time.Hour).Unix(), "jti": newSessionID()}
	}
	otherKey := jwtKey(t, "another-secret-another-secret-another-secret")
	type forgery struct {
		name      string
		owner     apiUser                                 // the planted session's user
		transport string                                  // the planted session's transport ("" bearer)
		rowID     string                                  // the planted session's id ("": the jti)
		build     func(testing.TB, map[string]any) string // the token, from the claims of the session
	}
	signed := func(t testing.TB, c map[string]any) string { return signJWT(t, hs256, c, key) }
	cases := []forgery{
		{name: "tampered payload: sub changed, signature kept", owner: other, build: func(t testing.TB, c map[string]any) string {
			return withPayload(t, signed(t, with(c, "sub", victim.ID)), c)
		}},
		{name: "tampered payload: exp extended, signature kept", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return withPayload(t, signed(t, c), with(c, "exp", time.Now().Add(10*365*24*time.Hour).Unix()))
		}},
		{name: "signature of another token", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return withPayload(t, token, c)
		}},
		{name: "signed with another key", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return signJWT(t, hs256, c, otherKey)
		}},
		{name: "alg none, trailing dot", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return signJWT(t, map[string]any{"alg": "none", "typ": "JWT"}, c, nil)
		}},
		{name: "alg none, no trailing dot", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return strings.TrimSuffix(signJWT(t, map[string]any{"alg": "none", "typ": "JWT"}, c, nil), ".")
		}},
		{name: "alg none, signed anyway", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return signJWT(t, map[string]any{"alg": "none", "typ": "JWT"}, c, key)
		}},
		{name: "alg hs256 (lower case)", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return signJWT(t, map[string]any{"alg": "hs256", "typ": "JWT"}, c, key)
		}},
		{name: "alg HS384, the real key", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return macJWT(t, "HS384", sha512.New384, c, key)
		}},
		{name: "alg HS512, the real key", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return macJWT(t, "HS512", sha512.New, c, key)
		}},
		{name: "alg RS256, HMAC signature", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return macJWT(t, "RS256", sha256.New, c, key)
		}},
		{name: "wrong audience", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return signed(t, with(c, "aud", []string{"fastapi-users:verify"}))
		}},
		{name: "no audience", owner: victim, build: func(t testing.TB, c map[string]any) string { return signed(t, with(c, "aud", nil)) }},
		{name: "expired", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return signed(t, with(c, "exp", time.Now().Add(-time.Minute).Unix()))
		}},
		{name: "no exp", owner: victim, build: func(t testing.TB, c map[string]any) string { return signed(t, with(c, "exp", nil)) }},
		{name: "not valid before an hour", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return signed(t, with(c, "nbf", time.Now().Add(time.Hour).Unix()))
		}},
		{name: "sub of another user than the session's", owner: victim, build: func(t testing.TB, c map[string]any) string {
			return signed(t, with(c, "sub", other.ID))
		}},
		{name: "no sub", owner: victim, build: func(t testing.TB, c map[string]any) string { return signed(t, with(c, "sub", nil)) }},
		{name: "jti of another session than the digest's", owner: victim, rowID: newSessionID(), build: signed},
		{name: "no jti", owner: victim, rowID: newSessionID(), build: func(t testing.TB, c map[string]any) string { return signed(t, with(c, "jti", nil)) }},
		{name: "a cookie session's digest", owner: victim, transport: "cookie", build: signed},
	}

	t.Run("a token signed here for a planted session", func(t *testing.T) {
		// The control: with all the right claims, the right key and a
		// session holding its digest, a token this test made is accepted.
		// Each forgery below differs from it in one thing.
		for _, user := range []apiUser{victim, other} {
			claims := live(user)
			tok := signed(t, claims)
			plantSession(t, db, claims["jti"].(string), user.ID, "bearer", tok)
			accepted(t, user, bearer(tok))
		}
	})

	t.Run("forged", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				claims := live(tc.owner)
				tok := tc.build(t, claims)
				rowID, transport := tc.rowID, tc.transport
				if rowID == "" {
					rowID = claims["jti"].(string)
				}
				if transport == "" {
					transport = "bearer"
				}
				plantSession(t, db, rowID, tc.owner.ID, transport, tok)
				refused(t, bearer(tok))
			})
		}
	})

	t.Run("revoked by logout", func(t *testing.T) {
		// The issued token and cookie, which the subtests above used (so
		// that they are cached): a logout ends them at once.
		wantStatus(t, cl.do(t, http.MethodPost, "/auth/jwt/logout", nil, bearer(token)), http.StatusNoContent)
		refused(t, bearer(token))
		wantDetail(t, cl.do(t, http.MethodPost, "/auth/jwt/logout", nil, bearer(token)), http.StatusUnauthorized, "Unauthorized")
		accepted(t, victim, withCookie(cookie)) // one session ended, not the other
		wantStatus(t, cl.do(t, http.MethodPost, "/auth/cookie/logout", nil, withCookie(cookie)), http.StatusNoContent)
		refused(t, withCookie(cookie))
	})

	t.Run("deleted user", func(t *testing.T) {
		claims := live(other)
		tok := signed(t, claims)
		plantSession(t, db, claims["jti"].(string), other.ID, "bearer", tok)
		ck := loginCookie(t, cl, "other@example.com", "other-password")
		accepted(t, other, bearer(tok)) // cached now: the delete must end them all the same
		accepted(t, other, withCookie(ck))
		wantStatus(t, cl.do(t, http.MethodDelete, "/users/"+other.ID, nil, bearer(su)), http.StatusNoContent)
		refused(t, bearer(tok))
		refused(t, withCookie(ck))
	})

	t.Run("inactive user", func(t *testing.T) {
		// Credentials never used yet, so that no cache holds them: a
		// change made directly in the database is seen at once.
		claims := live(victim)
		tok := signed(t, claims)
		plantSession(t, db, claims["jti"].(string), victim.ID, "bearer", tok)
		ck := loginCookie(t, cl, "victim@example.com", "victim-password")
		if n := dbExec(t, db, `UPDATE users SET is_active = 0 WHERE id = ?`, victim.ID); n != 1 {
			t.Fatalf("%d rows changed", n)
		}
		refused(t, bearer(tok))
		refused(t, withCookie(ck))
		// The sessions are still there: inactivity alone refused them.
		dbExec(t, db, `UPDATE users SET is_active = 1 WHERE id = ?`, victim.ID)
		accepted(t, victim, bearer(tok))
		accepted(t, victim, withCookie(ck))

		// Deactivated by a superuser through the API, with the
		// credentials just used (and cached): refused at once.
		r := cl.patchJSON(t, "/users/"+victim.ID, map[string]any{"is_active": false}, bearer(su))
		wantStatus(t, r, http.StatusOK)
		refused(t, bearer(tok))
		refused(t, withCookie(ck))
	})
}

// jwtHeader decodes the header of a JWT (no verification).
func jwtHeader(t testing.TB, token string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	raw, err := b64.DecodeString(h)
	if err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	var header map[string]any
	decode(t, &response{Body: raw}, &header)
	return header
}
