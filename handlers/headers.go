package handlers

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// Identity fields that can be sent upstream (the `header` subdirective).
const (
	FieldID       = "id"
	FieldEmail    = "email"
	FieldName     = "name"
	FieldRoles    = "roles"
	FieldVerified = "verified"
)

// Fields lists the identity fields in a fixed order.
var Fields = []string{FieldID, FieldEmail, FieldName, FieldRoles, FieldVerified}

// DefaultHeaders are the identity headers of DESIGN §5.
var DefaultHeaders = map[string][]string{
	FieldID:    {"Remote-User-Id"},
	FieldEmail: {"Remote-User", "Remote-Email"},
	FieldName:  {"Remote-Name"},
	FieldRoles: {"Remote-Groups"},
}

// HeaderSet is the identity headers one guard sends, and the names it
// strips from every request.
type HeaderSet struct {
	byField map[string][]string
	strip   []string // folded names (see foldHeaderName), without duplicates
}

// NewHeaderSet starts from DefaultHeaders; each field named in overrides
// is sent under the overriding names instead of its defaults. The set of
// names stripped from clients' requests is always the union of the
// defaults and the overrides: a renamed header must not let a client's
// Remote-User through to an upstream that still reads it.
func NewHeaderSet(overrides map[string][]string) *HeaderSet {
	hs := &HeaderSet{byField: map[string][]string{}}
	for _, f := range Fields {
		names := DefaultHeaders[f]
		if o, ok := overrides[f]; ok {
			names = o
		}
		hs.byField[f] = names
		for _, n := range append(slices.Clone(DefaultHeaders[f]), names...) {
			if folded := foldHeaderName(n); !slices.Contains(hs.strip, folded) {
				hs.strip = append(hs.strip, folded)
			}
		}
	}
	return hs
}

// foldHeaderName folds the spellings a server or framework may treat as
// the same header: case, and '_' or '.' for '-' (CGI, PHP, WSGI and others
// turn both Remote-User and Remote_User into REMOTE_USER; PHP folds
// Remote.User there too). Caddy drops '_' and '.' names by default, but
// not when a server allowlists them (expected_underscore_headers,
// expected_dot_headers).
func foldHeaderName(name string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
}

// Strip deletes every client-supplied identity header, in any case and
// spelling. It runs on every request before anything else: an upstream
// that trusts Remote-User must only ever see the value Gatehouse set.
func (hs *HeaderSet) Strip(h http.Header) {
	for name := range h {
		for _, folded := range hs.strip {
			if sameFolded(name, folded) {
				delete(h, name)
				break
			}
		}
	}
}

// sameFolded reports whether foldHeaderName(name) == folded, without
// allocating: it runs for every header of every request.
func sameFolded(name, folded string) bool {
	if len(name) != len(folded) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '_' || c == '.':
			c = '-'
		}
		if c != folded[i] {
			return false
		}
	}
	return true
}

// Set writes p's identity into h. A value that is empty is not sent, and
// neither is one with a control character, which could split the header
// (values are validated on input, so this is a second line of defence).
func (hs *HeaderSet) Set(h http.Header, p *caddyauth.Principal) {
	for _, f := range Fields {
		names := hs.byField[f]
		if len(names) == 0 {
			continue
		}
		v := FieldValue(p, f)
		ok := v != "" && !hasControl(v)
		for _, n := range names {
			if ok {
				h.Set(n, v)
			} else {
				h.Del(n)
			}
		}
	}
}

// FieldValue is the value of an identity field for p.
func FieldValue(p *caddyauth.Principal, field string) string {
	switch field {
	case FieldID:
		return p.UserID
	case FieldEmail:
		return p.Email
	case FieldName:
		return p.FullName
	case FieldRoles:
		return strings.Join(p.Roles, ",")
	case FieldVerified:
		if p.IsVerified {
			return "true"
		}
		return "false"
	}
	return ""
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// stripCookie removes the cookie named name from the Cookie headers,
// keeping every other cookie as sent.
func stripCookie(h http.Header, name string) {
	lines := h.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var kept []string
	changed := false
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			// Trimmed as net/http trims, and no more: other white space
			// is part of a cookie as sent, and a parser that ignores
			// "\va=1" must not be handed "a=1". The name is compared
			// without any, so that no parser finds ours.
			part = textproto.TrimString(part)
			if part == "" {
				continue
			}
			n, _, _ := strings.Cut(part, "=")
			if strings.TrimSpace(n) == name {
				changed = true
				continue
			}
			kept = append(kept, part)
		}
	}
	if !changed {
		return
	}
	if len(kept) == 0 {
		h.Del("Cookie")
		return
	}
	h.Set("Cookie", strings.Join(kept, "; "))
}
