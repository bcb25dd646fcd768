package gatehouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/gatehouse-caddy/gatehouse/mailer"
	"github.com/gatehouse-caddy/gatehouse/store"
)

// MailConfig is how mail leaves: written to a directory, or sent by SMTP.
// Without it, messages are only logged.
type MailConfig struct {
	// A directory where each message is written as one RFC 5322 .eml file.
	Dir string `json:"dir,omitempty"`
	// An SMTP URL: smtp://user:pass@host:587 (STARTTLS, required except to
	// a loopback relay) or smtps://user:pass@host:465 (implicit TLS).
	SMTP string `json:"smtp,omitempty"`
	// The From address. Required with SMTP; default with a directory:
	// Gatehouse <gatehouse@localhost>.
	From string `json:"from,omitempty"`
}

// MailLimit bounds the mails one address receives.
type MailLimit struct {
	// Mails per window; 0 or less: no limit.
	Max int `json:"max,omitempty"`
	// The window.
	Window caddy.Duration `json:"window,omitempty"`
}

// defaultFrom is the From of messages written to a directory or logged
// when none is configured.
const defaultFrom = "Gatehouse <gatehouse@localhost>"

// validate checks that exactly one delivery is named, and that it makes
// sense.
func (m *MailConfig) validate() error {
	if m == nil {
		return nil
	}
	switch {
	case m.Dir != "" && m.SMTP != "":
		return errors.New("mail: name a directory or an SMTP server, not both")
	case m.Dir == "" && m.SMTP == "":
		return errors.New("mail: name a directory or an SMTP server")
	case m.SMTP != "":
		u, err := url.Parse(m.SMTP)
		if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Host == "" {
			return fmt.Errorf("mail smtp: %q is not an smtp:// or smtps:// URL", m.SMTP)
		}
		if _, err := mail.ParseAddress(m.From); err != nil {
			return fmt.Errorf("mail smtp: from %q is not an email address: %w", m.From, err)
		}
	case m.From != "":
		if _, err := mail.ParseAddress(m.From); err != nil {
			return fmt.Errorf("mail: from %q is not an email address: %w", m.From, err)
		}
	}
	return nil
}

func (l *MailLimit) validate() error {
	if l == nil || l.Max <= 0 {
		return nil
	}
	if l.Window <= 0 {
		return errors.New("mail_limit: the window must be a positive duration")
	}
	if time.Duration(l.Window) > store.MailLogRetention {
		return fmt.Errorf("mail_limit: the window may be at most %v", store.MailLogRetention)
	}
	return nil
}

// mailDelivery is one config's mail sender: it delivers what the outbox
// holds, from Start to Stop. Several may run at once on one outbox (the
// old and new config during a reload, several instances on one database):
// the outbox leases each message to one sender at a time.
type mailDelivery struct {
	sender *mailer.Sender
	opener *opener

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// newMailDelivery builds the transport the config names, and a sender on
// the outbox. Nothing runs until start.
func newMailDelivery(mc *MailConfig, outbox store.Outbox, log *slog.Logger) (*mailDelivery, error) {
	var (
		t   mailer.Transport
		err error
	)
	switch {
	case mc != nil && mc.SMTP != "":
		t, err = mailer.NewSMTP(mc.SMTP, mc.From)
	case mc != nil && mc.Dir != "":
		from := mc.From
		if from == "" {
			from = defaultFrom
		}
		t, err = mailer.NewDir(mc.Dir, from)
	default:
		// Development: the link is in the log, where the developer looks.
		log.Warn("no mail configured: verification and password reset mails, links included, are only logged; set `mail smtp` or `mail dir`")
		t, err = mailer.NewLog(log, defaultFrom)
	}
	if err != nil {
		return nil, err
	}
	o := &opener{next: t}
	return &mailDelivery{sender: mailer.NewSender(outbox, o, log), opener: o}, nil
}

// opener opens the sealed bodies of queued mail (caddyauth seals them in
// the outbox) just before the transport delivers them. Its open function
// is the service's, set once the service exists; the sender runs only
// from Start, after that.
type opener struct {
	next mailer.Transport
	open func(string) (string, error)
}

// Send opens the bodies and hands the message on. A body that does not
// open (the secret changed since it was queued) is a permanent failure:
// no retry can open it.
func (o *opener) Send(ctx context.Context, m *store.Message) error {
	if o.open == nil {
		return errors.New("mail: no key to open queued mail")
	}
	opened := *m
	var err error
	if opened.Text, err = o.open(m.Text); err != nil {
		return mailer.Permanent(err)
	}
	if opened.HTML, err = o.open(m.HTML); err != nil {
		return mailer.Permanent(err)
	}
	return o.next.Send(ctx, &opened)
}

func (d *mailDelivery) start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go func() {
		defer close(d.done)
		d.sender.Run(ctx)
	}()
}

func (d *mailDelivery) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel == nil {
		return
	}
	d.cancel()
	<-d.done
	d.cancel, d.done = nil, nil
}
