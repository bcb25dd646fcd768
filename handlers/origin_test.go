package handlers

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A cross-site form post to the cookie login must not log the browser in
// (login CSRF); clients that send no Origin are not affected.
func TestCookieLoginRefusesForeignOrigins(t *testing.T) {
	t.Parallel()
	cases := []struct {
		origin       string
		cookieDomain string
		want         int
	}{
		{"", "", http.StatusNoContent},
		{"http://example.com", "", http.StatusNoContent},
		{"https://evil.example", "", http.StatusForbidden},
		{"null", "", http.StatusForbidden},
		{"http://app.example.com", "", http.StatusForbidden},
		{"https://app.example.com", "example.com", http.StatusNoContent},
		{"https://example.com.evil.example", "example.com", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.origin+"|"+tc.cookieDomain, func(t *testing.T) {
			t.Parallel()
			e := newAPIEnv(t, nil)
			e.api.CookieDomain = tc.cookieDomain
			e.mustUser(t, "arthur@camelot.bt")
			r := httptest.NewRequest("POST", "http://example.com/auth/cookie/login",
				strings.NewReader("username=arthur%40camelot.bt&password="+testPassword))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			w := httptest.NewRecorder()
			e.api.ServeAPI(w, r)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.want, w.Body)
			}
			if got := w.Header().Get("Set-Cookie"); (tc.want == http.StatusForbidden) != (got == "") {
				t.Fatalf("Set-Cookie %q with status %d", got, w.Code)
			}
		})
	}
}

// A page_templates directory that does not exist, or holds a misspelt
// page, is refused rather than silently ignored.
func TestPageTemplatesDirectoryChecked(t *testing.T) {
	t.Parallel()
	if _, err := LoadPages(filepath.Join(t.TempDir(), "missing"), Branding{}, ""); err == nil {
		t.Error("a missing directory was accepted")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Login.html"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPages(dir, Branding{}, ""); err == nil || !strings.Contains(err.Error(), "Login.html") {
		t.Errorf("a misspelt page: %v", err)
	}
}

// Sec-Fetch-Site, which pages cannot forge, decides when a browser sends
// it: only same-origin posts pass, even with a good token.
func TestSameOriginFetchMetadata(t *testing.T) {
	t.Parallel()
	cases := []struct {
		site, origin string
		want         bool
	}{
		{"same-origin", "", true},
		{"same-origin", "null", true},
		{"same-site", "", false},
		{"same-site", "https://example.com", false},
		{"cross-site", "https://example.com", false},
		{"none", "", false},
		{"", "https://example.com", true},
		{"", "https://evil.example", false},
		{"", "null", true},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("POST", "https://example.com/auth/login", nil)
		if tc.site != "" {
			r.Header.Set("Sec-Fetch-Site", tc.site)
		}
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := sameOrigin(r); got != tc.want {
			t.Errorf("Sec-Fetch-Site %q, Origin %q: %v, want %v", tc.site, tc.origin, got, tc.want)
		}
	}
}
