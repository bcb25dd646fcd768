package integration

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRegister covers POST /auth/register: every status and body of the
// contract, and email normalisation.
func TestRegister(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "", guardedSite(up, "")))
	cl := newClient(c.URL)

	var alice apiUser
	t.Run("201", func(t *testing.T) {
		r := cl.postJSON(t, "/auth/register", map[string]any{
			"email": "alice@example.com", "password": "alice-password", "full_name": "Alice Liddell",
			// Privileged fields are ignored (null accepted), unknown keys too.
			"is_superuser": true, "is_active": false, "is_verified": true, "roles": []string{"admin"},
			"id": "00000000-0000-0000-0000-000000000000", "unknown": 1,
		})
		wantStatus(t, r, http.StatusCreated)
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var raw map[string]any
		decode(t, r, &raw)
		for _, k := range []string{"id", "email", "is_active", "is_superuser", "is_verified", "full_name", "roles"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("user JSON lacks %q: %s", k, r.Body)
			}
		}
		if len(raw) != 7 {
			t.Errorf("user JSON has keys beyond the schema (a hash?): %s", r.Body)
		}
		decode(t, r, &alice)
		if alice.Email != "alice@example.com" || !alice.IsActive || alice.IsSuperuser || alice.IsVerified ||
			alice.FullName == nil || *alice.FullName != "Alice Liddell" || len(alice.Roles) != 0 ||
			alice.ID == "00000000-0000-0000-0000-000000000000" || len(alice.ID) != 36 {
			t.Errorf("registered user = %s", r.Body)
		}
		wantStatus(t, cl.postJSON(t, "/auth/register", `{"email":"nulls@example.com","password":"nulls-password",
			"is_superuser":null,"is_active":null,"is_verified":null,"roles":null,"full_name":null}`), http.StatusCreated)
	})

	t.Run("400 exists", func(t *testing.T) {
		for _, email := range []string{"alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.Com", "  alice@example.com "} {
			r := cl.postJSON(t, "/auth/register", map[string]any{"email": email, "password": "another-password"})
			wantDetail(t, r, http.StatusBadRequest, "REGISTER_USER_ALREADY_EXISTS")
		}
	})

	t.Run("400 invalid password", func(t *testing.T) {
		r := cl.postJSON(t, "/auth/register", map[string]any{"email": "short@example.com", "password": "short"})
		wantDetail(t, r, http.StatusBadRequest, map[string]any{"code": "REGISTER_INVALID_PASSWORD",
			"reason": "Password should be at least 8 characters"})
		// The policy is checked before the duplicate email.
		r = cl.postJSON(t, "/auth/register", map[string]any{"email": "alice@example.com", "password": "short"})
		wantDetail(t, r, http.StatusBadRequest, map[string]any{"code": "REGISTER_INVALID_PASSWORD",
			"reason": "Password should be at least 8 characters"})
		r = cl.postJSON(t, "/auth/register", map[string]any{"email": "pw@example.com", "password": "xx-pw@example.com-xx"})
		wantDetail(t, r, http.StatusBadRequest, map[string]any{"code": "REGISTER_INVALID_PASSWORD",
			"reason": "Password should not contain e-mail"})
	})

	t.Run("422", func(t *testing.T) {
		r := cl.postJSON(t, "/auth/register", `{}`)
		want422Loc(t, r, "body", "email")
		if it := want422Loc(t, r, "body", "password"); it.Type != "missing" {
			t.Errorf("missing password item type = %q, want missing", it.Type)
		}
		if it := want422Loc(t, cl.postJSON(t, "/auth/register", nil), "body"); it.Type != "missing" {
			t.Errorf("missing body item type = %q, want missing", it.Type)
		}
		// A null body is a missing one, as in FastAPI.
		want422Loc(t, cl.postJSON(t, "/auth/register", `null`), "body")
		for _, body := range []string{`[]`, `"x"`, `3`} {
			if it := want422Loc(t, cl.postJSON(t, "/auth/register", body), "body"); it.Type != "model_attributes_type" {
				t.Errorf("%s: item type = %q, want model_attributes_type", body, it.Type)
			}
		}
		// JSON without a JSON content type.
		r = cl.do(t, http.MethodPost, "/auth/register", strings.NewReader(`{"email":"ct@example.com","password":"ct-password"}`),
			header("Content-Type", "text/plain"))
		if it := want422Loc(t, r, "body"); it.Type != "model_attributes_type" {
			t.Errorf("text/plain: item type = %q", it.Type)
		}
		r = cl.do(t, http.MethodPost, "/auth/register", strings.NewReader(`{"email":"ct@example.com","password":"ct-password"}`))
		want422Loc(t, r, "body")

		if it := want422Loc(t, cl.postJSON(t, "/auth/register", `{"email":"king.arthur","password":"camelot-pw"}`),
			"body", "email"); it.Type != "value_error" {
			t.Errorf("bad email: item type = %q, want value_error", it.Type)
		}
		if it := want422Loc(t, cl.postJSON(t, "/auth/register", `{"email":123,"password":"number-email"}`),
			"body", "email"); it.Type != "string_type" {
			t.Errorf("email 123: item type = %q, want string_type", it.Type)
		}
		if it := want422Loc(t, cl.postJSON(t, "/auth/register", `{"email":"b@example.com","password":"bool-password","is_superuser":"notabool"}`),
			"body", "is_superuser"); it.Type != "bool_parsing" {
			t.Errorf("is_superuser notabool: item type = %q, want bool_parsing", it.Type)
		}
		r = cl.postJSON(t, "/auth/register", `{"email": "x@example.com", "password": `)
		it := want422Loc(t, r)
		if it.Type != "json_invalid" || len(it.Loc) != 2 {
			t.Errorf("malformed JSON: item = %+v, want json_invalid at [body, offset]", it)
		}
		// None of these created an account.
		wantDetail(t, cl.postForm(t, "/auth/jwt/login", formLogin("ct@example.com", "ct-password")),
			http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	})

	t.Run("email normalisation", func(t *testing.T) {
		r := cl.postJSON(t, "/auth/register", map[string]any{"email": "  Carol.Smith@EXAMPLE.Com\t", "password": "carol-password"})
		wantStatus(t, r, http.StatusCreated)
		var u apiUser
		decode(t, r, &u)
		if u.Email != "Carol.Smith@example.com" {
			t.Errorf("stored email = %q, want Carol.Smith@example.com (domain lower-cased, local part kept, spaces stripped)", u.Email)
		}
		// Lookup ignores case, and surrounding spaces, at login.
		for _, name := range []string{"carol.smith@example.com", "CAROL.SMITH@EXAMPLE.COM", " Carol.Smith@example.com "} {
			loginJWT(t, cl, name, "carol-password")
		}
	})
}

