package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// webhookJSON writes what json.Marshal writes: on an alert with every
// field set (odd strings and floats included), on the golden alerts, and
// on values json.Marshal refuses or that are omitted.
func TestWebhookJSONAsMarshal(t *testing.T) {
	ts := time.Date(2026, 3, 2, 9, 1, 0, 0, time.UTC)
	f := func(what string, a *Alert) {
		t.Helper()
		got, gotErr := webhookJSON(a.Type, ts, a)
		want, wantErr := json.Marshal(webhookBody{Type: a.Type, Timestamp: ts, Data: a})
		if !bytes.Equal(got, want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Errorf("%s:\n got %s, %v\nwant %s, %v", what, got, gotErr, want, wantErr)
		}
	}
	var full Alert
	testenv.Fill(t, reflect.ValueOf(&full).Elem())
	f("every field set", &full)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	// Zero and omitted values; an empty items list; nil items.
	f("zero", &Alert{})
	f("empty items", &Alert{ID: "x", At: at, Cart: &shoptrail.SignalCart{Items: []shoptrail.SignalCartItem{}}, Customer: &shoptrail.SignalCustomer{}})
	f("nil items", &Alert{ID: "x", At: at, Cart: &shoptrail.SignalCart{Value: -0.5, RecoveredValue: 3}, Transition: &shoptrail.SignalTransition{}})
	// Floats at the format's edges.
	for _, v := range []float64{0, math.Copysign(0, -1), 1e-6, 9.99e-7, 1e20, 1e21, 123456789.125, -1e-9, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		f(fmt.Sprint(v), &Alert{ID: "x", At: at, Customer: &shoptrail.SignalCustomer{NetRevenue: v}})
	}
	// What json.Marshal refuses: the same error.
	f("NaN", &Alert{ID: "x", At: at, Cart: &shoptrail.SignalCart{Value: math.NaN()}})
	f("Inf", &Alert{ID: "x", At: at, Customer: &shoptrail.SignalCustomer{NetRevenue: math.Inf(1)}})
	f("year 10000", &Alert{ID: "x", At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
	f("year -1", &Alert{ID: "x", At: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)})
	f("odd zone", &Alert{ID: "x", At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3600+30))})
	// A time with a monotonic reading and a local zone.
	f("now", &Alert{ID: "x", At: time.Now()})
}

func BenchmarkWebhookJSON(b *testing.B) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	a := &Alert{ID: "msg_0123456789abcdef0123456789abcdef", Type: TypeCartAbandoned, Rule: "carts", Site: "shop-1", At: at, Subject: "c-42",
		FollowUp: "phone_call",
		Customer: &shoptrail.SignalCustomer{ID: "c-42", Email: "zhang@example.com", Name: "张三", Company: "Acme", Stage: shoptrail.StageLoyal,
			Tier: "A", OrderCount: 9, NetRevenue: 20450.5, Currency: "CNY", FirstSeenAt: at.AddDate(-1, 0, 0), LastOrderAt: at.AddDate(0, -1, 0),
			LastVisitAt: at, FirstChannel: "Paid Search", FirstSource: "baidu"},
		Cart: &shoptrail.SignalCart{CartID: "cart-1", Value: 1280, Currency: "CNY", ItemCount: 2, Step: "checkout",
			Items: []shoptrail.SignalCartItem{{ProductID: "p1", SKU: "S1", Name: "Pump", Price: 1200, Quantity: 1},
				{ProductID: "p2", Name: "Seal", Price: 40, Quantity: 2}},
			LastActivityAt: at, AbandonedAt: at, SessionID: "sess", Channel: "Paid Search", Source: "baidu", AbandonmentID: "ab-1"}}
	b.Run("by-hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := webhookJSON(a.Type, at, a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(webhookBody{Type: a.Type, Timestamp: at, Data: a}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
