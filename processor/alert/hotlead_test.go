package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/internal/testenv"
)

// Hot leads: a known customer viewing one product again and again, a
// returning visitor who inquires; not an unknown first-time visitor, not a
// buyer, not a passing glance. Alerted once within the cooldown.
func TestHotLeads(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	now := time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)
	clock := newFakeClock(now)
	ctx := context.Background()
	b, err := e.conn.PrepareBatch(ctx, "INSERT INTO events (site, message_id, event, event_time, is_bot, anonymous_id, user_id, product_id)")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	add := func(anon, user, event, product string, k int) {
		for range k {
			n++
			b.Append("shop-1", fmt.Sprintf("m%d", n), event, now.Add(-time.Duration(n)*time.Minute), uint8(0), anon, user, product)
		}
	}
	add("a1", "u1", "Product Viewed", "p1", 4) // known customer, 4 views: hot
	add("a2", "", "Inquiry Started", "", 1)    // returning visitor inquiring: hot
	add("a2", "", "Product Viewed", "p2", 1)
	add("a3", "", "Product Viewed", "p1", 5) // first-time anonymous visitor: not a lead
	add("a4", "u4", "Product Viewed", "p1", 4)
	add("a4", "u4", "Order Completed", "", 1)  // ordered: not a lead
	add("a5", "u5", "Product Viewed", "p3", 2) // two views: not yet
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	sb, err := e.conn.PrepareBatch(ctx, "INSERT INTO sessions (site, session_id, anonymous_id, start_time, is_returning)")
	if err != nil {
		t.Fatal(err)
	}
	sb.Append("shop-1", "s2", "a2", now.Add(-2*time.Hour), uint8(1))
	sb.Append("shop-1", "s3", "a3", now.Add(-2*time.Hour), uint8(0))
	if err := sb.Send(); err != nil {
		t.Fatal(err)
	}
	file := e.rules(fmt.Sprintf(`destinations:
  sales: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
sites:
  shop-1:
    rules:
      - {name: leads, type: hot_lead, min_views: 3, route: {to: [sales]}}
`, rc.srv.URL))
	cfg := e.config(file, "a")
	cfg.DropInterval = time.Minute
	r := e.start(cfg, clock, nil)
	waitFor(t, "two hot leads", 30*time.Second, func() bool { return len(rc.requests()) == 2 })
	var subjects []string
	for _, req := range rc.requests() {
		var body struct {
			Type string `json:"type"`
			Data struct {
				Subject string `json:"subject"`
			} `json:"data"`
		}
		json.Unmarshal(req.Body, &body)
		if body.Type != "alert.hot_lead" {
			t.Errorf("type %q", body.Type)
		}
		subjects = append(subjects, body.Data.Subject)
	}
	sort.Strings(subjects)
	if fmt.Sprint(subjects) != "[anon:a2 u1]" {
		t.Errorf("leads %v, want [anon:a2 u1]", subjects)
	}
	waitFor(t, "recorded", 30*time.Second, func() bool { return finals(e.deliveries())["sent"] == 2 })
	// Checked again and after a restart within the cooldown: no repeat.
	clock.Advance(2 * time.Minute)
	r.stop(t)
	e.start(cfg, clock, nil)
	clock.Advance(2 * time.Minute)
	requestsStay(t, rc, 2, "within the cooldown")
}
