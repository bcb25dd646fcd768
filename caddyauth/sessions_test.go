package caddyauth_test

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// jwtKey derives the access-token key from a secret as the service does
// (HKDF-SHA256, one key per purpose), so that forged tokens below are
// signed with the right key and refused for the reason each case names.
func jwtKey(t testing.TB, secret []byte) []byte {
	t.Helper()
	k, err := hkdf.Key(sha256.New, secret, nil, "gatehouse/v1/jwt", 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var b64 = base64.RawURLEncoding

// signJWT encodes and signs a token by hand, independently of the JWT
// library the service uses. alg names the header; the MAC follows it,
// except that "RS256" is signed with HMAC-SHA256 (the key-confusion
// attack) and "none" is not signed.
func signJWT(header, claims any, key []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	var mac func() hash.Hash
	alg, _ := header.(map[string]any)["alg"].(string)
	switch alg {
	case "HS384":
		mac = sha512.New384
	case "HS512":
		mac = sha512.New
	case "none", "None", "NONE":
		return signing + "."
	default:
		mac = sha256.New
	}
	m := hmac.New(mac, key)
	m.Write([]byte(signing))
	return signing + "." + b64.EncodeToString(m.Sum(nil))
}

// decodeSegment decodes one base64url JWT segment as JSON, keeping
// numbers exact.
func decodeSegment(t *testing.T, seg string) map[string]json.RawMessage {
	t.Helper()
	raw, err := b64.DecodeString(seg)
	if err != nil {
		t.Fatalf("segment %q: %v", seg, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("segment %s: %v", raw, err)
	}
	return m
}

func TestLoginCreatesAFreshSessionEachTime(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.mustUser(t, "arthur@camelot.bt")
			a, b := e.login(t, "arthur@camelot.bt", tr), e.login(t, "arthur@camelot.bt", tr)
			if a.Credential == b.Credential || a.Session.ID == b.Session.ID || bytes.Equal(a.Session.TokenDigest, b.Session.TokenDigest) {
				t.Fatalf("two logins share a credential, id or digest: %+v / %+v", a.Session, b.Session)
			}
			pa, pb := e.mustAuth(t, tr, a.Credential), e.mustAuth(t, tr, b.Credential)
			if pa.SessionID != a.Session.ID || pb.SessionID != b.Session.ID {
				t.Fatalf("principals name sessions %s, %s; want %s, %s", pa.SessionID, pb.SessionID, a.Session.ID, b.Session.ID)
			}
			if pa.Transport != tr {
				t.Errorf("principal transport %q, want %q", pa.Transport, tr)
			}
			sessions, err := e.db.UserSessions(context.Background(), a.User.ID)
			if err != nil || len(sessions) != 2 {
				t.Fatalf("store holds %d sessions (%v), want 2", len(sessions), err)
			}
			for _, s := range sessions {
				if s.Transport != tr || s.UserAgent != "test" || s.IP != "192.0.2.1" {
					t.Errorf("stored session %+v", s)
				}
				if strings.Contains(a.Credential, string(s.TokenDigest)) {
					t.Errorf("digest appears in the credential")
				}
			}
		})
	}
}

func TestAccessTokenClaims(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *caddyauth.Options) { o.SessionLifetime = 90 * time.Minute })
	u := e.mustUser(t, "arthur@camelot.bt")
	res := e.login(t, "arthur@camelot.bt", store.TransportBearer)

	segs := strings.Split(res.Credential, ".")
	if len(segs) != 3 {
		t.Fatalf("token %q has %d segments", res.Credential, len(segs))
	}
	header := decodeSegment(t, segs[0])
	if string(header["alg"]) != `"HS256"` || string(header["typ"]) != `"JWT"` || len(header) != 2 {
		t.Errorf("header = %v, want {alg: HS256, typ: JWT}", header)
	}
	claims := decodeSegment(t, segs[1])
	if keys := slices.Sorted(maps.Keys(claims)); !slices.Equal(keys, []string{"aud", "exp", "iat", "jti", "nonce", "sub"}) {
		t.Errorf("claims %v, want exactly aud exp iat jti nonce sub", keys)
	}
	if got, want := string(claims["sub"]), `"`+u.ID+`"`; got != want {
		t.Errorf("sub = %s, want %s", got, want)
	}
	// fastapi-users writes the audience as a list; a front end or backend
	// that decodes it expects the list.
	if got := string(claims["aud"]); got != `["fastapi-users:auth"]` {
		t.Errorf("aud = %s, want [\"fastapi-users:auth\"]", got)
	}
	var jti string
	if err := json.Unmarshal(claims["jti"], &jti); err != nil || jti == "" {
		t.Errorf("jti = %s, want a non-empty string", claims["jti"])
	}
	var iat, exp int64
	if err := json.Unmarshal(claims["iat"], &iat); err != nil {
		t.Errorf("iat = %s: %v", claims["iat"], err)
	}
	if err := json.Unmarshal(claims["exp"], &exp); err != nil {
		t.Errorf("exp = %s: %v", claims["exp"], err)
	}
	if iat != e.clock.Now().Unix() {
		t.Errorf("iat = %d, want the clock's %d", iat, e.clock.Now().Unix())
	}
	if exp != iat+90*60 {
		t.Errorf("exp = %d, want iat + 5400 = %d", exp, iat+90*60)
	}
	if !res.Session.ExpiresAt.Equal(time.Unix(exp, 0)) {
		t.Errorf("session expires %v, token %v", res.Session.ExpiresAt, time.Unix(exp, 0))
	}
	// The signature is HMAC-SHA256 under the key derived for tokens.
	m := hmac.New(sha256.New, jwtKey(t, testSecret))
	m.Write([]byte(segs[0] + "." + segs[1]))
	if b64.EncodeToString(m.Sum(nil)) != segs[2] {
		t.Error("signature is not HMAC-SHA256 under HKDF(secret, \"gatehouse/v1/jwt\")")
	}

	other := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	if c := decodeSegment(t, strings.Split(other.Credential, ".")[1]); string(c["jti"]) == string(claims["jti"]) {
		t.Error("two logins share a jti")
	}
}

