package caddyauth_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// phcArgon2id is the PHC string format of argon2-cffi and the reference
// implementation: unpadded standard base64, 16-byte salt, 32-byte key.
var phcArgon2id = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

// newHasher returns a hasher for cfg, failing the test if NewHasher
// refuses it.
func newHasher(tb testing.TB, cfg caddyauth.HasherConfig) *caddyauth.Hasher {
	tb.Helper()
	h, err := caddyauth.NewHasher(cfg, rand.Reader)
	if err != nil {
		tb.Fatalf("NewHasher(%+v): %v", cfg, err)
	}
	return h
}

// paramsHasher is newHasher with the parameters p and the default queue.
func paramsHasher(tb testing.TB, p caddyauth.Argon2Params) *caddyauth.Hasher {
	tb.Helper()
	return newHasher(tb, caddyauth.HasherConfig{Params: p})
}

func cheapHasher(tb testing.TB) *caddyauth.Hasher {
	tb.Helper()
	return paramsHasher(tb, cheapParams)
}

func TestHasherArgon2idRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := cheapHasher(t)
	hash, err := h.Hash(ctx, "hunter2 and more")
	if err != nil {
		t.Fatal(err)
	}
	m := phcArgon2id.FindStringSubmatch(hash)
	if m == nil {
		t.Fatalf("hash %q is not an argon2id PHC string", hash)
	}
	if got := m[1] + "," + m[2] + "," + m[3]; got != "64,1,1" {
		t.Errorf("parameters m,t,p = %s, want the hasher's 64,1,1", got)
	}
	ok, rehash, err := h.Verify(ctx, "hunter2 and more", hash)
	if err != nil || !ok || rehash {
		t.Errorf("Verify(right password) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	for _, wrong := range []string{"", "hunter2 and mor", "Hunter2 and more", "hunter2 and more "} {
		ok, rehash, err := h.Verify(ctx, wrong, hash)
		if err != nil || ok || rehash {
			t.Errorf("Verify(%q) = %v, %v, %v; want false, false, nil", wrong, ok, rehash, err)
		}
	}
	again, err := h.Hash(ctx, "hunter2 and more")
	if err != nil {
		t.Fatal(err)
	}
	if again == hash {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

// TestHasherArgon2CffiVector verifies a hash made by argon2-cffi itself
// (the example of its README, default parameters m=65536,t=3,p=4), and a
// vector computed here with golang.org/x/crypto/argon2 directly: a
// database moved over from fastapi-users logs in without a re-hash.
func TestHasherArgon2CffiVector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := paramsHasher(t, caddyauth.DefaultArgon2Params)

	const cffi = "$argon2id$v=19$m=65536,t=3,p=4$MIIRqgvgQbgj220jfp0MPA$YfwJSVjtjSU0zzV/P3S9nnQ/USre2wvJMjfCIjrTQbg"
	ok, rehash, err := h.Verify(ctx, "correct horse battery staple", cffi)
	if err != nil || !ok || rehash {
		t.Errorf("Verify(argon2-cffi hash) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	if ok, _, _ := h.Verify(ctx, "Tr0ub4dor&3", cffi); ok {
		t.Error("argon2-cffi hash verified a wrong password")
	}

	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("pässwörd"), salt, 3, 65536, 4, 32)
	vector := fmt.Sprintf("$argon2id$v=19$m=65536,t=3,p=4$%s$%s",
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	ok, rehash, err = h.Verify(ctx, "pässwörd", vector)
	if err != nil || !ok || rehash {
		t.Errorf("Verify(x/crypto vector) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}

	hash, err := h.Hash(ctx, "pässwörd")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=65536,t=3,p=4$") || !phcArgon2id.MatchString(hash) {
		t.Errorf("default hash %q is not in argon2-cffi's format", hash)
	}
}

func TestHasherBcrypt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := cheapHasher(t)
	raw, err := bcrypt.GenerateFromPassword([]byte("legacy password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// Go writes $2a$; passlib and pwdlib write $2b$; PHP writes $2y$.
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		hash := prefix + string(raw[4:])
		ok, rehash, err := h.Verify(ctx, "legacy password", hash)
		if err != nil || !ok || !rehash {
			t.Errorf("Verify(%s…, right) = %v, %v, %v; want true, true (upgrade), nil", prefix, ok, rehash, err)
		}
		ok, rehash, err = h.Verify(ctx, "legacy passwort", hash)
		if err != nil || ok || rehash {
			t.Errorf("Verify(%s…, wrong) = %v, %v, %v; want false, false, nil", prefix, ok, rehash, err)
		}
	}
}

func TestHasherOtherArgon2ParamsAskForRehash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	old := paramsHasher(t, caddyauth.Argon2Params{Memory: 128, Time: 2, Threads: 1})
	hash, err := old.Hash(ctx, "some password")
	if err != nil {
		t.Fatal(err)
	}
	ok, rehash, err := cheapHasher(t).Verify(ctx, "some password", hash)
	if err != nil || !ok || !rehash {
		t.Errorf("Verify(hash with other params) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	ok, rehash, _ = cheapHasher(t).Verify(ctx, "other password", hash)
	if ok || rehash {
		t.Errorf("Verify(wrong password, other params) = %v, %v; want false, false", ok, rehash)
	}
}

func TestHasherMalformedHashesNeverMatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := cheapHasher(t)
	const pw = "the password"
	good, err := h.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=…, salt, key
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	bc, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	bcryptCost := func(cost string) string { return string(bc[:4]) + cost + string(bc[6:]) }

	cases := map[string]string{
		"empty":               "",
		"plain text":          pw,
		"prefix only":         "$argon2id$",
		"argon2i":             with(1, "argon2i"),
		"argon2d":             with(1, "argon2d"),
		"version 16":          with(2, "v=16"),
		"no version":          with(2, ""),
		"memory 0":            with(3, "m=0,t=1,p=1"),
		"time 0":              with(3, "m=64,t=0,p=1"),
		"threads 0":           with(3, "m=64,t=1,p=0"),
		"threads 256":         with(3, "m=64,t=1,p=256"),
		"memory over 1 GiB":   with(3, "m=1048577,t=1,p=1"),
		"memory overflow":     with(3, "m=99999999999999,t=1,p=1"),
		"negative memory":     with(3, "m=-1,t=1,p=1"),
		"time 65":             with(3, "m=64,t=65,p=1"),
		"params missing":      with(3, "m=64"),
		"params garbage":      with(3, "x"),
		"salt not base64":     with(4, "!!!!"),
		"salt padded":         with(4, parts[4]+"=="),
		"salt too short":      with(4, "AAAA"),
		"salt empty":          with(4, ""),
		"key not base64":      with(5, "%%%%"),
		"key too short":       with(5, "AAAAAAAAAA"),
		"key too long":        with(5, strings.Repeat("A", 100)),
		"key empty":           with(5, ""),
		"key of other hash":   with(5, strings.Split(mustHash(t, h, "other"), "$")[5]),
		"extra field":         good + "$x",
		"missing field":       strings.Join(parts[:5], "$"),
		"truncated bcrypt":    string(bc[:20]),
		"bcrypt cost 03":      bcryptCost("03"),
		"bcrypt cost 32":      bcryptCost("32"),
		"bcrypt cost 99":      bcryptCost("99"),
		"bcrypt cost xx":      bcryptCost("xx"),
		"bcrypt cost 31":      bcryptCost("31"), // would run for days: refused without hashing
		"bcrypt cost 17":      bcryptCost("17"),
		"bcrypt version 3":    "$3b$" + string(bc[4:]),
		"unknown scheme":      "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
		"pbkdf2":              "$pbkdf2-sha256$29000$N2bMOQdAiJFSSgmh9J7z3g$Y3GgR/Gwj1U2Mbrk0VY/zYk8mZO04fs3sHwZ9KTdhTI",
		"md5-crypt":           "$1$salt$qJH7.N4xYta3aEG/dfqo/0",
		"leading space":       " " + good,
		"key one byte longer": good + "A",
		"NUL inside":          with(4, parts[4][:5]+"\x00"+parts[4][5:]),
		"upper-case scheme":   with(1, "ARGON2ID"),
		"params with spaces":  with(3, "m = 64, t = 1, p = 1"),
		"hash of the hash":    mustHash(t, h, good),
		"very long salt base": with(4, strings.Repeat("QUFB", 4096)),
	}
	for name, hash := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ok, rehash, err := h.Verify(ctx, pw, hash)
			if err != nil || ok || rehash {
				t.Errorf("Verify(%q) = %v, %v, %v; want false, false, nil", hash, ok, rehash, err)
			}
		})
	}
}

