package alert_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

func basicRules(url string, extra string) string {
	return fmt.Sprintf(`destinations:
  sales:
    type: webhook
    url: %s/hook
    secret_env: TEST_ALERT_SECRET
sites:
  shop-1:
    rules:
      - name: carts
        type: cart_abandoned
        min_value: 500
        cooldown: 24h
        follow_up: {personal_email: 1000, phone_call: 5000}
        route: {to: [sales]}
%s`, url, extra)
}

func init() {
	// The rules read the webhook secret from the environment, as in production.
	if _, ok := lookupEnv("TEST_ALERT_SECRET"); !ok {
		setEnv("TEST_ALERT_SECRET", webhookSecret)
	}
}

// Signals decided once each: matching carts are delivered with verified
// signatures, small carts are not alerted, the same customer within the
// cooldown is suppressed, every outcome is in alert_deliveries.
func TestDeliversDecidedAlerts(t *testing.T) {
	testenvIntegration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	file := e.rules(basicRules(rc.srv.URL, ""))
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var sigs []*shoptrail.Signal
	for i := range 20 {
		sigs = append(sigs, cart(fmt.Sprintf("s%02d", i), fmt.Sprintf("c%02d", i), 600+float64(i)*300, "C", at))
	}
	// Below min_value: no alert.
	sigs = append(sigs, cart("small", "c99", 100, "C", at))
	// The same customer again 1h later: within the 24h cooldown.
	sigs = append(sigs, cart("again", "c00", 900, "C", at.Add(time.Hour)))
	e.produce(sigs...)
	r := e.start(e.config(file, "a1"), nil, nil)
	waitFor(t, "20 alerts and 1 cooldown recorded", 60*time.Second, func() bool {
		f := finals(e.deliveries())
		return f["sent"] == 20 && f["suppressed_cooldown"] == 1
	})
	ids, repeats := rc.ids()
	if len(ids) != 20 || repeats != 0 {
		t.Errorf("receiver got %d distinct alerts, %d repeats; want 20, 0", len(ids), repeats)
	}
	wh, _ := standardwebhooks.NewWebhook(webhookSecret)
	for _, req := range rc.requests() {
		if err := wh.Verify(req.Body, req.Header); err != nil {
			t.Errorf("alert %s: signature: %v", req.ID, err)
		}
		if !strings.Contains(string(req.Body), `"followUp":"`) {
			t.Errorf("alert %s has no follow-up: %s", req.ID, req.Body)
		}
	}
	want := rules.AlertID("s05", "carts", "sales")
	found := false
	for _, id := range ids {
		found = found || id == want
	}
	if !found {
		t.Errorf("alert id %s of signal s05 not delivered", want)
	}
	if v := metricValue(t, r.reg, "shoptrail_alerter_alerts_sent_total", nil); v != 20 {
		t.Errorf("sent metric %v, want 20", v)
	}
	if v := metricValue(t, r.reg, "shoptrail_alerter_alerts_suppressed_total", map[string]string{"reason": "cooldown"}); v != 1 {
		t.Errorf("cooldown metric %v, want 1", v)
	}
	// A restart reads nothing again: offsets were committed after the
	// outcomes were stored.
	r.stop(t)
	before := len(rc.requests())
	e.produce(cart("late", "c50", 800, "C", at.Add(2*time.Hour)))
	e.start(e.config(file, "a1"), nil, nil)
	waitFor(t, "the new signal's alert", 60*time.Second, func() bool { return finals(e.deliveries())["sent"] == 21 })
	if got := len(rc.requests()); got != before+1 {
		t.Errorf("after restart the receiver got %d more requests, want 1", got-before)
	}
}

