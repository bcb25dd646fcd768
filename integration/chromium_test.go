package integration

// A real browser for the page tests: Debian's headless Chromium, installed
// by scripts/test.sh, driven through the DevTools protocol with chromedp.
//
//	startBrowser(t) ctx             a tab of a new Chromium (skips, or fails with CI=true, if not installed)
//	newTab(ctx, t) ctx              another tab of the same browser (same cookies)
//	browse(ctx, t, url) int         navigate, wait for the load; the document's HTTP status
//	fill(ctx, t, sel, value)        type into the field sel (CSS), replacing its value
//	submit(ctx, t, form) int        click the submit button of the form sel, wait; the status
//	follow(ctx, t, link) int        click the link sel, wait; the status
//	location(ctx, t) string         document.location.href
//	bodyText(ctx, t) string         document.body.innerText
//	count(ctx, t, sel) int          how many elements match sel, without waiting for one
//	attr(ctx, t, sel, name) string  an attribute of the first element matching sel
//	waitLocation(ctx, t, pred)      wait until the tab's URL satisfies pred and the page is loaded
//	screenshot(ctx, t, path)        a full-page PNG
//	browserCookies(ctx, t, url)     the cookies the browser would send to url
//	browserCookie(ctx, t, url, name)  one of them, or nil
//	runStep / runValue              run chromedp actions under browserStep
//	recordNavigations(ctx, t)       every document request of the tab: method, URL, status
//	  .All() / .Last(t, method, url) / .Since(t, from, method, url)
//
// Every action runs with its own deadline (browserStep), so a missing
// element or a page that never loads fails the test instead of hanging it.
// TestBrowserHarness checks the harness against a plain httptest server.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// browserStep bounds every browser action of the helpers.
const browserStep = 20 * time.Second

// browserStart bounds the start of the browser.
const browserStart = 60 * time.Second

// findChromium returns the browser to run: $CHROME_PATH if set, else
// /usr/bin/chromium (Debian's chromium package, which scripts/test.sh
// installs).
func findChromium() (string, error) {
	path := "/usr/bin/chromium"
	if p := os.Getenv("CHROME_PATH"); p != "" {
		path = p
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", path)
	}
	return path, nil
}

// startBrowser starts a headless Chromium with a fresh profile and returns
// the context of its first tab; the browser is closed on cleanup. Without
// Chromium the test is skipped, or fails when CI=true.
//
// The context has no deadline: it lives as long as the test. The helpers
// bound each action themselves.
func startBrowser(t testing.TB) context.Context {
	t.Helper()
	bin, err := findChromium()
	if err != nil {
		msg := fmt.Sprintf("chromium not installed (%v): run scripts/test.sh, or "+
			"apt-get install chromium, or set CHROME_PATH", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "chromium.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("chromium log: %v", err)
	}
	profile := filepath.Join(dir, "profile") // new and empty
	if err := os.Mkdir(profile, 0o700); err != nil {
		t.Fatalf("chromium profile: %v", err)
	}

	// chromedp's defaults (headless, no first run, no background
	// networking, no sync, no extensions, ...) plus what this machine
	// needs: no sandbox (tests may run as root), no GPU, no QUIC, no
	// component updates. The network is closed except for loopback, so
	// nothing may try to reach Google's hosts.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(logf),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		// Close the browser gracefully, then make sure its process is
		// gone (cancelling the allocator kills it and waits).
		done := make(chan struct{})
		go func() {
			_ = chromedp.Cancel(ctx)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		cancelTab()
		cancelAlloc()
		logf.Close()
		if t.Failed() {
			t.Logf("chromium output (%s), last lines:\n%s", logPath, chromiumLog(logPath))
		}
	})

	// The first action starts the browser and binds it to ctx, so it must
	// not run under a deadline; a start that hangs is cut off here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting %s: %v\n%s", bin, err, chromiumLog(logPath))
		}
	case <-time.After(browserStart):
		cancelAlloc()
		t.Fatalf("starting %s: no answer within %v", bin, browserStart)
	}
	return ctx
}

// chromiumLog returns the last lines of what Chromium printed, without its
// complaints about the missing D-Bus, which it prints many of on a machine
// without a desktop session and which say nothing about the test.
func chromiumLog(path string) string {
	b, _ := os.ReadFile(path)
	var keep []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.Contains(line, ":ERROR:dbus/") {
			keep = append(keep, line)
		}
	}
	return tail(strings.Join(keep, "\n"), 40)
}

