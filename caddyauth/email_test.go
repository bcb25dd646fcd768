package caddyauth_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	local64 := strings.Repeat("a", 64)
	label63 := strings.Repeat("b", 63)
	// 64 + 1 + 189 = 254 characters, the longest address allowed.
	longest := local64 + "@" + label63 + "." + label63 + "." + strings.Repeat("c", 58) + ".io"
	if n := len(longest); n != 254 {
		t.Fatalf("test setup: longest is %d characters", n)
	}
	tooLong := local64 + "@" + label63 + "." + label63 + "." + strings.Repeat("c", 59) + ".io"

	valid := []struct {
		name, in, want string
	}{
		{"domain lower-cased, local part kept", "Gawain@Camelot.BT", "Gawain@camelot.bt"},
		{"surrounding spaces trimmed", " a3@camelot.bt ", "a3@camelot.bt"},
		{"surrounding tabs and newlines trimmed", "\tking.arthur@camelot.bt\r\n", "king.arthur@camelot.bt"},
		{"plus and specials", "King.Arthur+tag!#$%&'*/=?^_`{|}~-@Example.COM", "King.Arthur+tag!#$%&'*/=?^_`{|}~-@example.com"},
		{"unicode letters", "José@Exämple.COM", "José@exämple.com"},
		{"hyphen and digits in domain", "a@sub-1.example2.com", "a@sub-1.example2.com"},
		{"one-letter parts", "a@b.co", "a@b.co"},
		{"local part of 64", local64 + "@x.com", local64 + "@x.com"},
		{"label of 63", "a@" + label63 + ".com", "a@" + label63 + ".com"},
		{"254 in all", longest, longest},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			got, err := caddyauth.NormalizeEmail(tc.in)
			if err != nil {
				t.Fatalf("NormalizeEmail(%q) = %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("NormalizeEmail(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}

	invalid := []struct {
		name, in, reason string // reason "" = any
	}{
		{"empty", "", "An email address must have an @-sign."},
		{"blank", "   ", "An email address must have an @-sign."},
		{"no at-sign", "king.arthur", "An email address must have an @-sign."},
		{"nothing before @", "@camelot.bt", "There must be something before the @-sign."},
		{"nothing after @", "arthur@", "There must be something after the @-sign."},
		{"two at-signs", "a@b@camelot.bt", ""},
		{"inner space", "king arthur@camelot.bt", ""},
		{"space in domain", "arthur@came lot.bt", ""},
		{"CRLF header injection", "arthur@camelot.bt\r\nX-Evil: 1", ""},
		{"CRLF in local part", "art\r\nhur@camelot.bt", ""},
		{"NUL", "art\x00hur@camelot.bt", ""},
		{"DEL in domain", "arthur@came\x7flot.bt", ""},
		{"tab inside", "art\thur@camelot.bt", ""},
		{"no-break space", "art\u00a0hur@camelot.bt", ""},
		{"line separator", "art\u2028hur@camelot.bt", ""},
		{"zero-width space", "art\u200bhur@camelot.bt", ""},
		{"right-to-left override", "art\u202ehur@camelot.bt", ""},
		{"quoted local part", `"king arthur"@camelot.bt`, ""},
		{"comma", "a,b@camelot.bt", ""},
		{"leading dot", ".arthur@camelot.bt", "An email address cannot start with a period."},
		{"trailing dot", "arthur.@camelot.bt", "An email address cannot have a period immediately before the @-sign."},
		{"double dot", "king..arthur@camelot.bt", "An email address cannot have two periods in a row."},
		{"no dot in domain", "arthur@localhost", "The part after the @-sign is not valid. It should have a period."},
		{"empty label", "arthur@camelot..bt", ""},
		{"leading dot in domain", "arthur@.camelot.bt", ""},
		{"trailing dot in domain", "arthur@camelot.bt.", ""},
		{"hyphen at label start", "arthur@-camelot.bt", "A part of the domain name cannot start or end with a hyphen."},
		{"hyphen at label end", "arthur@camelot-.bt", "A part of the domain name cannot start or end with a hyphen."},
		{"underscore in domain", "arthur@came_lot.bt", ""},
		{"numeric top-level domain", "arthur@10.0.0.1", "The part after the @-sign is not valid. It is not within a valid top-level domain."},
		{"IP literal", "arthur@[10.0.0.1]", ""},
		{"invalid UTF-8", "arth\xffur@camelot.bt", "The email address is not valid UTF-8."},
		{"local part of 65", strings.Repeat("a", 65) + "@x.com", "The email address is too long before the @-sign (1 characters too many)."},
		{"label of 64", "a@" + strings.Repeat("b", 64) + ".com", "The email address is too long after the @-sign."},
		{"255 in all", tooLong, "The email address is too long (1 characters too many)."},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			got, err := caddyauth.NormalizeEmail(tc.in)
			if err == nil {
				t.Fatalf("NormalizeEmail(%q) = %q, want an error", tc.in, got)
			}
			if got != "" {
				t.Errorf("NormalizeEmail(%q) returned %q with its error", tc.in, got)
			}
			var fe *caddyauth.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FieldError", err, err)
			}
			if fe.Field != "email" || fe.Type != "value_error" {
				t.Errorf("FieldError{Field: %q, Type: %q}, want email/value_error", fe.Field, fe.Type)
			}
			if !strings.HasPrefix(fe.Msg, "value is not a valid email address: ") {
				t.Errorf("Msg = %q, want pydantic's prefix", fe.Msg)
			}
			reason, _ := fe.Ctx["reason"].(string)
			if reason == "" || !strings.HasSuffix(fe.Msg, reason) {
				t.Errorf("Ctx reason %q does not end Msg %q", reason, fe.Msg)
			}
			if tc.reason != "" && reason != tc.reason {
				t.Errorf("reason = %q, want %q", reason, tc.reason)
			}
		})
	}
}

