package caddyauth

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits of an email address (RFC 5321 §4.5.3.1).
const (
	maxEmailLength     = 254
	maxEmailLocalPart  = 64
	maxEmailLabelChars = 63
)

// NormalizeEmail validates an email address and returns it in the form
// Gatehouse stores: surrounding white space stripped, the domain
// lower-cased, the local part kept as typed (as fastapi-users does).
// Lookups ignore case, so the stored form is only what is shown.
//
// The address later becomes the value of the Remote-User header, so it is
// held to a strict dot-atom syntax: no white space, no control characters,
// no quoted local parts. A refusal is a *FieldError for the field "email".
func NormalizeEmail(s string) (string, error) {
	// NFC, as email-validator does: two spellings of one address (a
	// precomposed é and e + combining accent) are one account, and one
	// Remote-User value.
	s = norm.NFC.String(strings.TrimSpace(s))
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", emailError(s, "An email address must have an @-sign.")
	}
	local, domain := s[:at], strings.ToLower(s[at+1:])
	if !utf8.ValidString(s) {
		return "", emailError(s, "The email address is not valid UTF-8.")
	}
	if local == "" {
		return "", emailError(s, "There must be something before the @-sign.")
	}
	if domain == "" {
		return "", emailError(s, "There must be something after the @-sign.")
	}
	if n := utf8.RuneCountInString(local); n > maxEmailLocalPart {
		return "", emailError(s, fmt.Sprintf("The email address is too long before the @-sign (%d characters too many).", n-maxEmailLocalPart))
	}
	if reason := checkLocalPart(local); reason != "" {
		return "", emailError(s, reason)
	}
	if reason := checkDomain(domain); reason != "" {
		return "", emailError(s, reason)
	}
	out := local + "@" + domain
	if n := utf8.RuneCountInString(out); n > maxEmailLength {
		return "", emailError(s, fmt.Sprintf("The email address is too long (%d characters too many).", n-maxEmailLength))
	}
	return out, nil
}

func emailError(input, reason string) error {
	return &FieldError{
		Field: "email",
		Type:  "value_error",
		Msg:   "value is not a valid email address: " + reason,
		Input: input,
		Ctx:   map[string]any{"reason": reason},
	}
}

// atext of RFC 5322 besides letters and digits.
const atextSpecials = "!#$%&'*+-/=?^_`{|}~"

func checkLocalPart(local string) string {
	if strings.HasPrefix(local, ".") {
		return "An email address cannot start with a period."
	}
	if strings.HasSuffix(local, ".") {
		return "An email address cannot have a period immediately before the @-sign."
	}
	if strings.Contains(local, "..") {
		return "An email address cannot have two periods in a row."
	}
	for _, r := range local {
		if r == '.' || isAlnum(r) || strings.ContainsRune(atextSpecials, r) {
			continue
		}
		if r > unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)) {
			continue
		}
		return fmt.Sprintf("The email address contains invalid characters before the @-sign: %q.", r)
	}
	return ""
}

func checkDomain(domain string) string {
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return "The part after the @-sign is not valid. It should have a period."
	}
	for _, label := range labels {
		if label == "" {
			return "An email address cannot have two periods in a row or a period at the start or end of the domain."
		}
		if utf8.RuneCountInString(label) > maxEmailLabelChars {
			return "The email address is too long after the @-sign."
		}
		if strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return "A part of the domain name cannot start or end with a hyphen."
		}
		for _, r := range label {
			if r == '-' || isAlnum(r) {
				continue
			}
			if r > unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)) {
				continue
			}
			return fmt.Sprintf("The part after the @-sign contains invalid characters: %q.", r)
		}
	}
	tld := labels[len(labels)-1]
	if strings.Trim(tld, "0123456789") == "" {
		return "The part after the @-sign is not valid. It is not within a valid top-level domain."
	}
	return ""
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}
