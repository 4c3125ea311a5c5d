package processor

import (
	"testing"

	"github.com/shoptrail/shoptrail"
)

// TestBatchCommerce: every decoded track call with properties gets its
// typed e-commerce properties in the batch, other events none, and a
// reused slot forgets the last event's.
func TestBatchCommerce(t *testing.T) {
	d := newEventDecoder()
	b := newBatch("t", 0, 4, 0)
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
			if p := b.addCommerce(d, e); p != b.CommerceAt(len(b.Events)-1) && (p.OrderID != "" || len(p.Products) != 0) {
				t.Fatalf("addCommerce returned %+v for event %s, CommerceAt %+v", p, e.MessageID, b.CommerceAt(len(b.Events)-1))
			}
		}
	}
	fill()
	if len(b.CommerceOf) != len(b.Events) || len(b.Commerce) != 2 {
		t.Fatalf("%d props, %d indexes for %d events", len(b.Commerce), len(b.CommerceOf), len(b.Events))
	}
	o := b.CommerceAt(0)
	if o == nil || o.OrderID != "o1" || o.Revenue != 12.5 || o.Currency != "EUR" || len(o.Products) != 1 || o.Products[0].ProductID != "p1" {
		t.Fatalf("order: %+v", o)
	}
	if p := b.CommerceAt(1); p != nil {
		t.Fatalf("a page call got e-commerce properties: %+v", p)
	}
	if a := b.CommerceAt(2); a == nil || len(a.Products) != 1 || a.Products[0].SKU != "S" || a.Products[0].Quantity != 2 {
		t.Fatalf("product added: %+v", a)
	}
	if p := b.CommerceAt(3); p != nil {
		t.Fatalf("an event past the batch's got properties: %+v", p)
	}
	b.reset()
	msgs[0], msgs[2] = msgs[2], msgs[0]
	fill()
	if a := b.CommerceAt(0); a == nil || a.OrderID != "" || len(a.Products) != 1 || a.Products[0].SKU != "S" || a.Products[0].ProductID != "" {
		t.Fatalf("reused slot kept the last event's properties: %+v", a)
	}
	if o := b.CommerceAt(2); o == nil || o.OrderID != "o1" || len(o.Products) != 1 || o.Products[0].ProductID != "p1" || o.Products[0].SKU != "" {
		t.Fatalf("order in a reused slot: %+v", o)
	}
}
