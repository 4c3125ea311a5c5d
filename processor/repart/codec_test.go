package repart

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/customer"
)

// sampleFacts are facts with every field set somewhere.
func sampleFacts() []Fact {
	o := order(3, 17, "cust-1", time.Date(2026, 5, 1, 10, 0, 0, 123456789, time.UTC), 99.5)
	o.Event.Props.Product = o.Event.Props.Products[0]
	o.Event.Props.Problem, o.Event.Props.Step, o.Event.Props.Coupon = "price: not a number", 3, "WELCOME"
	o.Event.SessionID, o.Event.Channel, o.Event.Source = "s1", "Paid Search", "google"
	id := Fact{Source: 1, Event: &customer.Event{Site: "shop", CustomerID: "c", AnonymousID: "a", MessageID: "m", Type: "identify",
		Time: time.Unix(1700000000, 5).UTC(), Traits: &customer.Traits{Email: "e@x", Name: "N", Phone: "1", Company: "ACME",
			Industry: "i", CustomerType: "enterprise", Role: "other", Level: "gold"}}}
	sess := Fact{Source: 2, Event: &customer.Event{Site: "shop", CustomerID: "c", MessageID: "session:s", Type: customer.TypeSession,
		Time: time.Unix(1700000100, 0).UTC(), SessionStart: time.Unix(1699990000, 0).UTC(), Channel: "Direct", Source: "(direct)"}}
	ab := abandon(0, "cust-1", "ab1", time.Unix(1700000200, 0).UTC())
	ab.At = time.Unix(1700000300, 0).UTC()
	ab.Abandonment.Items = []cart.Item{{ProductID: "p", SKU: "s", Name: "n", Category: "c", Price: 1.5, Quantity: 2, Currency: "EUR"}}
	ab.Abandonment.Step, ab.Abandonment.MixedCurrency, ab.Abandonment.Recovered = cart.StepPayment, true, true
	ab.Abandonment.RecoveredAt, ab.Abandonment.RecoveredOrderID, ab.Abandonment.RecoveredValue = time.Unix(1700000400, 0).UTC(), "o9", 7
	late := order(2, 18, "cust-2", time.Unix(1700000000, 0).UTC(), 10)
	late.Event.Arrived = time.Unix(1700000600, 7).UTC()
	return []Fact{o, id, sess, ab, late, wmark(3, time.Unix(1700000500, 0).UTC()), {Source: 1}}
}

// TestCodecRoundTrip: every sample fact decodes to what was encoded, and
// the JSON form of a fact (older records) decodes too.
func TestCodecRoundTrip(t *testing.T) {
	for _, f := range sampleFacts() {
		want, _ := json.Marshal(&f)
		var got Fact
		if err := DecodeFact(AppendFact(nil, &f), &got); err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		if g, _ := json.Marshal(&got); string(g) != string(want) {
			t.Errorf("round trip\n got %s\nwant %s", g, want)
		}
		got = Fact{}
		if err := DecodeFact(want, &got); err != nil {
			t.Fatalf("JSON %s: %v", want, err)
		}
		if g, _ := json.Marshal(&got); string(g) != string(want) {
			t.Errorf("JSON\n got %s\nwant %s", g, want)
		}
	}
}

// FuzzDecodeFact: any input decodes or errs, never panics, and what
// decodes encodes back to an equal fact.
func FuzzDecodeFact(f *testing.F) {
	for _, x := range sampleFacts() {
		f.Add(AppendFact(nil, &x))
	}
	f.Add([]byte{1, 'e', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var x Fact
		if DecodeFact(b, &x) != nil || b[0] == '{' {
			return
		}
		var y Fact
		if err := DecodeFact(AppendFact(nil, &x), &y); err != nil {
			t.Fatalf("re-encoded fact does not decode: %v", err)
		}
		jx, _ := json.Marshal(&x)
		jy, _ := json.Marshal(&y)
		if string(jx) != string(jy) {
			t.Fatalf("re-encoded\n%s\n%s", jx, jy)
		}
	})
}
