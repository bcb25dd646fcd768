package caddyauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// Limits of the free-text fields, which become header values upstream.
const (
	MaxFullNameLength = 255 // characters
	MaxRoleLength     = 64  // characters
	MaxRoles          = 64
)

// ValidateFullName refuses names too long or with control characters: the
// name is sent upstream in Remote-Name, and a CR or LF there would let a
// user forge headers. The refusal is a *FieldError for field.
func ValidateFullName(field, name string) error {
	if utf8.RuneCountInString(name) > MaxFullNameLength {
		return &FieldError{Field: field, Type: "string_too_long",
			Msg: fmt.Sprintf("String should have at most %d characters", MaxFullNameLength), Input: name,
			Ctx: map[string]any{"max_length": MaxFullNameLength}}
	}
	if !utf8.ValidString(name) || containsControl(name) {
		return &FieldError{Field: field, Type: "value_error",
			Msg: "Value error, must not contain control characters", Input: name}
	}
	if strings.ContainsFunc(name, isBidiControl) {
		// An override could make Remote-Name, or a page showing it, read
		// differently from what is stored.
		return &FieldError{Field: field, Type: "value_error",
			Msg: "Value error, must not contain bidirectional control characters", Input: name}
	}
	return nil
}

// isBidiControl reports the Unicode bidirectional formatting characters.
func isBidiControl(r rune) bool {
	return r == '\u061c' || r == '\u200e' || r == '\u200f' || r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069'
}

// ValidateRoles checks a list of role names: each 1 to MaxRoleLength
// letters, digits or . _ : -, so that joined with commas in
// Remote-Groups they stay one unambiguous list.
func ValidateRoles(field string, roles []string) error {
	if len(roles) > MaxRoles {
		return &FieldError{Field: field, Type: "too_long",
			Msg: fmt.Sprintf("List should have at most %d items", MaxRoles), Input: roles}
	}
	for _, r := range roles {
		if !ValidRole(r) {
			return &FieldError{Field: field, Type: "value_error",
				Msg: "Value error, a role is 1 to 64 letters, digits or . _ : -", Input: roles}
		}
	}
	return nil
}

