package analytics_test

import (
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/analytics"
)

// Site s9, seeded by hand for the customer, order and cart queries:
//
//	c1 (userId): k1 09-10 40 (discount 4, 2 items); k2 10-05 60 (1); k3 10-20 600 (30); k4 11-03 20 (1)
//	c2 (userId): k5 10-10 120 (discount 12, 3 items; written twice); k6 12-01 (after the range)
//	n3 (anonymous): k7 10-15 5500 (200 items, B2B)
//	c4 (userId): k8 11-10 75 (1); k9 11-12 80 (1); its other device n8 (identity link) viewed a page 10-05
//	a bot: k10 10-10 99
//	n5 viewed a page 10-02; n6 signed up 10-03 as c6; n7 carted 10-04
var customerEvents = []string{
	`('k1','Order Completed','c1a','c1','2026-09-10 10:00:00','k1',40,4,2,0)`,
	`('k2','Order Completed','c1a','c1','2026-10-05 10:00:00','k2',60,0,1,0)`,
	`('k3','Order Completed','c1a','c1','2026-10-20 10:00:00','k3',600,0,30,0)`,
	`('k4','Order Completed','c1a','c1','2026-11-03 10:00:00','k4',20,0,1,0)`,
	`('k5','Order Completed','c2a','c2','2026-10-10 10:00:00','k5',120,12,3,0)`,
	`('k5','Order Completed','c2a','c2','2026-10-10 10:00:00','k5',120,12,3,0)`,
	`('k6','Order Completed','c2a','c2','2026-12-01 10:00:00','k6',70,0,1,0)`,
	`('k7','Order Completed','n3','','2026-10-15 10:00:00','k7',5500,0,200,0)`,
	`('k8','Order Completed','c4a','c4','2026-11-10 10:00:00','k8',75,0,1,0)`,
	`('k9','Order Completed','c4a','c4','2026-11-12 10:00:00','k9',80,0,1,0)`,
	`('k10','Order Completed','bt','','2026-10-10 10:00:00','k10',99,0,1,1)`,
	`('e1','','n8','','2026-10-05 10:00:00','',0,0,0,0)`,
	`('e2','','n5','','2026-10-02 10:00:00','',0,0,0,0)`,
	`('e3','Signed Up','n6','c6','2026-10-03 10:00:00','',0,0,0,0)`,
	`('e4','Product Added','n7','','2026-10-04 10:00:00','',0,0,0,0)`,
}

func seedCustomers(t *testing.T, b backend) {
	t.Helper()
	for _, r := range customerEvents {
		b.mustExec(t, "INSERT INTO events (site, message_id, event, anonymous_id, user_id, event_time, order_id, revenue, discount, items, is_bot) VALUES ('s9', "+r[1:])
	}
	b.mustExec(t, "INSERT INTO identity_links (site, anonymous_id, customer_id, first_seen) VALUES ('s9', 'n8', 'c4', '2026-11-10 10:00:00')")
}

func TestCustomerQueries(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		seedCustomers(t, b)
		octNov := params(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), day(30).Add(24*time.Hour-time.Second), "site", "s9", "grain", "toStartOfMonth", "bounds", "0,50,100,500,1000,5000")
		check(t, "order amounts", b.rows(t, "order_amounts", octNov), [][]string{
			{"1", "0-50", "1", "1", "20", "20"},       // k4
			{"2", "50-100", "3", "2", "215", "71.67"}, // k2 (c1), k8 k9 (c4)
			{"3", "100-500", "1", "1", "120", "120"},  // k5 once
			{"4", "500-1000", "1", "1", "600", "600"}, // k3
			{"6", "5000+", "1", "1", "5500", "5500"},  // k7
		}, "bucket", "amount", "orders", "customers", "revenue", "avg_amount")
		check(t, "repeat purchases", b.rows(t, "repeat_purchases", octNov), [][]string{
			{"1", "2", "2", "5620", "101.5", "NULL"}, // c2 (k5), n3 (k7): items (3 + 200) / 2
			{"2", "1", "2", "155", "1", "2"},         // c4: 11-10, 11-12
			{"3", "1", "3", "680", "10.67", "14.5"},  // c1: 10-05 .. 11-03 is 29 days over 2 gaps
		}, "orders_per_customer", "customers", "orders", "revenue", "items_per_order", "median_days_between_orders")
		check(t, "retention", b.rows(t, "retention", octNov), [][]string{
			{"2026-10-01", "0", "2", "2", "1"}, // c2, n3 (c1's first order was in September)
			{"2026-11-01", "0", "1", "1", "1"}, // c4
		}, "cohort", "months_after", "cohort_size", "retained", "retention")
		check(t, "first-order cohorts", b.rows(t, "first_order_cohorts", octNov), [][]string{
			{"2026-10-01", "discount", "1", "0", "0", "120"},    // c2 (k6 is after the range)
			{"2026-10-01", "full price", "1", "0", "0", "5500"}, // n3
			{"2026-11-01", "full price", "1", "1", "1", "75"},   // c4 came back (k9)
		}, "period", "first_order_kind", "customers", "came_back", "came_back_rate", "avg_first_amount")
		check(t, "stage pyramid", b.rows(t, "stage_pyramid", octNov), [][]string{
			{"stranger", "1"},    // n5 (n8 is c4)
			{"registered", "1"},  // c6
			{"potential", "1"},   // n7
			{"first-time", "2"},  // c2, n3
			{"second-time", "1"}, // c4
			{"loyal", "1"},       // c1: four orders with September's
		}, "stage", "persons")
	})
}

// Carts on 11-02: four carts started (cartD's event written twice); cartA
// abandoned (100), alerted and recovered (90); cartB abandoned (50), held
// out; cartC abandoned (30), no alert.
func TestCarts(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		for _, r := range []string{"('a1','cartA')", "('a2','cartB')", "('a3','cartC')", "('a4','cartD')", "('a4','cartD')"} {
			b.mustExec(t, "INSERT INTO events (site, event, event_time, anonymous_id, message_id, cart_id) VALUES ('s9', 'Product Added', '2026-11-02 09:00:00', 'x', "+r[1:])
		}
		for _, r := range []string{
			`('ab1','cartA',100,0,0,1)`, `('ab1','cartA',100,1,90,2)`, `('ab2','cartB',50,0,0,1)`, `('ab3','cartC',30,0,0,1)`,
		} {
			b.mustExec(t, "INSERT INTO cart_abandonments (site, abandoned_at, abandonment_id, cart_id, value, recovered, recovered_value, version) VALUES ('s9', '2026-11-02 10:00:00', "+r[1:])
		}
		for _, r := range []string{`('ab1',0,1)`, `('ab1',0,2)`, `('ab2',1,1)`} {
			b.mustExec(t, "INSERT INTO alert_deliveries (site, signal_at, recorded_at, abandonment_id, held_out, attempt) VALUES ('s9', '2026-11-02 10:00:00', '2026-11-02 10:00:00', "+r[1:])
		}
		nov2 := params(day(2), day(2).Add(24*time.Hour-time.Second), "site", "s9", "grain", "toDate")
		check(t, "carts", b.rows(t, "carts", nov2), [][]string{
			{"2026-11-02", "alert sent", "1", "100", "1", "1", "90", "4", "0.25"},
			{"2026-11-02", "held out", "1", "50", "0", "0", "0", "4", "0.25"},
			{"2026-11-02", "none", "1", "30", "0", "0", "0", "4", "0.25"},
		}, "period", "follow_up", "abandoned", "abandoned_value", "recovered", "recovery_rate", "recovered_revenue", "carts", "abandonment_rate")
	})
}

var _ = analytics.Single
