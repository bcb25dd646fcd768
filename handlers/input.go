package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// MaxBodyBytes bounds every request body the API reads; a larger one is
// answered 413 without being read further.
const MaxBodyBytes = 64 << 10

var errBodyTooLarge = errors.New("request body too large")

// bodyReadTimeout bounds the reading of a request body. Caddy sets no
// read timeout unless configured to, so without this a client could send
// its headers and then the body a byte a minute, holding a goroutine (and,
// behind a login, a place in the queue for hashing) for as long as it
// liked; a person's browser sends 64 KiB in far less. A variable only so
// that tests can shorten it.
var bodyReadTimeout = 10 * time.Second

// errReadTimeout: the body did not arrive within bodyReadTimeout (408).
var errReadTimeout = errors.New("request body read timed out")

// Bounds on what a client sends besides the body's size, each refused
// with a 4xx before the value costs anything.
const (
	// maxJSONDepth bounds how deeply a JSON body nests. The API's bodies
	// nest two levels (an object holding the roles list); decoders
	// recurse, or keep a stack, per level.
	maxJSONDepth = 32
	// maxCredentialBytes bounds a bearer token where it is read from the
	// Authorization header: a longer one is no credential of ours, and is
	// not parsed. (The service refuses longer cookies, and any longer
	// credential, the same way.)
	maxCredentialBytes = caddyauth.MaxCredentialLength
	// maxLoginUsernameBytes bounds the login username: the longest
	// address NormalizeEmail stores is 254 characters (RFC 5321), each at
	// most 4 bytes. 320 bytes, the usual bound, would lock out a long
	// address written in a non-Latin script.
	maxLoginUsernameBytes = 254 * utf8.UTFMax
	// maxLoginPasswordBytes bounds the login password: the longest
	// password the policy accepts is caddyauth.MaxPasswordLength
	// characters, each at most 4 bytes.
	maxLoginPasswordBytes = caddyauth.MaxPasswordLength * utf8.UTFMax
)

// jsonUnexpectedEnd is encoding/json's message for a body that ends
// inside a value.
const jsonUnexpectedEnd = "unexpected end of JSON input"

// readBody reads at most MaxBodyBytes of the request body, within
// bodyReadTimeout: errBodyTooLarge (413) for more, errReadTimeout (408)
// for a body that does not arrive in time. Every body the API and the
// forms read comes through here.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	// The deadline is the connection's (the stream's, in HTTP/2). A
	// server that cannot set one (HTTP/3 today) says ErrNotSupported, and
	// the body is read as before.
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(bodyReadTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, fmt.Errorf("setting the body's read deadline: %w", err)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errBodyTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline stays: the server then closes the connection
		// rather than wait for the rest of the body.
		return nil, errReadTimeout
	case err != nil:
		return nil, err
	}
	// Read in full: the deadline is lifted, or it would go on to end the
	// read by which the server watches for the client going away, and
	// with it the request's context, mid-handler.
	_ = rc.SetReadDeadline(time.Time{})
	return body, nil
}

// readForm reads a posted form, urlencoded or multipart, into r.PostForm
// through readBody: the same bound and deadline as a JSON body. Any other
// content type is not read and leaves r.PostForm empty, as does a form
// that cannot be parsed (a parse error is returned, to tell them apart).
func readForm(w http.ResponseWriter, r *http.Request) error {
	r.PostForm = nil
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" && mt != "multipart/form-data" {
		return nil
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if mt == "multipart/form-data" {
		// The body is in memory already, and allowed as much again: no
		// file part goes to disk.
		err = r.ParseMultipartForm(MaxBodyBytes)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		r.PostForm = nil
		return fmt.Errorf("parsing form: %w", err)
	}
	return nil
}

