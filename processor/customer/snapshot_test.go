package customer

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/cart"
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
		for i := range steps {
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
			apply(tr, steps, i)
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

// TestRestoreCutShort: a checkpoint cut short leaves records of some
// customers newer than the meta record; restored from that and fed again
// from the older checkpoint, as the customer stage does, those customers
// skip what they have, and the tables end as if nothing happened.
func TestRestoreCutShort(t *testing.T) {
	var steps []step
	names := []string{shoptrail.EventProductAdded, shoptrail.EventOrderCompleted, shoptrail.EventProductAddedToWishlist,
		shoptrail.EventOrderCompleted, shoptrail.EventInquiry}
	for i := range 200 {
		at := time.Duration(i) * 97 * time.Minute
		steps = append(steps, ev(at, fmt.Sprintf("c%d", i%9), names[(i/9+i)%len(names)],
			fmt.Sprintf(`{"order_id":"o%d","revenue":%d,"products":[{"product_id":"p"}]}`, i, 10+i%300)))
		if i%5 == 4 {
			steps = append(steps, wm(at))
		}
	}
	steps = append(steps, wm(200*97*time.Minute+400*day))
	want, _ := run(t, Config{}, steps)
	// Checkpoints right after watermark steps: every fact so far is at or
	// before the watermark, as the merger guarantees.
	a, b := -1, -1
	for i, s := range steps {
		if s.wm && i > 60 && a < 0 {
			a = i + 1
		} else if s.wm && i > 150 && b < 0 {
			b = i + 1
		}
	}
	tr, _ := New(Config{})
	var got Output
	log := map[string][]byte{}
	for i := range steps[:b] {
		if i == a {
			for _, r := range tr.Checkpoint(nil) {
				log[r.Key] = r.Value
			}
		}
		apply(tr, steps, i)
		tr.Drain(&got)
	}
	// The checkpoint at b dies after half of its customer records.
	recs := tr.Checkpoint(nil)
	for _, r := range recs[:(len(recs)-1)/2] {
		log[r.Key] = r.Value
	}
	var restored []Record
	for k, v := range log {
		restored = append(restored, Record{Key: k, Value: v})
	}
	tr, _ = New(Config{})
	if err := tr.Restore(restored); err != nil {
		t.Fatal(err)
	}
	if len(tr.ahead) == 0 {
		t.Fatal("no customer restored ahead of the meta record: the scenario tests nothing")
	}
	for i := a; i < len(steps); i++ {
		apply(tr, steps, i)
		tr.Drain(&got)
	}
	if tr.Skipped == 0 || len(tr.ahead) != 0 {
		t.Errorf("skipped %d facts, %d customers still ahead; want some and none", tr.Skipped, len(tr.ahead))
	}
	ids := func(ts []Transition) map[string]Transition {
		m := map[string]Transition{}
		for _, x := range ts {
			m[x.ID] = x
		}
		return m
	}
	if g, w := ids(got.Transitions), ids(want.Transitions); !reflect.DeepEqual(g, w) {
		t.Errorf("transitions: %d distinct, want %d", len(g), len(w))
	}
	last := func(rows []Row) map[string]Row {
		m := map[string]Row{}
		for _, r := range rows {
			m[r.CustomerID] = r
		}
		return m
	}
	if g, w := last(got.Customers), last(want.Customers); !reflect.DeepEqual(g, w) {
		for k := range w {
			if !reflect.DeepEqual(g[k], w[k]) {
				t.Errorf("customer %s:\n got %+v\nwant %+v", k, g[k], w[k])
			}
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

// TestLongOrderHistory: a customer with more orders than the history keeps
// (maxOrders) still has the net revenue of every order, also after a
// restore from a checkpoint taken once the history was trimmed.
func TestLongOrderHistory(t *testing.T) {
	var steps []step
	for i := range maxOrders + 8 {
		steps = append(steps, order(time.Duration(i)*day, "c", fmt.Sprintf("o%d", i), 10))
	}
	steps = append(steps,
		ev(50*day, "c", shoptrail.EventOrderCancelled, `{"order_id":"o35"}`),
		ev(51*day, "c", shoptrail.EventOrderRefunded, `{"order_id":"o39","revenue":5}`))
	want, _ := run(t, Config{}, steps)
	last := want.Customers[len(want.Customers)-1]
	if last.NetRevenue != 385 || last.OrderCount != maxOrders+7 || !last.LastOrderAt.Equal(t0.Add(39*day)) || !last.FirstOrderAt.Equal(t0) {
		t.Fatalf("customer row %+v, want 385 net from %d orders, first at day 0, last at day 39", last, maxOrders+7)
	}
	var got Output
	tr, _ := New(Config{})
	for i := range steps {
		if i == maxOrders+4 {
			recs := tr.Checkpoint(nil)
			tr, _ = New(Config{})
			if err := tr.Restore(recs); err != nil {
				t.Fatal(err)
			}
		}
		apply(tr, steps, i)
		tr.Drain(&got)
	}
	if g := got.Customers[len(got.Customers)-1]; !reflect.DeepEqual(g, last) {
		t.Errorf("after a restore\n%+v\nwant\n%+v", g, last)
	}
}
