package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// gatehouseConfig returns a Caddyfile: admin off, the gatehouse global
// block with the database in the working directory plus globalExtra
// lines, and one site on 127.0.0.1:port whose body is siteBody.
func gatehouseConfig(port int, globalExtra, siteBody string) string {
	return fmt.Sprintf(`{
	admin off
	gatehouse {
		database sqlite ./gatehouse.db
%s
	}
}

http://127.0.0.1:%d {
%s
}
`, indent(globalExtra, "\t\t"), port, indent(siteBody, "\t"))
}

// guardedSite is the usual site body: endpoints, a guard with guardBody,
// and the upstream.
func guardedSite(up *upstream, guardBody string) string {
	return fmt.Sprintf("gatehouse_endpoints\ngatehouse_guard {\n%s\n}\nreverse_proxy %s", indent(guardBody, "\t"), up.Addr)
}

func indent(s, prefix string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// identityHeaders are the default identity headers of DESIGN §5.
var identityHeaders = []string{"Remote-User", "Remote-Email", "Remote-User-Id", "Remote-Name", "Remote-Groups"}

// wantIdentity fails unless the upstream request carries exactly want
// (header name -> value) for every identity header, where a missing key
// means the header must be absent. Every spelling counts ('_' or '-', any
// case), and each header must appear exactly once.
func wantIdentity(t testing.TB, r upstreamRequest, want map[string]string) {
	t.Helper()
	for _, name := range identityHeaders {
		got := r.Values(name)
		w, ok := want[name]
		switch {
		case !ok && len(got) != 0:
			t.Errorf("upstream got %s = %q, want it absent", name, got)
		case ok && (len(got) != 1 || got[0] != w):
			t.Errorf("upstream got %s = %q, want exactly [%q]", name, got, w)
		}
	}
}

// TestFlow is the whole story with both transports: register, log in,
// call the guarded app, see the identity upstream and never the
// credential; log out and be refused.
func TestFlow(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "", guardedSite(up, "allow /public/*")))
	cl := newClient(c.URL)

	const email, password = "Flow.User@Example.COM", "flow-password-1"
	u := register(t, cl, email, password)
	if u.Email != "Flow.User@example.com" || !u.IsActive || u.IsSuperuser || u.IsVerified || u.FullName != nil || len(u.Roles) != 0 {
		t.Fatalf("registered user = %+v", u)
	}
	wantEmail := "Flow.User@example.com"

	t.Run("jwt", func(t *testing.T) {
		token := loginJWT(t, cl, email, password)
		path := uniquePath("/app/jwt")
		r := cl.get(t, path, bearer(token), header("Cookie", "theme=dark; lang=en"))
		wantStatus(t, r, http.StatusOK)
		got := up.Last(t, path)
		wantIdentity(t, got, map[string]string{"Remote-User": wantEmail, "Remote-Email": wantEmail, "Remote-User-Id": u.ID})
		if a := got.Values("Authorization"); len(a) != 0 {
			t.Errorf("upstream received Authorization %q: the bearer token must not leave Gatehouse", a)
		}
		if ck := got.Header.Get("Cookie"); ck != "theme=dark; lang=en" {
			t.Errorf("upstream Cookie = %q, want the client's other cookies intact", ck)
		}
		if strings.Contains(string(mustJSON(t, got.Raw)), token) {
			t.Error("the token appears somewhere in the upstream request")
		}

		// Logout revokes: the same token is refused at the guard and the API.
		wantStatus(t, cl.do(t, http.MethodPost, "/auth/jwt/logout", nil, bearer(token)), http.StatusNoContent)
		path2 := uniquePath("/app/jwt")
		wantDetail(t, cl.get(t, path2, bearer(token)), http.StatusUnauthorized, "Unauthorized")
		up.NeverSaw(t, path2)
		wantDetail(t, cl.get(t, "/users/me", bearer(token)), http.StatusUnauthorized, "Unauthorized")
	})

	t.Run("cookie", func(t *testing.T) {
		cookie := loginCookie(t, cl, email, password)
		if cookie.Name != "gatehouse_session" || !cookie.HttpOnly || cookie.Path != "/" || cookie.SameSite != http.SameSiteLaxMode {
			t.Errorf("session cookie = %+v; want gatehouse_session, HttpOnly, Path=/, SameSite=Lax", cookie)
		}
		path := uniquePath("/app/cookie")
		r := cl.get(t, path, header("Cookie", "a=1; "+cookie.Name+"="+cookie.Value+"; b=2"))
		wantStatus(t, r, http.StatusOK)
		got := up.Last(t, path)
		wantIdentity(t, got, map[string]string{"Remote-User": wantEmail, "Remote-Email": wantEmail, "Remote-User-Id": u.ID})
		cookies := got.Cookies()
		names := []string{}
		for _, ck := range cookies {
			names = append(names, ck.Name+"="+ck.Value)
		}
		if strings.Join(names, ";") != "a=1;b=2" {
			t.Errorf("upstream cookies = %v, want [a=1 b=2] (the session cookie removed, the others intact)", names)
		}
		if strings.Contains(string(mustJSON(t, got.Raw)), cookie.Value) {
			t.Error("the session cookie value appears somewhere in the upstream request")
		}

		// A jar-carrying client, as a browser would.
		jc := newClient(c.URL).withJar()
		wantStatus(t, jc.postForm(t, "/auth/cookie/login", formLogin(email, password)), http.StatusNoContent)
		me(t, jc)

		// Cookie logout: 204, a clearing Set-Cookie, and the cookie is dead.
		r = cl.do(t, http.MethodPost, "/auth/cookie/logout", nil, withCookie(cookie))
		wantStatus(t, r, http.StatusNoContent)
		cleared := false
		for _, ck := range r.Cookies() {
			if ck.Name == cookie.Name && ck.Value == "" && ck.MaxAge < 0 {
				cleared = true
			}
		}
		if !cleared {
			t.Errorf("cookie logout Set-Cookie = %q, want a clearing %s cookie", r.Header.Values("Set-Cookie"), cookie.Name)
		}
		path2 := uniquePath("/app/cookie")
		wantDetail(t, cl.get(t, path2, withCookie(cookie)), http.StatusUnauthorized, "Unauthorized")
		up.NeverSaw(t, path2)
		wantDetail(t, cl.get(t, "/users/me", withCookie(cookie)), http.StatusUnauthorized, "Unauthorized")
		// The jar's session is another one and still works.
		me(t, jc)
	})

	t.Run("name", func(t *testing.T) {
		// Remote-Name appears once a name is set (Remote-Groups: see TestUsersByID).
		token := loginJWT(t, cl, email, password)
		r := cl.patchJSON(t, "/users/me", map[string]any{"full_name": "Flow Ünïcode User"}, bearer(token))
		wantStatus(t, r, http.StatusOK)
		path := uniquePath("/app/name")
		wantStatus(t, cl.get(t, path, bearer(token)), http.StatusOK)
		wantIdentity(t, up.Last(t, path), map[string]string{"Remote-User": wantEmail, "Remote-Email": wantEmail,
			"Remote-User-Id": u.ID, "Remote-Name": "Flow Ünïcode User"})

		// An empty name is not sent as an empty header.
		wantStatus(t, cl.patchJSON(t, "/users/me", `{"full_name": ""}`, bearer(token)), http.StatusOK)
		path = uniquePath("/app/name")
		wantStatus(t, cl.get(t, path, bearer(token)), http.StatusOK)
		wantIdentity(t, up.Last(t, path), map[string]string{"Remote-User": wantEmail, "Remote-Email": wantEmail, "Remote-User-Id": u.ID})
	})

	t.Run("public path", func(t *testing.T) {
		path := uniquePath("/public")
		wantStatus(t, cl.get(t, path), http.StatusOK)
		wantIdentity(t, up.Last(t, path), nil)
		token := loginJWT(t, cl, email, password)
		path = uniquePath("/public")
		wantStatus(t, cl.get(t, path, bearer(token)), http.StatusOK)
		wantIdentity(t, up.Last(t, path), map[string]string{"Remote-User": wantEmail, "Remote-Email": wantEmail, "Remote-User-Id": u.ID})
		if a := up.Last(t, path).Values("Authorization"); len(a) != 0 {
			t.Errorf("public path: upstream received Authorization %q", a)
		}
	})
}

func formLogin(email, password string) map[string][]string {
	return map[string][]string{"username": {email}, "password": {password}}
}
