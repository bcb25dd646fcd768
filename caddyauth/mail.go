package caddyauth

import (
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
	"time"
)

// The kinds of mail Gatehouse sends; each has three templates,
// <kind>.subject.txt, <kind>.txt and <kind>.html.
const (
	MailVerify = "verify"
	MailReset  = "reset"
	MailLocked = "locked" // the notice of a lock after failed logins; Link is the forgot-password page, or ""
)

var mailKinds = []string{MailVerify, MailReset, MailLocked}

//go:embed templates/*
var embeddedTemplates embed.FS

// MailData is what a mail template sees.
type MailData struct {
	Link      string // the page that takes the token: …/auth/verify?token=… or …/auth/reset-password?token=…; for a lockout notice, the forgot-password page or ""
	Email     string // the recipient
	Name      string // their full name, if any
	Site      string // the host the links point to
	ExpiresIn string // how long the link works, in words ("1 hour"); for a lockout notice, how long the lock lasts
}

// Templates are the mail templates: the embedded ones, each replaceable
// by a file of the same name in a directory.
type Templates struct {
	subject map[string]*texttemplate.Template
	text    map[string]*texttemplate.Template
	html    map[string]*htmltemplate.Template
}

// LoadTemplates parses the mail templates. A file in dir with the name of
// an embedded template (verify.txt, reset.html, …) replaces it; dir ""
// means the embedded ones only. Plain-text parts and subjects are
// text/template; HTML parts are html/template, so values are escaped.
func LoadTemplates(dir string) (*Templates, error) {
	t := &Templates{
		subject: map[string]*texttemplate.Template{},
		text:    map[string]*texttemplate.Template{},
		html:    map[string]*htmltemplate.Template{},
	}
	read := func(name string) (string, error) {
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil {
				return string(b), nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("reading mail template: %w", err)
			}
		}
		b, err := embeddedTemplates.ReadFile("templates/" + name)
		if err != nil {
			return "", fmt.Errorf("reading embedded mail template %s: %w", name, err)
		}
		return string(b), nil
	}
	if dir != "" {
		// A wrong directory, or a misspelt file in it, would silently
		// leave the embedded templates in place: refuse both.
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("reading mail templates: %w", err)
		}
		known := map[string]bool{}
		for _, kind := range mailKinds {
			for _, part := range []string{".subject.txt", ".txt", ".html"} {
				known[kind+part] = true
			}
		}
		for _, e := range entries {
			name := e.Name()
			if (strings.HasSuffix(name, ".txt") || strings.HasSuffix(name, ".html")) && !known[name] {
				return nil, fmt.Errorf("mail templates: %s is not the name of a mail template (verify.*, reset.*, locked.*)", name)
			}
		}
	}
	for _, kind := range mailKinds {
		for _, part := range []string{".subject.txt", ".txt", ".html"} {
			name := kind + part
			src, err := read(name)
			if err != nil {
				return nil, err
			}
			switch part {
			case ".html":
				tpl, err := htmltemplate.New(name).Option("missingkey=error").Parse(src)
				if err != nil {
					return nil, fmt.Errorf("parsing mail template %s: %w", name, err)
				}
				t.html[kind] = tpl
			default:
				tpl, err := texttemplate.New(name).Option("missingkey=error").Parse(src)
				if err != nil {
					return nil, fmt.Errorf("parsing mail template %s: %w", name, err)
				}
				if part == ".txt" {
					t.text[kind] = tpl
				} else {
					t.subject[kind] = tpl
				}
			}
		}
	}
	// Render once with sample data, so that a template that fails at run
	// time (an unknown field) is refused when the config loads, not when
	// a user asks for a mail.
	for _, kind := range mailKinds {
		if _, _, _, err := t.render(kind, MailData{Link: "https://example.com/x?token=t", Email: "a@example.com",
			Name: "A", Site: "example.com", ExpiresIn: "1 hour"}); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// render fills in one kind's templates. The subject is made one line.
func (t *Templates) render(kind string, d MailData) (subject, text, html string, err error) {
	var b strings.Builder
	if err := t.subject[kind].Execute(&b, d); err != nil {
		return "", "", "", fmt.Errorf("rendering %s subject: %w", kind, err)
	}
	subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := t.text[kind].Execute(&b, d); err != nil {
		return "", "", "", fmt.Errorf("rendering %s text: %w", kind, err)
	}
	text = b.String()
	b.Reset()
	if err := t.html[kind].Execute(&b, d); err != nil {
		return "", "", "", fmt.Errorf("rendering %s HTML: %w", kind, err)
	}
	return subject, text, b.String(), nil
}

// inWords says a duration the way a mail would: "1 hour", "24 hours",
// "30 minutes".
func inWords(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64(d/time.Minute), "minute")
	default:
		return unit(int64(d/time.Second), "second")
	}
}
