package main

import "testing"

func TestParseSeedResult(t *testing.T) {
	t.Parallel()
	got, err := parseSeedResult("noise\n{\"users\":1000000,\"sessions\":1000000,\"seconds\":41.2,\"bytes\":612345856}\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (seedResult{Users: 1000000, Sessions: 1000000, Seconds: 41.2, Bytes: 612345856}); got != want {
		t.Errorf("parseSeedResult = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "{}", `{"users":0,"bytes":5}`, "not json"} {
		if r, err := parseSeedResult(bad); err == nil {
			t.Errorf("parseSeedResult(%q) = %+v, want an error", bad, r)
		}
	}
}

func TestSeedEmail(t *testing.T) {
	t.Parallel()
	if got := seedEmail(42); got != "user0000042@seed.example" {
		t.Errorf("seedEmail(42) = %q", got)
	}
}
