package mailer

import (
	"context"
	"fmt"
	"log/slog"
	"net/mail"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// Log is the transport used when no mail is configured, in development: it
// logs each message's recipient, subject and text part at INFO instead of
// sending it, so that a developer can follow the link it contains. The
// text carries a live token: this transport is not for production, and
// the root logs a warning at start-up when it is in use.
type Log struct {
	logger *slog.Logger
	from   *mail.Address
}

// NewLog returns a transport logging to logger. from may be empty (no mail
// configured at all); otherwise it must parse as an address. Messages are
// composed and checked exactly as the other transports do, so that a
// message they would refuse is refused here too.
func NewLog(logger *slog.Logger, from string) (*Log, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{logger: logger}
	if from == "" {
		l.from = &mail.Address{Address: "gatehouse@localhost"}
		return l, nil
	}
	f, err := parseFrom(from)
	if err != nil {
		return nil, fmt.Errorf("mail log: %w", err)
	}
	l.from = f
	return l, nil
}

// Send logs m.
func (l *Log) Send(ctx context.Context, m *store.Message) error {
	if _, err := compose(l.from, m, time.Now(), true); err != nil {
		return fmt.Errorf("mail log: %w", err)
	}
	l.logger.LogAttrs(ctx, slog.LevelInfo, "mail not sent (no mail configured); logged instead",
		slog.Int64("id", m.ID),
		slog.String("to", m.To),
		slog.String("subject", m.Subject),
		slog.String("text", m.Text),
	)
	return nil
}

var _ Transport = (*Log)(nil)