// TestStoreCopyCannotRebuildAccessTokens plays someone holding a copy
// of the database and the secret (which by default lives in the same
// file): every claim but the nonce can be read off the session row, and
// the token is signed the way golang-jwt lays it out. Without the nonce
// the rebuilt token would be the very one whose digest is stored.
func TestStoreCopyCannotRebuildAccessTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	u := e.mustUser(t, "arthur@camelot.bt")
	res := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	row := res.Session

	segs := strings.Split(res.Credential, ".")
	payload := fmt.Sprintf(`{"sub":%q,"aud":[%q],"exp":%d,"iat":%d,"jti":%q}`,
		u.ID, caddyauth.JWTAudience, row.ExpiresAt.Unix(), row.CreatedAt.Unix(), row.ID)
	// The rebuild is faithful: the real payload is this one plus the nonce.
	real, err := b64.DecodeString(segs[1])
	if err != nil {
		t.Fatal(err)
	}
	var nonce string
	if err := json.Unmarshal(decodeSegment(t, segs[1])["nonce"], &nonce); err != nil || len(nonce) < 22 {
		t.Fatalf("nonce %q (%v), want 16 random bytes in base64", nonce, err)
	}
	if want := strings.TrimSuffix(payload, "}") + fmt.Sprintf(`,"nonce":%q}`, nonce); string(real) != want {
		t.Fatalf("payload\n%s\nis not the row's claims plus the nonce\n%s", real, want)
	}

	head := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	if head != segs[0] {
		t.Fatalf("header %s, want %s", segs[0], head)
	}
	m := hmac.New(sha256.New, jwtKey(t, testSecret))
	body := head + "." + b64.EncodeToString([]byte(payload))
	m.Write([]byte(body))
	rebuilt := body + "." + b64.EncodeToString(m.Sum(nil))
	if digest := sha256.Sum256([]byte(rebuilt)); bytes.Equal(digest[:], row.TokenDigest) {
		t.Fatal("a token rebuilt from the session row matches the stored digest")
	}
	if _, err := e.auth(store.TransportBearer, rebuilt); !errors.Is(err, caddyauth.ErrUnauthenticated) {
		t.Fatalf("rebuilt token: err = %v, want ErrUnauthenticated", err)
	}
	if _, err := e.auth(store.TransportBearer, res.Credential); err != nil {
		t.Fatalf("the real token: %v", err)
	}
}

func TestAccessTokenExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *caddyauth.Options) { o.SessionLifetime = time.Hour })
	e.mustUser(t, "arthur@camelot.bt")
	res := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	e.clock.Advance(time.Hour - time.Second)
	e.mustAuth(t, store.TransportBearer, res.Credential)
	e.clock.Advance(time.Second)
	e.mustRefuse(t, store.TransportBearer, res.Credential)
	e.clock.Advance(time.Hour)
	e.mustRefuse(t, store.TransportBearer, res.Credential)
}

func TestForgedAccessTokensAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	bedivere := e.mustUser(t, "bedivere@camelot.bt")
	real := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	segs := strings.Split(real.Credential, ".")
	claims := decodeSegment(t, segs[1])
	var sub, jti string
	var iat, exp int64
	json.Unmarshal(claims["sub"], &sub)
	json.Unmarshal(claims["jti"], &jti)
	json.Unmarshal(claims["iat"], &iat)
	json.Unmarshal(claims["exp"], &exp)

	key := jwtKey(t, testSecret)
	hs := func(alg string) map[string]any { return map[string]any{"alg": alg, "typ": "JWT"} }
	good := func() map[string]any {
		return map[string]any{"sub": sub, "aud": []string{caddyauth.JWTAudience}, "jti": jti, "iat": iat, "exp": exp}
	}
	with := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	otherKey := jwtKey(t, bytes.Repeat([]byte{1}, 32))
	tamperedPayload := map[string]any{"sub": bedivere.ID, "aud": []string{caddyauth.JWTAudience}, "jti": jti, "iat": iat, "exp": exp}
	tampered := segs[0] + "." + b64.EncodeToString(must(json.Marshal(tamperedPayload))) + "." + segs[2]

	// Hand-made tokens with the right key and good claims pass the
	// parser: the refusals below are each for the fault they name.
	wellFormed := map[string]string{
		"hand-signed HS256":          signJWT(hs("HS256"), good(), key),
		"audience as a string":       signJWT(hs("HS256"), with("aud", caddyauth.JWTAudience), key),
		"audience among others":      signJWT(hs("HS256"), with("aud", []string{"other", caddyauth.JWTAudience}), key),
		"exp beyond the session":     signJWT(hs("HS256"), with("exp", e.clock.Now().Add(10*365*24*time.Hour).Unix()), key),
		"unknown jti":                signJWT(hs("HS256"), with("jti", "no-such-session"), key),
		"sub of another user":        signJWT(hs("HS256"), with("sub", bedivere.ID), key),
		"session id of another user": signJWT(hs("HS256"), with("jti", e.login(t, "bedivere@camelot.bt", store.TransportBearer).Session.ID), key),
	}
	for name, tok := range wellFormed {
		t.Run("parser accepts "+name, func(t *testing.T) {
			if err := e.svc.ParseJWT(tok); err != nil {
				t.Fatalf("parser refused a well-formed token: %v", err)
			}
		})
	}
	// ...and yet none of them is accepted: the store holds the digest of
	// each token issued, so only the exact token a login returned opens a
	// session. Even the signing key does not let anyone mint a new one.
	for name, tok := range wellFormed {
		t.Run("session refuses "+name, func(t *testing.T) {
			e.mustRefuse(t, store.TransportBearer, tok)
		})
	}

	// Refused by the parser itself, before any store lookup.
	malformed := map[string]string{
		"alg none":                  signJWT(hs("none"), good(), key),
		"alg None":                  signJWT(hs("None"), good(), key),
		"alg none with signature":   strings.TrimSuffix(signJWT(hs("none"), good(), key), ".") + "." + segs[2],
		"alg HS384, right key":      signJWT(hs("HS384"), good(), key),
		"alg HS512, right key":      signJWT(hs("HS512"), good(), key),
		"alg RS256 with HMAC":       signJWT(hs("RS256"), good(), key),
		"alg ES256 with HMAC":       signJWT(hs("ES256"), good(), key),
		"no alg":                    signJWT(map[string]any{"typ": "JWT"}, good(), key),
		"tampered payload":          tampered,
		"signature dropped":         segs[0] + "." + segs[1] + ".",
		"signature of other token":  segs[0] + "." + segs[1] + "." + strings.Split(signJWT(hs("HS256"), with("iat", iat+1), key), ".")[2],
		"wrong audience":            signJWT(hs("HS256"), with("aud", []string{"fastapi-users:verify"}), key),
		"wrong audience string":     signJWT(hs("HS256"), with("aud", "fastapi-users:reset"), key),
		"no audience":               signJWT(hs("HS256"), with("aud", nil), key),
		"wrong key":                 signJWT(hs("HS256"), good(), otherKey),
		"raw secret as key":         signJWT(hs("HS256"), good(), testSecret),
		"no exp":                    signJWT(hs("HS256"), with("exp", nil), key),
		"exp passed":                signJWT(hs("HS256"), with("exp", e.clock.Now().Add(-time.Second).Unix()), key),
		"no jti":                    signJWT(hs("HS256"), with("jti", nil), key),
		"empty jti":                 signJWT(hs("HS256"), with("jti", ""), key),
		"no sub":                    signJWT(hs("HS256"), with("sub", nil), key),
		"empty":                     "",
		"garbage":                   "not a token",
		"dots":                      "..",
		"two segments":              segs[0] + "." + segs[1],
		"four segments":             real.Credential + "." + segs[2],
		"whitespace inside":         segs[0] + ". " + segs[1] + "." + segs[2],
		"header not JSON":           b64.EncodeToString([]byte("{")) + "." + segs[1] + "." + segs[2],
		"padded base64 segments":    segs[0] + "=." + segs[1] + "." + segs[2],
		"cookie value as bearer":    e.login(t, "arthur@camelot.bt", store.TransportCookie).Credential,
		"token of another instance": signJWT(hs("HS256"), good(), jwtKey(t, append(bytes.Clone(testSecret), 0))),
	}
	for name, tok := range malformed {
		t.Run(name, func(t *testing.T) {
			if err := e.svc.ParseJWT(tok); err == nil {
				t.Error("parser accepted it")
			}
			e.mustRefuse(t, store.TransportBearer, tok)
		})
	}
	// The real token still works: nothing above disturbed its session,
	// and its claims are what the parser expects.
	if err := e.svc.ParseJWT(real.Credential); err != nil {
		t.Fatalf("parser refused the issued token: %v", err)
	}
	e.mustAuth(t, store.TransportBearer, real.Credential)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCookieTamperingIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	res := e.login(t, "arthur@camelot.bt", store.TransportCookie)
	v := res.Credential

	flip := func(i int) string {
		b := []byte(v)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	// A second service on the same database with another secret: its
	// cookies must mean nothing here.
	otherSvc, err := caddyauth.New(caddyauth.Options{Store: e.db, Secret: bytes.Repeat([]byte{7}, 32),
		Hasher: cheapHasher(t), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherSvc.Login(context.Background(), "arthur@camelot.bt", testPassword, store.TransportCookie, caddyauth.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	// Same secret, other cookie name: the name is part of what is signed.
	renamedSvc, err := caddyauth.New(caddyauth.Options{Store: e.db, Secret: testSecret, CookieName: "other",
		Hasher: cheapHasher(t), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	renamed, err := renamedSvc.Login(context.Background(), "arthur@camelot.bt", testPassword, store.TransportCookie, caddyauth.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}

	cases := map[string]string{
		"first character flipped":  flip(0),
		"middle character flipped": flip(len(v) / 2),
		"last character flipped":   flip(len(v) - 1),
		"truncated":                v[:len(v)-4],
		"extended":                 v + "AAAA",
		"empty":                    "",
		"garbage":                  "garbage",
		"other secret":             foreign.Credential,
		"other cookie name":        renamed.Credential,
		"bearer token as cookie":   e.login(t, "arthur@camelot.bt", store.TransportBearer).Credential,
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e.mustRefuse(t, store.TransportCookie, c)
		})
	}
	e.mustAuth(t, store.TransportCookie, v)
}

func TestSessionAbsoluteLifetime(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *caddyauth.Options) {
				o.SessionLifetime = 3 * time.Hour
				o.SessionIdle = time.Hour
			})
			e.mustUser(t, "arthur@camelot.bt")
			res := e.login(t, "arthur@camelot.bt", tr)
			// Used every half hour: alive until the absolute end, however active.
			for elapsed := 30 * time.Minute; elapsed < 3*time.Hour; elapsed += 30 * time.Minute {
				e.clock.Advance(30 * time.Minute)
				e.mustAuth(t, tr, res.Credential)
			}
			e.clock.Advance(29*time.Minute + 59*time.Second)
			e.mustAuth(t, tr, res.Credential)
			e.clock.Advance(time.Second)
			e.mustRefuse(t, tr, res.Credential)
		})
	}
}

