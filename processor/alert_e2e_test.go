package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/alert"
	"github.com/shoptrail/shoptrail/processor/cart"
)

// From events to a delivered alert: the processor flags an abandoned cart
// and writes its signal; the alerter reads it and delivers the alert, with
// the processor's abandonment id, to a real HTTP listener; the cart's
// later recovery reaches the recovery-rate query.
func TestEventsToDeliveredAlert(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	n := 0
	ev := func(anon, name string, at time.Duration, props string) *shoptrail.Event {
		n++
		return &shoptrail.Event{V: 1, Site: "shop", MessageID: fmt.Sprintf("m%d", n), Type: shoptrail.TypeTrack, Event: name,
			AnonymousID: anon, Timestamp: t0.Add(at), ReceivedAt: t0.Add(at), Properties: json.RawMessage(props)}
	}
	m := time.Minute
	stream := []*shoptrail.Event{
		ev("abandoner", shoptrail.EventProductAdded, 0, `{"product_id":"r1","name":"Relay","price":2.5,"quantity":4,"currency":"EUR"}`),
		ev("abandoner", shoptrail.EventCheckoutStarted, 2*m, `{"currency":"EUR","products":[{"product_id":"r1","price":2.5,"quantity":4}]}`),
		ev("small", shoptrail.EventProductAdded, 0, `{"product_id":"s1","price":1}`),
		ev("returner", shoptrail.EventProductAdded, 0, `{"product_id":"x","price":99}`),
		ev("returner", shoptrail.EventOrderCompleted, 30*time.Hour, `{"order_id":"o2","revenue":120}`),
	}
	stream = append(stream, tailEvents("shop", t0.Add(10*24*time.Hour))...)
	e.produce(stream)
	cfg := e.config("e2e-" + fmt.Sprint(time.Now().UnixNano()%1e6))
	stop, _, _ := e.start(cfg, e.ch)
	defer stop()

	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	os.Setenv("TEST_E2E_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(rules, []byte(`destinations:
  sales: {type: webhook, url: `+srv.URL+`/hook, secret_env: TEST_E2E_SECRET}
sites:
  shop:
    rules:
      - {name: carts, type: cart_abandoned, min_value: 5, route: {to: [sales]}}
`), 0o600)
	a, err := alert.New(alert.Config{Brokers: e.brokers, Topic: cfg.SignalsTopic, GroupID: "alerter-" + cfg.GroupID,
		RulesFile: rules, AllowLoopback: true, ID: "e2e", SessionTimeout: time.Second, RecordInterval: 50 * time.Millisecond}, e.conn, alert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("alerter: %v", err)
		}
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		k := len(got)
		mu.Unlock()
		if k >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d alerts delivered, want 2 (abandoner, returner)", k)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	all := strings.Join(got, "\n")
	mu.Unlock()
	for _, want := range []string{cart.AbandonmentID("shop", "abandoner", "m2"), cart.AbandonmentID("shop", "returner", "m4"), `"followUp":"auto_email"`} {
		if !strings.Contains(all, want) {
			t.Errorf("alerts lack %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, `"subject":"anon:small"`) || strings.Count(all, `"rule":"carts"`) != 2 {
		t.Errorf("want exactly the two carts of 5 or more:\n%s", all)
	}
	// The returner's recovery, from the processor's cart_abandonments and
	// the recovered signal, shows in the recovery-rate query.
	deadline = time.Now().Add(60 * time.Second)
	for {
		out := e.query(e.ch.Database, "SELECT countIf(status = 'sent' AND final = 1) FROM alert_deliveries FORMAT TSV")
		rec := e.query(e.ch.Database, "SELECT count() FROM alert_recoveries FORMAT TSV")
		if strings.TrimSpace(out) == "2" && strings.TrimSpace(rec) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent rows %q, recoveries %q", out, rec)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
