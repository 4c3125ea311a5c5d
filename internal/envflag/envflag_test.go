package envflag

import (
	"flag"
	"testing"
)

func TestParse(t *testing.T) {
	t.Setenv("SHOPTRAIL_KAFKA_BROKERS", "a:1")
	t.Setenv("SHOPTRAIL_HTTP_ADDR", "env:1")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	brokers := fs.String("kafka.brokers", "default", "")
	addr := fs.String("http.addr", "default", "")
	other := fs.String("batch-size", "7", "")
	if err := Parse(fs, []string{"-http.addr=flag:2"}); err != nil {
		t.Fatal(err)
	}
	if *brokers != "a:1" {
		t.Errorf("brokers = %q, want the environment's a:1", *brokers)
	}
	if *addr != "flag:2" {
		t.Errorf("addr = %q, want the flag's value over the environment", *addr)
	}
	if *other != "7" {
		t.Errorf("batch-size = %q, want its default", *other)
	}
	t.Setenv("SHOPTRAIL_N", "notanumber")
	fs = flag.NewFlagSet("y", flag.ContinueOnError)
	fs.Int("n", 0, "")
	if err := Parse(fs, nil); err == nil {
		t.Error("bad environment value accepted")
	}
}