func TestSlidingIdleExpiry(t *testing.T) {
	t.Parallel()
	const idle = time.Hour
	setup := func(t *testing.T) (*env, *caddyauth.LoginResult) {
		e := newEnv(t, func(o *caddyauth.Options) {
			o.SessionLifetime = 24 * time.Hour
			o.SessionIdle = idle
		})
		e.mustUser(t, "arthur@camelot.bt")
		return e, e.login(t, "arthur@camelot.bt", store.TransportCookie)
	}

	t.Run("unused for longer than idle", func(t *testing.T) {
		t.Parallel()
		e, res := setup(t)
		// Not cached in this process: the stored last use decides, with
		// the documented allowance for its lag (a touch interval, at most
		// a minute, plus the cache period).
		e.clock.Advance(idle + time.Minute + caddyauth.MaxStaleness)
		e.mustRefuse(t, store.TransportCookie, res.Credential)
		// The idle session is gone from the store, not merely refused.
		sessions, err := e.db.UserSessions(context.Background(), res.User.ID)
		if err != nil || len(sessions) != 0 {
			t.Errorf("store still holds %d sessions (%v)", len(sessions), err)
		}
		// Coming back does not revive it.
		e.clock.Advance(-idle)
		e.mustRefuse(t, store.TransportCookie, res.Credential)
	})

	t.Run("exactly idle is still alive", func(t *testing.T) {
		t.Parallel()
		e, res := setup(t)
		e.clock.Advance(idle)
		e.mustAuth(t, store.TransportCookie, res.Credential)
	})

	t.Run("idle after being cached", func(t *testing.T) {
		t.Parallel()
		e, res := setup(t)
		e.mustAuth(t, store.TransportCookie, res.Credential)
		e.clock.Advance(idle + time.Second)
		e.mustRefuse(t, store.TransportCookie, res.Credential)
	})

	t.Run("used every idle/2 lives to the absolute lifetime", func(t *testing.T) {
		t.Parallel()
		e, res := setup(t)
		for elapsed := time.Duration(0); elapsed < 24*time.Hour-idle/2; {
			e.clock.Advance(idle / 2)
			elapsed += idle / 2
			if _, err := e.auth(store.TransportCookie, res.Credential); err != nil {
				t.Fatalf("refused after %v of use every %v: %v", elapsed, idle/2, err)
			}
		}
		e.clock.Advance(idle / 2)
		e.mustRefuse(t, store.TransportCookie, res.Credential)
	})

	t.Run("use is recorded in the store", func(t *testing.T) {
		t.Parallel()
		e, res := setup(t)
		e.clock.Advance(idle / 2)
		e.mustAuth(t, store.TransportCookie, res.Credential)
		sessions, err := e.db.UserSessions(context.Background(), res.User.ID)
		if err != nil || len(sessions) != 1 {
			t.Fatalf("sessions: %v, %v", sessions, err)
		}
		if want := e.clock.Now(); !sessions[0].LastSeenAt.Equal(want) {
			t.Errorf("stored last use %v, want %v", sessions[0].LastSeenAt, want)
		}
	})

	t.Run("bearer sessions have no idle timeout", func(t *testing.T) {
		t.Parallel()
		e, _ := setup(t)
		res := e.login(t, "arthur@camelot.bt", store.TransportBearer)
		e.clock.Advance(23 * time.Hour)
		e.mustAuth(t, store.TransportBearer, res.Credential)
	})

	t.Run("idle disabled", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(o *caddyauth.Options) { o.SessionIdle = -1 })
		e.mustUser(t, "arthur@camelot.bt")
		res := e.login(t, "arthur@camelot.bt", store.TransportCookie)
		e.clock.Advance(caddyauth.DefaultSessionLifetime - time.Second)
		e.mustAuth(t, store.TransportCookie, res.Credential)
	})
}