// ValidRole reports whether r is an acceptable role name.
func ValidRole(r string) bool {
	if r == "" || len(r) > MaxRoleLength {
		return false
	}
	for _, c := range r {
		if !isAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

func containsControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// NewUser is an account to create.
type NewUser struct {
	Email       string
	Password    string
	FullName    string
	IsActive    bool
	IsSuperuser bool
	IsVerified  bool
	Roles       []string
}

// Register creates an account through the public API: active, not a
// superuser, not verified, no roles, whatever the request said. It
// checks the password policy before the email's availability (as
// fastapi-users does), and hashes before the insert so that a taken email
// costs the same time as a free one.
//
// With verify_on_register, the new user is mailed a verification link to
// links.Verify. The account exists once this returns, whether or not the
// mail could be queued: a failure there is logged, and the user can ask
// for another link.
func (s *Service) Register(ctx context.Context, email, password, fullName string, links Links) (*store.User, error) {
	if s.registrationClosed {
		return nil, ErrRegistrationClosed
	}
	u, err := s.createUser(ctx, NewUser{Email: email, Password: password, FullName: fullName, IsActive: true})
	if errors.Is(err, ErrEmailTaken) {
		// Which address was tried stays out of the log, as every address
		// does; many of these from one ip is someone probing for accounts.
		s.audit(ctx, AuditRegister, OutcomeUserExists, "", clientFrom(ctx).IP)
		return nil, ErrUserExists
	}
	if err != nil {
		return nil, err
	}
	s.audit(ctx, AuditRegister, OutcomeSuccess, u.ID, clientFrom(ctx).IP)
	if s.verifyOnRegister {
		if _, err := s.sendToken(ctx, u, store.PurposeVerifyEmail, MailVerify, links.Verify, s.verifyLifetime); err != nil {
			s.log.ErrorContext(ctx, "queueing the verification mail of a new account", "user_id", u.ID, "error", err)
		}
	}
	s.emit(ctx, EventUserRegistered, u)
	return u, nil
}

// CreateUser creates an account with the given attributes, a privileged
// act (the CLI). The password must satisfy the policy; ErrEmailTaken when
// the email is in use.
func (s *Service) CreateUser(ctx context.Context, nu NewUser) (*store.User, error) {
	u, err := s.createUser(ctx, nu)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, AuditUserCreate, OutcomeSuccess, u.ID, clientFrom(ctx).IP,
		slog.Bool("is_active", u.IsActive), slog.Bool("is_superuser", u.IsSuperuser),
		slog.Bool("is_verified", u.IsVerified), rolesAttr(u.Roles))
	return u, nil
}

// createUser is CreateUser without an audit entry (Register writes its
// own).
func (s *Service) createUser(ctx context.Context, nu NewUser) (*store.User, error) {
	email, err := NormalizeEmail(nu.Email)
	if err != nil {
		return nil, err
	}
	if err := ValidateFullName("full_name", nu.FullName); err != nil {
		return nil, err
	}
	if err := ValidateRoles("roles", nu.Roles); err != nil {
		return nil, err
	}
	if err := s.policy.Check(nu.Password, email); err != nil {
		return nil, err
	}
	hash, err := s.hasher.Hash(ctx, nu.Password)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewRandomFromReader(s.rand)
	if err != nil {
		return nil, fmt.Errorf("making user id: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	u := &store.User{
		ID:             id.String(),
		Email:          email,
		HashedPassword: hash,
		IsActive:       nu.IsActive,
		IsSuperuser:    nu.IsSuperuser,
		IsVerified:     nu.IsVerified,
		FullName:       nu.FullName,
		Roles:          normalizeRoles(nu.Roles),
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, ErrEmailTaken
		}
		return nil, fmt.Errorf("storing user: %w", err)
	}
	return u, nil
}

// normalizeRoles removes duplicates, keeping the first occurrence's order.
func normalizeRoles(roles []string) []string {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// User returns the user with that id; ErrNotFound if none.
func (s *Service) User(ctx context.Context, id string) (*store.User, error) {
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return nil, storeErr("looking up user", err)
	}
	return u, nil
}

// UserByEmail returns the user with that email, ignoring case.
func (s *Service) UserByEmail(ctx context.Context, email string) (*store.User, error) {
	u, err := s.store.UserByEmail(ctx, email)
	if err != nil {
		return nil, storeErr("looking up user", err)
	}
	return u, nil
}

// Users lists every account.
func (s *Service) Users(ctx context.Context) ([]store.User, error) {
	users, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return users, nil
}

// UserPatch is a partial update; nil fields are left as they are.
type UserPatch struct {
	Password        *string
	Email           *string // already normalised by NormalizeEmail
	FullName        *string
	IsActive        *bool
	IsSuperuser     *bool
	IsVerified      *bool
	Roles           *[]string
	CurrentPassword *string // PATCH /users/me only
}

// UpdateSelf applies a user's change to their own account (PATCH
// /users/me). Privileged fields are ignored. With require_current_password
// on, changing the password or the email needs the current password: a
// stolen session alone must not be enough to take the account over.
// A password change ends the user's other sessions, keeping p's.
func (s *Service) UpdateSelf(ctx context.Context, p *Principal, patch UserPatch) (*store.User, error) {
	ctx = actingAs(ctx, p)
	u, err := s.User(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	patch.IsActive, patch.IsSuperuser, patch.IsVerified, patch.Roles = nil, nil, nil, nil
	changesSecret := patch.Password != nil || patch.Email != nil && *patch.Email != u.Email
	var unchanged func(*store.User) error
	if s.requireCurrentPassword && changesSecret {
		if patch.CurrentPassword == nil {
			return nil, &FieldError{Field: "current_password", Type: "missing", Msg: "Field required"}
		}
		ok, _, err := s.hasher.Verify(ctx, *patch.CurrentPassword, u.HashedPassword)
		if err != nil {
			return nil, err
		}
		if !ok {
			s.auditWrongCurrent(ctx, p.UserID, patch)
			return nil, errWrongCurrentPassword
		}
		// The proof is for the password as it was read: if it changed
		// meanwhile (a reset, an admin), the proof no longer holds.
		verified := u.HashedPassword
		unchanged = func(cur *store.User) error {
			if cur.HashedPassword != verified {
				return errWrongCurrentPassword
			}
			return nil
		}
	}
	u, ch, err := s.apply(ctx, u, patch, p.SessionID, unchanged)
	if errors.Is(err, errWrongCurrentPassword) {
		s.auditWrongCurrent(ctx, p.UserID, patch)
	}
	if err != nil {
		return nil, err
	}
	ip := clientFrom(ctx).IP
	if slices.Contains(ch.fields, "password") {
		s.audit(ctx, AuditPasswordChange, OutcomeSuccess, u.ID, ip, slog.Int("sessions_ended", ch.sessionsEnded))
	}
	if slices.Contains(ch.fields, "email") {
		s.audit(ctx, AuditEmailChange, OutcomeSuccess, u.ID, ip)
	}
	return u, nil
}

var errWrongCurrentPassword = &PasswordError{Reason: "Current password is incorrect"}

// auditWrongCurrent records a change refused for a wrong current
// password: one attempt, one entry, under the password's event when the
// request would have changed it, else the email's.
func (s *Service) auditWrongCurrent(ctx context.Context, userID string, patch UserPatch) {
	event := AuditEmailChange
	if patch.Password != nil {
		event = AuditPasswordChange
	}
	s.audit(ctx, event, OutcomeWrongCurrentPassword, userID, clientFrom(ctx).IP)
}

// UpdateUser applies a privileged change (PATCH /users/{id}, the CLI):
// every field may be set. keepSession is the session making the change,
// kept when the change would end the user's sessions ("" keeps none).
func (s *Service) UpdateUser(ctx context.Context, id string, patch UserPatch, keepSession string) (*store.User, error) {
	u, err := s.User(ctx, id)
	if err != nil {
		return nil, err
	}
	u, ch, err := s.apply(ctx, u, patch, keepSession, nil)
	if err != nil {
		return nil, err
	}
	// The names of the fields that changed, and the new values of those
	// that grant or withhold access; a new password or email by name
	// only.
	attrs := []slog.Attr{slog.Any("fields", ch.fields)}
	for _, f := range ch.fields {
		switch f {
		case "is_active":
			attrs = append(attrs, slog.Bool(f, u.IsActive))
		case "is_superuser":
			attrs = append(attrs, slog.Bool(f, u.IsSuperuser))
		case "is_verified":
			attrs = append(attrs, slog.Bool(f, u.IsVerified))
		case "roles":
			attrs = append(attrs, rolesAttr(u.Roles))
		}
	}
	if ch.revoked {
		attrs = append(attrs, slog.Int("sessions_ended", ch.sessionsEnded))
	}
	s.audit(ctx, AuditUserUpdate, OutcomeSuccess, u.ID, clientFrom(ctx).IP, attrs...)
	return u, nil
}

// rolesAttr is the roles attribute of the audit log: a list, empty rather
// than null.
func rolesAttr(roles []string) slog.Attr {
	return slog.Any("roles", append([]string{}, roles...))
}

// change is what an update did, for the audit log.
type change struct {
	fields        []string // JSON names of the fields whose value changed ("password" for a new one)
	revoked       bool     // the change ended sessions by implication
	sessionsEnded int
}

// changedFields lists the fields that differ from before to after, in the
// order of update.
func changedFields(before, after *store.User, newPassword bool) []string {
	fields := []string{}
	add := func(name string, changed bool) {
		if changed {
			fields = append(fields, name)
		}
	}
	add("password", newPassword)
	add("email", after.Email != before.Email)
	add("is_active", after.IsActive != before.IsActive)
	add("is_superuser", after.IsSuperuser != before.IsSuperuser)
	add("is_verified", after.IsVerified != before.IsVerified)
	add("full_name", after.FullName != before.FullName)
	add("roles", !slices.Equal(after.Roles, before.Roles))
	return fields
}

// update applies patch and writes no audit entry (its callers write
// theirs); see apply.
func (s *Service) update(ctx context.Context, read *store.User, patch UserPatch, keepSession string, check func(*store.User) error) (*store.User, error) {
	u, _, err := s.apply(ctx, read, patch, keepSession, check)
	return u, err
}

// apply applies patch in fastapi-users' field order (password, email,
// is_active, is_superuser, is_verified), so that with several faults the
// same one is reported. read is the user as read before; check, if not
// nil, vets the user as stored at the moment of writing. It reports what
// changed; the sessions it ends by implication write no audit entry.
//
// Inputs are validated and the password hashed first, outside the store's
// transaction (hashing takes a tenth of a second). The fields are then
// applied to the row as it is at the moment of writing, in one
// transaction, so that a concurrent change (an admin deactivating the
// user while they change their name) is never undone.
func (s *Service) apply(ctx context.Context, read *store.User, patch UserPatch, keepSession string, check func(*store.User) error) (*store.User, change, error) {
	var ch change
	if patch.Email != nil {
		email, err := NormalizeEmail(*patch.Email)
		if err != nil {
			return nil, ch, err
		}
		patch.Email = &email
	}
	if patch.FullName != nil {
		if err := ValidateFullName("full_name", *patch.FullName); err != nil {
			return nil, ch, err
		}
	}
	if patch.Roles != nil {
		if err := ValidateRoles("roles", *patch.Roles); err != nil {
			return nil, ch, err
		}
	}
	var newHash string
	if patch.Password != nil {
		email := read.Email
		if patch.Email != nil {
			email = *patch.Email
		}
		if err := s.policy.Check(*patch.Password, email); err != nil {
			return nil, ch, err
		}
		var err error
		if newHash, err = s.hasher.Hash(ctx, *patch.Password); err != nil {
			return nil, ch, err
		}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	u, err := s.store.UpdateUser(ctx, read.ID, func(u *store.User) error {
		if check != nil {
			if err := check(u); err != nil {
				return err
			}
		}
		before := *u
		if newHash != "" {
			u.HashedPassword = newHash
		}
		if patch.Email != nil && *patch.Email != u.Email {
			// A new address has not been verified by anyone.
			u.Email = *patch.Email
			u.IsVerified = false
		}
		if patch.IsActive != nil {
			u.IsActive = *patch.IsActive
		}
		if patch.IsSuperuser != nil {
			u.IsSuperuser = *patch.IsSuperuser
		}
		if patch.IsVerified != nil {
			u.IsVerified = *patch.IsVerified
		}
		if patch.FullName != nil {
			u.FullName = *patch.FullName
		}
		if patch.Roles != nil {
			u.Roles = normalizeRoles(*patch.Roles)
		}
		ch.fields = changedFields(&before, u, newHash != "")
		u.UpdatedAt = now
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		return nil, ch, ErrEmailTaken
	}
	if err != nil {
		var pe *PasswordError
		if errors.As(err, &pe) {
			return nil, ch, err
		}
		return nil, ch, storeErr("storing user", err)
	}
	// Cached principals carry the old attributes: forget them all.
	s.cache.dropUser(u.ID)
	// Links mailed before are void: reset links once the password has
	// changed, verify links once the address has.
	if newHash != "" {
		if _, err := s.store.DeleteUserTokens(ctx, u.ID, store.PurposeResetPassword); err != nil {
			return nil, ch, storeErr("voiding reset tokens", err)
		}
	}
	if u.Email != read.Email {
		if _, err := s.store.DeleteUserTokens(ctx, u.ID, store.PurposeVerifyEmail); err != nil {
			return nil, ch, storeErr("voiding verify tokens", err)
		}
	}
	switch {
	case !u.IsActive:
		// Deactivation ends every session, the caller's own included.
		ch.revoked = true
		if ch.sessionsEnded, err = s.revokeUserSessions(ctx, u.ID, ""); err != nil {
			return nil, ch, err
		}
	case patch.Password != nil:
		ch.revoked = true
		if ch.sessionsEnded, err = s.revokeUserSessions(ctx, u.ID, keepSession); err != nil {
			return nil, ch, err
		}
	}
	return u, ch, nil
}

// DeleteUser removes an account and, with it, all its sessions (a
// privileged act: /users/{id}, the CLI).
func (s *Service) DeleteUser(ctx context.Context, id string) error {
	s.cache.dropUser(id)
	defer s.cache.dropUser(id)
	if err := s.store.DeleteUser(ctx, id); err != nil {
		return storeErr("deleting user", err)
	}
	// The user's sessions went with the account: this entry stands for
	// their end too.
	s.audit(ctx, AuditUserDelete, OutcomeSuccess, id, clientFrom(ctx).IP)
	return nil
}

// Requirements are the access rules of one guard: all must hold.
type Requirements struct {
	Verified  bool
	Superuser bool
	AnyRoles  [][]string // each inner list: at least one of these roles
}

// Authorize checks p against the rules and the global require_verified
// option; ErrForbidden when one fails.
func (s *Service) Authorize(p *Principal, req Requirements) error {
	if (req.Verified || s.requireVerified) && !p.IsVerified {
		return ErrForbidden
	}
	if req.Superuser && !p.IsSuperuser {
		return ErrForbidden
	}
	for _, roles := range req.AnyRoles {
		if !slices.ContainsFunc(roles, p.HasRole) {
			return ErrForbidden
		}
	}
	return nil
}
