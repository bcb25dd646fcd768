package main

import (
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"time"
)

// upstreamBody is what the upstream answers to every request: small and
// fixed, so that the measurements are of the proxy, not of the app.
const upstreamBody = "hello from the upstream\n"

// seenUserHeader is the upstream's reply header echoing the Remote-User
// it received, so that the harness can check, once per setup, that an
// identity really arrived (and that none arrived where none should). It
// is sent only to requests with checkHeader: under load every setup's
// answer must be the same bytes, or a setup that delivers an identity
// would be measured copying a longer answer.
const (
	seenUserHeader = "X-Bench-Remote-User"
	checkHeader    = "X-Bench-Check"
)

// upstreamHandler is the application behind Caddy.
func upstreamHandler() http.Handler {
	body := []byte(upstreamBody)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		if _, ok := r.Header[checkHeader]; ok {
			h.Set(seenUserHeader, r.Header.Get("Remote-User"))
		}
		_, _ = w.Write(body)
	})
}

// authServiceHandler is a stand-in for Authelia or oauth2-proxy behind
// Caddy's forward_auth: it answers 200 with Remote-User when the request
// (as Caddy forwards it) carries the session cookie cookieName=token, and
// 401 otherwise. It is the cheapest such service there can be, a single
// constant-time comparison with no session store, so forward_auth's
// figures are a best case for that design.
func authServiceHandler(cookieName, token, user string) http.Handler {
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieName)
		if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), want) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Remote-User", user)
		w.WriteHeader(http.StatusOK)
	})
}

// localServer is an HTTP server of this process on 127.0.0.1.
type localServer struct {
	Addr string // host:port
	srv  *http.Server
}

// serveLocal serves h on a free port of 127.0.0.1, with keep-alive (the
// net/http default) and no limit on idle connections.
func serveLocal(h http.Handler) (*localServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	return &localServer{Addr: l.Addr().String(), srv: srv}, nil
}

// Close stops the server and its connections.
func (s *localServer) Close() { _ = s.srv.Close() }