// FuzzNormalizeEmail checks that whatever NormalizeEmail accepts is safe
// to send as a header value and is already in normal form.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{
		"Gawain@Camelot.BT", " a3@camelot.bt ", "a@b@c.d", "arthur@camelot.bt\r\nX: 1", "José@Exämple.COM",
		"a@ＥＸＡＭＰＬＥ.com", "İ@İ.İ", "a@K.com", "x@\u212a.com", "\"q\"@x.com", "a..b@x.com", "@", "",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + ".io",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := caddyauth.NormalizeEmail(in)
		if err != nil {
			var fe *caddyauth.FieldError
			if !errors.As(err, &fe) || fe.Field != "email" {
				t.Fatalf("NormalizeEmail(%q): error %v is not a FieldError for email", in, err)
			}
			if out != "" {
				t.Fatalf("NormalizeEmail(%q) returned %q with an error", in, out)
			}
			return
		}
		if !utf8.ValidString(out) {
			t.Fatalf("NormalizeEmail(%q) = %q: not valid UTF-8", in, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.IsSpace(r) || r == utf8.RuneError {
				t.Fatalf("NormalizeEmail(%q) = %q: contains %U", in, out, r)
			}
		}
		if n := strings.Count(out, "@"); n != 1 {
			t.Fatalf("NormalizeEmail(%q) = %q: %d at-signs", in, out, n)
		}
		if n := utf8.RuneCountInString(out); n > 254 {
			t.Fatalf("NormalizeEmail(%q) = %q: %d characters", in, out, n)
		}
		local, domain, _ := strings.Cut(out, "@")
		trimmed := strings.TrimSpace(in)
		// Kept as typed, but for NFC (see TestNormalizeEmailNFC).
		if wantLocal := norm.NFC.String(trimmed[:strings.LastIndexByte(trimmed, '@')]); local != wantLocal {
			t.Fatalf("NormalizeEmail(%q) = %q: local part changed from %q", in, out, wantLocal)
		}
		if domain != strings.ToLower(domain) {
			t.Fatalf("NormalizeEmail(%q) = %q: domain not lower-case", in, out)
		}
		again, err := caddyauth.NormalizeEmail(out)
		if err != nil || again != out {
			t.Fatalf("not a fixed point: NormalizeEmail(%q) = %q, %v", out, again, err)
		}
	})
}

// Two spellings of one address, precomposed and decomposed, are one
// address: one account, one Remote-User value.
func TestNormalizeEmailNFC(t *testing.T) {
	precomposed, err := caddyauth.NormalizeEmail("ren\u00e9@example.com")
	if err != nil {
		t.Fatal(err)
	}
	decomposed, err := caddyauth.NormalizeEmail("rene\u0301@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if precomposed != decomposed || precomposed != "ren\u00e9@example.com" {
		t.Fatalf("NFC: %q and %q, want both %q", precomposed, decomposed, "ren\u00e9@example.com")
	}
}
