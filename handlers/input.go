package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// MaxBodyBytes bounds every request body the API reads; a larger one is
// answered 413 without being read further.
const MaxBodyBytes = 64 << 10

var errBodyTooLarge = errors.New("request body too large")

// jsonUnexpectedEnd is encoding/json's message for a body that ends
// inside a value.
const jsonUnexpectedEnd = "unexpected end of JSON input"

// readBody reads at most MaxBodyBytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errBodyTooLarge
	}
	if err != nil {
		return nil, err
	}
	return body, nil
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

// parseLoginForm reads the login form; faults come back as 422 items.
func parseLoginForm(w http.ResponseWriter, r *http.Request) (*loginForm, []validationItem, error) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	switch mt {
	case "application/x-www-form-urlencoded":
		err = r.ParseForm()
	case "multipart/form-data":
		err = r.ParseMultipartForm(MaxBodyBytes)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, nil, errBodyTooLarge
	}
	if err != nil {
		// A form that cannot be parsed carries no fields.
		r.PostForm = nil
	}
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
	return f, items, nil
}
