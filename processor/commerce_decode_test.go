package processor

import (
	"testing"

	"github.com/shoptrail/shoptrail"
)

// TestBatchCommerce: every decoded event gets its typed e-commerce
// properties beside it in the batch, and a reused slot forgets the last
// event's.
func TestBatchCommerce(t *testing.T) {
	d := newEventDecoder()
	b := newBatch("t", 0, 4)
	msgs := []string{
		`{"v":1,"site":"s","messageId":"m1","type":"track","event":"Order Completed","anonymousId":"a","timestamp":"2026-11-01T10:00:00Z","receivedAt":"2026-11-01T10:00:00Z","context":{},"properties":{"order_id":"o1","revenue":12.5,"currency":"EUR","products":[{"product_id":"p1","price":12.5,"quantity":1}]}}`,
		`{"v":1,"site":"s","messageId":"m2","type":"page","anonymousId":"a","timestamp":"2026-11-01T10:00:01Z","receivedAt":"2026-11-01T10:00:01Z","context":{},"properties":{"order_id":"x"}}`,
		`{"v":1,"site":"s","messageId":"m3","type":"track","event":"Product Added","anonymousId":"a","timestamp":"2026-11-01T10:00:02Z","receivedAt":"2026-11-01T10:00:02Z","context":{},"properties":{"sku":"S","price":3,"quantity":2}}`,
	}
	fill := func() {
		for _, m := range msgs {
			b.Events = append(b.Events, shoptrail.Event{})
			e := &b.Events[len(b.Events)-1]
			if err := d.decode([]byte(m), e); err != nil {
				t.Fatal(err)
			}
			b.addCommerce(d, e)
		}
	}
	fill()
	if len(b.Commerce) != len(b.Events) {
		t.Fatalf("%d props for %d events", len(b.Commerce), len(b.Events))
	}
	o := &b.Commerce[0]
	if o.OrderID != "o1" || o.Revenue != 12.5 || o.Currency != "EUR" || len(o.Products) != 1 || o.Products[0].ProductID != "p1" {
		t.Fatalf("order: %+v", o)
	}
	if p := &b.Commerce[1]; p.OrderID != "" || len(p.Products) != 0 {
		t.Fatalf("a page call got e-commerce properties: %+v", p)
	}
	if a := &b.Commerce[2]; len(a.Products) != 1 || a.Products[0].SKU != "S" || a.Products[0].Quantity != 2 {
		t.Fatalf("product added: %+v", a)
	}
	b.reset()
	msgs[0], msgs[2] = msgs[2], msgs[0]
	fill()
	if a := &b.Commerce[0]; a.OrderID != "" || len(a.Products) != 1 || a.Products[0].SKU != "S" || a.Products[0].ProductID != "" {
		t.Fatalf("reused slot kept the last event's properties: %+v", a)
	}
}