// newTab opens another tab of ctx's browser (same profile, so the same
// cookies); it is closed on cleanup.
func newTab(ctx context.Context, t testing.TB) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	// As for the browser, the first action opens the tab and binds it to
	// the context it runs with: no deadline there, a bounded wait here.
	opened := make(chan error, 1)
	go func() { opened <- chromedp.Do(tab) }()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("opening a tab: %v", err)
		}
	case <-time.After(browserStep):
		cancel()
		t.Fatalf("opening a tab: no answer within %v", browserStep)
	}
	return tab
}

// runStep runs f with a context bounded by browserStep.
func runStep(ctx context.Context, f func(context.Context, ...chromedp.Action[chromedp.Void]) error, steps ...chromedp.Action[chromedp.Void]) error {
	sctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	return f(sctx, steps...)
}

// runValue runs a value action with a context bounded by browserStep.
func runValue[T any](ctx context.Context, a chromedp.Action[T]) (T, error) {
	sctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	return chromedp.Run(sctx, a)
}

// status is the HTTP status of a document response (0 if there was none).
func status(resp *network.Response) int {
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// browse navigates the tab to u, waits until the page has loaded, and
// returns the HTTP status of the document it ends on (after redirects).
func browse(ctx context.Context, t testing.TB, u string) int {
	t.Helper()
	resp, err := runValue(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		t.Fatalf("browsing to %s: %v", u, err)
	}
	return status(resp)
}

// fill replaces the value of the form field sel (a CSS selector) by
// typing value into it, as a person would.
func fill(ctx context.Context, t testing.TB, sel, value string) {
	t.Helper()
	// Empty the field first. (chromedp's SetValue cannot set "": it
	// reports the empty result as a failure.)
	found, err := runValue(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`(e => { if (!e) return false; e.value = ""; return true })(document.querySelector(%s))`, jsString(sel))))
	if err != nil || !found {
		t.Fatalf("%s: no field %s (%v):\n%s", location(ctx, t), sel, err, truncate(bodyText(ctx, t), 800))
	}
	if err := runStep(ctx, chromedp.Do, chromedp.SendKeys(chromedp.CSS(sel), value)); err != nil {
		t.Fatalf("filling %s on %s: %v", sel, location(ctx, t), err)
	}
}

// submit clicks the submit button of the form sel (a CSS selector for the
// form), waits until the resulting page has loaded, and returns its HTTP
// status (after redirects).
func submit(ctx context.Context, t testing.TB, form string) int {
	t.Helper()
	button := fmt.Sprintf("%[1]s button[type=submit], %[1]s input[type=submit], %[1]s button:not([type])", form)
	if count(ctx, t, button) == 0 {
		t.Fatalf("%s: no submit button in %s:\n%s", location(ctx, t), form, truncate(bodyText(ctx, t), 800))
	}
	resp, err := clickAndWait(ctx, button)
	if err != nil {
		t.Fatalf("submitting %s on %s: %v", form, location(ctx, t), err)
	}
	return status(resp)
}

// clickAndWait clicks the first element matching sel and waits until the
// navigation it starts has loaded, within browserStep.
func clickAndWait(ctx context.Context, sel string) (*network.Response, error) {
	sctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	return chromedp.RunResponse(sctx, chromedp.Click(chromedp.CSS(sel)))
}

// follow clicks the link sel (a CSS selector), waits until the page has
// loaded, and returns its HTTP status.
func follow(ctx context.Context, t testing.TB, link string) int {
	t.Helper()
	if count(ctx, t, link) == 0 {
		t.Fatalf("%s: no link %s:\n%s", location(ctx, t), link, truncate(bodyText(ctx, t), 800))
	}
	resp, err := clickAndWait(ctx, link)
	if err != nil {
		t.Fatalf("following %s on %s: %v", link, location(ctx, t), err)
	}
	return status(resp)
}

// location returns document.location.href.
func location(ctx context.Context, t testing.TB) string {
	t.Helper()
	u, err := runValue(ctx, chromedp.Location())
	if err != nil {
		t.Fatalf("reading the location: %v", err)
	}
	return u
}

// bodyText returns document.body.innerText: the page's text as rendered.
func bodyText(ctx context.Context, t testing.TB) string {
	t.Helper()
	s, err := runValue(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		t.Fatalf("reading the page text: %v", err)
	}
	return s
}

// count returns how many elements match the CSS selector sel now, without
// waiting for one to appear.
func count(ctx context.Context, t testing.TB, sel string) int {
	t.Helper()
	n, err := runValue(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel))))
	if err != nil {
		t.Fatalf("counting %s: %v", sel, err)
	}
	return n
}

