package analytics_test

import (
	"strconv"
	"testing"
	"time"
)

// Site s10, the customer stage's tables seeded by hand (customers,
// customer_transitions, customer_orders, orders), as the processor's
// customer stage writes them. November is the range unless said otherwise.
//
//	cust first_seen type   tier now stage now         changes (stage unless tier)
//	k1   09-01      b2b    A        loyal             09-01 stranger>first_buyer, tier ''>C; 10-03 >second_buyer;
//	                                                  10-20 >third_buyer, tier C>A; 12-03 >loyal (after the range)
//	k2   10-02      retail C        dormant (2 rows)  10-02 registered>first_buyer, tier ''>C; 11-10 >at_risk (timer, written twice);
//	                                                  12-05 >dormant (after)
//	k3   10-05      retail ''       potential_dormant 10-20 potential>potential_dormant (timer)
//	k4   11-05      b2b    B        first_buyer       11-05 10:00 stranger>registered and registered>first_buyer (same second), tier ''>B
//	k5   12-02      retail ''       registered        (first seen after the range: left out)
//	k6   10-01      retail ''       registered        no changes
//	k7   06-01      b2b    D        second_buyer      06-01 tier ''>D; 09-15 first_buyer>dormant (timer); 11-20 dormant>second_buyer
//	k8   10-01      retail E        first_buyer       10-10 potential>potential_dormant (timer); 11-03 potential_dormant>first_buyer, tier ''>E
//	k9   01-01      retail E        lost              01-10 tier ''>E; 11-25 dormant>lost (timer)
//
// Stage at 11-30: k1 third_buyer, k2 at_risk, k3 potential_dormant, k4
// first_buyer, k6 registered, k7 second_buyer, k8 first_buyer, k9 lost.
var stageCustomers = []string{
	`('k1','2026-09-01 10:00:00','b2b','Direct','loyal','A',5)`,
	`('k2','2026-10-02 10:00:00','retail','Organic Search','at_risk','C',1)`,
	`('k2','2026-10-02 10:00:00','retail','Organic Search','dormant','C',2)`,
	`('k3','2026-10-05 10:00:00','retail','Direct','potential_dormant','',1)`,
	`('k4','2026-11-05 10:00:00','b2b','Paid Search','first_buyer','B',1)`,
	`('k5','2026-12-02 10:00:00','retail','Direct','registered','',1)`,
	`('k6','2026-10-01 10:00:00','retail','Direct','registered','',1)`,
	`('k7','2026-06-01 10:00:00','b2b','Direct','second_buyer','D',1)`,
	`('k8','2026-10-01 10:00:00','retail','Direct','first_buyer','E',1)`,
	`('k9','2026-01-01 10:00:00','retail','Organic Search','lost','E',1)`,
}

var stageTransitions = []string{
	`('t1','k1','stage','stranger','first_buyer','2026-09-01 10:00:00','event:Order Completed m1')`,
	`('t2','k1','tier','','C','2026-09-01 10:00:00','event:Order Completed m1')`,
	`('t3','k1','stage','first_buyer','second_buyer','2026-10-03 10:00:00','event:Order Completed m2')`,
	`('t4','k1','stage','second_buyer','third_buyer','2026-10-20 10:00:00','event:Order Completed m3')`,
	`('t5','k1','tier','C','A','2026-10-20 10:00:00','event:Order Completed m3')`,
	`('t6','k1','stage','third_buyer','loyal','2026-12-03 10:00:00','event:Order Completed m4')`,
	`('t7','k2','stage','registered','first_buyer','2026-10-02 10:00:00','event:Order Completed m5')`,
	`('t8','k2','tier','','C','2026-10-02 10:00:00','event:Order Completed m5')`,
	`('t9','k2','stage','first_buyer','at_risk','2026-11-10 00:00:00','timer:at_risk')`,
	`('t9','k2','stage','first_buyer','at_risk','2026-11-10 00:00:00','timer:at_risk')`,
	`('t10','k2','stage','at_risk','dormant','2026-12-05 00:00:00','timer:dormant')`,
	`('t11','k3','stage','potential','potential_dormant','2026-10-20 00:00:00','timer:potential_dormant')`,
	`('t12','k4','stage','stranger','registered','2026-11-05 10:00:00','event:Signed Up m6')`,
	`('t13','k4','stage','registered','first_buyer','2026-11-05 10:00:00','event:Order Completed m7')`,
	`('t14','k4','tier','','B','2026-11-05 10:00:00','event:Order Completed m7')`,
	`('t15','k7','stage','first_buyer','dormant','2026-09-15 00:00:00','timer:dormant')`,
	`('t16','k7','stage','dormant','second_buyer','2026-11-20 10:00:00','event:Order Completed m8')`,
	`('t17','k7','tier','','D','2026-06-01 10:00:00','event:Order Completed m0')`,
	`('t18','k8','stage','potential','potential_dormant','2026-10-10 00:00:00','timer:potential_dormant')`,
	`('t19','k8','stage','potential_dormant','first_buyer','2026-11-03 10:00:00','event:Order Completed m9')`,
	`('t20','k8','tier','','E','2026-11-03 10:00:00','event:Order Completed m9')`,
	`('t21','k9','stage','dormant','lost','2026-11-25 00:00:00','timer:lost')`,
	`('t22','k9','tier','','E','2026-01-10 10:00:00','event:Order Completed m10')`,
}

// Orders of known customers: o1 k4 11-05 100 (2 items, first); o2 k7 11-20
// 250 (5, its second); o3 k8 11-03 40 (1, first; written twice); o4 k8
// 11-15 60 (3, second); o5 k1 10-03 500 (October).
var stageOrders = []struct{ co, o string }{
	{`('o1','k4','2026-11-05 10:00:00',1,1)`, `('o1','2026-11-05 10:00:00',100,2)`},
	{`('o2','k7','2026-11-20 10:00:00',2,0)`, `('o2','2026-11-20 10:00:00',250,5)`},
	{`('o3','k8','2026-11-03 10:00:00',1,1)`, `('o3','2026-11-03 10:00:00',40,1)`},
	{`('o3','k8','2026-11-03 10:00:00',1,1)`, `('o3','2026-11-03 10:00:00',40,1)`},
	{`('o4','k8','2026-11-15 10:00:00',2,0)`, `('o4','2026-11-15 10:00:00',60,3)`},
	{`('o5','k1','2026-10-03 10:00:00',2,0)`, `('o5','2026-10-03 10:00:00',500,4)`},
}

func seedStages(t *testing.T, b backend) {
	t.Helper()
	// One insert per row: a row written twice lands in two parts, as a
	// replay writes it.
	for _, r := range stageCustomers {
		b.mustExec(t, "INSERT INTO customers (site, customer_id, first_seen, customer_type, first_channel, stage, tier, version) VALUES ('s10', "+r[1:])
	}
	for _, r := range stageTransitions {
		b.mustExec(t, "INSERT INTO customer_transitions (site, transition_id, customer_id, kind, from_value, to_value, at, cause) VALUES ('s10', "+r[1:])
	}
	for _, r := range stageOrders {
		b.mustExec(t, "INSERT INTO customer_orders (site, order_id, customer_id, order_time, order_number, first_order) VALUES ('s10', "+r.co[1:])
		b.mustExec(t, "INSERT INTO orders (site, order_id, order_time, revenue, item_count) VALUES ('s10', "+r.o[1:])
	}
}

