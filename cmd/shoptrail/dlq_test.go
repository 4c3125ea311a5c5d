package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDLQ: an event the collector rejects is in rejected_events (written
// by the processor's rejects consumer), `dlq tail` shows it with its
// reason, `dlq replay` sends it again (rejected again: nothing changed),
// and `dlq replay -file` sends the version fixed by hand, which is stored.
func TestDLQ(t *testing.T) {
	url, query, chc := startStackCH(t)
	code, ans := post(t, url+"/v1/batch", "key1", `{"batch":[
	  {"type":"track","event":"Product Added","messageId":"dlq-ok","anonymousId":"v-dlq","properties":{"product_id":"p1","price":5}},
	  {"type":"track","event":"Product Added","messageId":"dlq-bad","anonymousId":"v-dlq","properties":{"product_id":"p1","price":"5,00"}}]}`)
	if code != 400 || ans["accepted"] != float64(1) {
		t.Fatalf("mixed batch: %d %v", code, ans)
	}
	waitFor(t, 60*time.Second, "the rejected event in rejected_events", func() bool {
		var n uint64
		return query("SELECT count() FROM rejected_events FINAL WHERE message_id = 'dlq-bad'", &n) == nil && n == 1
	})
	ch := []string{"-clickhouse.addr=" + chc.Addr, "-clickhouse.database=" + chc.Database}
	run := func(sub string, args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := dlq(context.Background(), sub, append(append([]string{}, ch...), args...), &out); err != nil {
			t.Fatalf("dlq %s %v: %v\n%s", sub, args, err, out.String())
		}
		return out.String()
	}
	if out := run("tail"); !strings.Contains(out, "properties.price must be a number, not a string") || !strings.Contains(out, `"dlq-bad"`) || !strings.Contains(out, "shop") {
		t.Errorf("dlq tail:\n%s\nwant the rejected event with its reason and site", out)
	}
	if out := run("tail", "-reason=currency"); !strings.Contains(out, "no rejected events") {
		t.Errorf("dlq tail -reason=currency:\n%s\nwant none", out)
	}
	// Replay all: still wrong, rejected again.
	if out := run("replay", "-collector="+url, "-write-key=key1"); !strings.Contains(out, "replayed 1 events: 0 accepted, 1 rejected again") {
		t.Errorf("dlq replay:\n%s", out)
	}
	// Fixed by hand: tail -json, edit, replay -file.
	js := run("tail", "-json", "-n=1", "-site=shop")
	fixed := strings.Replace(js, `\"price\":\"5,00\"`, `\"price\":5`, 1)
	fixed = strings.Replace(fixed, `"price":"5,00"`, `"price":5`, 1)
	if fixed == js {
		t.Fatalf("dlq tail -json: %s\nhas no price to fix", js)
	}
	file := filepath.Join(t.TempDir(), "fixed.jsonl")
	os.WriteFile(file, []byte(fixed), 0o600)
	if out := run("replay", "-collector="+url, "-write-key=key1", "-file="+file); !strings.Contains(out, "replayed 1 events: 1 accepted, 0 rejected again") {
		t.Errorf("dlq replay -file:\n%s", out)
	}
	waitFor(t, 60*time.Second, "the fixed event in events", func() bool {
		var props string
		return query("SELECT properties FROM events FINAL WHERE message_id = 'dlq-bad'", &props) == nil && strings.Contains(props, `"price":5`)
	})
}