func TestLogoutRevokesAtOnce(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.mustUser(t, "arthur@camelot.bt")
			res, other := e.login(t, "arthur@camelot.bt", tr), e.login(t, "arthur@camelot.bt", tr)
			p := e.mustAuth(t, tr, res.Credential) // now cached
			e.mustAuth(t, tr, other.Credential)
			if err := e.svc.Logout(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			// No clock advance: refused at once, although it was cached.
			e.mustRefuse(t, tr, res.Credential)
			e.mustAuth(t, tr, other.Credential)
			// A second logout of the same session is harmless.
			if err := e.svc.Logout(context.Background(), p); err != nil {
				t.Errorf("second logout: %v", err)
			}
		})
	}
}

func TestDeactivationAndDeletionEndSessionsAtOnce(t *testing.T) {
	t.Parallel()
	t.Run("deactivated", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		bearer, cookie := e.login(t, "arthur@camelot.bt", store.TransportBearer), e.login(t, "arthur@camelot.bt", store.TransportCookie)
		e.mustAuth(t, store.TransportBearer, bearer.Credential)
		e.mustAuth(t, store.TransportCookie, cookie.Credential)
		// Even the session making the change is ended.
		if _, err := e.svc.UpdateUser(context.Background(), u.ID, caddyauth.UserPatch{IsActive: ptr(false)}, bearer.Session.ID); err != nil {
			t.Fatal(err)
		}
		e.mustRefuse(t, store.TransportBearer, bearer.Credential)
		e.mustRefuse(t, store.TransportCookie, cookie.Credential)
		// Reactivation does not bring the old sessions back.
		if _, err := e.svc.UpdateUser(context.Background(), u.ID, caddyauth.UserPatch{IsActive: ptr(true)}, ""); err != nil {
			t.Fatal(err)
		}
		e.mustRefuse(t, store.TransportBearer, bearer.Credential)
		e.mustRefuse(t, store.TransportCookie, cookie.Credential)
	})
	t.Run("deleted", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		bearer, cookie := e.login(t, "arthur@camelot.bt", store.TransportBearer), e.login(t, "arthur@camelot.bt", store.TransportCookie)
		e.mustAuth(t, store.TransportBearer, bearer.Credential)
		e.mustAuth(t, store.TransportCookie, cookie.Credential)
		if err := e.svc.DeleteUser(context.Background(), u.ID); err != nil {
			t.Fatal(err)
		}
		e.mustRefuse(t, store.TransportBearer, bearer.Credential)
		e.mustRefuse(t, store.TransportCookie, cookie.Credential)
		if err := e.svc.DeleteUser(context.Background(), u.ID); !errors.Is(err, caddyauth.ErrNotFound) {
			t.Errorf("second delete = %v, want ErrNotFound", err)
		}
	})
	t.Run("revoked everywhere", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		u := e.mustUser(t, "arthur@camelot.bt")
		a, b := e.login(t, "arthur@camelot.bt", store.TransportBearer), e.login(t, "arthur@camelot.bt", store.TransportCookie)
		e.mustAuth(t, store.TransportBearer, a.Credential)
		e.mustAuth(t, store.TransportCookie, b.Credential)
		n, err := e.svc.RevokeUserSessions(context.Background(), u.ID, "")
		if err != nil || n != 2 {
			t.Fatalf("RevokeUserSessions = %d, %v; want 2", n, err)
		}
		e.mustRefuse(t, store.TransportBearer, a.Credential)
		e.mustRefuse(t, store.TransportCookie, b.Credential)
	})
}

