package processor_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shoptrail/shoptrail"
)

// workload makes a seeded, shop-like stream: visitors with several
// sessions (inactivity gaps, campaign changes mid-session), product, cart,
// checkout and order events, logins, beacon tabs with lost sequence
// numbers, and in arrival order: events a little out of order (within the
// allowed lateness), beacon retries (duplicates), a few very late events
// and a few messages that are not JSON (nil). It ends with one far-future
// event per partition so that every other session closes.
func workload(rng *rand.Rand, visitors int) []*shoptrail.Event {
	type arrival struct {
		at time.Time // when it reaches Kafka, in event time
		e  *shoptrail.Event
	}
	var all []arrival
	var end time.Time
	browsers := []string{"Chrome", "Safari", "Firefox", "Edge", "WeChat"}
	paths := []string{"/", "/c/resistors", "/c/capacitors", "/p/r-10k", "/p/c-100n", "/p/ic-555", "/search", "/cart", "/checkout", "/done"}
	type touch struct{ ref, src, med, camp string }
	touches := []touch{
		{}, {}, {}, // direct
		{ref: "https://www.baidu.com/s?wd=resistor"},
		{ref: "https://www.google.com/"},
		{src: "google", med: "cpc", camp: "winter"},
		{src: "newsletter", med: "email", camp: "nov"},
		{src: "douyin", med: "paid_social", camp: "live"},
		{ref: "https://mp.weixin.qq.com/s/abc"},
		{src: "1688", med: "referral"},
	}
	for v := range visitors {
		anon := fmt.Sprintf("v%04d", v)
		if v%5 == 0 {
			anon = fmt.Sprintf("%08x-1111-4222-8333-%012x", v, rng.Uint64()&0xffffffffffff)
		}
		s := "shop"
		if v%7 == 0 {
			s = "b2b"
		}
		browser := browsers[rng.IntN(len(browsers))]
		t := t0.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
		user := ""
		n := 0
		for sess := range 1 + rng.IntN(4) {
			if sess > 0 {
				t = t.Add(31*time.Minute + time.Duration(rng.Int64N(int64(5*time.Hour))))
			}
			tab := fmt.Sprintf("%s-t%d", anon, sess)
			seq := int64(0)
			tc := touches[rng.IntN(len(touches))]
			for i := range 3 + rng.IntN(14) {
				if i > 0 {
					t = t.Add(time.Duration(5+rng.IntN(600)) * time.Second)
				}
				n++
				seq++
				if rng.IntN(40) == 0 {
					seq += 1 + rng.Int64N(3) // beacon events lost in between
				}
				path := paths[rng.IntN(len(paths))]
				e := &shoptrail.Event{
					V: shoptrail.EventVersion, Site: s, MessageID: fmt.Sprintf("%s-%d", anon, n),
					Type: shoptrail.TypePage, AnonymousID: anon, UserID: user, Timestamp: t, ReceivedAt: t.Add(time.Second),
				}
				e.Context.Page = shoptrail.Page{Path: path, URL: "https://www." + s + ".example" + path}
				e.Context.Device = shoptrail.Device{Class: "desktop", Browser: browser, OS: "Windows"}
				e.Context.Delivery = shoptrail.Delivery{Tab: tab, Seq: seq, Transport: "fetch"}
				if i == 0 || rng.IntN(30) == 0 { // landing, or a campaign change mid-session
					if i > 0 {
						tc = touches[rng.IntN(len(touches))]
					}
					e.Context.Page.Referrer = tc.ref
					e.Context.Campaign = shoptrail.Campaign{Source: tc.src, Medium: tc.med, Name: tc.camp}
				}
				switch r := rng.IntN(20); {
				case r < 4:
					e.Type, e.Event = shoptrail.TypeTrack, shoptrail.EventProductViewed
				case r < 6:
					e.Type, e.Event = shoptrail.TypeTrack, shoptrail.EventProductAdded
					e.Properties = fmt.Appendf(nil, `{"product_id":"p%d","price":%d.5,"quantity":%d}`, rng.IntN(50), rng.IntN(100), 1+rng.IntN(5))
				case r < 7:
					e.Type, e.Event = shoptrail.TypeTrack, shoptrail.EventCheckoutStarted
					e.Properties = fmt.Appendf(nil, `{"value":%d}`, rng.IntN(500))
				case r < 8:
					e.Type, e.Event = shoptrail.TypeTrack, shoptrail.EventOrderCompleted
					e.Properties = fmt.Appendf(nil, `{"order_id":"%s-o%d","revenue":%d.25}`, anon, n, rng.IntN(900))
				case r < 9 && user == "":
					user = fmt.Sprintf("cust-%d", v)
					e.Type, e.UserID = shoptrail.TypeIdentify, user
					e.Context.Page = shoptrail.Page{}
				}
				arrive := t
				switch r := rng.IntN(200); {
				case r < 10: // out of order, within the allowed lateness
					arrive = t.Add(time.Duration(rng.Int64N(int64(3 * time.Minute))))
				case r == 10: // far too late
					arrive = t.Add(20*time.Minute + time.Duration(rng.Int64N(int64(time.Hour))))
				}
				all = append(all, arrival{arrive, e})
				if rng.IntN(50) == 0 { // a beacon retry of the same message
					d := *e
					d.ReceivedAt = d.ReceivedAt.Add(2 * time.Second)
					all = append(all, arrival{arrive.Add(time.Duration(rng.Int64N(int64(time.Minute)))), &d})
				}
				if rng.IntN(1500) == 0 {
					all = append(all, arrival{arrive, nil})
				}
				if arrive.After(end) {
					end = arrive
				}
			}
		}
	}
	slices.SortStableFunc(all, func(a, b arrival) int { return a.at.Compare(b.at) })
	out := make([]*shoptrail.Event, 0, len(all)+partitions)
	for _, a := range all {
		out = append(out, a.e)
	}
	out = append(out, tailEvents("shop", end.Add(72*time.Hour))...)
	return out
}
