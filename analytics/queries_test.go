package analytics_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/analytics"
)

// A small shop seeded by hand. Every expected number in the tests below is
// counted from these rows by hand, in the comments beside it.
//
//	session anon  start               pages engaged returning channel        step     orders revenue  landing
//	sA1     a     2026-11-02 10:00    1     0       0         Organic Search view     0      0        /
//	sA2     a     2026-11-02 14:00    3     1       1         Organic Search order    1      120.5    /p/1
//	sB1     b     2026-11-02 11:00    2     1       0         Direct         cart     0      0        /        (written twice)
//	sC1     c     2026-11-02 12:00    1     1       0         Paid Search    product  0      0        /p/2
//	sX1     x     2026-11-02 12:30    1     0       0         Direct         view     0      0        /        (a bot)
//	sD1     d     2026-11-03 09:00    1     0       0         Direct         view     0      0        /
//	sA3     a     2026-11-03 10:00    4     1       1         Organic Search checkout 0      0        /
//	sE1     e     2026-10-15 10:00    2     1       0         Direct         order    1      50       /
//	sO1     o     2026-11-02 10:00    5     1       0         Direct         order    1      999      /        (another site)
var seedSessions = []string{
	`('s1','sA1','a','2026-11-02 10:00:00',1,0,0,'Organic Search','google','organic','','desktop','view',0,0,0,'/')`,
	`('s1','sA2','a','2026-11-02 14:00:00',3,1,1,'Organic Search','google','organic','','desktop','order',1,120.5,0,'/p/1')`,
	`('s1','sB1','b','2026-11-02 11:00:00',2,1,0,'Direct','','','','mobile','cart',0,0,0,'/')`,
	`('s1','sB1','b','2026-11-02 11:00:00',2,1,0,'Direct','','','','mobile','cart',0,0,0,'/')`,
	`('s1','sC1','c','2026-11-02 12:00:00',1,1,0,'Paid Search','baidu','cpc','winter','mobile','product',0,0,0,'/p/2')`,
	`('s1','sX1','x','2026-11-02 12:30:00',1,0,0,'Direct','','','','bot','view',0,0,1,'/')`,
	`('s1','sD1','d','2026-11-03 09:00:00',1,0,0,'Direct','','','','desktop','view',0,0,0,'/')`,
	`('s1','sA3','a','2026-11-03 10:00:00',4,1,1,'Organic Search','google','organic','','desktop','checkout',0,0,0,'/')`,
	`('s1','sE1','e','2026-10-15 10:00:00',2,1,0,'Direct','','','','desktop','order',1,50,0,'/')`,
	`('s2','sO1','o','2026-11-02 10:00:00',5,1,0,'Direct','','','','desktop','order',1,999,0,'/')`,
}

const sessionColumns = "site, session_id, anonymous_id, start_time, page_views, is_engaged, is_returning, channel, source, medium, campaign, device_class, funnel_step, orders, revenue, is_bot, landing_page"

// seedEvents: (site, message id, event, anonymous id, time, bot).
//
//	Signed Up: b on 11-02, z on 11-02 (no session), a on 10-20 (before the range).
//	Funnel steps (Product Viewed -> Product Added -> Order Completed, 1 h):
//	  p: viewed 10:00, added 10:10, ordered 10:20             -> all 3 steps
//	  q: viewed 10:00, added 12:00 (after the hour)           -> step 1
//	  r: added 10:00, viewed 10:05 (out of order)             -> step 1
//	  s: viewed 10:00, added 10:05 (written twice), no order  -> step 2
//	  t: ordered only                                         -> no step
//	  u: a bot doing all three                                -> left out
var seedEvents = []string{
	`('s1','m1','Signed Up','b','2026-11-02 11:05:00',0)`,
	`('s1','m2','Signed Up','z','2026-11-02 15:00:00',0)`,
	`('s1','m3','Signed Up','a','2026-10-20 09:00:00',0)`,
	`('s1','p1','Product Viewed','p','2026-11-02 10:00:00',0)`,
	`('s1','p2','Product Added','p','2026-11-02 10:10:00',0)`,
	`('s1','p3','Order Completed','p','2026-11-02 10:20:00',0)`,
	`('s1','q1','Product Viewed','q','2026-11-02 10:00:00',0)`,
	`('s1','q2','Product Added','q','2026-11-02 12:00:00',0)`,
	`('s1','r1','Product Added','r','2026-11-02 10:00:00',0)`,
	`('s1','r2','Product Viewed','r','2026-11-02 10:05:00',0)`,
	`('s1','s1','Product Viewed','s','2026-11-02 10:00:00',0)`,
	`('s1','s2','Product Added','s','2026-11-02 10:05:00',0)`,
	`('s1','s2','Product Added','s','2026-11-02 10:05:00',0)`,
	`('s1','t1','Order Completed','t','2026-11-02 10:00:00',0)`,
	`('s1','u1','Product Viewed','u','2026-11-02 10:00:00',1)`,
	`('s1','u2','Product Added','u','2026-11-02 10:01:00',1)`,
	`('s1','u3','Order Completed','u','2026-11-02 10:02:00',1)`,
}

