package caddyauth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	const email = "King.Arthur@camelot.bt"
	cases := []struct {
		name     string
		min      int
		password string
		reason   string // "" = accepted
	}{
		{"7 of 8", 8, "1234567", "Password should be at least 8 characters"},
		{"8 of 8", 8, "12345678", ""},
		{"empty", 8, "", "Password should be at least 8 characters"},
		{"counted in characters, not bytes: 7", 8, "ééééééé", "Password should be at least 8 characters"},
		{"counted in characters, not bytes: 8", 8, "éééééééé", ""},
		{"configured minimum", 12, "12345678901", "Password should be at least 12 characters"},
		{"configured minimum met", 12, "123456789012", ""},
		{"at the maximum", 8, strings.Repeat("x", caddyauth.MaxPasswordLength), ""},
		{"over the maximum", 8, strings.Repeat("x", caddyauth.MaxPasswordLength+1), "Password should be at most 1024 characters"},
		{"contains the email", 8, "xx" + email + "xx", "Password should not contain e-mail"},
		{"contains the email in other case", 8, "xxking.arthur@CAMELOT.BTxx", "Password should not contain e-mail"},
		{"contains only the local part", 8, "King.Arthur-1", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := caddyauth.Policy{MinLength: tc.min}.Check(tc.password, email)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Check = %v, want accepted", err)
				}
				return
			}
			var pe *caddyauth.PasswordError
			if !errors.As(err, &pe) {
				t.Fatalf("Check = %v (%T), want a *PasswordError", err, err)
			}
			if pe.Reason != tc.reason {
				t.Fatalf("Reason = %q, want %q", pe.Reason, tc.reason)
			}
		})
	}
	if err := (caddyauth.Policy{MinLength: 8}).Check("anything goes", ""); err != nil {
		t.Errorf("Check with no email = %v", err)
	}
}
