package dashboards_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// A simulated shop for the dashboards: two sites, sessions over the last
// 400 days up to now (so today, last week, months, quarters and a year
// earlier all have data) and the events behind them. Deterministic for a
// given now.

var (
	seedSites    = []string{"shop", "b2b"}
	seedChannels = []struct{ channel, source, medium string }{
		{"Organic Search", "baidu", "organic"}, {"Organic Search", "google", "organic"},
		{"Paid Search", "baidu", "cpc"}, {"Direct", "", ""}, {"Referral", "1688.com", "referral"},
		{"Organic Social", "douyin", "social"}, {"Organic Social", "xiaohongshu", "social"},
		{"Email", "newsletter", "email"}, {"Paid Social", "wechat", "paid_social"},
	}
	seedCampaigns = []string{"", "", "", "winter-sale", "new-arrivals", "expo-2026"}
	seedDevices   = []string{"desktop", "desktop", "mobile", "mobile", "mobile", "tablet"}
	seedBrowsers  = []string{"Chrome", "Safari", "WeChat", "Edge"}
	seedLanding   = []string{"/", "/", "/", "/c/connectors", "/c/sensors", "/p/1001", "/p/1002", "/promo/winter"}
	seedSteps     = []string{"view", "product", "cart", "checkout", "order"}
)

// seedSQL returns INSERT statements (sessions, then events) for the
// simulated shop, in chunks small enough for one HTTP request each.
func seedSQL(now time.Time) []string {
	r := rand.New(rand.NewPCG(7, 11))
	end := now.UTC().Truncate(time.Minute)
	start := end.Add(-400 * 24 * time.Hour)
	var sessions, events []string
	n := 0
	for day := start; day.Before(end); day = day.Add(24 * time.Hour) {
		for _, site := range seedSites {
			perDay := 160 + r.IntN(60)
			if site == "b2b" {
				perDay = 30 + r.IntN(15)
			}
			for i := 0; i < perDay; i++ {
				t := day.Add(time.Duration(r.IntN(24*3600)) * time.Second)
				if t.After(end) {
					continue
				}
				n++
				ch := seedChannels[r.IntN(len(seedChannels))]
				campaign := ""
				if ch.medium == "cpc" || ch.medium == "email" || ch.medium == "paid_social" {
					campaign = seedCampaigns[r.IntN(len(seedCampaigns))]
				}
				anon := fmt.Sprintf("v%d", r.IntN(40000))
				sid := fmt.Sprintf("s%d", n)
				step := 0
				for step < 4 && r.Float64() < []float64{0.62, 0.45, 0.55, 0.62}[step] {
					step++
				}
				pages := 1 + step + r.IntN(3)
				engaged := 0
				if pages > 1 || r.IntN(3) == 0 {
					engaged = 1
				}
				orders, revenue, cartValue := 0, 0.0, 0.0
				if step >= 2 {
					cartValue = float64(20+r.IntN(480)) + 0.5
				}
				if step == 4 {
					orders, revenue = 1, cartValue
				}
				customer := ""
				if step >= 3 || r.IntN(5) == 0 {
					customer = fmt.Sprintf("c%d", r.IntN(6000))
				}
				landing := seedLanding[r.IntN(len(seedLanding))]
				exit := seedLanding[r.IntN(len(seedLanding))]
				dev := seedDevices[r.IntN(len(seedDevices))]
				br := seedBrowsers[r.IntN(len(seedBrowsers))]
				returning := 0
				if r.IntN(3) == 0 {
					returning = 1
				}
				dur := pages * (20 + r.IntN(120))
				sessions = append(sessions, fmt.Sprintf("('%s','%s','%s','%s','%s','%s',%d,%d,%d,'%s','%s','%s','%s','%s','%s','%s','%s','%s',%d,%d,'%s',%f,%d,%f)",
					site, sid, anon, customer, ts(t), ts(t.Add(time.Duration(dur)*time.Second)), dur*1000, pages+step, pages,
					landing, exit, ch.source, ch.medium, campaign, ch.channel, dev, br, "Windows", returning, engaged, seedSteps[step], cartValue, orders, revenue))
				// The events behind the session's funnel steps.
				ev := func(k int, name string, at time.Time) {
					events = append(events, fmt.Sprintf("('%s','%s-%d','track','%s','%s','%s','%s','%s','%s','%s','%s')",
						site, sid, k, name, anon, customer, ts(at), landing, ch.source, ch.medium, campaign))
				}
				ev(0, "Page Viewed", t)
				names := []string{"Product Viewed", "Product Added", "Checkout Started", "Order Completed"}
				for k := 1; k <= step; k++ {
					ev(k, names[k-1], t.Add(time.Duration(k*90)*time.Second))
				}
				if customer != "" && r.IntN(12) == 0 {
					ev(9, "Signed Up", t.Add(30*time.Second))
				}
			}
		}
	}
	var out []string
	chunk := func(prefix string, rows []string) {
		for len(rows) > 0 {
			k := min(len(rows), 5000)
			out = append(out, prefix+strings.Join(rows[:k], ","))
			rows = rows[k:]
		}
	}
	chunk("INSERT INTO sessions (site, session_id, anonymous_id, customer_id, start_time, end_time, duration_ms, events, page_views, landing_page, exit_page, source, medium, campaign, channel, device_class, browser, os, is_returning, is_engaged, funnel_step, cart_value, orders, revenue) VALUES ", sessions)
	chunk("INSERT INTO events (site, message_id, type, event, anonymous_id, user_id, event_time, page_path, utm_source, utm_medium, utm_campaign) VALUES ", events)
	return out
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }
