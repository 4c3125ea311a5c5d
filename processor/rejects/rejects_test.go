package rejects_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/rejects"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsumer: dead letters become rejected_events rows with their
// headers; a second consumer that reads the topic again (a crash before
// the commit, a new group) writes the same rows, which collapse: every
// rejected event is there exactly once. Tail reads them back.
func TestConsumer(t *testing.T) {
	_, conn := testenv.Database(t)
	broker := testenv.Broker(t, devstack.BrokerConfig{})
	w := &kafka.Writer{Addr: kafka.TCP(broker.Addrs...), Topic: shoptrail.TopicDeadLetter, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	received := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var msgs []kafka.Message
	for i, c := range []struct{ site, field, reason, value string }{
		{"shop", "properties.price", "properties.price must be a number, not a string", `{"type":"track","event":"Product Added","messageId":"m1","anonymousId":"a1","properties":{"price":"x"}}`},
		{"shop", "type", "type must be track, page, screen, identify, group or alias", `{"type":"tarck","event":"E","messageId":"m2","anonymousId":"a1"}`},
		{"b2b", "", "is not a JSON object", `7`},
	} {
		msgs = append(msgs, kafka.Message{Value: []byte(c.value), Headers: []kafka.Header{
			{Key: "reason", Value: []byte(c.reason)}, {Key: "field", Value: []byte(c.field)},
			{Key: "site", Value: []byte(c.site)}, {Key: "received_at", Value: []byte(received.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano))},
		}})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	count := func(q string) uint64 {
		var n uint64
		if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	run := func(group string, raw uint64) {
		c, err := rejects.New(rejects.Config{Brokers: broker.Addrs, Group: group, BatchInterval: 100 * time.Millisecond}, conn, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		waitFor(t, 30*time.Second, "rejected_events rows", func() bool { return count("SELECT count() FROM rejected_events") >= raw })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	run("g1", 3)
	run("g2", 6) // reads all again: 6 rows written, 3 kept
	if n := count("SELECT count() FROM rejected_events FINAL"); n != 3 {
		t.Errorf("%d rejected events after a second read of the topic, want 3", n)
	}
	rows, err := rejects.Tail(context.Background(), conn, rejects.Filter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("Tail: %d rows, want 3", len(rows))
	}
	if r := rows[0]; r.Site != "shop" || r.Field != "properties.price" || r.Type != "track" || r.EventName != "Product Added" ||
		r.MessageID != "m1" || r.AnonymousID != "a1" || !r.ReceivedAt.Equal(received) || !strings.Contains(string(r.Event), `"price":"x"`) {
		t.Errorf("oldest row = %+v", r)
	}
	if r := rows[2]; r.Site != "b2b" || string(r.Event) != "7" || r.Reason != "is not a JSON object" {
		t.Errorf("newest row = %+v, want the non-object kept as sent", r)
	}
	if line := rejects.Line(rows[0]); !strings.Contains(line, "properties.price must be a number") || !strings.Contains(line, "2026-12-01 10:00:00") {
		t.Errorf("Line = %q", line)
	}
	// Filters: by site, by reason text, after a row (follow).
	for _, c := range []struct {
		f    rejects.Filter
		want int
	}{
		{rejects.Filter{Site: "b2b"}, 1},
		{rejects.Filter{Reason: "PRICE"}, 1},
		{rejects.Filter{After: &rows[0]}, 2},
		{rejects.Filter{Limit: 1}, 1},
	} {
		got, err := rejects.Tail(context.Background(), conn, c.f)
		if err != nil || len(got) != c.want {
			t.Errorf("Tail(%+v) = %d rows (%v), want %d", c.f, len(got), err, c.want)
		}
	}
}

// TestReplay: events are posted in batches of 100 with the write key, and
// the collector's answer is counted: accepted, rejected again with why.
func TestReplay(t *testing.T) {
	var posts int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts++
		user, _, _ := r.BasicAuth()
		body, _ := io.ReadAll(r.Body)
		var b struct{ Batch []json.RawMessage }
		json.Unmarshal(body, &b)
		if r.URL.Path != "/v1/batch" || user != "k1" {
			w.WriteHeader(401)
			return
		}
		var bad []string
		for i, m := range b.Batch {
			if strings.Contains(string(m), `"bad"`) {
				bad = append(bad, fmt.Sprintf(`{"index":%d,"field":"x","error":"still bad"}`, i))
			}
		}
		if len(bad) == 0 {
			w.Write([]byte(`{"success":true}`))
			return
		}
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"success":false,"error":"..","accepted":%d,"rejected":[%s]}`, len(b.Batch)-len(bad), strings.Join(bad, ","))
	}))
	defer srv.Close()
	var events []json.RawMessage
	for i := 0; i < 150; i++ {
		events = append(events, json.RawMessage(fmt.Sprintf(`{"type":"track","event":"E","anonymousId":"a","n":%d}`, i)))
	}
	events[120] = json.RawMessage(`{"type":"track","event":"bad"}`)
	res, err := rejects.Replay(context.Background(), srv.Client(), srv.URL, "k1", events)
	if err != nil || res.Sent != 150 || res.Accepted != 149 || res.Rejected != 1 || posts != 2 ||
		len(res.Errors) != 1 || res.Errors[0] != "event 120: still bad" {
		t.Errorf("Replay = %+v, %v (%d posts), want 149 accepted, event 120 rejected again", res, err, posts)
	}
	if _, err := rejects.Replay(context.Background(), srv.Client(), srv.URL, "nope", events[:1]); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("Replay with a wrong key: %v, want the collector's 401", err)
	}
}