func mustHash(t *testing.T, h *caddyauth.Hasher, pw string) string {
	t.Helper()
	s, err := h.Hash(context.Background(), pw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzVerifyHash feeds arbitrary stored hashes to Verify: it must never
// panic, never fail (a hash it cannot read is simply no match), and only
// ask for a re-hash of a hash that matched. Only the seeds built for
// "password" may match it.
func FuzzVerifyHash(f *testing.F) {
	ctx := context.Background()
	h := cheapHasher(f)
	good, err := h.Hash(ctx, "password")
	if err != nil {
		f.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.MinCost)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		good, string(bc), "$2b$" + string(bc[4:]), "", "$argon2id$", "$argon2id$v=19$m=64,t=1,p=1$$",
		"$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=4294967295,t=4294967295,p=255$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$2b$31$" + string(bc[7:]), "$2y$99$", "$argon2id$v=19$m=64,t=1,p=1junk$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, hash string) {
		if expensive(hash) {
			t.Skip("valid but costly parameters: correct, and too slow to fuzz")
		}
		ok, rehash, err := h.Verify(ctx, "password", hash)
		if err != nil {
			t.Fatalf("Verify(%q) failed: %v", hash, err)
		}
		if rehash && !ok {
			t.Fatalf("Verify(%q) asks to re-hash a hash that did not match", hash)
		}
		if ok && hash != good && !strings.HasPrefix(hash, "$2") && !strings.HasPrefix(hash, "$argon2id$") {
			t.Fatalf("Verify(%q) matched a hash of no known scheme", hash)
		}
	})
}

