package chdb

import (
	"strings"
	"testing"
)

func TestQuery(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Query("SELECT version()", "TSV")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "26.") {
		t.Fatalf("version = %q, want 26.x", out)
	}
	if _, err := s.Query("SELECT nosuchfunction(1)", "TSV"); err == nil || !strings.Contains(err.Error(), "nosuchfunction") {
		t.Fatalf("bad query error = %v, want one naming the function", err)
	}
	if err := s.Exec(t.Context(), "CREATE DATABASE d"); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(t.Context(), "USE d"); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(t.Context(), "CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	out, err = s.Query("SELECT currentDatabase(), count() FROM t", "TSV")
	if err != nil || out != "d\t0\n" {
		t.Fatalf("after USE: %q, %v; want the session to keep its database", out, err)
	}
}