// TestChangesBehindTheServiceAreSeenWithinMaxStaleness: a change made in
// the database by someone else (another instance, the CLI) may go unseen
// for a moment, but never longer than MaxStaleness.
func TestChangesBehindTheServiceAreSeenWithinMaxStaleness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	changes := []struct {
		name   string
		change func(e *env, u *store.User) error
		// check runs after MaxStaleness; nil means: refused.
		check func(t *testing.T, p *caddyauth.Principal, err error)
	}{
		{name: "deactivated", change: func(e *env, u *store.User) error {
			v := *u
			v.IsActive = false
			return replaceUser(ctx, e.db, &v)
		}},
		{name: "sessions revoked", change: func(e *env, u *store.User) error {
			_, err := e.db.DeleteUserSessions(ctx, u.ID, "")
			return err
		}},
		{name: "user deleted", change: func(e *env, u *store.User) error {
			return e.db.DeleteUser(ctx, u.ID)
		}},
		{name: "roles and name changed", change: func(e *env, u *store.User) error {
			v := *u
			v.Roles, v.FullName, v.IsSuperuser, v.IsVerified = []string{"admin"}, "King Arthur", true, true
			return replaceUser(ctx, e.db, &v)
		}, check: func(t *testing.T, p *caddyauth.Principal, err error) {
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !slices.Equal(p.Roles, []string{"admin"}) || p.FullName != "King Arthur" || !p.IsSuperuser || !p.IsVerified {
				t.Fatalf("principal %+v does not show the change", p)
			}
		}},
	}
	for _, c := range changes {
		for _, tr := range transports {
			t.Run(c.name+"/"+string(tr), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, nil)
				u := e.mustUser(t, "arthur@camelot.bt")
				res := e.login(t, "arthur@camelot.bt", tr)
				e.mustAuth(t, tr, res.Credential)
				if err := c.change(e, u); err != nil {
					t.Fatal(err)
				}
				// Within the bound, the old answer is allowed; nothing else is.
				e.clock.Advance(time.Second)
				if _, err := e.auth(tr, res.Credential); err != nil && !errors.Is(err, caddyauth.ErrUnauthenticated) {
					t.Fatalf("within the bound: %v", err)
				}
				e.clock.Advance(caddyauth.MaxStaleness - time.Second)
				p, err := e.auth(tr, res.Credential)
				if c.check != nil {
					c.check(t, p, err)
				} else if !errors.Is(err, caddyauth.ErrUnauthenticated) {
					t.Fatalf("after MaxStaleness: %+v, %v; want ErrUnauthenticated", p, err)
				}
			})
		}
	}
}

// TestCacheHitMakesNoStoreCall is the guard's performance contract: a
// credential verified a moment ago is answered from memory, with no
// database access at all.
func TestCacheHitMakesNoStoreCall(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.mustUser(t, "arthur@camelot.bt")
			res := e.login(t, "arthur@camelot.bt", tr)
			e.counter.reset()
			first := e.mustAuth(t, tr, res.Credential)
			if n, names := e.counter.reset(); n == 0 {
				t.Fatalf("the first authentication made no store call (%v): the counter sees nothing", names)
			}
			for i := range 1000 {
				e.clock.Advance(time.Millisecond)
				p := e.mustAuth(t, tr, res.Credential)
				if p != first && (p.UserID != first.UserID || p.SessionID != first.SessionID) {
					t.Fatalf("hit %d returned another principal", i)
				}
			}
			if n, names := e.counter.reset(); n != 0 {
				t.Fatalf("1000 cache hits made %d store calls: %v", n, names)
			}
			e.clock.Advance(caddyauth.MaxStaleness)
			e.mustAuth(t, tr, res.Credential)
			if n, _ := e.counter.reset(); n == 0 {
				t.Fatal("no store call after MaxStaleness: the cache is never refreshed")
			}
		})
	}
}

func TestCredentialOnTheWrongTransportIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	bearer := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	cookie := e.login(t, "arthur@camelot.bt", store.TransportCookie)
	for _, cached := range []bool{false, true} {
		if cached {
			e.mustAuth(t, store.TransportBearer, bearer.Credential)
			e.mustAuth(t, store.TransportCookie, cookie.Credential)
		}
		e.mustRefuse(t, store.TransportCookie, bearer.Credential)
		e.mustRefuse(t, store.TransportBearer, cookie.Credential)
	}
}