// expensive reports hashes whose parameters, read exactly as the hasher
// reads them, are valid but slow (bcrypt cost above 6, argon2id over
// 4 MiB·passes): fuzzing them would only measure the hash function.
func expensive(hash string) bool {
	if cost, err := bcrypt.Cost([]byte(hash)); err == nil {
		return cost > 6
	}
	parts := strings.Split(hash, "$")
	if len(parts) < 4 || parts[1] != "argon2id" {
		return false
	}
	var m, tm, p uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &tm, &p); err != nil {
		return false
	}
	return uint64(m)*uint64(tm) > 4096
}

func TestHasherConfigDefaults(t *testing.T) {
	t.Parallel()
	got := caddyauth.HasherConfig{}.WithDefaults()
	procs := runtime.GOMAXPROCS(0)
	want := caddyauth.HasherConfig{
		Params:      caddyauth.DefaultArgon2Params,
		Concurrency: procs,
		Queue:       caddyauth.DefaultHashQueuePerSlot * procs,
		Wait:        caddyauth.DefaultHashWait,
	}
	if got != want {
		t.Errorf("HasherConfig{}.WithDefaults() = %+v, want %+v", got, want)
	}
	set := caddyauth.HasherConfig{Params: cheapParams, Concurrency: 3, Queue: 5, Wait: time.Second}
	if got := set.WithDefaults(); got != set {
		t.Errorf("WithDefaults changed a complete config: %+v, want %+v", got, set)
	}
	h := newHasher(t, caddyauth.HasherConfig{Params: caddyauth.DefaultArgon2Params, Concurrency: 3})
	if got, want := h.MemoryBound(), uint64(3*64<<20); got != want {
		t.Errorf("MemoryBound() = %d, want 3 × 64 MiB = %d", got, want)
	}
	if got := h.Config().Queue; got != 3*caddyauth.DefaultHashQueuePerSlot {
		t.Errorf("Config().Queue = %d, want %d", got, 3*caddyauth.DefaultHashQueuePerSlot)
	}
}

// TestNewHasherRefusesBadParams: no hash made here may be one that Verify
// cannot read back, nor one that RFC 9106 forbids.
func TestNewHasherRefusesBadParams(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]caddyauth.Argon2Params{
		"threads 0":            {Memory: 64, Time: 1, Threads: 0},
		"time 0":               {Memory: 64, Time: 0, Threads: 1},
		"time 65":              {Memory: 64, Time: 65, Threads: 1},
		"memory under 8×p KiB": {Memory: 31, Time: 1, Threads: 4},
		"memory over 1 GiB":    {Memory: 1<<20 + 1, Time: 1, Threads: 1},
	} {
		if _, err := caddyauth.NewHasher(caddyauth.HasherConfig{Params: p}, rand.Reader); err == nil {
			t.Errorf("%s: NewHasher(%+v) succeeded", name, p)
		}
	}
	for _, p := range []caddyauth.Argon2Params{
		{Memory: 32, Time: 1, Threads: 4}, {Memory: 1 << 20, Time: 64, Threads: 255}, caddyauth.DefaultArgon2Params,
	} {
		if _, err := caddyauth.NewHasher(caddyauth.HasherConfig{Params: p}, rand.Reader); err != nil {
			t.Errorf("NewHasher(%+v): %v", p, err)
		}
	}
}