// TestLogin covers both login routes and both logout routes.
func TestLogin(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "", guardedSite(up, "")))
	cl := newClient(c.URL)
	const email, password = "bob@example.com", "bob-password"
	register(t, cl, email, password)

	for _, route := range []string{"/auth/jwt/login", "/auth/cookie/login"} {
		t.Run(route, func(t *testing.T) {
			success := http.StatusOK
			if strings.Contains(route, "cookie") {
				success = http.StatusNoContent
			}
			r := cl.postForm(t, route, url.Values{"username": {email}, "password": {password}, "grant_type": {"password"}})
			wantStatus(t, r, success)
			if success == http.StatusOK {
				var body map[string]any
				decode(t, r, &body)
				if len(body) != 2 || body["token_type"] != "bearer" || body["access_token"] == "" {
					t.Errorf("jwt login body = %s, want exactly access_token and token_type bearer", r.Body)
				}
			} else if len(r.Body) != 0 || len(r.Cookies()) != 1 {
				t.Errorf("cookie login: body %q, cookies %v; want empty body and one cookie", r.Body, r.Header.Values("Set-Cookie"))
			}
			wantStatus(t, cl.postMultipart(t, route, url.Values{"username": {email}, "password": {password}}), success)

			bad := func(user, pw string) *response {
				return cl.postForm(t, route, url.Values{"username": {user}, "password": {pw}})
			}
			wantDetail(t, bad("nobody@example.com", password), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
			wantDetail(t, bad(email, "wrong-password"), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
			wantDetail(t, cl.postMultipart(t, route, url.Values{"username": {email}, "password": {"wrong-password"}}),
				http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")

			r = cl.postForm(t, route, url.Values{})
			want422Loc(t, r, "body", "username")
			want422Loc(t, r, "body", "password")
			want422Loc(t, cl.postForm(t, route, url.Values{"username": {email}}), "body", "password")
			want422Loc(t, cl.postMultipart(t, route, url.Values{"password": {password}}), "body", "username")
			r = cl.postJSON(t, route, map[string]any{"username": email, "password": password})
			want422Loc(t, r, "body", "username")
			want422Loc(t, r, "body", "password")
			r = cl.postForm(t, route, url.Values{"username": {email}, "password": {password}, "grant_type": {"client_credentials"}})
			if it := want422Loc(t, r, "body", "grant_type"); it.Type != "string_pattern_mismatch" {
				t.Errorf("grant_type item type = %q", it.Type)
			}
			want422Loc(t, cl.do(t, http.MethodPost, route, nil), "body", "username")
		})
	}

	t.Run("logout", func(t *testing.T) {
		for _, route := range []string{"/auth/jwt/logout", "/auth/cookie/logout"} {
			wantDetail(t, cl.do(t, http.MethodPost, route, nil), http.StatusUnauthorized, "Unauthorized")
			wantDetail(t, cl.do(t, http.MethodPost, route, nil, bearer("garbage")), http.StatusUnauthorized, "Unauthorized")
		}
		token := loginJWT(t, cl, email, password)
		other := loginJWT(t, cl, email, password)
		r := cl.do(t, http.MethodPost, "/auth/jwt/logout", nil, bearer(token))
		wantStatus(t, r, http.StatusNoContent)
		if len(r.Body) != 0 {
			t.Errorf("logout body = %q, want empty", r.Body)
		}
		wantDetail(t, cl.get(t, "/users/me", bearer(token)), http.StatusUnauthorized, "Unauthorized")
		wantDetail(t, cl.do(t, http.MethodPost, "/auth/jwt/logout", nil, bearer(token)), http.StatusUnauthorized, "Unauthorized")
		// Only that session ended.
		me(t, cl, bearer(other))

		cookie := loginCookie(t, cl, email, password)
		me(t, cl, withCookie(cookie))
		r = cl.do(t, http.MethodPost, "/auth/cookie/logout", nil, withCookie(cookie))
		wantStatus(t, r, http.StatusNoContent)
		if sc := r.Header.Get("Set-Cookie"); !strings.HasPrefix(sc, "gatehouse_session=;") || !strings.Contains(sc, "Max-Age=0") {
			t.Errorf("cookie logout Set-Cookie = %q, want a clearing gatehouse_session cookie", sc)
		}
		wantDetail(t, cl.get(t, "/users/me", withCookie(cookie)), http.StatusUnauthorized, "Unauthorized")
		wantDetail(t, cl.do(t, http.MethodPost, "/auth/cookie/logout", nil, withCookie(cookie)), http.StatusUnauthorized, "Unauthorized")
		me(t, cl, bearer(other))
	})
}

// TestUsersMe covers GET and PATCH /users/me with require_current_password
// at its default (on).
func TestUsersMe(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "", guardedSite(up, "")))
	cl := newClient(c.URL)
	const email, password = "carol@example.com", "carol-password"
	carol := register(t, cl, email, password)
	register(t, cl, "dave@example.com", "dave-password")
	token := loginJWT(t, cl, email, password)

	t.Run("GET", func(t *testing.T) {
		u := me(t, cl, bearer(token))
		if u.ID != carol.ID || u.Email != email {
			t.Errorf("GET /users/me = %+v", u)
		}
		cookie := loginCookie(t, cl, email, password)
		if u := me(t, cl, withCookie(cookie)); u.ID != carol.ID {
			t.Errorf("GET /users/me with cookie = %+v", u)
		}
		wantDetail(t, cl.get(t, "/users/me"), http.StatusUnauthorized, "Unauthorized")
		wantDetail(t, cl.get(t, "/users/me", bearer("not-a-token")), http.StatusUnauthorized, "Unauthorized")
		if r := cl.get(t, "/users/me"); r.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("401 carries WWW-Authenticate %q; fastapi-users sends none", r.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("PATCH 200", func(t *testing.T) {
		r := cl.patchJSON(t, "/users/me", map[string]any{"full_name": "Carol C."}, bearer(token))
		wantStatus(t, r, http.StatusOK)
		var u apiUser
		decode(t, r, &u)
		if u.FullName == nil || *u.FullName != "Carol C." {
			t.Errorf("full_name = %v", u.FullName)
		}
		// {} changes nothing; privileged fields are ignored.
		wantStatus(t, cl.patchJSON(t, "/users/me", `{}`, bearer(token)), http.StatusOK)
		r = cl.patchJSON(t, "/users/me", map[string]any{"is_superuser": true, "is_active": false, "is_verified": true,
			"roles": []string{"admin"}, "id": "00000000-0000-0000-0000-000000000000"}, bearer(token))
		wantStatus(t, r, http.StatusOK)
		decode(t, r, &u)
		if u.ID != carol.ID || u.IsSuperuser || !u.IsActive || u.IsVerified || len(u.Roles) != 0 {
			t.Errorf("privileged fields were applied: %s", r.Body)
		}
		// full_name null clears the name.
		r = cl.patchJSON(t, "/users/me", `{"full_name": null}`, bearer(token))
		wantStatus(t, r, http.StatusOK)
		decode(t, r, &u)
		if u.FullName != nil {
			t.Errorf("full_name after null = %q", *u.FullName)
		}
	})

	t.Run("require_current_password", func(t *testing.T) {
		// Changing the password or the email needs current_password.
		r := cl.patchJSON(t, "/users/me", map[string]any{"password": "carol-new-password"}, bearer(token))
		if it := want422Loc(t, r, "body", "current_password"); it.Type != "missing" {
			t.Errorf("item type = %q, want missing", it.Type)
		}
		want422Loc(t, cl.patchJSON(t, "/users/me", map[string]any{"email": "carol2@example.com"}, bearer(token)),
			"body", "current_password")
		r = cl.patchJSON(t, "/users/me", map[string]any{"password": "carol-new-password", "current_password": "wrong-password"}, bearer(token))
		wantStatus(t, r, http.StatusBadRequest)
		var body struct {
			Detail struct{ Code, Reason string } `json:"detail"`
		}
		decode(t, r, &body)
		if body.Detail.Code != "UPDATE_USER_INVALID_PASSWORD" || body.Detail.Reason == "" {
			t.Errorf("wrong current_password: %s", r.Body)
		}
		// Setting the email to the one it already has is no change.
		wantStatus(t, cl.patchJSON(t, "/users/me", map[string]any{"email": email}, bearer(token)), http.StatusOK)
		// Nothing changed: the old password still logs in.
		loginJWT(t, cl, email, password)
	})

	t.Run("PATCH 400", func(t *testing.T) {
		r := cl.patchJSON(t, "/users/me", map[string]any{"email": "DAVE@example.com", "current_password": password}, bearer(token))
		wantDetail(t, r, http.StatusBadRequest, "UPDATE_USER_EMAIL_ALREADY_EXISTS")
		r = cl.patchJSON(t, "/users/me", map[string]any{"password": "short", "current_password": password}, bearer(token))
		wantDetail(t, r, http.StatusBadRequest, map[string]any{"code": "UPDATE_USER_INVALID_PASSWORD",
			"reason": "Password should be at least 8 characters"})
	})

	t.Run("PATCH 401 and 422", func(t *testing.T) {
		wantDetail(t, cl.patchJSON(t, "/users/me", `{"full_name":"x"}`), http.StatusUnauthorized, "Unauthorized")
		want422Loc(t, cl.patchJSON(t, "/users/me", `{"email":"not-an-email"}`, bearer(token)), "body", "email")
		want422Loc(t, cl.patchJSON(t, "/users/me", `{"email":123}`, bearer(token)), "body", "email")
		want422Loc(t, cl.patchJSON(t, "/users/me", `{"email":null}`, bearer(token)), "body", "email")
		if it := want422Loc(t, cl.patchJSON(t, "/users/me", `{"is_superuser":"notabool"}`, bearer(token)),
			"body", "is_superuser"); it.Type != "bool_parsing" {
			t.Errorf("item type = %q, want bool_parsing", it.Type)
		}
		want422Loc(t, cl.patchJSON(t, "/users/me", `{"full_name":42}`, bearer(token)), "body", "full_name")
		want422Loc(t, cl.patchJSON(t, "/users/me", nil, bearer(token)), "body")
		want422Loc(t, cl.patchJSON(t, "/users/me", `[1,2]`, bearer(token)), "body")
		want422Loc(t, cl.do(t, http.MethodPatch, "/users/me", strings.NewReader(`{"full_name":"x"}`), bearer(token)), "body")
	})

	t.Run("password change keeps this session, ends the others", func(t *testing.T) {
		other := loginJWT(t, cl, email, password)
		otherCookie := loginCookie(t, cl, email, password)
		const newPassword = "carol-new-password"
		r := cl.patchJSON(t, "/users/me", map[string]any{"password": newPassword, "current_password": password}, bearer(token))
		wantStatus(t, r, http.StatusOK)
		me(t, cl, bearer(token))
		wantDetail(t, cl.get(t, "/users/me", bearer(other)), http.StatusUnauthorized, "Unauthorized")
		wantDetail(t, cl.get(t, "/users/me", withCookie(otherCookie)), http.StatusUnauthorized, "Unauthorized")
		path := uniquePath("/app")
		wantDetail(t, cl.get(t, path, bearer(other)), http.StatusUnauthorized, "Unauthorized")
		up.NeverSaw(t, path)
		wantDetail(t, cl.postForm(t, "/auth/jwt/login", formLogin(email, password)), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
		loginJWT(t, cl, email, newPassword)
	})

	t.Run("email change", func(t *testing.T) {
		r := cl.patchJSON(t, "/users/me", map[string]any{"email": " Carol.New@EXAMPLE.com ", "current_password": "carol-new-password"}, bearer(token))
		wantStatus(t, r, http.StatusOK)
		var u apiUser
		decode(t, r, &u)
		if u.Email != "Carol.New@example.com" {
			t.Errorf("email = %q, want Carol.New@example.com", u.Email)
		}
		loginJWT(t, cl, "carol.new@example.com", "carol-new-password")
		wantDetail(t, cl.postForm(t, "/auth/jwt/login", formLogin(email, "carol-new-password")), http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
		// The session that made the change goes on, with the new identity upstream.
		path := uniquePath("/app")
		wantStatus(t, cl.get(t, path, bearer(token)), http.StatusOK)
		if got := up.Last(t, path).Values("Remote-User"); len(got) != 1 || got[0] != "Carol.New@example.com" {
			t.Errorf("Remote-User after email change = %q", got)
		}
	})
}

// TestUsersByID covers /users/{id} for superusers and others, roles, and
// deactivation and deletion ending sessions.
func TestUsersByID(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "", guardedSite(up, "")))
	cl := newClient(c.URL)

	root := register(t, cl, "root@example.com", "root-password")
	makeSuperuser(t, c.Path("gatehouse.db"), root.ID)
	// A fresh login reads the row: this session is a superuser's.
	su := loginJWT(t, cl, "root@example.com", "root-password")
	erin := register(t, cl, "erin@example.com", "erin-password")
	erinTok := loginJWT(t, cl, "erin@example.com", "erin-password")
	erinCookie := loginCookie(t, cl, "erin@example.com", "erin-password")
	frank := register(t, cl, "frank@example.com", "frank-password")
	frankTok := loginJWT(t, cl, "frank@example.com", "frank-password")

	t.Run("superuser 200", func(t *testing.T) {
		if u := me(t, cl, bearer(su)); !u.IsSuperuser {
			t.Fatalf("root is not a superuser after the database update: %+v", u)
		}
		r := cl.get(t, "/users/"+erin.ID, bearer(su))
		wantStatus(t, r, http.StatusOK)
		var u apiUser
		decode(t, r, &u)
		if u.ID != erin.ID || u.Email != "erin@example.com" {
			t.Errorf("GET /users/{id} = %s", r.Body)
		}
		// Python's uuid forms are accepted: upper case, no hyphens.
		wantStatus(t, cl.get(t, "/users/"+strings.ToUpper(erin.ID), bearer(su)), http.StatusOK)
		wantStatus(t, cl.get(t, "/users/"+strings.ReplaceAll(erin.ID, "-", ""), bearer(su)), http.StatusOK)
	})

	t.Run("non-superuser 403, anonymous 401", func(t *testing.T) {
		for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodDelete} {
			r := cl.do(t, m, "/users/"+frank.ID, strings.NewReader(`{"is_superuser":true}`), bearer(erinTok),
				header("Content-Type", "application/json"))
			wantDetail(t, r, http.StatusForbidden, "Forbidden")
			wantDetail(t, cl.do(t, m, "/users/"+frank.ID, nil), http.StatusUnauthorized, "Unauthorized")
			// Even for unknown ids: 403 comes before 404.
			wantDetail(t, cl.do(t, m, "/users/00000000-0000-4000-8000-000000000000", nil, bearer(erinTok)), http.StatusForbidden, "Forbidden")
		}
		if u := me(t, cl, bearer(erinTok)); u.IsSuperuser {
			t.Error("a non-superuser's PATCH made someone superuser")
		}
	})

	t.Run("404", func(t *testing.T) {
		for _, id := range []string{"00000000-0000-4000-8000-000000000000", "not-a-uuid", "123", erin.ID + "0", "me%20"} {
			for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodDelete} {
				wantDetail(t, cl.do(t, m, "/users/"+id, nil, bearer(su)), http.StatusNotFound, "Not Found")
			}
		}
		// DELETE /users/me is /users/{id} with id "me", as in fastapi-users:
		// 404 for a superuser, 403 for others.
		wantDetail(t, cl.do(t, http.MethodDelete, "/users/me", nil, bearer(su)), http.StatusNotFound, "Not Found")
		wantDetail(t, cl.do(t, http.MethodDelete, "/users/me", nil, bearer(erinTok)), http.StatusForbidden, "Forbidden")
	})

	t.Run("PATCH roles reach Remote-Groups", func(t *testing.T) {
		r := cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"roles": []string{"editor", "billing"}, "full_name": "Erin E.",
			"is_verified": true}, bearer(su))
		wantStatus(t, r, http.StatusOK)
		var u apiUser
		decode(t, r, &u)
		if strings.Join(u.Roles, ",") != "editor,billing" || !u.IsVerified || u.FullName == nil || *u.FullName != "Erin E." {
			t.Errorf("PATCH /users/{id} = %s", r.Body)
		}
		// The change takes effect at once for the user's existing sessions.
		path := uniquePath("/app")
		wantStatus(t, cl.get(t, path, bearer(erinTok)), http.StatusOK)
		wantIdentity(t, up.Last(t, path), map[string]string{"Remote-User": "erin@example.com", "Remote-Email": "erin@example.com",
			"Remote-User-Id": erin.ID, "Remote-Name": "Erin E.", "Remote-Groups": "editor,billing"})
		// Invalid roles, taken emails, bad types.
		want422Loc(t, cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"roles": []string{"a,b"}}, bearer(su)), "body", "roles")
		want422Loc(t, cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"roles": "admin"}, bearer(su)), "body", "roles")
		want422Loc(t, cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"is_active": "maybe"}, bearer(su)), "body", "is_active")
		wantDetail(t, cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"email": "FRANK@example.com"}, bearer(su)),
			http.StatusBadRequest, "UPDATE_USER_EMAIL_ALREADY_EXISTS")
		wantDetail(t, cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"password": "short"}, bearer(su)),
			http.StatusBadRequest, map[string]any{"code": "UPDATE_USER_INVALID_PASSWORD", "reason": "Password should be at least 8 characters"})
		// Roles cleared: Remote-Groups is no longer sent.
		wantStatus(t, cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"roles": []string{}}, bearer(su)), http.StatusOK)
		path = uniquePath("/app")
		wantStatus(t, cl.get(t, path, bearer(erinTok)), http.StatusOK)
		if g := up.Last(t, path).Values("Remote-Groups"); len(g) != 0 {
			t.Errorf("Remote-Groups = %q after the roles were cleared, want absent", g)
		}
	})

	t.Run("PATCH is_active false ends sessions", func(t *testing.T) {
		me(t, cl, withCookie(erinCookie))
		wantStatus(t, cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"is_active": false}, bearer(su)), http.StatusOK)
		wantDetail(t, cl.get(t, "/users/me", bearer(erinTok)), http.StatusUnauthorized, "Unauthorized")
		wantDetail(t, cl.get(t, "/users/me", withCookie(erinCookie)), http.StatusUnauthorized, "Unauthorized")
		path := uniquePath("/app")
		wantDetail(t, cl.get(t, path, bearer(erinTok)), http.StatusUnauthorized, "Unauthorized")
		up.NeverSaw(t, path)
		wantDetail(t, cl.postForm(t, "/auth/jwt/login", formLogin("erin@example.com", "erin-password")),
			http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
		// Reactivated, the old sessions stay dead; a new login works.
		wantStatus(t, cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"is_active": true}, bearer(su)), http.StatusOK)
		wantDetail(t, cl.get(t, "/users/me", bearer(erinTok)), http.StatusUnauthorized, "Unauthorized")
		erinTok = loginJWT(t, cl, "erin@example.com", "erin-password")
	})

	t.Run("PATCH password by superuser", func(t *testing.T) {
		// No current_password needed; the user's sessions end.
		wantStatus(t, cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"password": "erin-reset-password"}, bearer(su)), http.StatusOK)
		wantDetail(t, cl.get(t, "/users/me", bearer(erinTok)), http.StatusUnauthorized, "Unauthorized")
		me(t, cl, bearer(su))
		erinTok = loginJWT(t, cl, "erin@example.com", "erin-reset-password")
	})

	t.Run("DELETE 204", func(t *testing.T) {
		r := cl.do(t, http.MethodDelete, "/users/"+frank.ID, nil, bearer(su))
		wantStatus(t, r, http.StatusNoContent)
		if len(r.Body) != 0 {
			t.Errorf("DELETE body = %q", r.Body)
		}
		wantDetail(t, cl.get(t, "/users/me", bearer(frankTok)), http.StatusUnauthorized, "Unauthorized")
		path := uniquePath("/app")
		wantDetail(t, cl.get(t, path, bearer(frankTok)), http.StatusUnauthorized, "Unauthorized")
		up.NeverSaw(t, path)
		wantDetail(t, cl.get(t, "/users/"+frank.ID, bearer(su)), http.StatusNotFound, "Not Found")
		wantDetail(t, cl.do(t, http.MethodDelete, "/users/"+frank.ID, nil, bearer(su)), http.StatusNotFound, "Not Found")
		wantDetail(t, cl.postForm(t, "/auth/jwt/login", formLogin("frank@example.com", "frank-password")),
			http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
		// The email is free again.
		register(t, cl, "frank@example.com", "frank-password-2")
	})

	t.Run("superuser may demote", func(t *testing.T) {
		wantStatus(t, cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"is_superuser": true}, bearer(su)), http.StatusOK)
		r := cl.get(t, "/users/"+root.ID, bearer(erinTok))
		wantStatus(t, r, http.StatusOK)
		wantStatus(t, cl.patchJSON(t, "/users/"+erin.ID, map[string]any{"is_superuser": false}, bearer(su)), http.StatusOK)
		wantDetail(t, cl.get(t, "/users/"+root.ID, bearer(erinTok)), http.StatusForbidden, "Forbidden")
	})
}