// jsonTooDeep reports the offset of the first bracket of body that opens
// a level deeper than maxJSONDepth, counting brackets outside strings: one
// pass, no allocation, before anything decodes the body. On JSON it is the
// nesting depth; on anything else it still ends, and what it reports is
// refused as invalid either way.
func jsonTooDeep(body []byte) (offset int, deep bool) {
	depth, inString, escaped := 0, false, false
	for i, c := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxJSONDepth {
				return i, true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return 0, false
}

// jsonBody is a request body read the way FastAPI reads a pydantic model:
// a JSON object whose declared fields are type-checked and whose unknown
// keys are ignored. Faults collect in errs, to be answered as one 422.
type jsonBody struct {
	raw    json.RawMessage
	fields map[string]json.RawMessage
	errs   []validationItem
	// embedded: input of field errors is null rather than the object,
	// as for FastAPI's Body(embed=True) parameters.
	embedded bool
}

// parseJSONBody reads a JSON object from r. A body that is not JSON at all
// is reported in syntax (FastAPI answers it before authentication); a
// body that is JSON but not an object, or the wrong content type, is a
// schema fault recorded in the returned jsonBody's errs.
func parseJSONBody(w http.ResponseWriter, r *http.Request) (b *jsonBody, syntax []validationItem, err error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	b = &jsonBody{fields: map[string]json.RawMessage{}}
	// As FastAPI: an empty body is a missing one, whatever its content
	// type says.
	if len(body) == 0 {
		b.errs = append(b.errs, validationItem{Type: "missing", Loc: []any{"body"}, Msg: "Field required", Input: nil})
		return b, nil, nil
	}
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		b.errs = append(b.errs, validationItem{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: string(body)})
		return b, nil, nil
	}
	if off, deep := jsonTooDeep(body); deep {
		// No body of the API nests past two levels. FastAPI reads deeper
		// ones up to Python's recursion limit; here they are refused
		// before any decoding, in the shape of malformed JSON.
		return nil, []validationItem{{Type: "json_invalid", Loc: []any{"body", off}, Msg: "JSON decode error",
			Input: map[string]any{}, Ctx: map[string]any{"error": fmt.Sprintf("nested deeper than %d levels", maxJSONDepth)}}}, nil
	}
	if !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v)
		offset := 0
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// Go counts the bytes read including the bad one; Python's
			// json (and so FastAPI) gives the bad byte's index, also when
			// it is the last byte (`{"a":1,}`: 7). A body that ends too
			// soon has no bad byte, and both give its length.
			offset = int(se.Offset)
			if offset > 0 && se.Error() != jsonUnexpectedEnd {
				offset--
			}
		}
		msg := "invalid JSON"
		if err != nil {
			msg = err.Error()
		}
		return nil, []validationItem{{Type: "json_invalid", Loc: []any{"body", offset}, Msg: "JSON decode error",
			Input: map[string]any{}, Ctx: map[string]any{"error": msg}}}, nil
	}
	b.raw = body
	if isNull(body) {
		// The JSON null is no body at all, to FastAPI as to pydantic.
		b.raw = nil
		b.errs = append(b.errs, validationItem{Type: "missing", Loc: []any{"body"}, Msg: "Field required", Input: nil})
		return b, nil, nil
	}
	if err := json.Unmarshal(body, &b.fields); err != nil || b.fields == nil {
		b.fields = map[string]json.RawMessage{}
		b.errs = append(b.errs, validationItem{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: json.RawMessage(body)})
	}
	return b, nil, nil
}

// parseEmbeddedJSONBody reads a body of embedded fields (FastAPI's
// Body(embed=True): forgot-password, reset-password, verify): a body that
// is absent, null or not an object has none of the fields, and each
// missing one is reported at ["body", <field>] with a null input.
func parseEmbeddedJSONBody(w http.ResponseWriter, r *http.Request) (*jsonBody, []validationItem, error) {
	b, syntax, err := parseJSONBody(w, r)
	if err != nil || syntax != nil {
		return b, syntax, err
	}
	if !b.objectOK() {
		b.errs = nil
		b.fields = map[string]json.RawMessage{}
	}
	b.embedded = true
	return b, nil, nil
}

// isJSONContentType accepts application/json and application/*+json.
func isJSONContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// ok reports whether the object itself was acceptable (fields are then
// worth checking).
func (b *jsonBody) objectOK() bool { return len(b.errs) == 0 }

func (b *jsonBody) input() any {
	if b.embedded || b.raw == nil {
		return nil
	}
	return b.raw
}

func (b *jsonBody) fail(field, typ, msg string, input any) {
	b.errs = append(b.errs, validationItem{Type: typ, Loc: []any{"body", field}, Msg: msg, Input: input})
}

func (b *jsonBody) failField(fe *caddyauth.FieldError) { b.errs = append(b.errs, fieldItem(fe)) }

func (b *jsonBody) missing(field string) { b.fail(field, "missing", "Field required", b.input()) }

