package dashboards_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
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
	seedBanners   = []struct {
		id, creative, target string
		ctr                  float64
	}{
		{"winter-sale", "hero-a", "/promo/winter", 0.09}, {"winter-sale", "hero-b", "/promo/winter", 0.05},
		{"new-arrivals", "carousel-2", "/c/sensors", 0.04}, {"free-shipping", "strip", "/c/connectors", 0.02},
	}
	seedNext = []string{"/c/connectors", "/c/sensors", "/p/1001", "/p/1002", "/p/1003", "/cart", "/search", "/account"}
)

// seedSQL returns INSERT statements (sessions, then events) for the
// simulated shop, in chunks small enough for one HTTP request each.
func seedSQL(now time.Time) []string {
	r := rand.New(rand.NewPCG(7, 11))
	end := now.UTC().Truncate(time.Minute)
	start := end.Add(-400 * 24 * time.Hour)
	var sessions, events, alerts, recoveries, abandonments []string
	n := 0
	for day := start; day.Before(end); day = day.Add(24 * time.Hour) {
		for _, site := range seedSites {
			perDay := 160 + r.IntN(60)
			if site == "b2b" {
				perDay = 30 + r.IntN(15)
			}
			if age := end.Sub(day); age > 95*24*time.Hour { // older history, growing towards today: enough for months, quarters and a year
				perDay = perDay * (100 - int(age/(24*time.Hour))/6) / 100
			}
			for i := 0; i < perDay; i++ {
				t := day.Add(time.Duration(r.IntN(24*3600)) * time.Second)
				if t.After(end.Add(-30 * time.Minute)) { // the session and its events lie in the past
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
				// The events behind the session: page views along a path,
				// banners on the home page, the funnel steps, wishlist,
				// inquiry and sign-up events.
				ev := func(k int, typ, name string, at time.Time, path, promo, creative, order string, rev float64) {
					user := customer
					events = append(events, fmt.Sprintf("('%s','%s-%d','%s','%s','%s','%s','%s','%s','%s','%s','%s','%s','%s','%s','%s',%f)",
						site, sid, k, typ, name, anon, user, ts(at), ts(at.Add(2*time.Second)), path, ch.source, ch.medium, campaign, promo, creative, order, rev))
				}
				path := landing
				for k := 0; k < pages; k++ {
					at := t.Add(time.Duration(k*60) * time.Second)
					ev(100+k, "page", "", at, path, "", "", "", 0)
					if path == "/" {
						for bi, b := range seedBanners {
							ev(200+k*10+bi, "track", "Promotion Viewed", at.Add(2*time.Second), path, b.id, b.creative, "", 0)
							if r.Float64() < b.ctr {
								ev(300+k*10+bi, "track", "Promotion Clicked", at.Add(20*time.Second), path, b.id, b.creative, "", 0)
								path = b.target
								break
							}
						}
						if path == "/" {
							path = seedNext[r.IntN(len(seedNext))]
						}
					} else {
						path = seedNext[r.IntN(len(seedNext))]
					}
				}
				names := []string{"Product Viewed", "Product Added", "Checkout Started", "Order Completed"}
				for k := 1; k <= step; k++ {
					order, rev := "", 0.0
					if k == 4 {
						order, rev = "o"+sid, revenue
					}
					ev(k, "track", names[k-1], t.Add(time.Duration(k*90)*time.Second), path, "", "", order, rev)
				}
				if r.IntN(10) == 0 {
					ev(6, "track", "Product Added to Wishlist", t.Add(100*time.Second), path, "", "", "", 0)
				}
				if site == "b2b" && r.IntN(6) == 0 {
					ev(7, "track", "Inquiry Started", t.Add(110*time.Second), path, "", "", "", 0)
				}
				if customer != "" && r.IntN(12) == 0 {
					ev(9, "track", "Signed Up", t.Add(30*time.Second), path, "", "", "", 0)
				}
				// Every cart without an order is abandoned an hour later;
				// high-value ones of known customers raise an alert (or are
				// held out), and some are recovered.
				if step >= 2 && step < 4 {
					ab := "ab-" + sid
					recovered, alerted, held := 0, cartValue > 150 && customer != "", 0
					if alerted && r.IntN(5) == 0 {
						held = 1
					}
					switch {
					case alerted && held == 0 && r.IntN(100) < 28, alerted && held == 1 && r.IntN(100) < 15, !alerted && r.IntN(100) < 8:
						recovered = 1
					}
					tier := []string{"", "A", "B", "C", "D", "E"}[r.IntN(6)] // shoptrail's RFM tiers
					stage := shoptrail.StagePotential
					if customer != "" {
						stage = []string{shoptrail.StageRegistered, shoptrail.StageFirstBuyer, shoptrail.StageSecondBuyer, shoptrail.StageLoyal}[r.IntN(4)]
					}
					items := 1 + r.IntN(4)
					abandonments = append(abandonments, fmt.Sprintf("('%s','%s','cart-%s','%s','%s',['Sensor %d','Connector kit'],%d,%f,'CNY','%s','%s','%s','%s','%s','%s','%s',%d,'%s',%f,'%s',1)",
						site, ab, sid, anon, customer, r.IntN(90), items, cartValue, ts(t.Add(10*time.Minute)), ts(t.Add(70*time.Minute)), []string{"cart", "checkout"}[step-2],
						ch.channel, ch.source, stage, tier, recovered, ts(t.Add(5*time.Hour)), cartValue*float64(recovered), map[bool]string{true: "al-" + sid, false: ""}[alerted]))
					if alerted {
						status := "sent"
						if held == 1 {
							status = "held_out"
						}
						follow := rules.FollowUpPersonalEmail
						if cartValue > 400 {
							follow = rules.FollowUpPhoneCall
						}
						alerts = append(alerts, fmt.Sprintf("('%s','al-%s','sig-%s','cart_abandoned','%s','high-value-cart','%s','%s','webhook',1,'%s',1,200,'',120,%d,'%s','%s')",
							ts(t.Add(71*time.Minute)), sid, sid, site, customer, ab, status, held, follow, ts(t.Add(70*time.Minute))))
						if recovered == 1 {
							recoveries = append(recoveries, fmt.Sprintf("('%s','sig-%s','%s','%s','%s','%s','%s','o2%s',%f,'CNY')",
								ts(t.Add(5*time.Hour)), sid, site, customer, ab, ts(t.Add(70*time.Minute)), ts(t.Add(5*time.Hour)), sid, cartValue))
						}
					}
				}
			}
		}
	}
	customers, transitions := seedCustomers(start, end)
	var out []string
	chunk := func(prefix string, rows []string) {
		for len(rows) > 0 {
			k := min(len(rows), 5000)
			out = append(out, prefix+strings.Join(rows[:k], ","))
			rows = rows[k:]
		}
	}
	chunk("INSERT INTO sessions (site, session_id, anonymous_id, customer_id, start_time, end_time, duration_ms, events, page_views, landing_page, exit_page, source, medium, campaign, channel, device_class, browser, os, is_returning, is_engaged, funnel_step, cart_value, orders, revenue) VALUES ", sessions)
	chunk("INSERT INTO events (site, message_id, type, event, anonymous_id, user_id, event_time, received_at, page_path, utm_source, utm_medium, utm_campaign, promotion_id, creative, order_id, revenue) VALUES ", events)
	chunk("INSERT INTO alert_deliveries (recorded_at, alert_id, signal_id, signal_type, site, rule, subject, abandonment_id, destination, attempt, status, final, http_status, answer, latency_ms, held_out, follow_up, signal_at) VALUES ", alerts)
	chunk("INSERT INTO cart_abandonments (site, abandonment_id, cart_id, anonymous_id, customer_id, items_name, item_count, value, currency, last_activity_at, abandoned_at, step, channel, source, stage, tier, recovered, recovered_at, recovered_value, alert_id, version) VALUES ", abandonments)
	chunk("INSERT INTO alert_recoveries (recorded_at, signal_id, site, subject, abandonment_id, abandoned_at, recovered_at, order_id, value, currency) VALUES ", recoveries)
	chunk("INSERT INTO customers (site, customer_id, first_seen, registered_at, first_channel, customer_type, company, first_order_at, last_order_at, order_count, net_revenue, currency, stage, tier, version) VALUES ", customers)
	chunk("INSERT INTO customer_transitions (site, transition_id, customer_id, kind, from_value, to_value, at, cause) VALUES ", transitions)
	return out
}

var seedCompanies = []string{"Huaxin Electronics", "Shenzhen Kaida Automation", "Ningbo Sensortech", "Suzhou Lianke", "Dongguan Precision Parts", "Hangzhou Yunlu Controls"}

// seedCustomers returns the rows of customers (one current row per
// customer id the sessions use, both sites) and of customer_transitions
// (their stage and tier changes up to now), as the customer stage writes
// them: every buyer climbs first_buyer .. loyal with its orders, and one
// whose last order is old enough turns at_risk (60 days), dormant (90) and
// lost (180); a potential customer who never buys turns potential_dormant
// after 30 days. A random source of its own, so the sessions stay as they
// were.
func seedCustomers(start, end time.Time) (customers, transitions []string) {
	r := rand.New(rand.NewPCG(13, 17))
	day := 24 * time.Hour
	for _, site := range seedSites {
		for i := 0; i < 6000; i++ {
			id := fmt.Sprintf("c%d", i)
			first := start.Add(time.Duration(r.IntN(390*24*3600)) * time.Second)
			reg := first.Add(time.Duration(r.IntN(3*24*3600)) * time.Second)
			ctype := []string{"enterprise", "enterprise", "individual", "individual", "individual", ""}[r.IntN(6)]
			company := ""
			if ctype == "enterprise" {
				company = seedCompanies[r.IntN(len(seedCompanies))]
			}
			channel := seedChannels[r.IntN(len(seedChannels))].channel
			stage, at := "registered", reg
			var changes []string
			change := func(kind, from, to string, t time.Time, cause string) {
				changes = append(changes, fmt.Sprintf("('%s','t-%s-%s-%s-%d','%s','%s','%s','%s','%s','%s')",
					site, id, kind, to, t.Unix(), id, kind, from, to, ts(t), cause))
			}
			change("stage", "stranger", "registered", reg, "event:Signed Up")
			orders, revenue := 0, 0.0
			var firstOrder, lastOrder time.Time
			tier := ""
			switch k := r.IntN(10); {
			case k < 2: // stays registered
			case k < 4: // potential, and potential_dormant after 30 days without an order
				p := reg.Add(time.Duration(r.IntN(20*24*3600)) * time.Second)
				if p.Before(end) {
					change("stage", stage, "potential", p, "event:Product Added")
					stage, at = "potential", p
					if d := p.Add(30 * day); d.Before(end) {
						change("stage", stage, "potential_dormant", d, "timer:potential_dormant")
						stage, at = "potential_dormant", d
						if b := d.Add(time.Duration(r.IntN(60*24*3600)) * time.Second); r.IntN(3) == 0 && b.Before(end) { // woken up: a first order
							change("stage", stage, "first_buyer", b, "event:Order Completed")
							stage, at = "first_buyer", b
							orders, revenue, firstOrder, lastOrder, tier = 1, float64(50+r.IntN(250)), b, b, "E"
							change("tier", "", tier, b, "event:Order Completed")
						}
					}
				}
			default: // buyers
				n := 1 + r.IntN(7)
				t := reg.Add(time.Duration(r.IntN(10*24*3600)) * time.Second)
				ladder := []string{"first_buyer", "second_buyer", "third_buyer", "loyal"}
				for o := 0; o < n && t.Before(end); o++ {
					orders++
					revenue += float64(50 + r.IntN(900))
					if o == 0 {
						firstOrder = t
					}
					lastOrder = t
					if o < len(ladder) {
						change("stage", stage, ladder[o], t, "event:Order Completed")
						stage, at = ladder[o], t
					}
					t = t.Add(time.Duration(5+r.IntN(80)) * day)
				}
				if orders == 0 {
					break
				}
				tier = "E"
				for _, b := range []struct {
					min  float64
					tier string
				}{{3000, "A"}, {1500, "B"}, {700, "C"}, {300, "D"}} {
					if revenue >= b.min {
						tier = b.tier
						break
					}
				}
				change("tier", "", tier, firstOrder, "event:Order Completed")
				for _, s := range []struct {
					after time.Duration
					stage string
				}{{60 * day, "at_risk"}, {90 * day, "dormant"}, {180 * day, "lost"}} {
					if d := lastOrder.Add(s.after); d.Before(end) {
						change("stage", stage, s.stage, d, "timer:"+s.stage)
						stage, at = s.stage, d
					}
				}
			}
			never := time.Unix(0, 0)
			if orders == 0 {
				firstOrder, lastOrder = never, never
			}
			customers = append(customers, fmt.Sprintf("('%s','%s','%s','%s','%s','%s','%s','%s','%s',%d,%f,'CNY','%s','%s',%d)",
				site, id, ts(first), ts(reg), channel, ctype, company, ts(firstOrder), ts(lastOrder), orders, revenue, stage, tier, at.UnixMilli()))
			transitions = append(transitions, changes...)
		}
	}
	return customers, transitions
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }
