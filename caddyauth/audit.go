package caddyauth

import (
	"context"
	"errors"
	"log/slog"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// The audit log has one entry per security event, on its own logger (the
// root names it gatehouse.audit, so that a Caddy `log` block can send it
// elsewhere). Each entry is at INFO level with the message "audit" and the
// attributes event, outcome and, where known, user_id, actor_id and ip.
// It never carries a password, a token, a cookie, a session's full id or
// the username typed into a failed login (people type their password
// there by mistake).
//
// Nor does it carry an email address, old or new, not even in
// email_change: an address is personal data, and the log is kept longer
// and spread wider (to collectors, to other teams) than the database, out
// of reach of an erasure request. user_id names the account; the database
// (or its backups) says which address it had.
//
// One event, one entry. A change that ends sessions by implication (a
// password change ends the user's other sessions; a reset, a deactivation
// or an administrator's new password end all of them; a deletion takes
// them along) writes only its own entry, with the number of sessions
// ended in sessions_ended where it is known; session_revoke and
// sessions_revoke_all are written only when ending sessions is the
// request itself, and logout only for the session logging out. A request
// that changes both the password and the email is two events
// (password_change, email_change); a change of the name alone is none.
// Refusals of input (a password the policy refuses, a malformed field)
// and failures of the store write nothing: the error log has those.
//
// actor_id is who acted: the user themselves on self-service routes, the
// superuser on /users/{id}, ActorCLI for the command line (see
// WithActor). The command line builds its Service without an audit
// logger, so in production it writes no entries: it keeps its promise of
// silence on success, and whoever can run it can write the database file
// directly, which no entry would record either; the host's own records
// (sudo, auditd) are the audit trail there.

// Audit events.
const (
	AuditLogin   = "login"
	AuditLockout = "lockout" // an account locked after too many failed logins
	AuditIPBan   = "ip_ban"  // a client address banned after too many failures

	AuditPasswordReset = "password_reset" // a password set with a mailed token
	AuditVerify        = "verify"         // an address verified with a mailed token

	AuditLogout            = "logout"              // attrs: session
	AuditSessionRevoke     = "session_revoke"      // one session ended on request; attrs: session
	AuditSessionsRevokeAll = "sessions_revoke_all" // attrs: sessions_ended
	AuditPasswordChange    = "password_change"     // by the user (PATCH /users/me); attrs: sessions_ended
	AuditEmailChange       = "email_change"        // by the user (PATCH /users/me)
	AuditRegister          = "register"            // public sign-up
	AuditUserCreate        = "user_create"         // privileged; attrs: is_active, is_superuser, is_verified, roles
	AuditUserUpdate        = "user_update"         // privileged; attrs: fields, the new is_active, is_superuser, is_verified, roles among them, sessions_ended
	AuditUserDelete        = "user_delete"         // privileged
)

// Audit outcomes.
const (
	OutcomeSuccess        = "success"
	OutcomeBadCredentials = "bad_credentials"
	OutcomeNotVerified    = "not_verified"
	OutcomeLocked         = "locked"
	OutcomeBanned         = "banned"
	OutcomeBusy           = "busy"
	OutcomeBadToken       = "bad_token"

	OutcomeWrongCurrentPassword = "wrong_current_password"
	OutcomeUserExists           = "user_exists" // register with a taken email (no user_id)
	OutcomeNotFound             = "not_found"   // session_revoke of a session the user does not have
)

// ActorCLI is the actor_id of changes made with `caddy gatehouse`.
const ActorCLI = "cli"

// WithActor returns ctx naming who makes the changes requested through
// it: a user id, or ActorCLI. The handlers set it once they have
// authenticated the caller; the audit log reports it as actor_id.
func WithActor(ctx context.Context, actorID string) context.Context {
	return context.WithValue(ctx, ctxKey[actor]{}, actor(actorID))
}

// actorFrom returns the actor set by WithActor, or "".
func actorFrom(ctx context.Context) string { return string(fromContext[actor](ctx)) }

// actor is the type of WithActor's value (its own, to have its own key).
type actor string

// actingAs returns ctx with p's user as the actor unless one is set
// already: a request made with p's credential is p's doing.
func actingAs(ctx context.Context, p *Principal) context.Context {
	if actorFrom(ctx) != "" {
		return ctx
	}
	return WithActor(ctx, p.UserID)
}

// WithClient returns ctx carrying what is known of the client making the
// request, for the audit log and the per-address limits. The handlers set
// it once per request; without it (the command line) there is no address
// and no per-address limit applies.
func WithClient(ctx context.Context, ci ClientInfo) context.Context {
	return context.WithValue(ctx, ctxKey[ClientInfo]{}, ci)
}

// clientFrom returns the client set by WithClient, or the zero value.
func clientFrom(ctx context.Context) ClientInfo { return fromContext[ClientInfo](ctx) }

// ctxKey is the context key of the request-scoped value of type T: one
// key per type, unexported, so no other package can collide with it.
type ctxKey[T any] struct{}

// fromContext returns ctx's value of type T, or T's zero value.
func fromContext[T any](ctx context.Context) T {
	v, _ := ctx.Value(ctxKey[T]{}).(T)
	return v
}

// audit writes one entry of the audit log. ip is the client's address
// ("" when there is none, as on the command line). attrs add details of
// the event; none may be a secret.
func (s *Service) audit(ctx context.Context, event, outcome, userID, ip string, attrs ...slog.Attr) {
	if !s.auditLog.Enabled(ctx, slog.LevelInfo) {
		return
	}
	all := make([]slog.Attr, 0, 5+len(attrs))
	all = append(all, slog.String("event", event), slog.String("outcome", outcome))
	if userID != "" {
		all = append(all, slog.String("user_id", userID))
	}
	if actor := actorFrom(ctx); actor != "" {
		all = append(all, slog.String("actor_id", actor))
	}
	if ip != "" {
		all = append(all, slog.String("ip", ip))
	}
	all = append(all, attrs...)
	s.auditLog.LogAttrs(ctx, slog.LevelInfo, "audit", all...)
}

// auditToken writes the entry of a use of a mailed token: success, a bad
// token or a banned address. Other refusals (a password the policy
// refuses, an account verified already) change nothing and are not
// security events.
func (s *Service) auditToken(ctx context.Context, event string, u *store.User, err error, badToken error) {
	ip := clientFrom(ctx).IP
	var re *RetryError
	switch {
	case err == nil:
		s.audit(ctx, event, OutcomeSuccess, u.ID, ip)
	case errors.Is(err, badToken):
		s.audit(ctx, event, OutcomeBadToken, "", ip)
	case errors.As(err, &re) && !re.Busy:
		s.audit(ctx, event, OutcomeBanned, "", ip)
	}
}
