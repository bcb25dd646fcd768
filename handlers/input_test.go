package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// FuzzParseJSONBody feeds arbitrary bodies and content types to the JSON
// reader, then to two routes that read a body without writing anything:
// whatever arrives, the answer is a 4xx with a JSON `detail`, never a
// 500 and never a panic.
func FuzzParseJSONBody(f *testing.F) {
	seeds := []struct{ body, ct string }{
		{`{"email":"a@camelot.bt","password":"correct horse battery"}`, "application/json"},
		{`{"email":"a@camelot.bt","password":"x","full_name":null,"roles":["a","a"],"is_superuser":"yes"}`, "application/json"},
		{`{"email":`, "application/json"},
		{`{bad}`, "application/json"},
		{"", "application/json"},
		{"  ", "application/json"},
		{"null", "application/json"},
		{`[]`, "application/json"},
		{`"foo"`, "application/vnd.api+json"},
		{`{"is_superuser":"notabool","is_active":[],"is_verified":2,"roles":"x"}`, "application/json; charset=utf-8"},
		{`{"roles":[1,{"a":1},null],"email":null,"password":1e999}`, "application/json"},
		{`{"email":"a@b.co\r\nX: 1","full_name":"\u0000"}`, "application/json"},
		{"{\"email\":\"\xff@b.co\"}", "application/json"},
		{`{"a":1}`, "text/plain"},
		{`{"a":1}`, ""},
		{`{"a":1}`, "application/json; ="},
		{strings.Repeat("[", 10000), "application/json"},
		{`{"password":"` + strings.Repeat("x", 2000) + `"}`, "application/json"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.ct)
	}
	open := newAPIEnv(f, nil)
	closed := newAPIEnv(f, func(o *caddyauth.Options) { o.RegistrationClosed = true })

	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		newReq := func(method, target string) *http.Request {
			r := httptest.NewRequest(method, target, bytes.NewReader(body))
			if ct != "" {
				r.Header["Content-Type"] = []string{ct}
			}
			return r
		}

		// The reader itself.
		w := httptest.NewRecorder()
		b, syntax, err := parseJSONBody(w, newReq("POST", "/auth/register"))
		switch {
		case len(body) > MaxBodyBytes:
			if !errors.Is(err, errBodyTooLarge) {
				t.Fatalf("%d bytes read without errBodyTooLarge: %v", len(body), err)
			}
			return
		case err != nil:
			t.Fatalf("parseJSONBody failed: %v", err)
		case syntax != nil:
			if b != nil || len(syntax) != 1 || syntax[0].Type != "json_invalid" || json.Valid(body) || !isJSONContentType(ct) {
				t.Fatalf("syntax fault %+v for %q (%q)", syntax, body, ct)
			}
			off, ok := syntax[0].Loc[1].(int)
			if !ok || off < 0 || off > len(body) {
				t.Fatalf("json_invalid at %v in %d bytes", syntax[0].Loc, len(body))
			}
		default:
			if b == nil || b.fields == nil {
				t.Fatal("no body and no fault")
			}
			if b.objectOK() && (!isJSONContentType(ct) || !json.Valid(body) || bytes.TrimSpace(body)[0] != '{') {
				t.Fatalf("accepted %q (%q) as a JSON object", body, ct)
			}
			for _, it := range b.errs {
				if len(it.Loc) == 0 || it.Loc[0] != "body" {
					t.Fatalf("fault without a body location: %+v", it)
				}
			}
			// Reading the fields of a patch, as PATCH /users/{id} does.
			w := httptest.NewRecorder()
			if _, ok := readPatch(w, b, true); !ok {
				checkAnswer(t, w, http.StatusUnprocessableEntity)
			} else if w.Body.Len() != 0 {
				t.Fatalf("readPatch accepted and wrote %s", w.Body)
			}
		}

		// Whole routes that never write to the store.
		w = httptest.NewRecorder()
		open.handler().ServeHTTP(w, newReq("PATCH", "/users/me"))
		checkAnswer(t, w, http.StatusUnauthorized, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
		w = httptest.NewRecorder()
		closed.handler().ServeHTTP(w, newReq("POST", "/auth/register"))
		checkAnswer(t, w, http.StatusForbidden, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
	})
}

// checkAnswer asserts one of the statuses and a JSON body with a detail;
// a 422 detail must be a list of items located in the body.
func checkAnswer(t *testing.T, w *httptest.ResponseRecorder, statuses ...int) {
	t.Helper()
	ok := false
	for _, s := range statuses {
		ok = ok || w.Code == s
	}
	if !ok {
		t.Fatalf("status %d (want one of %v): %s", w.Code, statuses, w.Body)
	}
	var out struct {
		Detail json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Detail == nil {
		t.Fatalf("body %q is not {\"detail\": …}: %v", w.Body, err)
	}
	if w.Code != http.StatusUnprocessableEntity {
		return
	}
	var items []vItem
	dec := json.NewDecoder(bytes.NewReader(out.Detail))
	dec.UseNumber() // inputs are echoed as sent: 1e999 is no float64
	if err := dec.Decode(&items); err != nil || len(items) == 0 {
		t.Fatalf("422 detail %s is not a list of items: %v", out.Detail, err)
	}
	for _, it := range items {
		if it.Type == "" || it.Msg == "" || len(it.Loc) == 0 || it.Loc[0] != "body" {
			t.Fatalf("malformed 422 item %+v", it)
		}
	}
}

func TestIsJSONContentType(t *testing.T) {
	t.Parallel()
	yes := []string{"application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.api+json", "application/merge-patch+json"}
	no := []string{"", "text/plain", "text/json", "application/jsonx", "application/x-www-form-urlencoded", "multipart/form-data", "application/json; =", "json", "+json", "application/+json/x"}
	for _, ct := range yes {
		if !isJSONContentType(ct) {
			t.Errorf("%q refused", ct)
		}
	}
	for _, ct := range no {
		if isJSONContentType(ct) {
			t.Errorf("%q accepted", ct)
		}
	}
}
