package caddyauth_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-caddy/gatehouse/caddyauth"
)

// phcArgon2id is the PHC string format of argon2-cffi and the reference
// implementation: unpadded standard base64, 16-byte salt, 32-byte key.
var phcArgon2id = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func cheapHasher() *caddyauth.Hasher { return caddyauth.NewHasher(cheapParams, 0, rand.Reader) }

func TestHasherArgon2idRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := cheapHasher()
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
	h := caddyauth.NewHasher(caddyauth.DefaultArgon2Params, 0, rand.Reader)

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
	h := cheapHasher()
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
	old := caddyauth.NewHasher(caddyauth.Argon2Params{Memory: 128, Time: 2, Threads: 1}, 0, rand.Reader)
	hash, err := old.Hash(ctx, "some password")
	if err != nil {
		t.Fatal(err)
	}
	ok, rehash, err := cheapHasher().Verify(ctx, "some password", hash)
	if err != nil || !ok || !rehash {
		t.Errorf("Verify(hash with other params) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	ok, rehash, _ = cheapHasher().Verify(ctx, "other password", hash)
	if ok || rehash {
		t.Errorf("Verify(wrong password, other params) = %v, %v; want false, false", ok, rehash)
	}
}

func TestHasherMalformedHashesNeverMatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := cheapHasher()
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
	h := cheapHasher()
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