func TestLoginUpgradesOldHashes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	oldHashes := map[string]func(t *testing.T) string{
		"bcrypt": func(t *testing.T) string {
			h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			return "$2b$" + string(h[4:])
		},
		"argon2id with other parameters": func(t *testing.T) string {
			h := paramsHasher(t, caddyauth.Argon2Params{Memory: 32, Time: 2, Threads: 2})
			return mustHash(t, h, testPassword)
		},
	}
	for name, old := range oldHashes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			u := e.mustUser(t, "arthur@camelot.bt")
			legacy := *u
			legacy.HashedPassword = old(t)
			if err := replaceUser(ctx, e.db, &legacy); err != nil {
				t.Fatal(err)
			}
			// A wrong password changes nothing.
			if _, err := e.svc.Login(ctx, u.Email, "wrong password", store.TransportBearer, caddyauth.ClientInfo{}); !errors.Is(err, caddyauth.ErrBadCredentials) {
				t.Fatalf("wrong password: %v", err)
			}
			if got, _ := e.db.UserByID(ctx, u.ID); got.HashedPassword != legacy.HashedPassword {
				t.Fatal("a failed login replaced the hash")
			}
			e.login(t, u.Email, store.TransportBearer)
			got, err := e.db.UserByID(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			m := phcArgon2id.FindStringSubmatch(got.HashedPassword)
			if m == nil || m[1]+","+m[2]+","+m[3] != "64,1,1" {
				t.Fatalf("stored hash after login %q, want argon2id with the current parameters", got.HashedPassword)
			}
			// And the new hash works.
			e.login(t, u.Email, store.TransportCookie)
		})
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	e.mustUser(t, "mordred@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsActive = false })
	cases := map[string][2]string{
		"unknown user":              {"lancelot@camelot.bt", testPassword},
		"wrong password":            {"arthur@camelot.bt", testPassword + "!"},
		"empty password":            {"arthur@camelot.bt", ""},
		"inactive, right password":  {"mordred@camelot.bt", testPassword},
		"inactive, wrong password":  {"mordred@camelot.bt", "nope"},
		"username not an email":     {"arthur", testPassword},
		"email with a control char": {"arthur@camelot.bt\x00", testPassword},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			res, err := e.svc.Login(ctx, c[0], c[1], store.TransportBearer, caddyauth.ClientInfo{})
			if err != caddyauth.ErrBadCredentials || res != nil {
				t.Fatalf("Login = %v, %v; want exactly ErrBadCredentials", res, err)
			}
		})
	}
	// Case and surrounding spaces do not matter to the lookup.
	e.login(t, "  ARTHUR@Camelot.BT ", store.TransportBearer)
}

// TestUnknownUserCostsAHash: "no such account" must cost a password hash
// like "wrong password" does, or response times would list the accounts.
// argon2id allocates its whole memory parameter on every run, so the
// bytes allocated by a login show whether it hashed. Not parallel, so
// that no other test allocates meanwhile.
func TestUnknownUserCostsAHash(t *testing.T) {
	const memKiB = 8 << 10 // 8 MiB per hash
	e := newEnv(t, func(o *caddyauth.Options) {
		o.Hasher = paramsHasher(t, caddyauth.Argon2Params{Memory: memKiB, Time: 1, Threads: 1})
	})
	e.mustUser(t, "arthur@camelot.bt")
	e.mustUser(t, "mordred@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsActive = false })
	ctx := context.Background()
	allocated := func(user, password string) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := e.svc.Login(ctx, user, password, store.TransportBearer, caddyauth.ClientInfo{})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, caddyauth.ErrBadCredentials) {
			t.Fatalf("Login(%s) = %v", user, err)
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	// A locked account: its refusal, even of the right password, must
	// cost a hash too, or the time would tell that it is locked (and so
	// that it exists).
	e.mustUser(t, "galahad@camelot.bt")
	for range caddyauth.DefaultLoginLimit.Account {
		allocated("galahad@camelot.bt", "wrong password")
	}
	allocated("nobody@camelot.bt", "warm-up") // the first call also makes the dummy hash
	for _, c := range [][2]string{
		{"nobody@camelot.bt", "whatever"},
		{"arthur@camelot.bt", "wrong password"},
		{"mordred@camelot.bt", testPassword},
		{"galahad@camelot.bt", testPassword},
	} {
		if n := allocated(c[0], c[1]); n < memKiB<<10 {
			t.Errorf("failed login of %s allocated %d bytes: no password hash was computed (want ≥ %d)", c[0], n, memKiB<<10)
		}
	}
}

func TestRequireVerified(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, func(o *caddyauth.Options) { o.RequireVerified = true })
	e.mustUser(t, "unverified@camelot.bt")
	e.mustUser(t, "verified@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsVerified = true })
	e.mustUser(t, "inactive@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsActive = false })
	cases := []struct {
		user, password string
		want           error
	}{
		{"unverified@camelot.bt", "wrong password", caddyauth.ErrBadCredentials},
		{"unverified@camelot.bt", testPassword, caddyauth.ErrNotVerified},
		{"inactive@camelot.bt", testPassword, caddyauth.ErrBadCredentials},
		{"verified@camelot.bt", testPassword, nil},
	}
	for _, c := range cases {
		_, err := e.svc.Login(ctx, c.user, c.password, store.TransportBearer, caddyauth.ClientInfo{})
		if err != c.want {
			t.Errorf("Login(%s, %q) = %v, want %v", c.user, c.password, err, c.want)
		}
	}
	if !e.svc.RequireVerified() {
		t.Error("RequireVerified() = false")
	}
}

func TestLoginRecordsTheClientSafely(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	ua := "Mozilla/5.0\r\nX-Evil: 1\x00" + strings.Repeat("x", 1000)
	res, err := e.svc.Login(context.Background(), "arthur@camelot.bt", testPassword, store.TransportCookie,
		caddyauth.ClientInfo{UserAgent: ua, IP: "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Session
	if strings.ContainsAny(s.UserAgent, "\r\n\x00") || len([]rune(s.UserAgent)) != 512 || !strings.HasPrefix(s.UserAgent, "Mozilla/5.0X-Evil: 1x") {
		t.Errorf("recorded user agent %q (%d runes)", s.UserAgent[:40], len([]rune(s.UserAgent)))
	}
	if s.IP != "2001:db8::1" {
		t.Errorf("recorded IP %q", s.IP)
	}
}

func TestExpiredSessionsArePurged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, func(o *caddyauth.Options) { o.SessionLifetime = time.Hour })
	a := e.mustUser(t, "arthur@camelot.bt")
	e.mustUser(t, "bedivere@camelot.bt")
	e.login(t, "arthur@camelot.bt", store.TransportBearer)
	e.clock.Advance(2 * time.Hour)
	e.login(t, "bedivere@camelot.bt", store.TransportBearer)
	sessions, err := e.db.UserSessions(ctx, a.ID)
	if err != nil || len(sessions) != 0 {
		t.Fatalf("expired session still stored: %v, %v", sessions, err)
	}
	if live, err := e.svc.UserSessions(ctx, a.ID); err != nil || len(live) != 0 {
		t.Fatalf("UserSessions = %v, %v", live, err)
	}
}

// TestIsOwnBearerToken: the guard strips an Authorization header only
// when it carries a token of this installation, live or not; any other
// bearer token belongs to the upstream.
func TestIsOwnBearerToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *caddyauth.Options) { o.SessionLifetime = time.Hour })
	e.mustUser(t, "arthur@camelot.bt")
	live := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	revoked := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	if err := e.svc.Logout(context.Background(), e.mustAuth(t, store.TransportBearer, revoked.Credential)); err != nil {
		t.Fatal(err)
	}
	key := jwtKey(t, testSecret)
	claims := map[string]any{"sub": "x", "aud": []string{"elsewhere"}, "exp": 1}
	own := map[string]string{
		"live":                  live.Credential,
		"revoked":               revoked.Credential,
		"other claims, our key": signJWT(map[string]any{"alg": "HS256"}, claims, key),
	}
	foreign := map[string]string{
		"other key":          signJWT(map[string]any{"alg": "HS256"}, claims, jwtKey(t, bytes.Repeat([]byte{9}, 32))),
		"HS384 with our key": signJWT(map[string]any{"alg": "HS384"}, claims, key),
		"alg none":           signJWT(map[string]any{"alg": "none"}, claims, key),
		"opaque API key":     "sk_live_abcdef",
		"cookie value":       e.login(t, "arthur@camelot.bt", store.TransportCookie).Credential,
		"empty":              "",
	}
	for name, tok := range own {
		if !e.svc.IsOwnBearerToken(tok) {
			t.Errorf("%s: not recognised as ours", name)
		}
	}
	for name, tok := range foreign {
		if e.svc.IsOwnBearerToken(tok) {
			t.Errorf("%s: taken for ours", name)
		}
	}
	e.clock.Advance(2 * time.Hour)
	e.mustRefuse(t, store.TransportBearer, live.Credential)
	if !e.svc.IsOwnBearerToken(live.Credential) {
		t.Error("an expired token of ours is no longer recognised: it would go upstream")
	}
}