// waitForQueue returns once n callers wait in h's queue. It only polls:
// the tests assert what happens, never how long it takes.
func waitForQueue(t *testing.T, h *caddyauth.Hasher, n int) {
	t.Helper()
	for h.Waiting() != n {
		if t.Context().Err() != nil {
			t.Fatalf("the queue never held %d callers (holds %d)", n, h.Waiting())
		}
		time.Sleep(time.Millisecond)
	}
}

// wantBusy fails unless err is the hasher's refusal: a busy RetryError
// whose Retry-After is the configured wait.
func wantBusy(t *testing.T, what string, err error, wait time.Duration) {
	t.Helper()
	var re *caddyauth.RetryError
	if !errors.As(err, &re) || !re.Busy || re.RetryAfter != wait {
		t.Errorf("%s: error %v, want a busy RetryError with RetryAfter %v", what, err, wait)
	}
}

type hashResult struct {
	hash string
	err  error
}

// TestHasherQueueFullIsBusy: with one slot held and the one queue place
// taken, every further caller (hash, verification, dummy verification)
// is refused at once; the waiter gets the slot when it frees.
func TestHasherQueueFullIsBusy(t *testing.T) {
	t.Parallel()
	const wait = time.Hour // never reached: the refusals must not wait
	h := newHasher(t, caddyauth.HasherConfig{Params: cheapParams, Concurrency: 1, Queue: 1, Wait: wait})
	ctx := t.Context()
	stored := mustHash(t, h, "password")
	bc, err := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}

	release, err := h.HoldSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan hashResult, 1)
	go func() {
		s, err := h.Hash(ctx, "password")
		second <- hashResult{s, err}
	}()
	waitForQueue(t, h, 1)

	_, err = h.Hash(ctx, "password")
	wantBusy(t, "Hash", err, wait)
	ok, rehash, err := h.Verify(ctx, "password", stored)
	wantBusy(t, "Verify(argon2id)", err, wait)
	if ok || rehash {
		t.Errorf("a refused Verify answered ok=%v rehash=%v", ok, rehash)
	}
	_, _, err = h.Verify(ctx, "password", string(bc))
	wantBusy(t, "Verify(bcrypt)", err, wait)
	wantBusy(t, "VerifyDummy", h.VerifyDummy(ctx, "password"), wait)
	// A hash that costs nothing takes no slot: refusing it would be an
	// outage for no memory saved.
	if ok, _, err := h.Verify(ctx, "password", "not a hash"); ok || err != nil {
		t.Errorf("Verify(malformed) under load = %v, %v; want false, nil", ok, err)
	}

	release()
	r := <-second
	if r.err != nil {
		t.Fatalf("the waiter failed: %v", r.err)
	}
	if ok, _, err := h.Verify(ctx, "password", r.hash); !ok || err != nil {
		t.Errorf("the waiter's hash does not verify: %v, %v", ok, err)
	}
	if n := h.Waiting(); n != 0 {
		t.Errorf("%d callers still counted in the queue", n)
	}
}

// TestHasherRefusesWhoCouldNotBeServedInTime: once the hasher knows how
// long a hash takes, a caller whose place in the queue the slots could
// not reach within Wait is refused at once, without waiting.
func TestHasherRefusesWhoCouldNotBeServedInTime(t *testing.T) {
	t.Parallel()
	const wait = time.Hour // never reached: the refusal must not wait
	h := newHasher(t, caddyauth.HasherConfig{Params: cheapParams, Concurrency: 2, Queue: 100, Wait: wait})
	h.SetHashTime(wait / 2)
	ctx := t.Context()
	for range 2 {
		release, err := h.HoldSlot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
	}
	// Places 1 to 4 are served within two rounds of half the wait each.
	for i := 1; i <= 4; i++ {
		go h.Hash(ctx, "password")
		waitForQueue(t, h, i)
	}
	fifth := make(chan error, 1)
	go func() {
		_, err := h.Hash(ctx, "password")
		fifth <- err
	}()
	select {
	case err := <-fifth:
		wantBusy(t, "Hash at place 5", err, wait)
	case <-time.After(time.Minute): // a hang detector, not a measure
		t.Fatal("the caller at place 5 waited instead of being refused")
	}
	if n := h.Waiting(); n != 4 {
		t.Errorf("%d callers in the queue, want 4", n)
	}
}

