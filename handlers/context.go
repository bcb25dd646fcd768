package handlers

import (
	"context"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

type ctxKey int

const (
	pathIDKey ctxKey = iota
	principalKey
)

func withPathID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, pathIDKey, id)
}

func pathID(ctx context.Context) string {
	id, _ := ctx.Value(pathIDKey).(string)
	return id
}

// WithPrincipal records the verified user of a request, for later guards
// on the same request. Only the guard sets it; nothing a client sends can.
func WithPrincipal(ctx context.Context, p *caddyauth.Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// PrincipalFrom returns the user a guard verified earlier on this request.
func PrincipalFrom(ctx context.Context) (*caddyauth.Principal, bool) {
	p, ok := ctx.Value(principalKey).(*caddyauth.Principal)
	return p, ok && p != nil
}
