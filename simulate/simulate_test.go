package simulate

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

var start = time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC) // a Monday

func days(t *testing.T, cfg Config, n int) [][]Message {
	t.Helper()
	s, err := NewShop(cfg, "shop.example", start)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]Message
	for range n {
		out = append(out, s.NextDay())
	}
	return out
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 7, DailyVisitors: 200, BotShare: 0.05}
	a, b := days(t, cfg, 5), days(t, cfg, 5)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different messages")
	}
	cfg.Seed = 8
	if c := days(t, cfg, 1); reflect.DeepEqual(a[0], c[0]) {
		t.Fatal("another seed gave the same messages")
	}
}

// TestShopLooksReal checks the properties the analytics depend on, over
// eight simulated weeks.
func TestShopLooksReal(t *testing.T) {
	all := days(t, Config{Seed: 1, DailyVisitors: 300, BotShare: 0.05}, 56)
	ids := map[string]bool{}
	perDay := make([]int, len(all))
	var orders, firstDiscounts, large, small, bots, signups int
	buyers := map[string]int{}
	devicesOf := map[string]map[string]bool{}
	referrers := map[string]int{}
	for d, msgs := range all {
		var last time.Time
		for _, m := range msgs {
			if ids[m.MessageID] {
				t.Fatalf("message id %s twice", m.MessageID)
			}
			ids[m.MessageID] = true
			if m.Timestamp.Before(last) {
				t.Fatalf("day %d out of time order", d)
			}
			last = m.Timestamp
			if strings.Contains(m.Context.UserAgent, "bot") || strings.Contains(m.Context.UserAgent, "spider") {
				bots++
				continue
			}
			if m.Type == "page" {
				perDay[d]++
				if r := m.Context.Page.Referrer; r != "" && !strings.HasPrefix(r, "https://shop.example") {
					referrers[strings.SplitN(strings.TrimPrefix(r, "https://"), "/", 2)[0]]++
				}
			}
			if m.UserID != "" {
				if devicesOf[m.UserID] == nil {
					devicesOf[m.UserID] = map[string]bool{}
				}
				devicesOf[m.UserID][m.AnonymousID] = true
			}
			switch m.Event {
			case "Signed Up":
				signups++
			case "Order Completed":
				orders++
				rev := m.Properties["revenue"].(float64)
				if rev < 100 {
					small++
				}
				if rev > 5000 {
					large++
				}
				if m.Properties["coupon"] == "FIRST10" {
					firstDiscounts++
				}
				if m.UserID != "" {
					buyers[m.UserID]++
				}
			}
		}
		if _, err := json.Marshal(msgs); err != nil {
			t.Fatal(err)
		}
	}
	repeat := 0
	for _, n := range buyers {
		if n > 1 {
			repeat++
		}
	}
	multiDevice := 0
	for _, d := range devicesOf {
		if len(d) > 1 {
			multiDevice++
		}
	}
	t.Logf("orders %d (small %d, over 5000 %d, first-order discounts %d), repeat buyers %d of %d, sign-ups %d, multi-device customers %d, bot events %d, referrers %v",
		orders, small, large, firstDiscounts, repeat, len(buyers), signups, multiDevice, bots, referrers)
	switch {
	case orders < 100:
		t.Errorf("only %d orders in 8 weeks", orders)
	case small*2 < orders:
		t.Errorf("most orders should be small: %d of %d under 100", small, orders)
	case large == 0:
		t.Error("no large B2B order")
	case firstDiscounts == 0:
		t.Error("no first-order discount")
	case repeat == 0:
		t.Error("no repeat buyer")
	case multiDevice == 0:
		t.Error("no customer on several devices")
	case bots == 0:
		t.Error("no bot")
	case signups == 0:
		t.Error("no sign-up")
	case len(referrers) < 8:
		t.Errorf("only %d referring hosts", len(referrers))
	}
	// Weekly seasonality: Sundays quieter than Wednesdays (days 6, 13, ... are Sundays).
	var sun, wed int
	for d := range perDay {
		switch start.AddDate(0, 0, d).Weekday() {
		case time.Sunday:
			sun += perDay[d]
		case time.Wednesday:
			wed += perDay[d]
		}
	}
	if sun*10 > wed*8 {
		t.Errorf("Sunday page views %d not clearly below Wednesday's %d", sun, wed)
	}
	// Returning visitors: the pool keeps some coming back, not all.
	if perDay[len(perDay)-1] <= perDay[0] {
		t.Logf("page views first day %d, last %d", perDay[0], perDay[len(perDay)-1])
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{DailyVisitors: 0},
		{DailyVisitors: 10, BotShare: 1},
		{DailyVisitors: 10, Sources: map[string]float64{"nowhere": 1}},
		{DailyVisitors: 10, Sources: map[string]float64{"direct": 0}},
	} {
		if _, err := NewShop(cfg, "h", start); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

// BenchmarkDay: one simulated day of a shop with 20,000 daily visitors,
// made and encoded as the sender posts it.
func BenchmarkDay(b *testing.B) {
	shop, err := NewShop(Config{Seed: 1, DailyVisitors: 20000, Products: 500, BotShare: 0.05}, "shop.example", time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		msgs := shop.NextDay()
		n += len(msgs)
		for i := 0; i < len(msgs); i += 500 {
			if _, err := json.Marshal(batchBody{Batch: msgs[i:min(i+500, len(msgs))]}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
