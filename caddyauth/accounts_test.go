package caddyauth_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
	"github.com/gatehouse-caddy/gatehouse/store"
)

func TestRegister(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, nil)
	u, err := e.svc.Register(ctx, "  Gawain@Camelot.BT ", testPassword, "Sir Gawain", testLinks)
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "Gawain@camelot.bt" || u.FullName != "Sir Gawain" {
		t.Errorf("registered %q / %q", u.Email, u.FullName)
	}
	if !u.IsActive || u.IsSuperuser || u.IsVerified || len(u.Roles) != 0 {
		t.Errorf("a new user is %+v; want active, not superuser, not verified, no roles", u)
	}
	if !phcArgon2id.MatchString(u.HashedPassword) {
		t.Errorf("stored hash %q is not argon2id", u.HashedPassword)
	}
	if len(u.ID) != 36 || strings.ToLower(u.ID) != u.ID {
		t.Errorf("id %q is not a lowercase hyphenated UUID", u.ID)
	}
	stored, err := e.db.UserByEmail(ctx, "gawain@CAMELOT.bt")
	if err != nil || stored.ID != u.ID {
		t.Fatalf("stored user: %+v, %v", stored, err)
	}
	e.login(t, "gawain@camelot.bt", store.TransportBearer)
}

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, nil)
	if _, err := e.svc.Register(ctx, "king.arthur@camelot.bt", testPassword, "", testLinks); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, email, password, fullName string
		check                           func(t *testing.T, err error)
	}{
		{"duplicate in other case", "King.Arthur@CAMELOT.bt", testPassword, "", isErr(caddyauth.ErrUserExists)},
		{"weak password", "lancelot@camelot.bt", "short", "", isPasswordError("Password should be at least 8 characters")},
		// fastapi-users checks the policy before the duplicate.
		{"duplicate with weak password", "king.arthur@camelot.bt", "short", "", isPasswordError("Password should be at least 8 characters")},
		{"password containing the email", "gawain@camelot.bt", "xgawain@camelot.btx", "", isPasswordError("Password should not contain e-mail")},
		{"invalid email", "king.arthur", testPassword, "", isFieldError("email", "value_error")},
		{"control character in name", "percival@camelot.bt", testPassword, "Sir\r\nX-Evil: 1", isFieldError("full_name", "value_error")},
		{"name too long", "percival@camelot.bt", testPassword, strings.Repeat("n", 256), isFieldError("full_name", "string_too_long")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := e.svc.Register(ctx, tc.email, tc.password, tc.fullName, testLinks)
			if u != nil {
				t.Errorf("a user was returned: %+v", u)
			}
			tc.check(t, err)
		})
	}
	users, err := e.db.ListUsers(ctx)
	if err != nil || len(users) != 1 {
		t.Errorf("store holds %d users, want 1: %v", len(users), err)
	}
}

func TestRegistrationClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, func(o *caddyauth.Options) { o.RegistrationClosed = true })
	if _, err := e.svc.Register(ctx, "lancelot@camelot.bt", testPassword, "", testLinks); !errors.Is(err, caddyauth.ErrRegistrationClosed) {
		t.Fatalf("Register = %v, want ErrRegistrationClosed", err)
	}
	// Even a bad request is told only that registration is closed.
	if _, err := e.svc.Register(ctx, "not an email", "x", "", testLinks); !errors.Is(err, caddyauth.ErrRegistrationClosed) {
		t.Fatalf("Register = %v, want ErrRegistrationClosed", err)
	}
	if users, _ := e.db.ListUsers(ctx); len(users) != 0 {
		t.Fatalf("closed registration created %d users", len(users))
	}
	// The CLI's path still works.
	e.mustUser(t, "admin@camelot.bt")
}

func isErr(want error) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("error = %v, want %v", err, want)
		}
	}
}

func isPasswordError(reason string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var pe *caddyauth.PasswordError
		if !errors.As(err, &pe) || pe.Reason != reason {
			t.Fatalf("error = %v, want PasswordError %q", err, reason)
		}
	}
}

func isFieldError(field, typ string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var fe *caddyauth.FieldError
		if !errors.As(err, &fe) || fe.Field != field || fe.Type != typ {
			t.Fatalf("error = %#v, want FieldError %s/%s", err, field, typ)
		}
	}
}

func TestUpdateSelfIgnoresPrivilegedFields(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	res := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	p := e.mustAuth(t, store.TransportBearer, res.Credential)
	u, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{
		IsActive: ptr(false), IsSuperuser: ptr(true), IsVerified: ptr(true), Roles: ptr([]string{"admin"}),
		FullName: ptr("Arthur Pendragon"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !u.IsActive || u.IsSuperuser || u.IsVerified || len(u.Roles) != 0 || u.FullName != "Arthur Pendragon" {
		t.Fatalf("after a self-update with privileged fields: %+v", u)
	}
	stored, _ := e.db.UserByID(ctx, u.ID)
	if !stored.IsActive || stored.IsSuperuser || stored.IsVerified || len(stored.Roles) != 0 {
		t.Fatalf("stored: %+v", stored)
	}
	// The name change is visible at once to this process.
	if p := e.mustAuth(t, store.TransportBearer, res.Credential); p.FullName != "Arthur Pendragon" {
		t.Errorf("principal's name %q after the change", p.FullName)
	}
}

func TestUpdateSelfRequireCurrentPassword(t *testing.T) {
	t.Parallel()
	const newPassword = "a brand new password"
	cases := []struct {
		name    string
		require bool
		patch   caddyauth.UserPatch
		check   func(*testing.T, error) // nil: accepted
	}{
		{"password without current", true, caddyauth.UserPatch{Password: ptr(newPassword)}, isFieldError("current_password", "missing")},
		{"password with wrong current", true, caddyauth.UserPatch{Password: ptr(newPassword), CurrentPassword: ptr("nope")}, isPasswordError("Current password is incorrect")},
		{"password with current", true, caddyauth.UserPatch{Password: ptr(newPassword), CurrentPassword: ptr(testPassword)}, nil},
		{"email without current", true, caddyauth.UserPatch{Email: ptr("arthur@avalon.bt")}, isFieldError("current_password", "missing")},
		{"email with wrong current", true, caddyauth.UserPatch{Email: ptr("arthur@avalon.bt"), CurrentPassword: ptr("")}, isPasswordError("Current password is incorrect")},
		{"email with current", true, caddyauth.UserPatch{Email: ptr("arthur@avalon.bt"), CurrentPassword: ptr(testPassword)}, nil},
		{"same email needs nothing", true, caddyauth.UserPatch{Email: ptr("arthur@camelot.bt")}, nil},
		{"name needs nothing", true, caddyauth.UserPatch{FullName: ptr("Arthur")}, nil},
		{"option off: password", false, caddyauth.UserPatch{Password: ptr(newPassword)}, nil},
		{"option off: email", false, caddyauth.UserPatch{Email: ptr("arthur@avalon.bt")}, nil},
		{"weak new password, right current", true, caddyauth.UserPatch{Password: ptr("short"), CurrentPassword: ptr(testPassword)}, isPasswordError("Password should be at least 8 characters")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, func(o *caddyauth.Options) { o.RequireCurrentPassword = tc.require })
			before := e.mustUser(t, "arthur@camelot.bt")
			p := e.mustAuth(t, store.TransportBearer, e.login(t, "arthur@camelot.bt", store.TransportBearer).Credential)
			_, err := e.svc.UpdateSelf(ctx, p, tc.patch)
			after, _ := e.db.UserByID(ctx, before.ID)
			if tc.check != nil {
				tc.check(t, err)
				if after.HashedPassword != before.HashedPassword || after.Email != before.Email {
					t.Fatal("a refused update changed the user")
				}
				return
			}
			if err != nil {
				t.Fatalf("UpdateSelf = %v", err)
			}
			if tc.patch.Password != nil {
				if _, err := e.svc.Login(ctx, after.Email, *tc.patch.Password, store.TransportBearer, caddyauth.ClientInfo{}); err != nil {
					t.Errorf("new password does not log in: %v", err)
				}
			}
		})
	}
}

func TestEmailChangeResetsVerification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, nil)
	u := e.mustUser(t, "arthur@camelot.bt", func(nu *caddyauth.NewUser) { nu.IsVerified = true })
	e.mustUser(t, "bedivere@camelot.bt")
	p := e.mustAuth(t, store.TransportBearer, e.login(t, "arthur@camelot.bt", store.TransportBearer).Credential)

	// The same address again changes nothing.
	got, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Email: ptr("arthur@camelot.bt")})
	if err != nil || !got.IsVerified {
		t.Fatalf("same email: %+v, %v", got, err)
	}
	// A taken one is refused, ignoring case.
	if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Email: ptr("Bedivere@Camelot.bt"), CurrentPassword: ptr(testPassword)}); !errors.Is(err, caddyauth.ErrEmailTaken) {
		t.Fatalf("taken email: %v, want ErrEmailTaken", err)
	}
	got, err = e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Email: ptr("Arthur@Avalon.BT"), CurrentPassword: ptr(testPassword)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "Arthur@avalon.bt" || got.IsVerified {
		t.Fatalf("after email change: %q verified=%v; want Arthur@avalon.bt, unverified", got.Email, got.IsVerified)
	}
	// A superuser may change the email and verify it in one go.
	got, err = e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Email: ptr("arthur@camelot.bt"), IsVerified: ptr(true)}, "")
	if err != nil || !got.IsVerified {
		t.Fatalf("privileged email change with is_verified: %+v, %v", got, err)
	}
}

