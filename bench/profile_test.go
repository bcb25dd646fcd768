package main

import (
	"strings"
	"testing"
)

// What `go tool pprof -top -cum -focus … -ignore …` printed for a guard
// profile.
const focusedTop = `File: caddy
Build ID: 826f38202c944c203d82c08f82d7ca55543dcd8a
Type: cpu
Time: 2026-12-04 09:04:52 UTC
Duration: 3s, Total samples = 2.38s (79.21%)
Active filters:
   focus=gatehouse-caddy
   ignore=reverseproxy
Showing nodes accounting for 0.06s, 2.52% of 2.38s total
Showing top 30 nodes out of 36
      flat  flat%   sum%        cum   cum%
         0     0%     0%      0.08s  3.36%  github.com/caddyserver/caddy/v2/modules/caddyhttp.(*App).Provision.(*Server).wrapPrimaryRoute.func2
     0.01s  0.42%  0.42%      0.08s  3.36%  github.com/caddyserver/caddy/v2/modules/caddyhttp.(*Route).ProvisionHandlers.wrapMiddleware.func1.1
         0     0%  0.42%      0.06s  2.52%  github.com/gatehouse-caddy/gatehouse.(*Guard).ServeHTTP
`

func TestFocusShare(t *testing.T) {
	t.Parallel()
	got, ok := focusShare(focusedTop)
	if !ok || got != 3.36 {
		t.Errorf("focusShare = %v, %v; want 3.36", got, ok)
	}
	if _, ok := focusShare("Showing nodes accounting for 0, 0% of 0 total\n      flat  flat%   sum%        cum   cum%\n"); ok {
		t.Error("a listing without rows gave a share")
	}
}

func TestTrimPprofHeader(t *testing.T) {
	t.Parallel()
	got := trimPprofHeader(focusedTop)
	for _, gone := range []string{"File:", "Build ID:", "Time:"} {
		if strings.Contains(got, gone) {
			t.Errorf("%q left in\n%s", gone, got)
		}
	}
	if !strings.HasPrefix(got, "Type: cpu\nDuration: 3s") {
		t.Errorf("trimmed to\n%s", got)
	}
}
