package handlers

import (
	"maps"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

func TestHeaderSetStrip(t *testing.T) {
	t.Parallel()
	// Keys are set raw, as a server or an HTTP/2 front end may leave them:
	// Strip must not rely on Go's canonical form.
	spoofed := func() http.Header {
		return http.Header{
			"Remote-User":    {"admin@evil"},
			"remote-user":    {"admin@evil"},
			"Remote_User":    {"admin@evil"},
			"REMOTE_USER":    {"admin@evil"},
			"remote_user":    {"admin@evil", "twice"},
			"Remote-Email":   {"x"},
			"REMOTE-EMAIL":   {"x"},
			"Remote-Name":    {"x"},
			"Remote-Groups":  {"admin"},
			"remote_groups":  {"admin"},
			"Remote-User-Id": {"x"},
			"Remote_User_ID": {"x"},
			// Not identity headers: kept.
			"X-Remote-User":  {"keep"},
			"Remote-Users":   {"keep"},
			"Remote-User2":   {"keep"},
			"Remote-Addr":    {"keep"},
			"Authorization":  {"Basic keep"},
			"Remote-User-Ip": {"keep"},
		}
	}
	kept := []string{"Authorization", "Remote-Addr", "Remote-User-Ip", "Remote-User2", "Remote-Users", "X-Remote-User"}

	t.Run("defaults", func(t *testing.T) {
		h := spoofed()
		NewHeaderSet(nil).Strip(h)
		if got := slices.Sorted(maps.Keys(h)); !slices.Equal(got, kept) {
			t.Fatalf("after Strip: %v, want %v", got, kept)
		}
		for _, k := range kept {
			if h[k][0] == "" {
				t.Errorf("%s lost its value", k)
			}
		}
	})
	t.Run("renamed headers are stripped, and so are the defaults", func(t *testing.T) {
		hs := NewHeaderSet(map[string][]string{
			FieldEmail:    {"X-Auth-Email"},
			FieldVerified: {"X-Auth-Verified"},
			FieldName:     {},
		})
		h := spoofed()
		h["x_auth_email"] = []string{"admin@evil"}
		h["X-AUTH-EMAIL"] = []string{"admin@evil"}
		h["X-Auth-Verified"] = []string{"true"}
		h["X-Auth-Other"] = []string{"keep"}
		hs.Strip(h)
		want := append(slices.Clone(kept), "X-Auth-Other")
		slices.Sort(want)
		if got := slices.Sorted(maps.Keys(h)); !slices.Equal(got, want) {
			t.Fatalf("after Strip: %v, want %v", got, want)
		}
	})
	t.Run("nothing to strip", func(t *testing.T) {
		h := http.Header{"Accept": {"*/*"}}
		NewHeaderSet(nil).Strip(h)
		if !reflect.DeepEqual(h, http.Header{"Accept": {"*/*"}}) {
			t.Fatalf("changed: %v", h)
		}
	})
	t.Run("defaults are not mutated by overrides", func(t *testing.T) {
		before := map[string][]string{}
		for k, v := range DefaultHeaders {
			before[k] = slices.Clone(v)
		}
		NewHeaderSet(map[string][]string{FieldEmail: {"A", "B", "C"}, FieldID: {"D"}})
		if !reflect.DeepEqual(before, DefaultHeaders) {
			t.Fatalf("DefaultHeaders changed: %v", DefaultHeaders)
		}
		h := http.Header{"A": {"x"}, "Remote-User": {"x"}}
		NewHeaderSet(nil).Strip(h)
		if _, ok := h["A"]; !ok {
			t.Fatal("a later default set strips an earlier override's name")
		}
	})
}

func TestHeaderSetSet(t *testing.T) {
	t.Parallel()
	full := &caddyauth.Principal{UserID: "0b6b3d7e-1111-4222-8333-444455556666", Email: "Arthur@camelot.bt",
		FullName: "Arthur Pendragon", Roles: []string{"knights", "admin"}, IsActive: true, IsVerified: true}
	cases := []struct {
		name      string
		overrides map[string][]string
		p         *caddyauth.Principal
		before    http.Header
		want      http.Header
	}{
		{"defaults", nil, full, http.Header{}, http.Header{
			"Remote-User-Id": {full.UserID}, "Remote-User": {full.Email}, "Remote-Email": {full.Email},
			"Remote-Name": {"Arthur Pendragon"}, "Remote-Groups": {"knights,admin"}}},
		{"empty values are not sent, and stale ones removed",
			nil, &caddyauth.Principal{UserID: "u", Email: "a@b.c"},
			http.Header{"Remote-Name": {"stale"}, "Remote-Groups": {"stale"}},
			http.Header{"Remote-User-Id": {"u"}, "Remote-User": {"a@b.c"}, "Remote-Email": {"a@b.c"}}},
		{"control characters are never sent",
			nil, &caddyauth.Principal{UserID: "u", Email: "a@b.c", FullName: "Arthur\r\nRemote-User: admin", Roles: []string{"a\x7fb"}},
			http.Header{},
			http.Header{"Remote-User-Id": {"u"}, "Remote-User": {"a@b.c"}, "Remote-Email": {"a@b.c"}}},
		{"tab and NUL", nil, &caddyauth.Principal{UserID: "u\x00", Email: "a\t@b.c"}, http.Header{}, http.Header{}},
		{"a value replaces, never adds",
			nil, &caddyauth.Principal{UserID: "u", Email: "a@b.c"},
			http.Header{"Remote-User": {"spoof", "spoof2"}},
			http.Header{"Remote-User-Id": {"u"}, "Remote-User": {"a@b.c"}, "Remote-Email": {"a@b.c"}}},
		{"renamed and added fields",
			map[string][]string{FieldEmail: {"X-Email"}, FieldVerified: {"X-Verified"}, FieldName: {}, FieldRoles: {"X-Roles", "X-Groups"}},
			full, http.Header{},
			http.Header{"Remote-User-Id": {full.UserID}, "X-Email": {full.Email}, "X-Verified": {"true"},
				"X-Roles": {"knights,admin"}, "X-Groups": {"knights,admin"}}},
		{"verified false is a value",
			map[string][]string{FieldVerified: {"X-Verified"}}, &caddyauth.Principal{UserID: "u", Email: "a@b.c"}, http.Header{},
			http.Header{"Remote-User-Id": {"u"}, "Remote-User": {"a@b.c"}, "Remote-Email": {"a@b.c"}, "X-Verified": {"false"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.before
			NewHeaderSet(tc.overrides).Set(h, tc.p)
			if !reflect.DeepEqual(h, tc.want) {
				t.Fatalf("headers %v\nwant    %v", h, tc.want)
			}
			for k, vs := range h {
				for _, v := range vs {
					if v == "" || hasControl(v) {
						t.Errorf("%s: %q sent", k, v)
					}
				}
			}
		})
	}
}

func TestFieldValue(t *testing.T) {
	t.Parallel()
	p := &caddyauth.Principal{UserID: "id", Email: "e", FullName: "n", Roles: []string{"a", "b"}}
	want := map[string]string{FieldID: "id", FieldEmail: "e", FieldName: "n", FieldRoles: "a,b", FieldVerified: "false", "nope": ""}
	for f, v := range want {
		if got := FieldValue(p, f); got != v {
			t.Errorf("FieldValue(%s) = %q, want %q", f, got, v)
		}
	}
}

func TestStripCookie(t *testing.T) {
	t.Parallel()
	const name = "gatehouse_session"
	cases := []struct {
		name string
		in   []string // Cookie header lines
		want []string // nil: no Cookie header left
	}{
		{"ours among others", []string{"a=1; gatehouse_session=abc==; b=2"}, []string{"a=1; b=2"}},
		{"ours first", []string{"gatehouse_session=abc; a=1"}, []string{"a=1"}},
		{"ours last", []string{"a=1; gatehouse_session=abc"}, []string{"a=1"}},
		{"ours only", []string{"gatehouse_session=abc"}, nil},
		{"ours twice", []string{"gatehouse_session=x; gatehouse_session=y"}, nil},
		{"ours without a value", []string{"a=1; gatehouse_session"}, []string{"a=1"}},
		{"ours with an empty value", []string{"gatehouse_session=; a=1"}, []string{"a=1"}},
		{"ours in a second line", []string{"a=1", "gatehouse_session=abc; b=2"}, []string{"a=1; b=2"}},
		{"not ours: exact bytes kept", []string{"a=1;b=2;  c=3"}, []string{"a=1;b=2;  c=3"}},
		{"values with = and quotes kept", []string{`x="q=1; gatehouse_session=abc; y=a=b==`}, []string{`x="q=1; y=a=b==`}},
		{"similar names kept", []string{"gatehouse_session2=a; Gatehouse_Session=b; xgatehouse_session=c; gatehouse_session=d"},
			[]string{"gatehouse_session2=a; Gatehouse_Session=b; xgatehouse_session=c"}},
		{"spaces around the name", []string{"a=1;  gatehouse_session =abc ;b=2"}, []string{"a=1; b=2"}},
		{"no cookie header", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"X-Other": {"1"}}
			for _, l := range tc.in {
				h.Add("Cookie", l)
			}
			stripCookie(h, name)
			if got := h.Values("Cookie"); !slices.Equal(got, tc.want) {
				t.Fatalf("Cookie %q, want %q", got, tc.want)
			}
			if _, ok := h["Cookie"]; ok && tc.want == nil {
				t.Fatal("an empty Cookie header is left")
			}
			r := &http.Request{Header: h}
			if cs := r.CookiesNamed(name); len(cs) != 0 {
				t.Fatalf("our cookie is still readable: %v", cs)
			}
			if h.Get("X-Other") != "1" {
				t.Fatal("another header was touched")
			}
		})
	}
}
