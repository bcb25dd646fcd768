package mailer

import (
	"context"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gatehouse-caddy/gatehouse/store"
)

// Dir writes each message as one RFC 5322 file, <UTC time>-<outbox
// id>.eml, in a directory: development without a mail server, and tests.
// Files appear atomically (written under a hidden temporary name, synced,
// then renamed), so a reader never sees half a message.
type Dir struct {
	dir  string
	from *mail.Address
	now  func() time.Time
}

// NewDir returns a transport writing into dir, sending as from. The
// directory is created (mode 0700) by the first Send, not here, so that
// validating a configuration has no side effect.
func NewDir(dir, from string) (*Dir, error) {
	if dir == "" {
		return nil, fmt.Errorf("mail dir: no directory given")
	}
	f, err := parseFrom(from)
	if err != nil {
		return nil, fmt.Errorf("mail dir: %w", err)
	}
	return &Dir{dir: dir, from: f, now: time.Now}, nil
}

// Path is the directory the messages go to.
func (d *Dir) Path() string { return d.dir }

// Send writes m. The files are readable by their owner only (0600): the
// messages carry tokens.
func (d *Dir) Send(ctx context.Context, m *store.Message) error {
	now := d.now()
	msg, err := compose(d.from, m, now, true)
	if err != nil {
		return fmt.Errorf("mail dir: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("mail dir: %w", err)
	}
	// os.CreateTemp creates the file with mode 0600. The name has no .eml
	// suffix and starts with a dot, so that a tool watching for *.eml
	// files does not pick up a partial one.
	tmp, err := os.CreateTemp(d.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("mail dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := msg.WriteTo(tmp); err != nil {
		return fmt.Errorf("mail dir: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("mail dir: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("mail dir: %w", err)
	}
	name := filepath.Join(d.dir, now.UTC().Format("20060102T150405.000000000Z")+"-"+strconv.FormatInt(m.ID, 10)+".eml")
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("mail dir: %w", err)
	}
	ok = true
	// The Sender deletes the message from the outbox once Send returns:
	// make the new directory entry durable first. Best effort: some
	// systems cannot sync a directory.
	if df, err := os.Open(d.dir); err == nil {
		_ = df.Sync()
		_ = df.Close()
	}
	return nil
}

var _ Transport = (*Dir)(nil)
