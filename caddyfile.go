package gatehouse

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/gatehouse-caddy/gatehouse/handlers"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("gatehouse", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("gatehouse_endpoints", parseEndpoints)
	httpcaddyfile.RegisterHandlerDirective("gatehouse_guard", parseGuard)
	// Gatehouse orders its own directives, so users need no `order` line:
	// the endpoints answer first, then the guard, then authentication
	// and proxying of the site.
	// Each is inserted just before basic_auth, so registering the
	// endpoints first puts them ahead of the guard.
	httpcaddyfile.RegisterDirectiveOrder("gatehouse_endpoints", httpcaddyfile.Before, "basic_auth")
	httpcaddyfile.RegisterDirectiveOrder("gatehouse_guard", httpcaddyfile.Before, "basic_auth")
}

// parseGlobalOption parses the global `gatehouse` block. Syntax:
//
//	gatehouse {
//		database sqlite <path>
//		database postgres <dsn> {
//			max_conns <n>
//			connect_timeout <duration>
//			statement_timeout <duration>|off
//		}
//		secret <string>
//		mail dir <directory>
//		mail smtp <url> {
//			from <address>
//		}
//		mail <smtp-url> { … }        # the same, shorter
//		mail_templates <directory>
//		reset_token_lifetime <duration>
//		verify_token_lifetime <duration>
//		mail_limit <n> <window> | off
//		login_limit off
//		login_limit {
//			account <n>
//			ip <n>
//			window <duration>
//			ban <duration>
//		}
//		verify_on_register on|off
//		base_url <url>
//		password_min_length <n>
//		password_max_length <n>
//		password_hash {
//			memory <size>
//			time <n>
//			threads <n>
//			concurrency <n>
//			queue <n>
//			wait <duration>
//		}
//		require_verified on|off
//		require_current_password on|off
//		session_lifetime <duration>
//		session_idle <duration>
//		cookie_name <name>
//		cookie_domain <domain>
//		registration open|closed
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the gatehouse global option may appear only once")
	}
	app := new(App)
	d.Next() // the option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("duplicate subdirective %q", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "database":
			app.Database, err = parseDatabase(d)
		case "secret":
			err = oneArg(d, &app.Secret)
		case "mail":
			app.Mail, err = parseMail(d)
		case "base_url":
			err = oneArg(d, &app.BaseURL)
		case "password_min_length":
			var s string
			if err = oneArg(d, &s); err == nil {
				app.PasswordMinLength, err = strconv.Atoi(s)
				if err != nil || app.PasswordMinLength < 1 {
					return nil, d.Errf("password_min_length: %q is not a positive number", s)
				}
			}
		case "password_max_length":
			var v string
			if err = oneArg(d, &v); err == nil {
				app.PasswordMaxLength, err = strconv.Atoi(v)
				if err != nil || app.PasswordMaxLength < 1 {
					return nil, d.Errf("password_max_length: %q is not a positive number", v)
				}
			}
		case "password_hash":
			app.PasswordHash, err = parsePasswordHash(d)
		case "require_verified":
			app.RequireVerified, err = onOff(d)
		case "require_current_password":
			var on bool
			if on, err = onOff(d); err == nil {
				app.RequireCurrentPassword = &on
			}
		case "session_lifetime":
			app.SessionLifetime, err = duration(d)
		case "session_idle":
			app.SessionIdle, err = duration(d)
		case "cookie_name":
			err = oneArg(d, &app.CookieName)
		case "cookie_domain":
			err = oneArg(d, &app.CookieDomain)
		case "mail_templates":
			err = oneArg(d, &app.MailTemplates)
		case "reset_token_lifetime":
			app.ResetTokenLifetime, err = duration(d)
		case "verify_token_lifetime":
			app.VerifyTokenLifetime, err = duration(d)
		case "verify_on_register":
			var on bool
			if on, err = onOff(d); err == nil {
				app.VerifyOnRegister = &on
			}
		case "mail_limit":
			app.MailLimit, err = parseMailLimit(d)
		case "login_limit":
			app.LoginLimit, err = parseLoginLimit(d)
		case "registration":
			if err = oneArg(d, &app.Registration); err == nil && app.Registration != "open" && app.Registration != "closed" {
				return nil, d.Errf("registration: %q is neither open nor closed", app.Registration)
			}
		default:
			return nil, d.Errf("unrecognized subdirective %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return httpcaddyfile.App{Name: "gatehouse", Value: caddyconfig.JSON(app, nil)}, nil
}

