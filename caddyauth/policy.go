package caddyauth

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxPasswordLength bounds what is hashed, in characters. Longer inputs
// are refused rather than silently truncated (bcrypt would truncate at 72
// bytes; argon2id would hash megabytes).
const MaxPasswordLength = 1024

// Policy decides which new passwords are acceptable.
type Policy struct {
	MinLength int // characters; the password_min_length option, default 8
}

// Check returns a *PasswordError with a reason fit to show the user, or
// nil. email is the account's address; a password containing it is
// refused.
func (p Policy) Check(password, email string) error {
	n := utf8.RuneCountInString(password)
	if n < p.MinLength {
		return &PasswordError{Reason: fmt.Sprintf("Password should be at least %d characters", p.MinLength)}
	}
	if n > MaxPasswordLength {
		return &PasswordError{Reason: fmt.Sprintf("Password should be at most %d characters", MaxPasswordLength)}
	}
	if email != "" && strings.Contains(strings.ToLower(password), strings.ToLower(email)) {
		return &PasswordError{Reason: "Password should not contain e-mail"}
	}
	return nil
}
