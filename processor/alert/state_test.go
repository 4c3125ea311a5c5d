package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// requestsStay checks that the receiver's count stays n for a while (a
// negative assertion: nothing more arrives).
func requestsStay(t *testing.T, rc *receiver, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got := len(rc.requests()); got != n {
			t.Fatalf("%s: receiver got %d requests, want %d", what, got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Cooldowns hold across a restart and across alerters: they are read from
// alert_deliveries.
func TestCooldownAcrossRestartsAndAlerters(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	file := e.rules(basicRules(rc.srv.URL, ""))
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	e.produce(cart("first", "c1", 1000, "C", at))
	r := e.start(e.config(file, "a1"), nil, nil)
	waitFor(t, "first alert", 30*time.Second, func() bool { return finals(e.deliveries())["sent"] == 1 })
	r.stop(t)

	// Another alerter (another id, another process as far as it knows)
	// sees the cooldown: same customer 2h later is suppressed, another
	// customer is not, and 25h later the first customer is alerted again.
	e.produce(cart("second", "c1", 1000, "C", at.Add(2*time.Hour)), cart("other", "c2", 1000, "C", at.Add(2*time.Hour)),
		cart("third", "c1", 1000, "C", at.Add(25*time.Hour)))
	r2 := e.start(e.config(file, "a2"), nil, nil)
	waitFor(t, "second batch", 30*time.Second, func() bool {
		f := finals(e.deliveries())
		return f["sent"] == 3 && f["suppressed_cooldown"] == 1
	})
	for _, d := range e.deliveries() {
		if d.Status == "suppressed_cooldown" && d.Subject != "c1" {
			t.Errorf("suppressed %s", d.Subject)
		}
	}
	r2.stop(t)

	// Two alerters running at once on different signal topics (so each
	// surely decides some): the cooldown one set is seen by the other.
	e2 := *e
	e2.topic = "signals2-" + testenv.RandomSuffix()
	e2.group = "g2-" + testenv.RandomSuffix()
	ra := e.start(e.config(file, "a1"), nil, nil)
	rb := e2.start(e2.config(file, "b1"), nil, nil)
	e.produce(cart("x1", "c9", 1000, "C", at.Add(48*time.Hour)))
	waitFor(t, "x1 alerted by a1", 30*time.Second, func() bool { return finals(e.deliveries())["sent"] == 4 })
	e2.produce(cart("x2", "c9", 1000, "C", at.Add(49*time.Hour)))
	waitFor(t, "x2 suppressed by b1", 30*time.Second, func() bool { return finals(e.deliveries())["suppressed_cooldown"] == 2 })
	if n := len(rc.requests()); n != 4 {
		t.Errorf("receiver got %d alerts, want 4", n)
	}
	ra.stop(t)
	rb.stop(t)
}

func rateRules(url string) string {
	return fmt.Sprintf(`destinations:
  robot:
    type: webhook
    url: %s/hook
    secret_env: TEST_ALERT_SECRET
    rate_limit: 3/m
sites:
  shop-1:
    rules:
      - {name: carts, type: cart_abandoned, min_value: 1, route: {to: [robot]}}
`, url)
}

// A destination's rate limit holds across two alerters running at once
// and across restarts: the claims log orders their sends.
func TestRateLimitAcrossAlertersAndRestarts(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	file := e.rules(rateRules(rc.srv.URL))
	clock := newFakeClock(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	e2 := *e
	e2.topic = "signals2-" + testenv.RandomSuffix()
	e2.group = "g2-" + testenv.RandomSuffix()
	cfgA, cfgB := e.config(file, "a"), e2.config(file, "b")
	shared := "ratelimit-" + testenv.RandomSuffix()
	cfgA.RateLimitTopic, cfgB.RateLimitTopic = shared, shared
	ra := e.start(cfgA, clock, nil)
	rb := e2.start(cfgB, clock, nil)
	var sa, sb []*shoptrail.Signal
	for i := range 6 {
		sa = append(sa, cart(fmt.Sprintf("a%d", i), fmt.Sprintf("ca%d", i), 100, "C", clock.Now()))
		sb = append(sb, cart(fmt.Sprintf("b%d", i), fmt.Sprintf("cb%d", i), 100, "C", clock.Now()))
	}
	e.produce(sa...)
	e2.produce(sb...)
	waitFor(t, "3 sends in the first minute", 30*time.Second, func() bool { return len(rc.requests()) == 3 })
	requestsStay(t, rc, 3, "first minute, two alerters")
	// Both alerters must have tried: each has deferred some for the limit.
	defA := metricValue(t, ra.reg, "shoptrail_alerter_alerts_deferred_total", map[string]string{"reason": "rate_limit"})
	defB := metricValue(t, rb.reg, "shoptrail_alerter_alerts_deferred_total", map[string]string{"reason": "rate_limit"})
	if defA == 0 || defB == 0 {
		t.Errorf("deferred by the rate limit: a=%v b=%v; want both > 0", defA, defB)
	}
	clock.Advance(61 * time.Second)
	waitFor(t, "3 more in the second minute", 30*time.Second, func() bool { return len(rc.requests()) == 6 })
	requestsStay(t, rc, 6, "second minute")
	// Restart both within the same minute: the claims log remembers the
	// window's 3 sends, so nothing goes out until it passes.
	ra.stop(t)
	rb.stop(t)
	clock.Advance(10 * time.Second)
	ra = e.start(cfgA, clock, nil)
	rb = e2.start(cfgB, clock, nil)
	// The 6 alerts left may all be one alerter's.
	waitFor(t, "the restarted alerters deferring the 6 left", 30*time.Second, func() bool {
		return metricValue(t, ra.reg, "shoptrail_alerter_alerts_deferred_total", nil)+
			metricValue(t, rb.reg, "shoptrail_alerter_alerts_deferred_total", nil) == 6
	})
	requestsStay(t, rc, 6, "after the restart, same minute")
	clock.Advance(61 * time.Second)
	waitFor(t, "3 more after the window", 30*time.Second, func() bool { return len(rc.requests()) == 9 })
	requestsStay(t, rc, 9, "third minute")
	clock.Advance(61 * time.Second)
	waitFor(t, "the last 3", 30*time.Second, func() bool { return len(rc.requests()) == 12 })
	ids, repeats := rc.ids()
	if len(ids) != 12 || repeats != 0 {
		t.Errorf("%d distinct alerts, %d repeats; want 12, 0", len(ids), repeats)
	}
}

// Quiet hours in the site's time zone hold alerts until they end.
func TestQuietHoursDeferDelivery(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	// 23:30 in Shanghai: quiet until 08:00.
	clock := newFakeClock(time.Date(2026, 3, 2, 23, 30, 0, 0, sh))
	file := e.rules(fmt.Sprintf(`destinations:
  sales: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
sites:
  shop-1:
    timezone: Asia/Shanghai
    quiet_hours: {from: "22:00", to: "08:00"}
    rules:
      - {name: carts, type: cart_abandoned, min_value: 1, route: {to: [sales]}}
`, rc.srv.URL))
	e.produce(cart("night", "c1", 100, "C", clock.Now()))
	r := e.start(e.config(file, "a"), clock, nil)
	waitFor(t, "the alert deferred", 30*time.Second, func() bool {
		return metricValue(t, r.reg, "shoptrail_alerter_alerts_deferred_total", map[string]string{"reason": "quiet_hours"}) == 1
	})
	clock.Advance(8*time.Hour + 29*time.Minute) // 07:59
	requestsStay(t, rc, 0, "during quiet hours")
	clock.Advance(time.Minute) // 08:00
	waitFor(t, "the alert at 08:00", 30*time.Second, func() bool { return len(rc.requests()) == 1 })
}

// A dead destination does not hold the others' alerts.
func TestDeadDestinationDoesNotBlockOthers(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	live, dead := newReceiver(t), newReceiver(t)
	dead.setAnswer(func(*http.Request, int) (int, http.Header) { return http.StatusBadGateway, nil })
	clock := newFakeClock(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	file := e.rules(fmt.Sprintf(`destinations:
  live: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
  dead: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
sites:
  shop-1:
    rules:
      - {name: carts, type: cart_abandoned, min_value: 1, route: {to: [live], tiers: {A: [dead]}}}
`, live.srv.URL, dead.srv.URL))
	var sigs []*shoptrail.Signal
	for i := range 50 {
		tier := "C"
		if i%5 == 0 {
			tier = "A" // key accounts: routed to the dead destination
		}
		sigs = append(sigs, cart(fmt.Sprintf("s%d", i), fmt.Sprintf("c%d", i), 100, tier, clock.Now()))
	}
	e.produce(sigs...)
	e.start(e.config(file, "a"), clock, nil)
	waitFor(t, "40 alerts to the live destination", 30*time.Second, func() bool { return len(live.requests()) == 40 })
	waitFor(t, "40 sent recorded", 30*time.Second, func() bool { return finals(e.deliveries())["sent"] == 40 })
	if ids, _ := dead.ids(); len(ids) != 10 {
		t.Errorf("dead destination tried %d alerts, want 10", len(ids))
	}
}

// The hold-out share gets no alert and is recorded; the recovery rate with
// and without alerts is a query over alert_deliveries and recoveries.
func TestHoldOutAndRecoveryRate(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	file := e.rules(fmt.Sprintf(`destinations:
  sales: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
sites:
  shop-1:
    rules:
      - {name: carts, type: cart_abandoned, min_value: 1, hold_out: 0.3, route: {to: [sales]}}
`, rc.srv.URL))
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var sigs []*shoptrail.Signal
	for i := range 200 {
		sigs = append(sigs, cart(fmt.Sprintf("h%d", i), fmt.Sprintf("c%d", i), 100, "C", at))
	}
	// Every third cart is recovered later.
	for i := 0; i < 200; i += 3 {
		rec := cart(fmt.Sprintf("h%d-rec", i), fmt.Sprintf("c%d", i), 100, "C", at.Add(time.Hour))
		rec.Type = shoptrail.SignalCartRecovered
		rec.Cart.AbandonmentID = fmt.Sprintf("ab-h%d", i)
		rec.Cart.RecoveredAt = at.Add(time.Hour)
		rec.Cart.RecoveredOrderID = "o" + rec.ID
		sigs = append(sigs, rec)
	}
	e.produce(sigs...)
	e.start(e.config(file, "a"), nil, nil)
	waitFor(t, "200 outcomes", 30*time.Second, func() bool {
		f := finals(e.deliveries())
		return f["sent"]+f["held_out"] == 200
	})
	f := finals(e.deliveries())
	if f["held_out"] < 40 || f["held_out"] > 80 {
		t.Errorf("%d of 200 held out, want about 60", f["held_out"])
	}
	if got := len(rc.requests()); got != f["sent"] {
		t.Errorf("receiver got %d, %d recorded sent", got, f["sent"])
	}
	waitFor(t, "67 recoveries", 30*time.Second, func() bool {
		var n uint64
		e.conn.QueryRow(context.Background(), "SELECT uniqExact(abandonment_id) FROM alert_recoveries").Scan(&n)
		return n == 67
	})
	// One more recovery, known only to the processor's cart_abandonments.
	b, err := e.conn.PrepareBatch(context.Background(), "INSERT INTO cart_abandonments (site, abandonment_id, abandoned_at, recovered, version)")
	if err != nil {
		t.Fatal(err)
	}
	b.Append("shop-1", "ab-h1", at, uint8(1), uint8(2))
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	// The query as Grafana and `report` would run it.
	q := recoveryQuery(t, at.Add(-time.Hour), at.Add(time.Hour))
	var site, rule string
	var nA, nAR, nH, nHR uint64
	var rateA, rateH, pooled, z float64
	if err := e.conn.QueryRow(context.Background(), q).Scan(&site, &rule, &nA, &nAR, &nH, &nHR, &rateA, &rateH, &pooled, &z); err != nil {
		t.Fatal(err)
	}
	// Count the expected numbers from the rows themselves.
	wantH, wantHR := 0, 0
	for _, d := range e.deliveries() {
		if d.Final == 1 && d.Status == "held_out" {
			wantH++
			var i int
			fmt.Sscanf(d.Subject, "c%d", &i)
			if i%3 == 0 || i == 1 {
				wantHR++
			}
		}
	}
	if int(nH) != wantH || int(nHR) != wantHR || int(nA) != 200-wantH || int(nA+nH) != 200 || int(nAR+nHR) != 68 {
		t.Errorf("query: alerted %d (%d recovered), held out %d (%d recovered); want held out %d (%d), total recovered 68",
			nA, nAR, nH, nHR, wantH, wantHR)
	}
}

// A digest rule's alerts wait for the day's digest, sent once per
// destination at the rule's time; a restart does not send it again.
func TestDailyDigest(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	team, keys := newReceiver(t), newReceiver(t)
	clock := newFakeClock(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))
	file := e.rules(fmt.Sprintf(`destinations:
  team: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
  keys: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
sites:
  shop-1:
    timezone: UTC
    rules:
      - name: dormant
        type: customer_stage
        stages: [dormant, lost]
        digest: {at: "09:00", group_by: destination}
        route: {to: [team], tiers: {A: [keys]}}
`, team.srv.URL, keys.srv.URL))
	var sigs []*shoptrail.Signal
	for i := range 6 {
		tier := "B"
		if i < 2 {
			tier = "A"
		}
		c := fmt.Sprintf("c%d", i)
		sigs = append(sigs, &shoptrail.Signal{V: 1, ID: "st" + c, Type: shoptrail.SignalStageChanged, Site: "shop-1",
			At: clock.Now().Add(-time.Duration(i) * time.Minute), CustomerID: c,
			Customer:   &shoptrail.SignalCustomer{ID: c, Name: "Name " + c, Tier: tier, Stage: shoptrail.StageDormant, NetRevenue: float64(100 * i)},
			Transition: &shoptrail.SignalTransition{Kind: "stage", From: shoptrail.StageLoyal, To: shoptrail.StageDormant}})
	}
	// A stage the rule does not alert on.
	sigs = append(sigs, &shoptrail.Signal{V: 1, ID: "loyal", Type: shoptrail.SignalStageChanged, Site: "shop-1", At: clock.Now(),
		CustomerID: "c9", Transition: &shoptrail.SignalTransition{Kind: "stage", From: shoptrail.StageThirdBuyer, To: shoptrail.StageLoyal}})
	e.produce(sigs...)
	r := e.start(e.config(file, "a"), clock, nil)
	waitFor(t, "6 entries pending", 30*time.Second, func() bool { return finals(e.deliveries())["digest_pending"] == 6 })
	requestsStay(t, team, 0, "before 09:00")
	clock.Advance(61 * time.Minute)
	waitFor(t, "the digests", 30*time.Second, func() bool { return len(team.requests()) == 1 && len(keys.requests()) == 1 })
	var body struct {
		Data struct {
			Type   string `json:"type"`
			Digest []struct {
				Subject string `json:"subject"`
			} `json:"digest"`
		} `json:"data"`
	}
	json.Unmarshal(team.requests()[0].Body, &body)
	if body.Data.Type != "alert.digest" || len(body.Data.Digest) != 4 || body.Data.Digest[0].Subject != "c5" {
		t.Errorf("team digest: %s", team.requests()[0].Body)
	}
	json.Unmarshal(keys.requests()[0].Body, &body)
	if len(body.Data.Digest) != 2 {
		t.Errorf("key accounts digest: %s", keys.requests()[0].Body)
	}
	waitFor(t, "digests recorded", 30*time.Second, func() bool { return finals(e.deliveries())["sent"] == 2 })
	r.stop(t)
	r = e.start(e.config(file, "a"), clock, nil)
	clock.Advance(2 * time.Minute)
	requestsStay(t, team, 1, "after a restart")
	r.stop(t)
}
