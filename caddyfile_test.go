package gatehouse

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the Caddyfile adapt goldens")

// adapt turns a Caddyfile into indented JSON, as `caddy adapt` does.
func adapt(t *testing.T, caddyfile string) ([]byte, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		t.Fatalf("indenting adapted JSON: %v", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// TestCaddyfileAdapt holds the Caddyfile → JSON translation to goldens:
// each testdata/caddyfile/NAME.caddyfile adapts to NAME.json exactly.
// Run with -update to rewrite the goldens after a deliberate change.
func TestCaddyfileAdapt(t *testing.T) {
	inputs, err := filepath.Glob("testdata/caddyfile/*.caddyfile")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no goldens found: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".caddyfile")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := adapt(t, string(src))
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			golden := strings.TrimSuffix(in, ".caddyfile") + ".json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden (run with -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("adapted JSON differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestCaddyfileExampleAdapts keeps the shipped example valid.
func TestCaddyfileExampleAdapts(t *testing.T) {
	src, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out, err := adapt(t, string(src))
	if err != nil {
		t.Fatalf("Caddyfile.example does not adapt: %v", err)
	}
	for _, want := range []string{`"gatehouse_endpoints"`, `"gatehouse_guard"`, `"/public/*"`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("adapted example lacks %s", want)
		}
	}
}

// TestCaddyfileErrors: every mistake is an error naming the problem,
// never silently ignored.
func TestCaddyfileErrors(t *testing.T) {
	site := "\nhttp://localhost:8080 {\n\t%s\n}\n"
	cases := []struct {
		name, caddyfile, wantErr string
	}{
		{"unknown global subdirective", "{\n\tgatehouse {\n\t\tdatabse sqlite x.db\n\t}\n}", `unrecognized subdirective "databse"`},
		{"duplicate global subdirective", "{\n\tgatehouse {\n\t\tsecret a\n\t\tsecret b\n\t}\n}", `duplicate subdirective "secret"`},
		{"unsupported driver", "{\n\tgatehouse {\n\t\tdatabase mysql x\n\t}\n}", `unsupported driver "mysql"`},
		{"database without path", "{\n\tgatehouse {\n\t\tdatabase sqlite\n\t}\n}", "wrong argument count"},
		{"postgres without dsn", "{\n\tgatehouse {\n\t\tdatabase postgres\n\t}\n}", "wrong argument count"},
		{"sqlite with a block", "{\n\tgatehouse {\n\t\tdatabase sqlite x.db {\n\t\t\tmax_conns 3\n\t\t}\n\t}\n}", "database sqlite: takes no block"},
		{"postgres unknown option", "{\n\tgatehouse {\n\t\tdatabase postgres x {\n\t\t\tmax_con 3\n\t\t}\n\t}\n}", `database: unrecognized subdirective "max_con"`},
		{"postgres duplicate option", "{\n\tgatehouse {\n\t\tdatabase postgres x {\n\t\t\tmax_conns 3\n\t\t\tmax_conns 4\n\t\t}\n\t}\n}", `database: duplicate subdirective "max_conns"`},
		{"postgres max_conns 0", "{\n\tgatehouse {\n\t\tdatabase postgres x {\n\t\t\tmax_conns 0\n\t\t}\n\t}\n}", `database max_conns: "0" is not a positive number`},
		{"postgres bad connect_timeout", "{\n\tgatehouse {\n\t\tdatabase postgres x {\n\t\t\tconnect_timeout never\n\t\t}\n\t}\n}", `"never" is not a positive duration`},
		{"postgres bad statement_timeout", "{\n\tgatehouse {\n\t\tdatabase postgres x {\n\t\t\tstatement_timeout none\n\t\t}\n\t}\n}", `statement_timeout: "none" is neither a positive duration nor off`},
		{"bad on/off", "{\n\tgatehouse {\n\t\trequire_verified yes\n\t}\n}", `"yes" is neither on nor off`},
		{"bad duration", "{\n\tgatehouse {\n\t\tsession_lifetime forever\n\t}\n}", `"forever" is not a positive duration`},
		{"bad min length", "{\n\tgatehouse {\n\t\tpassword_min_length -3\n\t}\n}", "password_min_length"},
		{"bad registration", "{\n\tgatehouse {\n\t\tregistration maybe\n\t}\n}", `"maybe" is neither open nor closed`},
		{"smtp without from", "{\n\tgatehouse {\n\t\tmail smtp smtp://h:587\n\t}\n}", "from address is required"},
		{"unknown mail mode", "{\n\tgatehouse {\n\t\tmail pigeon x\n\t}\n}", `unknown mode "pigeon"`},
		{"login_limit bad number", "{\n\tgatehouse {\n\t\tlogin_limit {\n\t\t\taccount 0\n\t\t}\n\t}\n}", `login_limit account: "0" is not a positive number`},
		{"login_limit bad duration", "{\n\tgatehouse {\n\t\tlogin_limit {\n\t\t\tban soon\n\t\t}\n\t}\n}", `"soon" is not a positive duration`},
		{"login_limit unknown", "{\n\tgatehouse {\n\t\tlogin_limit {\n\t\t\tuser 3\n\t\t}\n\t}\n}", `login_limit: unrecognized subdirective "user"`},
		{"login_limit duplicate", "{\n\tgatehouse {\n\t\tlogin_limit {\n\t\t\tip 3\n\t\t\tip 4\n\t\t}\n\t}\n}", `login_limit: duplicate subdirective "ip"`},
		{"login_limit off with block", "{\n\tgatehouse {\n\t\tlogin_limit off {\n\t\t\tip 3\n\t\t}\n\t}\n}", "login_limit off takes no block"},
		{"login_limit stray argument", "{\n\tgatehouse {\n\t\tlogin_limit on\n\t}\n}", "wrong argument count"},
		{"password_hash argument", "{\n\tgatehouse {\n\t\tpassword_hash fast\n\t}\n}", "wrong argument count"},
		{"password_hash unknown", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\tmemroy 64MiB\n\t\t}\n\t}\n}", `unrecognized subdirective "memroy"`},
		{"password_hash duplicate", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\ttime 2\n\t\t\ttime 3\n\t\t}\n\t}\n}", `duplicate subdirective "time"`},
		{"password_hash twice", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t}\n\t\tpassword_hash {\n\t\t}\n\t}\n}", `duplicate subdirective "password_hash"`},
		{"password_hash memory not a size", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\tmemory lots\n\t\t}\n\t}\n}", `"lots" is not a size`},
		{"password_hash memory too small", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\tmemory 4MiB\n\t\t}\n\t}\n}", "memory 4194304 bytes is out of range"},
		{"password_hash memory too large", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\tmemory 2GiB\n\t\t}\n\t}\n}", "out of range (8.0 MiB to 1.0 GiB)"},
		{"password_hash memory without value", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\tmemory\n\t\t}\n\t}\n}", "wrong argument count"},
		{"password_hash time 0", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\ttime 0\n\t\t}\n\t}\n}", `password_hash time: "0" is not a positive number`},
		{"password_hash time 65", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\ttime 65\n\t\t}\n\t}\n}", "time 65 is out of range (1 to 64)"},
		{"password_hash threads 256", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\tthreads 256\n\t\t}\n\t}\n}", "threads 256 is out of range (1 to 255)"},
		{"password_hash concurrency 0", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\tconcurrency 0\n\t\t}\n\t}\n}", `password_hash concurrency: "0" is not a positive number`},
		{"password_hash queue -1", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\tqueue -1\n\t\t}\n\t}\n}", `password_hash queue: "-1" is not a positive number`},
		{"password_hash wait 0", "{\n\tgatehouse {\n\t\tpassword_hash {\n\t\t\twait 0s\n\t\t}\n\t}\n}", `"0s" is not a positive duration`},
		{"unknown guard subdirective", strings.Replace(site, "%s", "gatehouse_guard {\n\t\tallw /x\n\t}", 1), `unrecognized subdirective "allw"`},
		{"unknown require rule", strings.Replace(site, "%s", "gatehouse_guard {\n\t\trequire admin\n\t}", 1), `unknown rule "admin"`},
		{"require role without role", strings.Replace(site, "%s", "gatehouse_guard {\n\t\trequire role\n\t}", 1), "at least one role"},
		{"unknown header field", strings.Replace(site, "%s", "gatehouse_guard {\n\t\theader password X-Pw\n\t}", 1), `unknown field "password"`},
		{"allow without pattern", strings.Replace(site, "%s", "gatehouse_guard {\n\t\tallow\n\t}", 1), "wrong argument count"},
		{"unknown endpoints subdirective", strings.Replace(site, "%s", "gatehouse_endpoints {\n\t\tprefix /x\n\t}", 1), `unrecognized subdirective "prefix"`},
		{"duplicate endpoints subdirective", strings.Replace(site, "%s", "gatehouse_endpoints {\n\t\tapi_prefix /a\n\t\tapi_prefix /b\n\t}", 1), `duplicate subdirective "api_prefix"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, tc.caddyfile)
			if err == nil {
				t.Fatalf("adapted without error; want one containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}