// TestHasherWaiterGivesUp: a caller that waits Wait in vain is refused,
// and leaves the queue.
func TestHasherWaiterGivesUp(t *testing.T) {
	t.Parallel()
	const wait = 20 * time.Millisecond
	h := newHasher(t, caddyauth.HasherConfig{Params: cheapParams, Concurrency: 1, Queue: 4, Wait: wait})
	release, err := h.HoldSlot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	_, err = h.Hash(t.Context(), "password")
	wantBusy(t, "Hash after waiting", err, wait)
	wantBusy(t, "VerifyDummy after waiting", h.VerifyDummy(t.Context(), "password"), wait)
	if n := h.Waiting(); n != 0 {
		t.Errorf("%d callers still counted in the queue after giving up", n)
	}
}

// TestHasherContextEnds: a request that ends while it waits gets its
// context's error (not a 503: nobody is there to read it) and frees its
// place in the queue at once; one that has ended already is not served.
func TestHasherContextEnds(t *testing.T) {
	t.Parallel()
	h := newHasher(t, caddyauth.HasherConfig{Params: cheapParams, Concurrency: 1, Queue: 1, Wait: time.Hour})
	release, err := h.HoldSlot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { first <- h.VerifyDummy(ctx, "password") }()
	waitForQueue(t, h, 1)
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: error %v, want context.Canceled", err)
	}
	// The place is free again: the next caller queues instead of being
	// refused, and is served when the slot frees.
	second := make(chan hashResult, 1)
	go func() {
		s, err := h.Hash(t.Context(), "password")
		second <- hashResult{s, err}
	}()
	waitForQueue(t, h, 1)
	release()
	if r := <-second; r.err != nil {
		t.Errorf("the next waiter failed: %v", r.err)
	}

	done, cancelDone := context.WithCancel(t.Context())
	cancelDone()
	if _, err := h.Hash(done, "password"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash with an ended context: error %v, want context.Canceled", err)
	}
}

// TestHasherLargeStoredHashTakesMoreSlots: a stored hash whose memory is
// larger than the configured one takes as many slots as its memory
// needs, so what it allocates stays within the bound: here it needs both
// slots and must wait while one is held.
func TestHasherLargeStoredHashTakesMoreSlots(t *testing.T) {
	t.Parallel()
	h := newHasher(t, caddyauth.HasherConfig{Params: cheapParams, Concurrency: 2, Queue: 1, Wait: time.Hour})
	big := mustHash(t, paramsHasher(t, caddyauth.Argon2Params{Memory: 2 * cheapParams.Memory, Time: 1, Threads: 1}), "password")
	small := mustHash(t, h, "password")
	release, err := h.HoldSlot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// One slot is free: a hash of the configured size runs at once.
	if ok, _, err := h.Verify(t.Context(), "password", small); !ok || err != nil {
		t.Fatalf("Verify(small) with a free slot = %v, %v", ok, err)
	}
	type verifyResult struct {
		ok, rehash bool
		err        error
	}
	res := make(chan verifyResult, 1)
	go func() {
		ok, rehash, err := h.Verify(t.Context(), "password", big)
		res <- verifyResult{ok, rehash, err}
	}()
	waitForQueue(t, h, 1) // it waits: one slot is not enough
	release()
	if r := <-res; !r.ok || !r.rehash || r.err != nil {
		t.Errorf("Verify(big) = %v, %v, %v; want true, true (other params), nil", r.ok, r.rehash, r.err)
	}
}

// TestHasherBoundsConcurrentHashes runs many more callers than slots and
// queue places: each one either hashes or is refused as busy, none fails
// otherwise, and some get through.
func TestHasherBoundsConcurrentHashes(t *testing.T) {
	t.Parallel()
	h := newHasher(t, caddyauth.HasherConfig{Params: cheapParams, Concurrency: 2, Queue: 3, Wait: time.Second})
	const callers = 50
	results := make(chan error, callers)
	for range callers {
		go func() {
			_, err := h.Hash(t.Context(), "password")
			results <- err
		}()
	}
	served := 0
	for range callers {
		err := <-results
		if err == nil {
			served++
			continue
		}
		wantBusy(t, "a flooding caller", err, time.Second)
	}
	if served == 0 {
		t.Error("no caller was served")
	}
}