// TestRouting covers 405, trailing-slash redirects, unknown paths under
// the prefixes, and the precedence of failures.
func TestRouting(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "", guardedSite(up, "allow /*")))
	cl := newClient(c.URL)
	root := register(t, cl, "admin@example.com", "admin-password")
	makeSuperuser(t, c.Path("gatehouse.db"), root.ID)
	su := loginJWT(t, cl, "admin@example.com", "admin-password")

	t.Run("405", func(t *testing.T) {
		for _, tc := range []struct{ method, path, allow string }{
			{http.MethodPut, "/auth/register", "GET, HEAD, POST"},
			{http.MethodPut, "/auth/jwt/login", "POST"},
			{http.MethodGet, "/auth/jwt/logout", "POST"},
			{http.MethodGet, "/auth/cookie/login", "POST"},
			{http.MethodDelete, "/auth/cookie/logout", "POST"},
			{http.MethodPost, "/users/me", "GET, PATCH"},
			{http.MethodPut, "/users/me", "GET, PATCH"},
			{http.MethodPut, "/users/" + root.ID, "GET, PATCH, DELETE"},
			{http.MethodPost, "/users/" + root.ID, "GET, PATCH, DELETE"},
		} {
			r := cl.do(t, tc.method, tc.path, nil, bearer(su))
			wantDetail(t, r, http.StatusMethodNotAllowed, "Method Not Allowed")
			// /users/me also lists DELETE, which is /users/{id} with id "me".
			if got := r.Header.Get("Allow"); !strings.HasPrefix(got, tc.allow) {
				t.Errorf("%s %s: Allow = %q, want %q", tc.method, tc.path, got, tc.allow)
			}
		}
	})

	t.Run("trailing slash 307", func(t *testing.T) {
		for _, p := range []string{"/auth/register/", "/auth/jwt/login/", "/users/me/"} {
			r := cl.do(t, http.MethodPost, p+"?x=1", nil)
			wantStatus(t, r, http.StatusTemporaryRedirect)
			if loc := r.Header.Get("Location"); loc != strings.TrimSuffix(p, "/")+"?x=1" {
				t.Errorf("%s: Location = %q", p, loc)
			}
		}
	})

	t.Run("unknown paths 404 and stay inside", func(t *testing.T) {
		// The guard allows everything here, so only the endpoints stand
		// between these paths and the upstream.
		for _, p := range []string{"/auth", "/auth/", "/auth/nope", "/auth/jwt", "/auth/jwt/login/x", "/users", "/users/",
			"/users/a/b", "/auth/verify-nothing", "/auth/" + strings.Repeat("x", 300)} {
			for _, m := range []string{http.MethodGet, http.MethodPost} {
				r := cl.do(t, m, p, nil, bearer(su))
				wantDetail(t, r, http.StatusNotFound, "Not Found")
			}
			up.NeverSaw(t, p)
		}
		// A path outside the prefixes does reach the upstream.
		wantStatus(t, cl.get(t, "/authx"), http.StatusOK)
		up.Last(t, "/authx")
	})

	t.Run("precedence", func(t *testing.T) {
		// Malformed JSON: 422 before 401.
		r := cl.patchJSON(t, "/users/me", `{"full_name":`)
		if it := want422Loc(t, r); it.Type != "json_invalid" {
			t.Errorf("malformed JSON without token: %s", r.Body)
		}
		r = cl.patchJSON(t, "/users/00000000-0000-4000-8000-000000000000", `{`)
		if it := want422Loc(t, r); it.Type != "json_invalid" {
			t.Errorf("malformed JSON to /users/{id} without token: %s", r.Body)
		}
		// Valid JSON, invalid schema, no token: 401.
		wantDetail(t, cl.patchJSON(t, "/users/me", `{"email":123}`), http.StatusUnauthorized, "Unauthorized")
		wantDetail(t, cl.do(t, http.MethodPatch, "/users/me", nil), http.StatusUnauthorized, "Unauthorized")
		// Unknown id, no body: 404 before the schema's 422.
		wantDetail(t, cl.do(t, http.MethodPatch, "/users/00000000-0000-4000-8000-000000000000", nil, bearer(su)), http.StatusNotFound, "Not Found")
		wantDetail(t, cl.patchJSON(t, "/users/not-a-uuid", `{"is_active":"x"}`, bearer(su)), http.StatusNotFound, "Not Found")
		// Known id, bad schema: 422.
		want422Loc(t, cl.do(t, http.MethodPatch, "/users/"+root.ID, nil, bearer(su)), "body")
	})
}

