package caddyauth

import (
	"context"
	"log/slog"
)

// The audit log has one entry per security event, on its own logger (the
// root names it gatehouse.audit, so that a Caddy `log` block can send it
// elsewhere). Each entry is at INFO level with the message "audit" and the
// attributes event, outcome and, where known, user_id, actor_id and ip.
// It never carries a password, a token, a cookie, a session's full id or
// the username typed into a failed login (people type their password
// there by mistake).

// Audit events.
const (
	AuditLogin   = "login"
	AuditLockout = "lockout" // an account locked after too many failed logins
	AuditIPBan   = "ip_ban"  // a client address banned after too many failures
)

// Audit outcomes.
const (
	OutcomeSuccess        = "success"
	OutcomeBadCredentials = "bad_credentials"
	OutcomeNotVerified    = "not_verified"
	OutcomeLocked         = "locked"
	OutcomeBanned         = "banned"
	OutcomeBusy           = "busy"
)

type clientKey struct{}

// WithClient returns ctx carrying what is known of the client making the
// request, for the audit log and the per-address limits. The handlers set
// it once per request; without it (the command line) there is no address
// and no per-address limit applies.
func WithClient(ctx context.Context, ci ClientInfo) context.Context {
	return context.WithValue(ctx, clientKey{}, ci)
}

// clientFrom returns the client set by WithClient, or the zero value.
func clientFrom(ctx context.Context) ClientInfo {
	ci, _ := ctx.Value(clientKey{}).(ClientInfo)
	return ci
}

// audit writes one entry of the audit log. ip is the client's address
// ("" when there is none, as on the command line). attrs add details of
// the event; none may be a secret.
func (s *Service) audit(ctx context.Context, event, outcome, userID, ip string, attrs ...slog.Attr) {
	if !s.auditLog.Enabled(ctx, slog.LevelInfo) {
		return
	}
	all := make([]slog.Attr, 0, 4+len(attrs))
	all = append(all, slog.String("event", event), slog.String("outcome", outcome))
	if userID != "" {
		all = append(all, slog.String("user_id", userID))
	}
	if ip != "" {
		all = append(all, slog.String("ip", ip))
	}
	all = append(all, attrs...)
	s.auditLog.LogAttrs(ctx, slog.LevelInfo, "audit", all...)
}