func seed(t *testing.T, b backend) {
	t.Helper()
	// Each row on its own insert, so the duplicates land in separate parts
	// as a redelivery would write them.
	for _, r := range seedSessions {
		b.mustExec(t, "INSERT INTO sessions ("+sessionColumns+") VALUES "+r)
	}
	for _, r := range seedEvents {
		b.mustExec(t, "INSERT INTO events (site, message_id, event, anonymous_id, event_time, is_bot) VALUES "+r)
	}
}

func day(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }

func params(from, to time.Time, vars ...string) analytics.Params {
	p := analytics.Params{From: from, To: to, Vars: map[string]analytics.Value{}}
	for i := 0; i+1 < len(vars); i += 2 {
		p.Vars[vars[i]] = analytics.Single(vars[i+1])
	}
	return p
}

// check compares the columns of want with rows, row by row.
func check(t *testing.T, what string, rows []map[string]string, want [][]string, cols ...string) {
	t.Helper()
	if len(rows) != len(want) {
		t.Fatalf("%s: %d rows, want %d: %v", what, len(rows), len(want), rows)
	}
	for i, w := range want {
		for j, c := range cols {
			got, ok := rows[i][c]
			if !ok {
				t.Fatalf("%s: no column %s in %v", what, c, rows[i])
			}
			if got != w[j] {
				t.Errorf("%s row %d: %s = %s, want %s", what, i, c, got, w[j])
			}
		}
	}
}

func TestStrangerStage(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		seed(t, b)
		end := day(3).Add(24*time.Hour - time.Second)
		rows := b.rows(t, "sessions", params(day(2), end, "site", "s1", "grain", "toDate", "breakdown", "site"))
		check(t, "by day", rows, [][]string{
			// 11-02: visitors a b c; new a(sA1) b c; returning a(sA2); sessions sA1 sA2 sB1 sC1 (sB1 once, bot out);
			// bounce sA1 (sC1 engaged); second clicks sA2 sB1; orders sA2; nothing on 11-01.
			{"2026-11-02", "s1", "3", "3", "1", "4", "1", "0.25", "2", "0.5", "1", "0.25", "0", "NULL", "0", "NULL"},
			// 11-03: visitors d a; new d; returning a; sessions sD1 sA3; bounce sD1; second click sA3; no order;
			// against 11-02: visitors 2 vs 3, sessions 2 vs 4, order sessions 0 vs 1.
			{"2026-11-03", "s1", "2", "1", "1", "2", "1", "0.5", "1", "0.5", "0", "0", "3", "-0.3333", "4", "-0.5"},
		}, "period", "key", "visitors", "new_visitors", "returning_visitors", "sessions", "bounces", "bounce_rate",
			"second_clicks", "second_click_rate", "order_sessions", "conversion", "prev_visitors", "visitors_growth",
			"prev_sessions", "sessions_growth")
		check(t, "order growth", rows[1:], [][]string{{"1", "-1"}}, "prev_order_sessions", "order_sessions_growth")

		// By month over November: a b c d in six sessions; October had e in one.
		rows = b.rows(t, "sessions", params(day(1), day(30), "site", "s1", "grain", "toStartOfMonth", "breakdown", "site"))
		check(t, "by month", rows, [][]string{{"2026-11-01", "4", "6", "1", "3", "1", "5"}},
			"period", "visitors", "sessions", "prev_visitors", "visitors_growth", "prev_sessions", "sessions_growth")

		// By channel on 11-02: Organic Search sA1 sA2 (a), Direct sB1 (b), Paid Search sC1 (c).
		rows = b.rows(t, "sessions", params(day(2), day(2).Add(24*time.Hour-time.Second), "site", "s1", "grain", "toDate", "breakdown", "channel"))
		check(t, "by channel", rows, [][]string{
			{"Organic Search", "1", "2", "1"},
			{"Direct", "1", "1", "0"},
			{"Paid Search", "1", "1", "0"},
		}, "key", "visitors", "sessions", "bounces")

		// Landing pages over 11-02..11-03: / has sA1 sB1 sD1 sA3 (bounces sA1 sD1), /p/1 sA2 (an order), /p/2 sC1.
		rows = b.rows(t, "landing_pages", params(day(2), end, "site", "s1"))
		check(t, "landing pages", rows, [][]string{
			{"/", "4", "3", "0.5", "0", "0"},
			{"/p/1", "1", "1", "0", "1", "120.5"},
			{"/p/2", "1", "1", "0", "0", "0"},
		}, "landing_page", "sessions", "visitors", "bounce_rate", "order_sessions", "revenue")
	})
}