func TestPasswordChangeKeepsOnlyTheCallersSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, nil)
	e.mustUser(t, "arthur@camelot.bt")
	mine := e.login(t, "arthur@camelot.bt", store.TransportCookie)
	otherBearer := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	otherCookie := e.login(t, "arthur@camelot.bt", store.TransportCookie)
	p := e.mustAuth(t, store.TransportCookie, mine.Credential)
	e.mustAuth(t, store.TransportBearer, otherBearer.Credential) // cached: must still end at once
	e.mustAuth(t, store.TransportCookie, otherCookie.Credential)

	if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{Password: ptr("a brand new password"), CurrentPassword: ptr(testPassword)}); err != nil {
		t.Fatal(err)
	}
	e.mustAuth(t, store.TransportCookie, mine.Credential)
	e.mustRefuse(t, store.TransportBearer, otherBearer.Credential)
	e.mustRefuse(t, store.TransportCookie, otherCookie.Credential)
	e.clock.Advance(caddyauth.MaxStaleness)
	e.mustAuth(t, store.TransportCookie, mine.Credential)
	if _, err := e.svc.Login(ctx, "arthur@camelot.bt", testPassword, store.TransportBearer, caddyauth.ClientInfo{}); !errors.Is(err, caddyauth.ErrBadCredentials) {
		t.Errorf("old password still logs in: %v", err)
	}
}

func TestUpdateSelfOfDeletedUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, nil)
	u := e.mustUser(t, "arthur@camelot.bt")
	p := e.mustAuth(t, store.TransportBearer, e.login(t, "arthur@camelot.bt", store.TransportBearer).Credential)
	if err := e.db.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{FullName: ptr("x")}); !errors.Is(err, caddyauth.ErrUnauthenticated) {
		t.Fatalf("UpdateSelf of a deleted user = %v, want ErrUnauthenticated", err)
	}
}

func TestUpdateUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, nil)
	u := e.mustUser(t, "arthur@camelot.bt")
	e.mustUser(t, "bedivere@camelot.bt")
	res := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	e.mustAuth(t, store.TransportBearer, res.Credential)

	got, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{
		IsSuperuser: ptr(true), IsVerified: ptr(true), Roles: ptr([]string{"knights", "admin", "knights", "round-table:seat.1_a"}),
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsSuperuser || !got.IsVerified || !slices.Equal(got.Roles, []string{"knights", "admin", "round-table:seat.1_a"}) {
		t.Fatalf("after update: %+v (roles deduplicated in order expected)", got)
	}
	// Visible at once to this process, although the credential was cached.
	p := e.mustAuth(t, store.TransportBearer, res.Credential)
	if !p.IsSuperuser || !p.HasRole("admin") || p.HasRole("adm") {
		t.Fatalf("principal after update: %+v", p)
	}

	got, err = e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Roles: ptr([]string{})}, "")
	if err != nil || len(got.Roles) != 0 {
		t.Fatalf("clearing roles: %+v, %v", got, err)
	}

	tooMany := make([]string, caddyauth.MaxRoles+1)
	for i := range tooMany {
		tooMany[i] = "r" + strings.Repeat("x", i%10) + string(rune('a'+i%26))
	}
	invalid := map[string][]string{
		"empty role":      {""},
		"space":           {"round table"},
		"comma":           {"a,b"},
		"control":         {"a\nb"},
		"non-ASCII":       {"rôle"},
		"too long":        {strings.Repeat("r", caddyauth.MaxRoleLength+1)},
		"too many":        tooMany,
		"one bad of many": {"ok", "not ok"},
	}
	for name, roles := range invalid {
		t.Run("roles "+name, func(t *testing.T) {
			_, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Roles: &roles}, "")
			var fe *caddyauth.FieldError
			if !errors.As(err, &fe) || fe.Field != "roles" {
				t.Fatalf("UpdateUser(roles %q) = %v, want a FieldError for roles", roles, err)
			}
		})
	}
	if !caddyauth.ValidRole(strings.Repeat("r", caddyauth.MaxRoleLength)) {
		t.Error("a role of the maximum length is refused")
	}

	t.Run("errors", func(t *testing.T) {
		if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Email: ptr("BEDIVERE@camelot.bt")}, ""); !errors.Is(err, caddyauth.ErrEmailTaken) {
			t.Errorf("taken email: %v", err)
		}
		if _, err := e.svc.UpdateUser(ctx, "00000000-0000-4000-8000-000000000000", caddyauth.UserPatch{}, ""); !errors.Is(err, caddyauth.ErrNotFound) {
			t.Errorf("unknown user: %v", err)
		}
		if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Password: ptr("short")}, ""); !errors.As(err, new(*caddyauth.PasswordError)) {
			t.Errorf("weak password: %v", err)
		}
		if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Email: ptr("not an email")}, ""); !errors.As(err, new(*caddyauth.FieldError)) {
			t.Errorf("bad email: %v", err)
		}
		// A password containing the new email is refused against the new one.
		if _, err := e.svc.UpdateUser(ctx, u.ID, caddyauth.UserPatch{Email: ptr("x@avalon.bt"), Password: ptr("123x@avalon.bt")}, ""); !errors.As(err, new(*caddyauth.PasswordError)) {
			t.Errorf("password containing the new email: %v", err)
		}
	})
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	plain := &caddyauth.Principal{UserID: "u", IsActive: true}
	verified := &caddyauth.Principal{UserID: "u", IsActive: true, IsVerified: true}
	super := &caddyauth.Principal{UserID: "u", IsActive: true, IsVerified: true, IsSuperuser: true}
	knight := &caddyauth.Principal{UserID: "u", IsActive: true, IsVerified: true, Roles: []string{"knights", "cooks"}}
	cases := []struct {
		name            string
		requireVerified bool
		req             caddyauth.Requirements
		p               *caddyauth.Principal
		allowed         bool
	}{
		{"no rules", false, caddyauth.Requirements{}, plain, true},
		{"verified rule, unverified", false, caddyauth.Requirements{Verified: true}, plain, false},
		{"verified rule, verified", false, caddyauth.Requirements{Verified: true}, verified, true},
		{"global require_verified, unverified", true, caddyauth.Requirements{}, plain, false},
		{"global require_verified, verified", true, caddyauth.Requirements{}, verified, true},
		{"unverified superuser under require_verified", true, caddyauth.Requirements{Superuser: true},
			&caddyauth.Principal{IsActive: true, IsSuperuser: true}, false},
		{"superuser rule, plain", false, caddyauth.Requirements{Superuser: true}, verified, false},
		{"superuser rule, superuser", false, caddyauth.Requirements{Superuser: true}, super, true},
		{"role, has it", false, caddyauth.Requirements{AnyRoles: [][]string{{"admin", "knights"}}}, knight, true},
		{"role, lacks it", false, caddyauth.Requirements{AnyRoles: [][]string{{"admin"}}}, knight, false},
		{"role, superuser without the role", false, caddyauth.Requirements{AnyRoles: [][]string{{"admin"}}}, super, false},
		{"role lists are ANDed, both met", false, caddyauth.Requirements{AnyRoles: [][]string{{"knights"}, {"cooks", "x"}}}, knight, true},
		{"role lists are ANDed, one unmet", false, caddyauth.Requirements{AnyRoles: [][]string{{"knights"}, {"admin"}}}, knight, false},
		{"role names are exact", false, caddyauth.Requirements{AnyRoles: [][]string{{"Knights", "knight"}}}, knight, false},
		{"everything at once", false, caddyauth.Requirements{Verified: true, Superuser: true, AnyRoles: [][]string{{"knights"}}},
			&caddyauth.Principal{IsActive: true, IsVerified: true, IsSuperuser: true, Roles: []string{"knights"}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *caddyauth.Options) { o.RequireVerified = tc.requireVerified })
			err := e.svc.Authorize(tc.p, tc.req)
			if tc.allowed && err != nil {
				t.Fatalf("Authorize = %v, want allowed", err)
			}
			if !tc.allowed && !errors.Is(err, caddyauth.ErrForbidden) {
				t.Fatalf("Authorize = %v, want ErrForbidden", err)
			}
		})
	}
}

