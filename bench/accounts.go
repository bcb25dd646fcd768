package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// benchPassword is every benchmark user's password: long and uncommon
// enough for Gatehouse's password policy.
const benchPassword = "bench-Tr0ub4dor-correct-horse"

// sessionCookie is Gatehouse's default cookie name (cookie_name).
const sessionCookie = "gatehouse_session"

// newHTTPClient is a client for the account endpoints and checks: no
// proxy from the environment (everything here is on 127.0.0.1), no
// redirects followed, keep-alive with up to conns idle connections.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     time.Minute,
		},
		Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// apiError is an answer of the account API that was not the expected
// one.
type apiError struct {
	Op     string
	Status int
	Body   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s: status %d: %s", e.Op, e.Status, e.Body)
}

// register creates a user with POST /auth/register and wants 201.
func register(ctx context.Context, hc *http.Client, base, email, password string) error {
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/auth/register", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	status, b, _, err := do(hc, req)
	if err != nil {
		return fmt.Errorf("register %s: %w", email, err)
	}
	if status != http.StatusCreated {
		return &apiError{Op: "register " + email, Status: status, Body: b}
	}
	return nil
}

// loginRequest is POST <path> with the login form, as fastapi-users
// takes it.
func loginRequest(ctx context.Context, base, path, email, password string) (*http.Request, error) {
	form := url.Values{"username": {email}, "password": {password}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(form))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, nil
}

// loginJWT logs in with POST /auth/jwt/login and returns the bearer
// token.
func loginJWT(ctx context.Context, hc *http.Client, base, email, password string) (string, error) {
	req, err := loginRequest(ctx, base, "/auth/jwt/login", email, password)
	if err != nil {
		return "", err
	}
	status, b, _, err := do(hc, req)
	if err != nil {
		return "", fmt.Errorf("jwt login %s: %w", email, err)
	}
	if status != http.StatusOK {
		return "", &apiError{Op: "jwt login " + email, Status: status, Body: b}
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(b), &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("jwt login %s: no access_token in %q", email, b)
	}
	return tok.AccessToken, nil
}

// loginCookie logs in with POST /auth/cookie/login and returns the
// session cookie's value.
func loginCookie(ctx context.Context, hc *http.Client, base, email, password string) (string, error) {
	req, err := loginRequest(ctx, base, "/auth/cookie/login", email, password)
	if err != nil {
		return "", err
	}
	status, b, h, err := do(hc, req)
	if err != nil {
		return "", fmt.Errorf("cookie login %s: %w", email, err)
	}
	if status != http.StatusNoContent {
		return "", &apiError{Op: "cookie login " + email, Status: status, Body: b}
	}
	resp := http.Response{Header: h}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			return c.Value, nil
		}
	}
	return "", fmt.Errorf("cookie login %s: no %s cookie in %q", email, sessionCookie, h.Values("Set-Cookie"))
}

// do sends req and returns the status, the body (at most 4 KiB, for
// messages) and the header, reading the body to the end so that the
// connection is reused.
func do(hc *http.Client, req *http.Request) (int, string, http.Header, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, "", nil, err
	}
	return resp.StatusCode, string(b), resp.Header, nil
}