// parseMail parses `mail dir <directory> [{ from <address> }]` and
// `mail smtp <url> { from <address> }`.
func parseMail(d *caddyfile.Dispenser) (*MailConfig, error) {
	args := d.RemainingArgs()
	var mode, target string
	switch {
	case len(args) == 2:
		mode, target = args[0], args[1]
	case len(args) == 1 && (strings.HasPrefix(args[0], "smtp://") || strings.HasPrefix(args[0], "smtps://")):
		// The short form `mail smtp://…`.
		mode, target = "smtp", args[0]
	default:
		return nil, d.ArgErr()
	}
	mc := new(MailConfig)
	switch mode {
	case "dir", "smtp":
		if mode == "dir" {
			mc.Dir = target
		} else {
			mc.SMTP = target
		}
		for d.NextBlock(1) {
			switch d.Val() {
			case "from":
				if mc.From != "" {
					return nil, d.Err("duplicate subdirective \"from\"")
				}
				if err := oneArg(d, &mc.From); err != nil {
					return nil, err
				}
			default:
				return nil, d.Errf("unrecognized subdirective %q", d.Val())
			}
		}
		if mc.SMTP != "" && mc.From == "" {
			return nil, d.Err("mail smtp: a from address is required")
		}
	default:
		return nil, d.Errf("mail: unknown mode %q (want dir or smtp)", mode)
	}
	return mc, nil
}

// parseLoginLimit parses `login_limit off` or a `login_limit { … }` block
// of account, ip, window and ban.
func parseLoginLimit(d *caddyfile.Dispenser) (*LoginLimit, error) {
	l := new(LoginLimit)
	args := d.RemainingArgs()
	switch {
	case len(args) == 1 && args[0] == "off":
		l.Off = true
		if d.NextBlock(1) {
			return nil, d.Err("login_limit off takes no block")
		}
		return l, nil
	case len(args) != 0:
		return nil, d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(1) {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("login_limit: duplicate subdirective %q", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "account", "ip":
			var v string
			if err = oneArg(d, &v); err != nil {
				return nil, err
			}
			n, cerr := strconv.Atoi(v)
			if cerr != nil || n < 1 {
				return nil, d.Errf("login_limit %s: %q is not a positive number", opt, v)
			}
			if opt == "account" {
				l.Account = n
			} else {
				l.IP = n
			}
		case "window":
			l.Window, err = duration(d)
		case "ban":
			l.Ban, err = duration(d)
		default:
			return nil, d.Errf("login_limit: unrecognized subdirective %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}

// parseMailLimit parses `mail_limit <n> <window>` or `mail_limit off`.
func parseMailLimit(d *caddyfile.Dispenser) (*MailLimit, error) {
	args := d.RemainingArgs()
	switch {
	case len(args) == 1 && args[0] == "off":
		return &MailLimit{Max: -1}, nil
	case len(args) != 2:
		return nil, d.ArgErr()
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return nil, d.Errf("mail_limit: %q is not a positive number", args[0])
	}
	window, err := caddy.ParseDuration(args[1])
	if err != nil || window <= 0 {
		return nil, d.Errf("mail_limit: %q is not a positive duration", args[1])
	}
	return &MailLimit{Max: n, Window: caddy.Duration(window)}, nil
}

// parsePasswordHash parses a `password_hash { … }` block. Sizes are
// written as Caddy writes them elsewhere (64MiB, 128MiB; a bare number is
// bytes). The settings are checked here too, so that `caddy adapt` points
// at the block.
func parsePasswordHash(d *caddyfile.Dispenser) (*PasswordHashConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	c := new(PasswordHashConfig)
	seen := map[string]bool{}
	for d.NextBlock(1) {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("password_hash: duplicate subdirective %q", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "memory":
			var v string
			if err = oneArg(d, &v); err == nil {
				size, perr := humanize.ParseBytes(v)
				if perr != nil || size == 0 || size > math.MaxInt64 {
					return nil, d.Errf("password_hash memory: %q is not a size such as 64MiB", v)
				}
				c.Memory = int64(size)
			}
		case "time":
			c.Time, err = positiveInt(d, "password_hash time")
		case "threads":
			c.Threads, err = positiveInt(d, "password_hash threads")
		case "concurrency":
			c.Concurrency, err = positiveInt(d, "password_hash concurrency")
		case "queue":
			c.Queue, err = positiveInt(d, "password_hash queue")
		case "wait":
			c.Wait, err = duration(d)
		default:
			return nil, d.Errf("password_hash: unrecognized subdirective %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	if _, err := c.hasherConfig(); err != nil {
		return nil, d.Err(err.Error())
	}
	return c, nil
}

// positiveInt reads the one argument of the option what as a number of 1
// or more.
func positiveInt(d *caddyfile.Dispenser, what string) (int, error) {
	var v string
	if err := oneArg(d, &v); err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, d.Errf("%s: %q is not a positive number", what, v)
	}
	return n, nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.AllArgs(dst) {
		return d.ArgErr()
	}
	return nil
}

func onOff(d *caddyfile.Dispenser) (bool, error) {
	var v string
	if err := oneArg(d, &v); err != nil {
		return false, err
	}
	switch v {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, d.Errf("%s: %q is neither on nor off", d.Val(), v)
}

func duration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	var v string
	if err := oneArg(d, &v); err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%q is not a positive duration", v)
	}
	return caddy.Duration(dur), nil
}

// parseEndpoints parses the directive. Syntax:
//
//	gatehouse_endpoints [<matcher>] {
//		api_prefix <path>
//		users_prefix <path>
//		title <site title>
//		logo_url <path or https URL>
//		accent_color <#rrggbb>
//		page_templates <directory>
//	}
func parseEndpoints(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // directive name
	if h.NextArg() {
		return nil, h.ArgErr()
	}
	e := new(Endpoints)
	seen := map[string]bool{}
	for h.NextBlock(0) {
		opt := h.Val()
		if seen[opt] {
			return nil, h.Errf("duplicate subdirective %q", opt)
		}
		seen[opt] = true
		switch opt {
		case "api_prefix":
			if err := oneArg(h.Dispenser, &e.APIPrefix); err != nil {
				return nil, err
			}
		case "users_prefix":
			if err := oneArg(h.Dispenser, &e.UsersPrefix); err != nil {
				return nil, err
			}
		case "title":
			if err := oneArg(h.Dispenser, &e.Title); err != nil {
				return nil, err
			}
		case "logo_url":
			if err := oneArg(h.Dispenser, &e.LogoURL); err != nil {
				return nil, err
			}
		case "accent_color":
			if err := oneArg(h.Dispenser, &e.AccentColor); err != nil {
				return nil, err
			}
		case "page_templates":
			if err := oneArg(h.Dispenser, &e.PageTemplates); err != nil {
				return nil, err
			}
		default:
			return nil, h.Errf("unrecognized subdirective %q", opt)
		}
	}
	return e, nil
}

// parseGuard parses the directive. Syntax:
//
//	gatehouse_guard [<matcher>] {
//		allow <path patterns...>
//		require verified
//		require superuser
//		require role <role>...
//		header <field> <Header-Name>
//		login_url <url>
//	}
//
// allow, require and header may repeat. Several `require` lines must all
// hold; the roles of one `require role` line are alternatives. A `header`
// line sends a field under that name instead of its default names; two
// lines for one field send it under both.
func parseGuard(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // directive name
	if h.NextArg() {
		return nil, h.ArgErr()
	}
	g := new(Guard)
	for h.NextBlock(0) {
		switch h.Val() {
		case "allow":
			patterns := h.RemainingArgs()
			if len(patterns) == 0 {
				return nil, h.ArgErr()
			}
			g.Allow = append(g.Allow, patterns...)
		case "require":
			args := h.RemainingArgs()
			if len(args) == 0 {
				return nil, h.ArgErr()
			}
			if g.Require == nil {
				g.Require = new(Requirements)
			}
			switch args[0] {
			case "verified", "superuser":
				if len(args) != 1 {
					return nil, h.Errf("require %s takes no arguments", args[0])
				}
				if args[0] == "verified" {
					g.Require.Verified = true
				} else {
					g.Require.Superuser = true
				}
			case "role":
				if len(args) < 2 {
					return nil, h.Err("require role: name at least one role")
				}
				g.Require.Roles = append(g.Require.Roles, args[1:])
			default:
				return nil, h.Errf("require: unknown rule %q (want verified, superuser or role)", args[0])
			}
		case "header":
			var field, name string
			if !h.AllArgs(&field, &name) {
				return nil, h.ArgErr()
			}
			if !slices.Contains(handlers.Fields, field) {
				return nil, h.Errf("header: unknown field %q", field)
			}
			if g.Headers == nil {
				g.Headers = map[string][]string{}
			}
			g.Headers[field] = append(g.Headers[field], name)
		case "login_url":
			if g.LoginURL != "" {
				return nil, h.Err("duplicate subdirective \"login_url\"")
			}
			if err := oneArg(h.Dispenser, &g.LoginURL); err != nil {
				return nil, err
			}
		default:
			return nil, h.Errf("unrecognized subdirective %q", h.Val())
		}
	}
	return g, nil
}

// Interface guards
var (
	_ httpcaddyfile.UnmarshalGlobalFunc  = parseGlobalOption
	_ httpcaddyfile.UnmarshalHandlerFunc = parseEndpoints
)
