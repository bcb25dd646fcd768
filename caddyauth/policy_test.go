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
		{"8 of 8", 8, "q7#Lm2!x", ""},
		{"8 of 8, but among the most common", 8, "12345678", "Password is too common"},
		{"common, in another case", 8, "PassWord1", "Password is too common"},
		{"common: iloveyou", 8, "iloveyou", "Password is too common"},
		{"common: sunshine", 8, "sunshine", "Password is too common"},
		{"common words, uncommon together", 8, "sunshine iloveyou", ""},
		{"empty", 8, "", "Password should be at least 8 characters"},
		{"counted in characters, not bytes: 7", 8, "ééééééé", "Password should be at least 8 characters"},
		{"counted in characters, not bytes: 8", 8, "éééééééé", ""},
		{"configured minimum", 12, "12345678901", "Password should be at least 12 characters"},
		{"configured minimum met", 12, "1234x6789012", ""},
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

func TestPolicyMaxLength(t *testing.T) {
	t.Parallel()
	p := caddyauth.Policy{MinLength: 8, MaxLength: 64}
	if err := p.Check(strings.Repeat("x", 63)+"y", ""); err != nil {
		t.Fatalf("64 characters with a maximum of 64: %v", err)
	}
	var pe *caddyauth.PasswordError
	if err := p.Check(strings.Repeat("x", 64)+"y", ""); !errors.As(err, &pe) || pe.Reason != "Password should be at most 64 characters" {
		t.Fatalf("65 characters with a maximum of 64: %v", err)
	}
	// A maximum above the hard bound is the hard bound.
	big := caddyauth.Policy{MinLength: 8, MaxLength: 5000}
	if err := big.Check(strings.Repeat("x", caddyauth.MaxPasswordLength+1), ""); !errors.As(err, &pe) {
		t.Fatalf("over the hard bound: %v", err)
	}
}