// str reads a string field. Absent: nil, and a "missing" fault when
// required. null: nil, a fault when required or !nullable.
func (b *jsonBody) str(field string, required, nullable bool) *string {
	raw, present := b.fields[field]
	if !present {
		if required {
			b.missing(field)
		}
		return nil
	}
	if isNull(raw) {
		if required || !nullable {
			b.fail(field, "string_type", "Input should be a valid string", nil)
		}
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		b.fail(field, "string_type", "Input should be a valid string", raw)
		return nil
	}
	return &s
}

// boolean reads a boolean field as pydantic does in lax mode: true/false,
// 0/1, and the strings it accepts ("yes", "off", …). null and absent give
// nil.
func (b *jsonBody) boolean(field string) *bool {
	raw, present := b.fields[field]
	if !present || isNull(raw) {
		return nil
	}
	var v any
	_ = json.Unmarshal(raw, &v)
	var out bool
	switch t := v.(type) {
	case bool:
		out = t
	case float64:
		if t != 0 && t != 1 {
			b.fail(field, "bool_parsing", "Input should be a valid boolean, unable to interpret input", raw)
			return nil
		}
		out = t == 1
	case string:
		switch strings.ToLower(t) {
		case "1", "on", "t", "true", "y", "yes":
			out = true
		case "0", "off", "f", "false", "n", "no":
			out = false
		default:
			b.fail(field, "bool_parsing", "Input should be a valid boolean, unable to interpret input", raw)
			return nil
		}
	default:
		b.fail(field, "bool_type", "Input should be a valid boolean", raw)
		return nil
	}
	return &out
}

// strings reads a list of strings. null and absent give nil.
func (b *jsonBody) strings(field string) *[]string {
	raw, present := b.fields[field]
	if !present || isNull(raw) {
		return nil
	}
	var list []any
	if err := json.Unmarshal(raw, &list); err != nil {
		b.fail(field, "list_type", "Input should be a valid list", raw)
		return nil
	}
	out := make([]string, 0, len(list))
	for i, v := range list {
		s, ok := v.(string)
		if !ok {
			b.errs = append(b.errs, validationItem{Type: "string_type", Loc: []any{"body", field, i},
				Msg: "Input should be a valid string", Input: v})
			return nil
		}
		out = append(out, s)
	}
	return &out
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// loginForm is the OAuth2 password request form of fastapi-users' login
// routes, urlencoded or multipart.
type loginForm struct {
	username, password string
}

// parseLoginForm reads the login form; faults come back as 422 items, a
// body too large or too slow as errBodyTooLarge or errReadTimeout, and a
// username or password longer than any account can have as
// caddyauth.ErrBadCredentials (400 LOGIN_BAD_CREDENTIALS).
func parseLoginForm(w http.ResponseWriter, r *http.Request) (*loginForm, []validationItem, error) {
	if err := readForm(w, r); errors.Is(err, errBodyTooLarge) || errors.Is(err, errReadTimeout) {
		return nil, nil, err
	}
	// A form that cannot be parsed carries no fields (readForm left none).
	get := func(k string) string {
		if r.PostForm == nil {
			return ""
		}
		return r.PostForm.Get(k)
	}
	var items []validationItem
	f := &loginForm{username: get("username"), password: get("password")}
	// As in FastAPI, an empty form value counts as absent.
	if f.username == "" {
		items = append(items, validationItem{Type: "missing", Loc: []any{"body", "username"}, Msg: "Field required", Input: nil})
	}
	if f.password == "" {
		items = append(items, validationItem{Type: "missing", Loc: []any{"body", "password"}, Msg: "Field required", Input: nil})
	}
	if gt := get("grant_type"); gt != "" && gt != "password" {
		items = append(items, validationItem{Type: "string_pattern_mismatch", Loc: []any{"body", "grant_type"},
			Msg: "String should match pattern '^password$'", Input: gt, Ctx: map[string]any{"pattern": "^password$"}})
	}
	// fastapi-users takes any string and answers an unknown login 400
	// LOGIN_BAD_CREDENTIALS (contract §3, §4.1); so does this, for values
	// no account can match, without the lookup or the hashing. After the
	// 422s, which FastAPI checks first (§2.5). The username is measured as
	// Login looks it up, without surrounding white space.
	if len(items) == 0 && (len(strings.TrimSpace(f.username)) > maxLoginUsernameBytes || len(f.password) > maxLoginPasswordBytes) {
		return nil, nil, caddyauth.ErrBadCredentials
	}
	return f, items, nil
}
