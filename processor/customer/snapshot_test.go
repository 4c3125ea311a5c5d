package customer

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/commerce"
)

// TestRestoreContinues: restoring from the checkpoints at any point and
// going on yields the same output as never stopping.
func TestRestoreContinues(t *testing.T) {
	var steps []step
	names := []string{shoptrail.EventProductAdded, shoptrail.EventProductViewed, shoptrail.EventOrderCompleted, shoptrail.EventOrderRefunded,
		shoptrail.EventProductAddedToWishlist, shoptrail.EventOrderCancelled, shoptrail.EventInquiry, shoptrail.EventOrderCompleted}
	for i := range 300 {
		cust := fmt.Sprintf("c%d", i%11)
		at := time.Duration(i) * 131 * time.Minute
		if i%10 == 3 {
			steps = append(steps, step{at: at, abandon: &cart.Abandonment{ID: fmt.Sprintf("ab%d", i), Site: "shop", CustomerID: cust,
				AnonymousID: "x", Value: 5, LastActivityAt: t0.Add(at - time.Hour), AbandonedAt: t0.Add(at), Step: cart.StepCart}})
			continue
		}
		steps = append(steps, ev(at, cust, names[(i/11+i/3)%len(names)], fmt.Sprintf(`{"order_id":"o%d","revenue":%d,"products":[{"product_id":"p"}]}`, i/2, 10+i%700)))
		if i%7 == 0 {
			steps = append(steps, wm(at))
		}
	}
	steps = append(steps, wm(300*131*time.Minute+300*day))
	want, _ := run(t, Config{}, steps)
	if len(want.Transitions) < 30 {
		t.Fatalf("scenario too tame: %d transitions", len(want.Transitions))
	}
	for _, cut := range []int{1, 50, 151, 299, len(steps) - 1} {
		log := map[string][]byte{}
		var got Output
		tr, _ := New(Config{})
		var ps commerce.Parser
		n := 0
		for i, s := range steps {
			if i == cut {
				for _, r := range tr.Checkpoint(nil) {
					log[r.Key] = r.Value
				}
				var recs []Record
				for k, v := range log {
					recs = append(recs, Record{Key: k, Value: v})
				}
				tr, _ = New(Config{})
				if err := tr.Restore(recs); err != nil {
					t.Fatal(err)
				}
			} else if i%13 == 0 {
				for _, r := range tr.Checkpoint(nil) {
					log[r.Key] = r.Value
				}
			}
			switch {
			case s.wm:
				tr.Advance(t0.Add(s.at))
			case s.abandon != nil:
				tr.AddAbandonment(s.abandon, true, cart.DefaultRecoveryWindow)
			default:
				var p commerce.Props
				ps.Parse([]byte(s.props), &p)
				n++
				tr.Add(&Event{Site: "shop", CustomerID: s.cust, AnonymousID: s.anon, MessageID: fmt.Sprintf("m%d", n), Type: "track",
					Name: s.name, Time: t0.Add(s.at), Props: &p, Channel: "Direct", Source: "(direct)"})
			}
			tr.Drain(&got)
		}
		if !reflect.DeepEqual(got.Transitions, want.Transitions) || !reflect.DeepEqual(got.Orders, want.Orders) ||
			!reflect.DeepEqual(got.OrderUpdates, want.OrderUpdates) || !reflect.DeepEqual(got.Abandonments, want.Abandonments) {
			t.Fatalf("cut at %d: %d/%d transitions, %d/%d orders, %d/%d updates, %d/%d abandonments", cut, len(got.Transitions), len(want.Transitions),
				len(got.Orders), len(want.Orders), len(got.OrderUpdates), len(want.OrderUpdates), len(got.Abandonments), len(want.Abandonments))
		}
		// The last row of each customer agrees.
		last := func(rows []Row) map[string]Row {
			m := map[string]Row{}
			for _, r := range rows {
				m[r.CustomerID] = r
			}
			return m
		}
		if g, w := last(got.Customers), last(want.Customers); !reflect.DeepEqual(g, w) {
			t.Fatalf("cut at %d: customer rows differ\n%+v\n%+v", cut, g, w)
		}
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	for _, recs := range [][]Record{
		{{Key: "cust\x00shop\x00a", Value: []byte("{")}},
		{{Key: "cust\x00shopa", Value: []byte("{}")}},
		{{Key: "cust\x00shop\x00a", Value: []byte(`{"st":99}`)}},
		{{Key: MetaKey, Value: []byte("[")}},
	} {
		tr, _ := New(Config{})
		if err := tr.Restore(recs); err == nil {
			t.Errorf("restore of %q: no error", recs)
		}
	}
}
