package caddyauth

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxPasswordLength bounds what is hashed, in characters. Longer inputs
// are refused rather than silently truncated (bcrypt would truncate at 72
// bytes; argon2id would hash megabytes).
const MaxPasswordLength = 1024

// Policy decides which new passwords are acceptable, after NIST SP
// 800-63B §5.1.1.2: a minimum length, a generous maximum, no password
// found in a list of commonly used ones, none that contains the
// account's email; and no composition rules.
type Policy struct {
	MinLength int // characters; the password_min_length option, default 8
	MaxLength int // characters; the password_max_length option, default MaxPasswordLength
}

// Check returns a *PasswordError with a reason fit to show the user, or
// nil. email is the account's address; a password containing it is
// refused.
func (p Policy) Check(password, email string) error {
	n := utf8.RuneCountInString(password)
	if n < p.MinLength {
		return &PasswordError{Reason: fmt.Sprintf("Password should be at least %d characters", p.MinLength)}
	}
	maxLength := p.MaxLength
	if maxLength <= 0 || maxLength > MaxPasswordLength {
		maxLength = MaxPasswordLength
	}
	if n > maxLength {
		return &PasswordError{Reason: fmt.Sprintf("Password should be at most %d characters", maxLength)}
	}
	if email != "" && strings.Contains(strings.ToLower(password), strings.ToLower(email)) {
		return &PasswordError{Reason: "Password should not contain e-mail"}
	}
	if isCommonPassword(password) {
		return &PasswordError{Reason: "Password is too common"}
	}
	return nil
}

// commonPasswordsGz is a list of the 10,000 most used passwords (see
// common-passwords.NOTICE), one per line.
//
//go:embed common-passwords.txt.gz
var commonPasswordsGz []byte

var (
	commonOnce sync.Once
	common     map[string]struct{}
)

// isCommonPassword reports whether a password, ignoring case, is in the
// list: the first guesses of any attacker.
func isCommonPassword(password string) bool {
	commonOnce.Do(func() {
		common = make(map[string]struct{}, 10000)
		zr, err := gzip.NewReader(bytes.NewReader(commonPasswordsGz))
		if err != nil {
			panic(fmt.Sprintf("embedded common passwords: %v", err))
		}
		sc := bufio.NewScanner(zr)
		for sc.Scan() {
			if w := strings.TrimSpace(sc.Text()); w != "" {
				common[strings.ToLower(w)] = struct{}{}
			}
		}
		if err := sc.Err(); err != nil {
			panic(fmt.Sprintf("embedded common passwords: %v", err))
		}
	})
	_, found := common[strings.ToLower(password)]
	return found
}