// attr returns the attribute name of the first element matching sel, or
// fails the test if there is no such element or attribute.
func attr(ctx context.Context, t testing.TB, sel, name string) string {
	t.Helper()
	if count(ctx, t, sel) == 0 {
		t.Fatalf("%s: no element %s:\n%s", location(ctx, t), sel, truncate(bodyText(ctx, t), 800))
	}
	res, err := runValue(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		t.Fatalf("reading %s[%s]: %v", sel, name, err)
	}
	if !res.Exists {
		t.Fatalf("%s has no attribute %s", sel, name)
	}
	return res.Value
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// waitLocation waits until the tab's URL satisfies pred and its document
// has loaded, for navigations the test did not start itself (a page that
// submits a form on load).
func waitLocation(ctx context.Context, t testing.TB, pred func(*url.URL) bool) {
	t.Helper()
	deadline := time.Now().Add(browserStep)
	last := ""
	for {
		state, err := runValue(ctx, chromedp.Evaluate[[]string](`[document.location.href, document.readyState]`))
		if err == nil && len(state) == 2 {
			last = state[0]
			if u, perr := url.Parse(state[0]); perr == nil && pred(u) && state[1] == "complete" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tab did not reach the expected page within %v; it is at %s", browserStep, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot writes a PNG of the whole page (beyond the window) to path,
// creating its directory.
func screenshot(ctx context.Context, t testing.TB, path string) {
	t.Helper()
	png, err := runValue(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot of %s: %v", location(ctx, t), err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot of %s is not a PNG (%d bytes)", location(ctx, t), len(png))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
}

// browserCookies returns the cookies the browser holds for u.
func browserCookies(ctx context.Context, t testing.TB, u string) []*network.Cookie {
	t.Helper()
	res, err := runValue(ctx, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	})
	if err != nil {
		t.Fatalf("reading the cookies for %s: %v", u, err)
	}
	return res.Cookies
}

// browserCookie returns the cookie name for u, or nil.
func browserCookie(ctx context.Context, t testing.TB, u, name string) *network.Cookie {
	t.Helper()
	for _, c := range browserCookies(ctx, t, u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// navigation is one document request of a tab as the browser made it: a
// redirect and its target are two entries.
type navigation struct {
	Method string
	URL    string
	Status int // 0 until the response arrived
}

func (n navigation) String() string { return fmt.Sprintf("%s %s → %d", n.Method, n.URL, n.Status) }

// navRecorder keeps the navigations of a tab.
type navRecorder struct {
	mu      sync.Mutex
	navs    []navigation
	current map[network.RequestID]int // request → index of its latest entry
}

// recordNavigations records every document request of the tab from now
// on, for as long as the tab lives.
func recordNavigations(ctx context.Context, t testing.TB) *navRecorder {
	t.Helper()
	r := &navRecorder{current: map[network.RequestID]int{}}
	err := chromedp.Listen(ctx, func(ev any) {
		// Runs in the tab's event loop: no commands, return fast.
		r.mu.Lock()
		defer r.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if ev.Type != network.ResourceTypeDocument || ev.Request == nil {
				return
			}
			if i, ok := r.current[ev.RequestID]; ok && ev.RedirectResponse != nil {
				r.navs[i].Status = int(ev.RedirectResponse.Status)
			}
			r.navs = append(r.navs, navigation{Method: ev.Request.Method, URL: ev.Request.URL})
			r.current[ev.RequestID] = len(r.navs) - 1
		case *network.EventResponseReceived:
			if ev.Type != network.ResourceTypeDocument || ev.Response == nil {
				return
			}
			if i, ok := r.current[ev.RequestID]; ok {
				r.navs[i].Status = int(ev.Response.Status)
			}
		}
	})
	if err != nil {
		t.Fatalf("listening to the tab: %v", err)
	}
	return r
}

// All returns the navigations so far, oldest first.
func (r *navRecorder) All() []navigation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]navigation(nil), r.navs...)
}

// Last returns the latest navigation with method to u, waiting up to
// browserStep for its response; it fails the test if there is none.
func (r *navRecorder) Last(t testing.TB, method, u string) navigation {
	t.Helper()
	return r.Since(t, 0, method, u)
}

// Since is Last among the navigations from index from on (a length of
// All taken before the action).
func (r *navRecorder) Since(t testing.TB, from int, method, u string) navigation {
	t.Helper()
	deadline := time.Now().Add(browserStep)
	for {
		navs := r.All()
		for i := len(navs) - 1; i >= from; i-- {
			if navs[i].Method == method && navs[i].URL == u && navs[i].Status != 0 {
				return navs[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the browser made no %s %s with a response; navigations: %v", method, u, navs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrowserHarness checks the harness itself against a plain server:
// navigation, a redirect, a form typed into and submitted (a 303), the
// location, the text, cookies, a second tab and a screenshot.
func TestBrowserHarness(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /form", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!DOCTYPE html><title>form</title>
<form id="f" method="post" action="/post"><input id="name" name="name" value="old"><button type="submit">Go</button></form>
<a id="back" href="/form?again=1">again</a>`)
	})
	mux.HandleFunc("GET /old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/form", http.StatusFound)
	})
	mux.HandleFunc("POST /post", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "seen", Value: "yes", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, "/done?name="+url.QueryEscape(r.PostFormValue("name")), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /done", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Hello, %s.\n", r.URL.Query().Get("name"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx := startBrowser(t)
	navs := recordNavigations(ctx, t)

	if got := browse(ctx, t, srv.URL+"/old"); got != http.StatusOK {
		t.Fatalf("GET /old ended with %d, want 200 after the redirect", got)
	}
	if got := location(ctx, t); got != srv.URL+"/form" {
		t.Fatalf("location %q, want %s/form", got, srv.URL)
	}
	if n := navs.Last(t, "GET", srv.URL+"/old"); n.Status != http.StatusFound {
		t.Errorf("recorded %v, want 302", n)
	}
	if got := count(ctx, t, "form#f input"); got != 1 {
		t.Errorf("count(form#f input) = %d, want 1", got)
	}
	if got := count(ctx, t, `a[href="/form?again=1"]`); got != 1 {
		t.Errorf("count with quotes in the selector = %d, want 1", got)
	}
	if got := attr(ctx, t, "a#back", "href"); got != "/form?again=1" {
		t.Errorf("href %q", got)
	}

	fill(ctx, t, "#name", "Ada Lovelace")
	if got := submit(ctx, t, "form#f"); got != http.StatusOK {
		t.Fatalf("submit ended with %d, want 200", got)
	}
	if got, want := location(ctx, t), srv.URL+"/done?name=Ada+Lovelace"; got != want {
		t.Fatalf("location after submit %q, want %q (the typed value replaced the old one)", got, want)
	}
	if got := strings.TrimSpace(bodyText(ctx, t)); got != "Hello, Ada Lovelace." {
		t.Errorf("body text %q", got)
	}
	if n := navs.Last(t, "POST", srv.URL+"/post"); n.Status != http.StatusSeeOther {
		t.Errorf("recorded %v, want 303", n)
	}
	c := browserCookie(ctx, t, srv.URL+"/", "seen")
	if c == nil || c.Value != "yes" || !c.HTTPOnly {
		t.Errorf("cookie seen = %+v, want yes, HttpOnly", c)
	}

	// A second tab shares the cookies; the first keeps its page.
	tab := newTab(ctx, t)
	browse(tab, t, srv.URL+"/form")
	if browserCookie(tab, t, srv.URL+"/", "seen") == nil {
		t.Error("the second tab does not see the first tab's cookie")
	}
	if got := follow(tab, t, "a#back"); got != http.StatusOK || location(tab, t) != srv.URL+"/form?again=1" {
		t.Errorf("follow: %d at %s", got, location(tab, t))
	}
	if got := location(ctx, t); !strings.HasPrefix(got, srv.URL+"/done") {
		t.Errorf("first tab moved to %s", got)
	}

	// waitLocation: a page that moves on by itself.
	if err := runStep(ctx, chromedp.Do, chromedp.Evaluate[chromedp.Void](`setTimeout(() => { location.href = "/form?late=1" }, 200)`)); err != nil {
		t.Fatal(err)
	}
	waitLocation(ctx, t, func(u *url.URL) bool { return u.Query().Get("late") == "1" })

	png := filepath.Join(t.TempDir(), "shot", "form.png")
	screenshot(ctx, t, png)
	if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
		t.Errorf("screenshot %s: %v %v", png, st, err)
	}

	// A missing element fails within browserStep instead of hanging: the
	// helpers check before they wait, and a raw wait is bounded too.
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := chromedp.Do(sctx, chromedp.WaitVisible(chromedp.CSS("#nothing-here")))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("waiting for a missing element: %v after %v", err, time.Since(start))
	}
	// The tab still works after a step's deadline.
	if got := location(ctx, t); !strings.Contains(got, "late=1") {
		t.Errorf("location after a timed-out step: %q", got)
	}
}
