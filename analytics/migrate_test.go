package analytics_test

import (
	"testing"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

// TestEventsMoveForward applies the migrations before 0003 to an empty
// database, writes events the old way (typed properties only in the JSON
// text, one event twice), applies the rest and checks that every event is
// in the new table once, with its typed columns, under the new sort key.
func TestEventsMoveForward(t *testing.T) {
	ms, err := clickhouse.LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	eachBackendRaw(t, func(t *testing.T, b backend) {
		apply := func(before bool) { b.migrate(t, ms, 3, before) }
		apply(true)
		for _, r := range []string{
			`('s1','m1','Product Added','a','2026-11-02 10:00:00','{"product_id":"p1","sku":"S1","category":"Relays","price":2.5,"quantity":4,"cart_id":"c1"}')`,
			`('s1','m1','Product Added','a','2026-11-02 10:00:00','{"product_id":"p1","sku":"S1","category":"Relays","price":2.5,"quantity":4,"cart_id":"c1"}')`,
			`('s1','m2','Order Completed','a','2026-11-02 10:05:00','{"order_id":98765,"revenue":90,"discount":5,"coupon":"FIRST","products":[{"product_id":"p1","price":2.5}]}')`,
			`('s1','m3','Promotion Clicked','a','2026-11-02 09:59:00','{"promotion_id":"b7","creative":"top"}')`,
			`('s1','m4','Products Searched','b','2026-11-03 09:00:00','{"query":"relay 24v"}')`,
		} {
			b.mustExec(t, "INSERT INTO events (site, message_id, event, anonymous_id, event_time, properties) VALUES "+r)
		}
		apply(false)
		rows := b.rowsSQL(t, (`SELECT count() AS n, uniqExact(message_id) AS ids FROM events FINAL`))
		check(t, "rows", rows, [][]string{{"4", "4"}}, "n", "ids")
		rows = b.rowsSQL(t, (`SELECT message_id, product_id, sku, category, price, quantity, items, revenue, discount, coupon,
			order_id, cart_id, promotion_id, creative, search_query FROM events FINAL ORDER BY message_id`))
		check(t, "typed", rows, [][]string{
			{"m1", "p1", "S1", "Relays", "2.5", "4", "4", "10", "0", "", "", "c1", "", "", ""},
			{"m2", "p1", "", "", "2.5", "0", "1", "90", "5", "FIRST", "98765", "", "", "", ""},
			{"m3", "", "", "", "0", "0", "0", "0", "0", "", "", "", "b7", "top", ""},
			{"m4", "", "", "", "0", "0", "0", "0", "0", "", "", "", "", "", "relay 24v"},
		}, "message_id", "product_id", "sku", "category", "price", "quantity", "items", "revenue", "discount", "coupon",
			"order_id", "cart_id", "promotion_id", "creative", "search_query")
		rows = b.rowsSQL(t, (`SELECT sorting_key FROM system.tables WHERE database = currentDatabase() AND name = 'events'`))
		check(t, "sort key", rows, [][]string{{"site, toDate(event_time), event, message_id"}}, "sorting_key")
	})
}