// TestRequireVerified runs with `require_verified on`.
func TestRequireVerified(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "require_verified on", guardedSite(up, "allow /public/*")))
	cl := newClient(c.URL)
	db := c.Path("gatehouse.db")

	gina := register(t, cl, "gina@example.com", "gina-password")
	wantDetail(t, cl.postForm(t, "/auth/jwt/login", formLogin("gina@example.com", "gina-password")),
		http.StatusBadRequest, "LOGIN_USER_NOT_VERIFIED")
	wantDetail(t, cl.postForm(t, "/auth/cookie/login", formLogin("gina@example.com", "gina-password")),
		http.StatusBadRequest, "LOGIN_USER_NOT_VERIFIED")
	// A wrong password says nothing about verification.
	wantDetail(t, cl.postForm(t, "/auth/jwt/login", formLogin("gina@example.com", "wrong-password")),
		http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")

	dbExec(t, db, `UPDATE users SET is_verified = 1 WHERE id = ?`, gina.ID)
	token := loginJWT(t, cl, "gina@example.com", "gina-password")
	if u := me(t, cl, bearer(token)); !u.IsVerified {
		t.Fatalf("gina is not verified: %+v", u)
	}
	path := uniquePath("/app")
	wantStatus(t, cl.get(t, path, bearer(token)), http.StatusOK)

	// An email change makes the user unverified: 403 on /users/*, logout
	// and the guard; allowed paths still pass.
	r := cl.patchJSON(t, "/users/me", map[string]any{"email": "gina2@example.com", "current_password": "gina-password"}, bearer(token))
	wantStatus(t, r, http.StatusOK)
	var u apiUser
	decode(t, r, &u)
	if u.IsVerified {
		t.Fatalf("still verified after an email change: %s", r.Body)
	}
	wantDetail(t, cl.get(t, "/users/me", bearer(token)), http.StatusForbidden, "Forbidden")
	wantDetail(t, cl.patchJSON(t, "/users/me", `{"full_name":"G"}`, bearer(token)), http.StatusForbidden, "Forbidden")
	wantDetail(t, cl.get(t, "/users/"+gina.ID, bearer(token)), http.StatusForbidden, "Forbidden")
	wantDetail(t, cl.do(t, http.MethodPost, "/auth/jwt/logout", nil, bearer(token)), http.StatusForbidden, "Forbidden")
	path = uniquePath("/app")
	wantDetail(t, cl.get(t, path, bearer(token)), http.StatusForbidden, "Forbidden")
	up.NeverSaw(t, path)
	path = uniquePath("/public")
	wantStatus(t, cl.get(t, path, bearer(token)), http.StatusOK)
	wantIdentity(t, up.Last(t, path), map[string]string{"Remote-User": "gina2@example.com", "Remote-Email": "gina2@example.com",
		"Remote-User-Id": gina.ID})
	wantDetail(t, cl.get(t, "/users/me"), http.StatusUnauthorized, "Unauthorized")
}

