package caddyauth_test

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// FuzzAuthenticate presents arbitrary strings, and real credentials with
// one byte changed, to both authentication entries (the bearer JWT and
// the session cookie, as a client sends them). Nothing but a credential
// exactly as issued authenticates: everything else is ErrUnauthenticated
// (never another error, which callers take for a failing store, and never
// a principal). A bearer token damaged outside its claims is still
// recognised as one of Gatehouse's, so the guard keeps it from the
// upstream, which could repair it.
func FuzzAuthenticate(f *testing.F) {
	e := newEnv(f, nil)
	u := e.mustUser(f, "arthur@camelot.bt")
	real := map[store.Transport]string{
		store.TransportBearer: e.login(f, u.Email, store.TransportBearer).Credential,
		store.TransportCookie: e.login(f, u.Email, store.TransportCookie).Credential,
	}
	// The real credentials as seeds: the mutations start from them.
	for _, c := range real {
		f.Add(c, uint16(len(c)-1), byte('A'))
	}

	f.Fuzz(func(t *testing.T, credential string, pos uint16, b byte) {
		for _, tr := range transports {
			p, err := e.auth(tr, credential)
			if credential == real[tr] {
				if err != nil || p.UserID != u.ID {
					t.Fatalf("the real %s credential: %v, %v", tr, p, err)
				}
				continue
			}
			if !errors.Is(err, caddyauth.ErrUnauthenticated) || p != nil {
				t.Fatalf("%s credential %q: %+v, %v; want ErrUnauthenticated", tr, credential, p, err)
			}
		}
		for issuedFor, c := range real {
			i := int(pos) % len(c)
			if c[i] == b {
				continue // not a change
			}
			mutated := c[:i] + string([]byte{b}) + c[i+1:]
			for _, tr := range transports {
				if p, err := e.auth(tr, mutated); !errors.Is(err, caddyauth.ErrUnauthenticated) || p != nil {
					t.Fatalf("%s credential with byte %d set to %#x, presented as %s: %+v, %v; want ErrUnauthenticated",
						issuedFor, i, b, tr, p, err)
				}
			}
			if issuedFor == store.TransportBearer {
				// Outside the claims segment the audience is intact.
				first, second := strings.IndexByte(c, '.'), strings.LastIndexByte(c, '.')
				if (i < first || i > second) && !e.svc.IsOwnBearerToken(mutated) {
					t.Fatalf("bearer token with byte %d set to %#x is not recognised as ours: %q", i, b, mutated)
				}
			}
		}
	})
}

// TestSingleByteMutationsRefused is FuzzAuthenticate's second property,
// deterministically: every byte of a real credential set to a sample of
// other values, and to every other value where the last character of a
// base64 segment carries bits the encoding ignores. (The fuzzer found a
// damaged signature the guard would have passed on in a second; a cookie
// whose character before its padding differs only in such bits, which
// decoded to the same session, it did not find in thirty.)
func TestSingleByteMutationsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	u := e.mustUser(t, "arthur@camelot.bt")
	sample := []byte("Az09-_+/=.!\x00\x80\xff")
	for _, issuedFor := range transports {
		c := e.login(t, u.Email, issuedFor).Credential
		first, second := strings.IndexByte(c, '.'), strings.LastIndexByte(c, '.')
		segmentEnd := func(i int) bool {
			end := strings.TrimRight(c, "=")
			return i >= len(end)-1 || c[i+1] == '.' || c[i+1] == '='
		}
		for i := 0; i < len(c); i++ {
			values := sample
			if segmentEnd(i) {
				values = make([]byte, 256)
				for v := range values {
					values[v] = byte(v)
				}
			}
			for _, b := range values {
				if b == c[i] {
					continue
				}
				mutated := c[:i] + string([]byte{b}) + c[i+1:]
				if p, err := e.auth(issuedFor, mutated); !errors.Is(err, caddyauth.ErrUnauthenticated) || p != nil {
					t.Fatalf("%s credential with byte %d set to %#x: %+v, %v; want ErrUnauthenticated", issuedFor, i, b, p, err)
				}
				if issuedFor == store.TransportBearer && (i < first || i > second) && !e.svc.IsOwnBearerToken(mutated) {
					t.Fatalf("bearer token with byte %d set to %#x is not recognised as ours", i, b)
				}
			}
		}
	}
}

// TestOverlongCredentialRefusedUnread: a credential longer than
// MaxCredentialLength is refused before it is parsed or looked up, even
// one signed with the installation's key (which a shorter one would take
// to the store).
func TestOverlongCredentialRefusedUnread(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	u := e.mustUser(t, "arthur@camelot.bt")
	key, err := hkdf.Key(sha256.New, testSecret, nil, "gatehouse/v1/jwt", 32)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(padding int) string {
		t.Helper()
		claims := jwt.MapClaims{"sub": u.ID, "aud": []string{caddyauth.JWTAudience}, "jti": "0123456789abcdef0123456789abcdef",
			"exp": e.clock.Now().Add(time.Hour).Unix(), "pad": strings.Repeat("x", padding)}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.ParseJWT(tok); err != nil {
			t.Fatalf("the test's token is not one the service would sign: %v", err)
		}
		return tok
	}
	for _, c := range []struct {
		padding      int
		wantLookups  int64
		wantOverlong bool
	}{
		{padding: 100, wantLookups: 1},
		{padding: caddyauth.MaxCredentialLength, wantLookups: 0, wantOverlong: true},
	} {
		tok := signed(c.padding)
		if overlong := len(tok) > caddyauth.MaxCredentialLength; overlong != c.wantOverlong {
			t.Fatalf("token of %d bytes: overlong %v, want %v", len(tok), overlong, c.wantOverlong)
		}
		e.counter.reset()
		e.mustRefuse(t, store.TransportBearer, tok)
		if n, names := e.counter.reset(); n != c.wantLookups {
			t.Errorf("token of %d bytes: %d store calls %v, want %d", len(tok), n, names, c.wantLookups)
		}
	}
	cookie := e.login(t, u.Email, store.TransportCookie).Credential
	e.mustRefuse(t, store.TransportCookie, cookie+strings.Repeat("=", caddyauth.MaxCredentialLength))
}