// Receiver down for 10 minutes (clock injected), then back: every alert
// arrives, retries are recorded, the same webhook-id on every attempt.
func TestReceiverDownThenBack(t *testing.T) {
	testenvIntegration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	clock := newFakeClock(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	down := true
	rc.setAnswer(func(*http.Request, int) (int, http.Header) {
		if down {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	file := e.rules(basicRules(rc.srv.URL, ""))
	var sigs []*shoptrail.Signal
	for i := range 10 {
		sigs = append(sigs, cart(fmt.Sprintf("d%d", i), fmt.Sprintf("c%d", i), 1000, "C", clock.Now()))
	}
	e.produce(sigs...)
	e.start(e.config(file, "a1"), clock, nil)
	waitFor(t, "first attempts", 60*time.Second, func() bool { ids, _ := rc.ids(); return len(ids) == 10 })
	// Ten minutes of outage, in 10-second steps of the injected clock.
	for range 60 {
		clock.Advance(10 * time.Second)
		time.Sleep(5 * time.Millisecond)
	}
	if f := finals(e.deliveries()); f["sent"] != 0 {
		t.Fatalf("sent during the outage: %v", f)
	}
	rc.mu.Lock()
	down = false
	rc.mu.Unlock()
	waitFor(t, "all 10 delivered after the outage", 60*time.Second, func() bool {
		clock.Advance(10 * time.Second)
		return finals(e.deliveries())["sent"] == 10
	})
	ds := e.deliveries()
	retries := 0
	for _, d := range ds {
		if d.Status == "retrying" {
			retries++
			if d.HTTPStatus != 503 {
				t.Errorf("retry row with status %d", d.HTTPStatus)
			}
		}
	}
	// Backoff doubles to BackoffMax (1 min): about 1+2+4+8+16+32+60*... in
	// 10 minutes: at least 5 attempts per alert, far fewer than 60.
	if retries < 50 || retries > 200 {
		t.Errorf("%d retry rows for 10 alerts over 10 minutes; want backoff-shaped (50..200)", retries)
	}
	// Every attempt of one alert carried the same webhook-id; each id's
	// attempts match its rows.
	perID := map[string]int{}
	for _, r := range rc.requests() {
		perID[r.ID]++
	}
	rows := map[string]int{}
	for _, d := range ds {
		rows[d.AlertID]++
	}
	for id, n := range perID {
		if rows[id] != n {
			t.Errorf("alert %s: %d requests, %d rows", id, n, rows[id])
		}
	}
}

// 4xx is not retried; 429 is, after its Retry-After.
func TestRejectAndRetryAfter(t *testing.T) {
	testenvIntegration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	clock := newFakeClock(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	rc.setAnswer(func(r *http.Request, n int) (int, http.Header) {
		if strings.Contains(r.Header.Get("webhook-id"), rules.AlertID("bad", "carts", "sales")) {
			return http.StatusBadRequest, nil
		}
		if n <= 2 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"120"}}
		}
		return http.StatusOK, nil
	})
	file := e.rules(basicRules(rc.srv.URL, ""))
	e.produce(cart("bad", "c1", 1000, "C", clock.Now()))
	e.start(e.config(file, "a1"), clock, nil)
	waitFor(t, "the 400 recorded", 60*time.Second, func() bool { return finals(e.deliveries())["rejected"] == 1 })
	e.produce(cart("limited", "c2", 1000, "C", clock.Now()))
	waitFor(t, "a 429", 60*time.Second, func() bool { return len(rc.requests()) >= 2 })
	// Retry-After 120 s: nothing before it, the retry after it.
	clock.Advance(100 * time.Second)
	time.Sleep(100 * time.Millisecond)
	if n := len(rc.requests()); n != 2 {
		t.Errorf("%d requests before Retry-After passed, want 2", n)
	}
	waitFor(t, "the retry after Retry-After", 60*time.Second, func() bool {
		clock.Advance(10 * time.Second)
		return finals(e.deliveries())["sent"] == 1
	})
	n := 0
	for _, r := range rc.requests() {
		if r.ID == rules.AlertID("bad", "carts", "sales") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the rejected alert was sent %d times, want 1", n)
	}
}