func TestValidateFullName(t *testing.T) {
	t.Parallel()
	ok := []string{"", "Arthur Pendragon", "Ǵawain ap Gwyar", strings.Repeat("é", caddyauth.MaxFullNameLength)}
	for _, n := range ok {
		if err := caddyauth.ValidateFullName("full_name", n); err != nil {
			t.Errorf("ValidateFullName(%q) = %v", n, err)
		}
	}
	bad := []string{"a\rb", "a\nb", "a\x00b", "a\x7fb", "a\u0085b", "a\tb", "\xff", strings.Repeat("é", caddyauth.MaxFullNameLength+1)}
	for _, n := range bad {
		var fe *caddyauth.FieldError
		if err := caddyauth.ValidateFullName("full_name", n); !errors.As(err, &fe) || fe.Field != "full_name" {
			t.Errorf("ValidateFullName(%q) = %v, want a FieldError", n, err)
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	if _, err := caddyauth.New(caddyauth.Options{Store: db, Secret: make([]byte, caddyauth.MinSecretLength-1)}); err == nil {
		t.Error("a 31-byte secret was accepted")
	}
	if _, err := caddyauth.New(caddyauth.Options{Secret: testSecret}); err == nil {
		t.Error("no store was accepted")
	}
	svc, err := caddyauth.New(caddyauth.Options{Store: db, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if svc.CookieName() != caddyauth.DefaultCookieName || svc.SessionLifetime() != caddyauth.DefaultSessionLifetime || svc.RequireVerified() {
		t.Errorf("defaults: cookie %q, lifetime %v, require_verified %v", svc.CookieName(), svc.SessionLifetime(), svc.RequireVerified())
	}
}

// interleavingStore runs meanwhile just before each UpdateUser, as if
// another request had written between the service's read and its write.
type interleavingStore struct {
	store.Store
	meanwhile func()
}

func (s *interleavingStore) UpdateUser(ctx context.Context, id string, change func(*store.User) error) (*store.User, error) {
	if s.meanwhile != nil {
		f := s.meanwhile
		s.meanwhile = nil
		f()
	}
	return s.Store.UpdateUser(ctx, id, change)
}

// A user's own update, which reads the account and then hashes for a
// tenth of a second, must not undo a change an administrator made in
// between: least of all a deactivation.
func TestUpdateDoesNotUndoConcurrentChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var inter *interleavingStore
	e := newEnv(t, func(o *caddyauth.Options) {
		inter = &interleavingStore{Store: o.Store}
		o.Store = inter
		o.RequireCurrentPassword = true
	})
	u := e.mustUser(t, "arthur@camelot.bt")
	res := e.login(t, "arthur@camelot.bt", store.TransportBearer)
	p := e.mustAuth(t, store.TransportBearer, res.Credential)

	inter.meanwhile = func() {
		if err := replaceUser(ctx, e.db, &store.User{ID: u.ID, Email: u.Email, HashedPassword: u.HashedPassword,
			IsActive: false, Roles: []string{"demoted"}, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.svc.UpdateSelf(ctx, p, caddyauth.UserPatch{FullName: ptr("Arthur Pendragon")})
	if err != nil {
		t.Fatalf("UpdateSelf: %v", err)
	}
	if got.IsActive || !slices.Equal(got.Roles, []string{"demoted"}) || got.FullName != "Arthur Pendragon" {
		t.Fatalf("after a concurrent deactivation the update returned %+v: the deactivation was undone", got)
	}
	stored, err := e.db.UserByID(ctx, u.ID)
	if err != nil || stored.IsActive {
		t.Fatalf("stored user %+v, %v: want it still inactive", stored, err)
	}

	// A password proven with the current password must not be set if the
	// password changed meanwhile (a reset or an administrator).
	v := e.mustUser(t, "bedivere@camelot.bt")
	vres := e.login(t, "bedivere@camelot.bt", store.TransportBearer)
	vp := e.mustAuth(t, store.TransportBearer, vres.Credential)
	inter.meanwhile = func() {
		if _, err := e.db.UpdateUser(ctx, v.ID, func(cur *store.User) error {
			cur.HashedPassword = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = e.svc.UpdateSelf(ctx, vp, caddyauth.UserPatch{Password: ptr("a brand new password"), CurrentPassword: ptr(testPassword)})
	var pe *caddyauth.PasswordError
	if !errors.As(err, &pe) {
		t.Fatalf("password change with a stale proof: %v, want a PasswordError", err)
	}
}

func TestValidateFullNameRefusesBidiControls(t *testing.T) {
	for _, name := range []string{"Mallory\u202etxt.exe", "a\u2066b", "x\u200fy"} {
		if err := caddyauth.ValidateFullName("full_name", name); !errors.As(err, new(*caddyauth.FieldError)) {
			t.Errorf("ValidateFullName(%q) = %v, want a FieldError", name, err)
		}
	}
	for _, name := range []string{"Zoë Ångström", "李小龍", "👩\u200d💻 Ada"} {
		if err := caddyauth.ValidateFullName("full_name", name); err != nil {
			t.Errorf("ValidateFullName(%q) = %v", name, err)
		}
	}
}
