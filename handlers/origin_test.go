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