func TestCustomerStageQueries(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		seedStages(t, b)
		nov := func(vars ...string) []string {
			return append([]string{"site", "s10", "grain", "toStartOfMonth"}, vars...)
		}
		novEnd := day(30).Add(24*time.Hour - time.Second)
		octEnd := day(1).Add(-time.Second)

		check(t, "pyramid", b.rows(t, "customer_stages", params(day(1), novEnd, nov("segment", "site")...)), [][]string{
			{"registered", "1", "0.125"},        // k6
			{"potential_dormant", "1", "0.125"}, // k3
			{"first_buyer", "2", "0.25"},        // k4 (its two changes of 11-05 in ladder order), k8
			{"second_buyer", "1", "0.125"},      // k7 won back
			{"third_buyer", "1", "0.125"},       // k1 (loyal only on 12-03)
			{"at_risk", "1", "0.125"},           // k2 (dormant only on 12-05)
			{"lost", "1", "0.125"},              // k9
		}, "stage", "customers", "share")
		check(t, "pyramid by tier", b.rows(t, "customer_stages", params(day(1), novEnd, nov("segment", "tier")...)), [][]string{
			{"", "registered", "1", "0.5"}, // k6
			{"", "potential_dormant", "1", "0.5"},
			{"A", "third_buyer", "1", "1"},
			{"B", "first_buyer", "1", "1"},
			{"C", "at_risk", "1", "1"},
			{"D", "second_buyer", "1", "1"},
			{"E", "first_buyer", "1", "0.5"}, // k8
			{"E", "lost", "1", "0.5"},        // k9
		}, "key", "stage", "customers", "share")
		// At the end of October: k4 not seen yet; k2 first_buyer, k7 dormant,
		// k8 potential_dormant, k9 dormant (the from_value of its 11-25 change).
		check(t, "pyramid in October", b.rows(t, "customer_stages", params(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), octEnd, nov("segment", "site")...)), [][]string{
			{"registered", "1"}, {"potential_dormant", "2"}, {"first_buyer", "1"}, {"third_buyer", "1"}, {"dormant", "2"},
		}, "stage", "customers")

		check(t, "flows", b.rows(t, "stage_flows", params(day(1), novEnd, nov("segment", "site")...)), [][]string{
			{"2026-11-01", "dormant", "lost", "1", "1", "0", "1"},                  // k9
			{"2026-11-01", "dormant", "second_buyer", "1", "1", "1", "0"},          // k7
			{"2026-11-01", "first_buyer", "at_risk", "1", "1", "0", "1"},           // k2, written twice
			{"2026-11-01", "potential_dormant", "first_buyer", "1", "1", "1", "0"}, // k8
			{"2026-11-01", "registered", "first_buyer", "1", "1", "1", "0"},        // k4
			{"2026-11-01", "stranger", "registered", "1", "1", "1", "0"},           // k4
		}, "period", "from_stage", "to_stage", "changes", "customers", "by_event", "by_timer")
		check(t, "flows by type", b.rows(t, "stage_flows", params(day(1), novEnd, nov("segment", "customer_type")...)), [][]string{
			{"b2b", "dormant", "second_buyer"}, {"b2b", "registered", "first_buyer"}, {"b2b", "stranger", "registered"},
			{"retail", "dormant", "lost"}, {"retail", "first_buyer", "at_risk"}, {"retail", "potential_dormant", "first_buyer"},
		}, "key", "from_stage", "to_stage")

		check(t, "dormant by tier", b.rows(t, "dormant_by_tier", params(day(1), novEnd, nov()...)), [][]string{
			{"A", "1", "0", "0", "0", "0", "0", "0", "0", "0"},   // k1
			{"B", "1", "0", "0", "0", "0", "0", "0", "0", "0"},   // k4
			{"C", "1", "1", "0", "0", "0", "1", "0", "0", "0"},   // k2 at risk since 11-10
			{"D", "1", "0", "0", "0", "0", "0", "0", "0", "1"},   // k7 won back
			{"E", "2", "0", "0", "1", "0.5", "0", "0", "1", "0"}, // k8, k9 lost on 11-25
			{"", "2", "0", "0", "0", "0", "0", "0", "0", "0"},    // k3, k6
		}, "tier", "customers", "at_risk", "dormant", "lost", "dormant_or_lost_share", "became_at_risk", "became_dormant", "became_lost", "won_back")

		// Into potential_dormant: k8 10-10, k3 10-20; out: k8 11-03.
		check(t, "potential-dormant trend", b.rows(t, "potential_dormant_trend", params(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), novEnd, nov()...)), [][]string{
			{"2026-10-01", "2", "0", "2", "0", "NULL"},
			{"2026-11-01", "0", "1", "1", "2", "-1"},
		}, "period", "entered", "exited", "at_end", "prev_entered", "entered_growth")
		check(t, "potential-dormant trend, November", b.rows(t, "potential_dormant_trend", params(day(1), novEnd, nov()...)), [][]string{
			{"2026-11-01", "0", "1", "1", "2"},
		}, "period", "entered", "exited", "at_end", "prev_entered")

		check(t, "segments by type", b.rows(t, "customer_segments", params(day(1), novEnd, nov("segment", "customer_type")...)), [][]string{
			{"2026-11-01", "b2b", "2", "2", "1", "1", "350", "175", "3.5"}, // k4 o1, k7 o2
			{"2026-11-01", "retail", "1", "2", "1", "1", "100", "50", "2"}, // k8 o3 (once) o4
		}, "period", "key", "customers", "orders", "first_orders", "repeat_orders", "revenue", "avg_order_value", "items_per_order")
		check(t, "segments by tier", b.rows(t, "customer_segments", params(day(1), novEnd, nov("segment", "tier")...)), [][]string{
			{"E", "2", "100"}, {"B", "1", "100"}, {"D", "1", "250"}, // orders first, then the key
		}, "key", "orders", "revenue")

		// The same numbers counted directly from the tables.
		direct := b.rowsSQL(t, `SELECT
			(SELECT count() FROM customers FINAL WHERE site = 's10' AND first_seen <= toDateTime('2026-11-30 23:59:59')) AS customers,
			(SELECT uniqExact(transition_id) FROM customer_transitions WHERE site = 's10' AND kind = 'stage'
				AND at >= toDateTime('2026-11-01 00:00:00') AND at <= toDateTime('2026-11-30 23:59:59')) AS changes,
			(SELECT count() FROM customer_orders FINAL WHERE site = 's10' AND order_time >= toDateTime('2026-11-01 00:00:00') AND order_time <= toDateTime('2026-11-30 23:59:59')) AS orders,
			(SELECT sum(revenue) FROM orders FINAL WHERE site = 's10' AND order_id IN ('o1', 'o2', 'o3', 'o4')) AS revenue`)
		sum := func(col string, rows []map[string]string) string {
			n := 0.0
			for _, r := range rows {
				v, err := strconv.ParseFloat(r[col], 64)
				if err != nil {
					t.Fatalf("%s = %q: %v", col, r[col], err)
				}
				n += v
			}
			return strconv.FormatFloat(n, 'f', -1, 64)
		}
		pyr := b.rows(t, "customer_stages", params(day(1), novEnd, nov("segment", "site")...))
		flows := b.rows(t, "stage_flows", params(day(1), novEnd, nov("segment", "site")...))
		segs := b.rows(t, "customer_segments", params(day(1), novEnd, nov("segment", "site")...))
		check(t, "direct count", direct, [][]string{{
			sum("customers", pyr), sum("changes", flows), sum("orders", segs), sum("revenue", segs),
		}}, "customers", "changes", "orders", "revenue")
	})
}
