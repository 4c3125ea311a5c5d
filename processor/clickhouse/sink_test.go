package clickhouse_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
	"github.com/shoptrail/shoptrail/processor/commerce"
)

// TestInsertIsOnePart checks that an insert sent in several blocks still
// makes one part (the server squashes them; merged-away parts would still be
// listed, inactive), so sending in blocks does not
// multiply the parts to merge.
func TestInsertIsOnePart(t *testing.T) {
	_, conn := testenv.Database(t)
	sink := clickhouse.NewSink(conn, nil, nil)
	batch := &processor.Batch{Topic: "t"}
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	for i := range 20000 {
		batch.Events = append(batch.Events, shoptrail.Event{V: 1, Site: "shop", MessageID: fmt.Sprint(i), Type: "page", Timestamp: t0, ReceivedAt: t0})
	}
	if err := sink.Write(context.Background(), []*processor.Batch{batch}); err != nil {
		t.Fatal(err)
	}
	var parts, rows uint64
	if err := conn.QueryRow(context.Background(), "SELECT count(), sum(rows) FROM system.parts WHERE database = currentDatabase() AND table = 'events'").Scan(&parts, &rows); err != nil {
		t.Fatal(err)
	}
	if parts != 1 || rows != 20000 {
		t.Errorf("%d parts with %d rows, want 1 part of 20000", parts, rows)
	}
}

// TestTypedCommerceColumns checks that the events table gets the typed
// e-commerce columns from the batch's parsed properties.
func TestTypedCommerceColumns(t *testing.T) {
	_, conn := testenv.Database(t)
	sink := clickhouse.NewSink(conn, nil, nil)
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	props := []string{
		`{"order_id":"o1","revenue":90,"discount":5,"coupon":"FIRST","currency":"EUR","products":[{"product_id":"a","sku":"A","category":"Relays","price":10,"quantity":2},{"sku":"B","price":70}]}`,
		`{"product_id":"p1","price":2.5,"quantity":4,"cart_id":"c1"}`,
		`{"promotion_id":"b7","creative":"top"}`,
		`{"query":"relay 24v"}`,
		`{"step":2,"checkout_id":"k1"}`,
	}
	batch := &processor.Batch{Topic: "t"}
	var ps commerce.Parser
	for i, p := range props {
		batch.Events = append(batch.Events, shoptrail.Event{V: 1, Site: "shop", MessageID: fmt.Sprint("m", i), Type: "track",
			Event: "E", Timestamp: t0, ReceivedAt: t0, Properties: []byte(p)})
		var c commerce.Props
		ps.Parse([]byte(p), &c)
		batch.CommerceOf = append(batch.CommerceOf, int32(len(batch.Commerce)))
		batch.Commerce = append(batch.Commerce, c)
	}
	if err := sink.Write(context.Background(), []*processor.Batch{batch}); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(context.Background(), `SELECT message_id, product_id, sku, category, price, quantity, products, items, revenue, discount,
		coupon, currency, order_id, cart_id, checkout_id, promotion_id, creative, search_query, step FROM events ORDER BY message_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := []string{
		// the first product of the list; items 2 + 1; revenue as sent
		"m0|a|A|Relays|10|2|2|3|90|5|FIRST|EUR|o1||||||0",
		// the top-level product; its line's value
		"m1|p1|||2.5|4|1|4|10|0||||c1|||||0",
		"m2||||0|0|0|0|0|0||||||b7|top||0",
		"m3||||0|0|0|0|0|0||||||||relay 24v|0",
		"m4||||0|0|0|0|0|0|||||k1||||2",
	}
	var got []string
	for rows.Next() {
		var id, pid, sku, cat, coupon, cur, oid, cid, kid, promo, creative, query string
		var price, qty, items, rev, disc float64
		var products uint16
		var step int64
		if err := rows.Scan(&id, &pid, &sku, &cat, &price, &qty, &products, &items, &rev, &disc, &coupon, &cur, &oid, &cid, &kid, &promo, &creative, &query, &step); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join([]string{id, pid, sku, cat, fmt.Sprint(price), fmt.Sprint(qty), fmt.Sprint(products), fmt.Sprint(items),
			fmt.Sprint(rev), fmt.Sprint(disc), coupon, cur, oid, cid, kid, promo, creative, query, fmt.Sprint(step)}, "|"))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows\n got %q\nwant %q", got, want)
	}
}
