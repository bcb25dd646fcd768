// Package mailer delivers the mail that Gatehouse queues in its outbox
// (store.Outbox): verification and password-reset messages.
//
// It has two halves:
//
//   - Transports put one store.Message on its way: SMTP (STARTTLS, implicit
//     TLS, AUTH, through github.com/wneessen/go-mail), Dir (one RFC 5322
//     .eml file per message, for development and for tests), and Log (no
//     mail configured: the message is logged). All three compose the same
//     MIME message: From, To, Subject, Date, Message-ID, and a
//     multipart/alternative body with text/plain first and text/html second.
//     IsPermanent tells a failure that will never succeed (an SMTP 5xx
//     rejection, an invalid address) from one worth retrying.
//   - Sender is the background worker: it claims due messages from the
//     outbox under a lease, hands them to a Transport, deletes the delivered
//     ones and reschedules the failed ones with exponential backoff.
//
// A request never waits on a Transport: the core queues the message in the
// same transaction as its token and calls Sender.Wake.
//
// Message bodies carry single-use tokens: nothing in this package logs a
// body, except the Log transport, whose purpose is to show it to a
// developer who has configured no mail.
//
// This package imports the standard library, store and go-mail only. It
// must not import Caddy, zap, caddyauth or handlers: the root module wires
// it up and hands it a *slog.Logger.
package mailer