func TestFunnel(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		seed(t, b)
		rows := b.rows(t, "funnel", params(day(2), day(3).Add(24*time.Hour-time.Second), "site", "s1", "grain", "toDate", "breakdown", "site"))
		check(t, "funnel", rows, [][]string{
			// 11-02: sA1 view, sA2 order, sB1 cart, sC1 product -> 4, 3, 2, 1, 1
			{"2026-11-02", "4", "3", "2", "1", "1", "0.75", "0.6667", "0.5", "1", "0.25"},
			// 11-03: sD1 view, sA3 checkout -> 2, 1, 1, 1, 0
			{"2026-11-03", "2", "1", "1", "1", "0", "0.5", "1", "1", "0", "0"},
		}, "period", "sessions", "product_views", "carts", "checkouts", "orders",
			"product_view_rate", "cart_rate", "checkout_rate", "order_rate", "conversion")

		p := params(day(2), day(2).Add(24*time.Hour-time.Second), "site", "s1", "window_s", "3600")
		p.Vars["steps"] = analytics.Multi("Product Viewed", "Product Added", "Order Completed")
		rows = b.rows(t, "funnel_steps", p)
		check(t, "chosen steps", rows, [][]string{
			{"1", "Product Viewed", "4", "1", "1"},       // p q r s
			{"2", "Product Added", "2", "0.5", "0.5"},    // p s
			{"3", "Order Completed", "1", "0.25", "0.5"}, // p
		}, "step", "event_name", "visitors", "of_first", "of_previous")
	})
}

func TestSources(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		seed(t, b)
		rows := b.rows(t, "sources", params(day(1), day(30).Add(24*time.Hour-time.Second), "site", "s1", "grain", "toStartOfMonth", "breakdown", "channel"))
		check(t, "sources", rows, [][]string{
			// Organic Search: a in sA1 sA2 sA3, one order of 120.5 (a signed up in October: not counted)
			{"Organic Search", "1", "3", "0", "1", "120.5", "40.17"},
			// Direct: b (signed up 11-02) in sB1, d in sD1
			{"Direct", "2", "2", "1", "0", "0", "0"},
			{"Paid Search", "1", "1", "0", "0", "0", "0"},
		}, "key", "visitors", "sessions", "registrations", "orders", "revenue", "revenue_per_session")
	})
}

// Every query expands with the standard variables and runs on both versions.
func TestEveryQueryRuns(t *testing.T) {
	qs, err := analytics.Load()
	if err != nil {
		t.Fatal(err)
	}
	eachBackend(t, func(t *testing.T, b backend) {
		seed(t, b)
		for _, q := range qs {
			p := params(day(1), day(30), "site", "s1", "grain", "toMonday", "breakdown", "device_class", "window_s", "86400")
			p.Vars["steps"] = analytics.Multi("Product Viewed", "Order Completed")
			for _, v := range q.Vars {
				if _, ok := p.Vars[v]; !ok {
					t.Fatalf("query %s uses variable %s the test does not set", q.Name, v)
				}
			}
			sql, err := q.Expand(p)
			if err != nil {
				t.Fatalf("%s: %v", q.Name, err)
			}
			if _, err := b.query(sql); err != nil {
				t.Errorf("%s on %s: %v\n%s", q.Name, b.name, err, sql)
			}
		}
	})
}

var _ = fmt.Sprint
var _ = strings.Join
