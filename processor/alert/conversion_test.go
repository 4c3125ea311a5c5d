package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/internal/testenv"
)

// insertHour writes one hour of funnel events ending at end: views and adds
// per product (at a price), checkouts and orders.
func insertHour(t *testing.T, e *env, end time.Time, prods map[string][3]float64, checkouts, orders int) {
	t.Helper()
	ctx := context.Background()
	b, err := e.conn.PrepareBatch(ctx, "INSERT INTO events (site, message_id, event, event_time, is_bot, product_id, price)")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	add := func(event, product string, price float64) {
		n++
		at := end.Add(-time.Hour).Add(time.Duration(n%3500) * time.Second)
		if err := b.Append("shop-1", fmt.Sprintf("%d-%d", end.Unix(), n), event, at, uint8(0), product, price); err != nil {
			t.Fatal(err)
		}
	}
	for id, p := range prods { // views, adds, price
		for range int(p[0]) {
			add("Product Viewed", id, p[2])
		}
		for range int(p[1]) {
			add("Product Added", id, p[2])
		}
	}
	for range checkouts {
		add("Checkout Started", "", 0)
	}
	for range orders {
		add("Order Completed", "", 0)
	}
	// A bot's views do not count.
	if err := b.Append("shop-1", fmt.Sprintf("bot-%d", end.Unix()), "Product Viewed", end.Add(-time.Minute), uint8(1), "p1", 1.0); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

// A conversion drop in the last hour, against the same hour of four
// previous weeks, is alerted once, naming the product whose price rose.
func TestConversionDropAlert(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	now := time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)
	clock := newFakeClock(now)
	for k := 1; k <= 4; k++ {
		insertHour(t, e, now.AddDate(0, 0, -7*k), map[string][3]float64{"p1": {2000, 160 + float64(k), 100}, "p2": {3000, 240 - float64(k), 50}}, 200, 120)
	}
	// Now: p1 costs 130 and is carted a quarter as often; p2 as usual.
	insertHour(t, e, now, map[string][3]float64{"p1": {2000, 40, 130}, "p2": {3000, 240, 50}}, 140, 84)
	file := e.rules(fmt.Sprintf(`destinations:
  ops: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
sites:
  shop-1:
    rules:
      - {name: conversion, type: conversion_drop, min_volume: 200, route: {to: [ops]}}
`, rc.srv.URL))
	cfg := e.config(file, "a")
	cfg.DropInterval = time.Minute
	r := e.start(cfg, clock, nil)
	waitFor(t, "the drop alert", 30*time.Second, func() bool { return len(rc.requests()) == 1 })
	var body struct {
		Type string `json:"type"`
		Data struct {
			Drop struct {
				Step     string  `json:"step"`
				Rate     float64 `json:"rate"`
				Baseline float64 `json:"baseline"`
				Products []struct {
					ProductID string  `json:"productId"`
					Price     float64 `json:"price"`
				} `json:"products"`
			} `json:"drop"`
		} `json:"data"`
	}
	json.Unmarshal(rc.requests()[0].Body, &body)
	d := body.Data.Drop
	if body.Type != "alert.conversion_drop" || d.Step != "view_to_cart" || len(d.Products) != 1 || d.Products[0].ProductID != "p1" || d.Products[0].Price != 130 {
		t.Errorf("alert: %s", rc.requests()[0].Body)
	}
	if d.Rate != 280.0/5000 || d.Baseline != 400.0/5000 {
		t.Errorf("rate %v baseline %v, want %v %v", d.Rate, d.Baseline, 280.0/5000, 400.0/5000)
	}
	// Checked again in the same hour and after a restart: not repeated
	// (cooldown 6h, recorded).
	waitFor(t, "recorded", 30*time.Second, func() bool { return finals(e.deliveries())["sent"] == 1 })
	clock.Advance(5 * time.Minute)
	r.stop(t)
	e.start(cfg, clock, nil)
	clock.Advance(5 * time.Minute)
	requestsStay(t, rc, 1, "the same drop again")
}

// The same drop judged over the day: the 24 hours before now against the
// same 24 hours of previous weeks.
func TestConversionDropOverADay(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	now := time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)
	for k := 1; k <= 4; k++ {
		insertHour(t, e, now.AddDate(0, 0, -7*k).Add(-5*time.Hour), map[string][3]float64{"p1": {2000, 160, 100}, "p2": {3000, 240, 50}}, 200, 120)
	}
	insertHour(t, e, now.Add(-5*time.Hour), map[string][3]float64{"p1": {2000, 40, 130}, "p2": {3000, 240, 50}}, 140, 84)
	file := e.rules(fmt.Sprintf(`destinations:
  ops: {type: webhook, url: %s/hook, secret_env: TEST_ALERT_SECRET}
sites:
  shop-1:
    rules:
      - {name: daily, type: conversion_drop, window: 24h, min_volume: 200, route: {to: [ops]}}
`, rc.srv.URL))
	cfg := e.config(file, "a")
	cfg.DropInterval = time.Minute
	e.start(cfg, newFakeClock(now), nil)
	waitFor(t, "the day's drop alert", 30*time.Second, func() bool { return len(rc.requests()) == 1 })
	body := string(rc.requests()[0].Body)
	if !strings.Contains(body, `"hours":24`) || !strings.Contains(body, `"productId":"p1"`) {
		t.Errorf("alert: %s", body)
	}
}