// The session cache outlives a config reload; a reload that changes the
// secret must not let credentials verified with the old keys through on
// a cache hit.
func TestCacheEntriesOfOtherKeysDoNotCount(t *testing.T) {
	t.Parallel()
	cache := caddyauth.NewSessionCache()
	e := newEnv(t, func(o *caddyauth.Options) { o.Cache = cache })
	e.mustUser(t, "arthur@camelot.bt")
	res := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	e.mustAuth(t, store.TransportBearer, res.Credential) // cached now
	if cache.Len() != 1 {
		t.Fatalf("cache holds %d entries, want the one credential", cache.Len())
	}
	opts := e.opts
	opts.Secret = bytes.Repeat([]byte{7}, 32)
	rotated, err := caddyauth.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := rotated.AuthenticateBearer(context.Background(), res.Credential); !errors.Is(err, caddyauth.ErrUnauthenticated) {
		t.Fatalf("after a secret change the cached token gave %v, %v; want ErrUnauthenticated", p, err)
	}
}

// TestRegisterTakenEmailCostsAHash: registering an email that is taken
// must cost the password hash that a free one costs, or response times
// would list the accounts (the API's answer says so anyway, by
// fastapi-users' contract, but the page and the time need not). Not
// parallel, so that no other test allocates meanwhile.
func TestRegisterTakenEmailCostsAHash(t *testing.T) {
	const memKiB = 8 << 10 // 8 MiB per hash
	e := newEnv(t, func(o *caddyauth.Options) {
		o.Hasher = paramsHasher(t, caddyauth.Argon2Params{Memory: memKiB, Time: 1, Threads: 1})
	})
	e.mustUser(t, "arthur@camelot.bt")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := e.svc.Register(context.Background(), "ARTHUR@camelot.bt", testPassword, "", caddyauth.Links{})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, caddyauth.ErrUserExists) {
		t.Fatalf("Register(taken) = %v, want ErrUserExists", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n < memKiB<<10 {
		t.Errorf("registering a taken email allocated %d bytes: no password hash was computed (want ≥ %d)", n, memKiB<<10)
	}
}