// TestOptions runs with `require_current_password off`, a shorter
// password_min_length and another cookie name.
func TestOptions(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "require_current_password off\npassword_min_length 12\ncookie_name sid",
		guardedSite(up, "")))
	cl := newClient(c.URL)
	wantDetail(t, cl.postJSON(t, "/auth/register", map[string]any{"email": "h@example.com", "password": "eleven-char"}),
		http.StatusBadRequest, map[string]any{"code": "REGISTER_INVALID_PASSWORD", "reason": "Password should be at least 12 characters"})
	register(t, cl, "h@example.com", "twelve-chars")
	token := loginJWT(t, cl, "h@example.com", "twelve-chars")
	r := cl.patchJSON(t, "/users/me", map[string]any{"password": "a-new-password", "email": "h2@example.com"}, bearer(token))
	wantStatus(t, r, http.StatusOK)
	loginJWT(t, cl, "h2@example.com", "a-new-password")

	cookie := loginCookie(t, cl, "h2@example.com", "a-new-password")
	if cookie.Name != "sid" {
		t.Errorf("cookie name = %q, want sid", cookie.Name)
	}
	path := uniquePath("/app")
	wantStatus(t, cl.get(t, path, header("Cookie", "gatehouse_session=x; sid="+cookie.Value)), http.StatusOK)
	if ck := up.Last(t, path).Header.Get("Cookie"); ck != "gatehouse_session=x" {
		t.Errorf("upstream Cookie = %q, want only the unrelated cookie", ck)
	}
}

// TestRegistrationClosed: `registration closed` refuses POST /auth/register.
func TestRegistrationClosed(t *testing.T) {
	t.Parallel()
	up := startUpstream(t)
	c := startCaddy(t, gatehouseConfig(freePort(t), "registration closed", guardedSite(up, "")))
	cl := newClient(c.URL)
	r := cl.postJSON(t, "/auth/register", map[string]any{"email": "i@example.com", "password": "closed-password"})
	wantDetail(t, r, http.StatusForbidden, "Forbidden")
	wantDetail(t, cl.postForm(t, "/auth/jwt/login", formLogin("i@example.com", "closed-password")),
		http.StatusBadRequest, "LOGIN_BAD_CREDENTIALS")
	if n := up.Count(); n != 0 {
		t.Errorf("upstream received %d requests", n)
	}
}
