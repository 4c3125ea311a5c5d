package repart

import (
	"fmt"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/commerce"
	"github.com/shoptrail/shoptrail/processor/customer"
)

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func day(d float64) time.Time { return t0.Add(time.Duration(d * 24 * float64(time.Hour))) }

// order is an Order Completed fact of customer cust from source src at
// offset off.
func order(src int, off int64, cust string, at time.Time, revenue float64) Fact {
	var p commerce.Props
	var ps commerce.Parser
	ps.Parse(fmt.Appendf(nil, `{"order_id":"o%d-%d","revenue":%g,"currency":"EUR","products":[{"product_id":"p","price":%g,"quantity":1}]}`, src, off, revenue, revenue), &p)
	return Fact{Source: src, Offset: off, Event: &customer.Event{Site: "shop", CustomerID: cust, AnonymousID: fmt.Sprint("dev", src),
		MessageID: fmt.Sprintf("m%d-%d", src, off), Type: "track", Name: "Order Completed", Time: at, Props: &p}}
}

func wmark(src int, at time.Time) Fact { return Fact{Source: src, Watermark: at} }

func abandon(src int, cust, id string, at time.Time) Fact {
	return Fact{Source: src, New: true, Abandonment: &cart.Abandonment{ID: id, Site: "shop", CustomerID: cust, CartID: "c" + id,
		AnonymousID: fmt.Sprint("dev", src), Value: 20, Currency: "EUR", LastActivityAt: at.Add(-time.Hour), AbandonedAt: at}}
}

// feed runs facts through a tracker in the order given (the reference: one
// process that sees everything in event-time order).
func feed(t *testing.T, tr *customer.Tracker, fs []Fact, out *customer.Output) {
	for i := range fs {
		f := &fs[i]
		switch {
		case f.Event != nil:
			tr.Add(f.Event)
		case f.Abandonment != nil:
			tr.AddAbandonment(f.Abandonment, f.New, cart.DefaultRecoveryWindow, f.Time())
		}
		tr.Drain(out)
	}
}

func render(o *customer.Output) []string {
	var s []string
	for _, tr := range o.Transitions {
		s = append(s, fmt.Sprintf("%s %s %s>%s %s %s", tr.CustomerID, tr.Kind, tr.From, tr.To, tr.At.Format(time.RFC3339), tr.Cause))
	}
	for _, a := range o.Abandonments {
		s = append(s, fmt.Sprintf("abandonment %s recovered=%v %s", a.ID, a.Recovered, a.RecoveredOrderID))
	}
	return s
}

func newTracker(t *testing.T) *customer.Tracker {
	tr, err := customer.New(customer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestCrossSourceExactlyOnce: one customer's orders and an abandonment come
// from two source partitions, interleaved out of time order, with a source
// replaying what it sent since its checkpoint, offsets out of order and the merger itself
// restored from a checkpoint halfway. The tracker sees what a single
// ordered feed gives it: the same transitions, recoveries, causes.
func TestCrossSourceExactlyOnce(t *testing.T) {
	o1 := order(0, 10, "u1", day(0), 50)
	ab := abandon(1, "u1", "ab1", day(20))
	o2 := order(1, 7, "u1", day(20.5), 30) // recovers ab1 (other device)
	o3 := order(0, 9, "u1", day(40), 80)   // assigned after o1, at a lower offset
	o4 := order(1, 8, "u1", day(60), 40)

	ref := newTracker(t)
	var want customer.Output
	feed(t, ref, []Fact{o1, ab, o2, o3, o4}, &want)
	ref.Advance(day(400))
	ref.Drain(&want)

	// What the repartition partition receives: source 1 is ahead in event
	// time, source 0 behind. Source 1 crashes twice before a checkpoint
	// (so before broadcasting its watermark) and replays what it had sent
	// since its last one: ab1 and o2, then o4.
	stream := []Fact{
		wmark(0, day(-1)), wmark(1, day(-1)),
		ab, o2,
		ab, o2, // source 1's first replay
		wmark(1, day(30)),
		o1,
		wmark(0, day(30)), // merged: day 30 -> o1, ab1, o2 released
		o4,
		o4, // source 1's second replay
		wmark(1, day(70)),
		o3,
		wmark(0, day(400)), wmark(1, day(400)),
	}
	m := New(2)
	tr := newTracker(t)
	var got customer.Output
	var released []Fact
	outcomes := map[Outcome]int{}
	crashed := false
	for i := 0; i < len(stream); i++ {
		outcomes[m.Add(stream[i], int64(i))]++
		var wm time.Time
		released, wm = m.Release(released[:0])
		feed(t, tr, released, &got)
		tr.Advance(wm)
		tr.Drain(&got)
		if i == 9 && !crashed { // o4 waiting in the buffer
			// Crash of the customer stage after its checkpoint: a new
			// merger and tracker restored from it.
			b, err := m.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			m = New(2)
			if err := m.Restore(b); err != nil {
				t.Fatal(err)
			}
			tr2 := newTracker(t)
			if err := tr2.Restore(tr.Checkpoint(nil)); err != nil {
				t.Fatal(err)
			}
			tr = tr2
			// Read again from the oldest fact waiting at the checkpoint.
			crashed = true
			if r := m.Resume(); r != 9 {
				t.Errorf("resume at %d, want 9 (o4, waiting)", r)
			}
			i = int(m.Resume()) - 1
		}
	}
	if !crashed || outcomes[Replayed] != 3 || outcomes[Late] != 0 || outcomes[Invalid] != 0 {
		t.Errorf("outcomes %v, want 3 replayed, none late or invalid", outcomes)
	}
	if m.Len() != 0 || !m.Watermark().Equal(day(400)) {
		t.Errorf("%d facts left, watermark %v; want none at day 400", m.Len(), m.Watermark())
	}
	if len(want.Transitions) < 3 {
		t.Fatalf("reference has only %d transitions: the scenario tests nothing", len(want.Transitions))
	}
	if g, w := render(&got), render(&want); fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("merged feed\n got %q\nwant %q", g, w)
	}
	recovered := false
	for _, a := range got.Abandonments {
		recovered = recovered || a.Recovered
	}
	if !recovered {
		t.Error("the order on the other device did not recover the abandonment")
	}
}

// TestLateAndInvalid: a fact behind the merged watermark is refused, as
// are facts of unknown sources or without content; the seen abandonment
// ids are let go once the watermark passes them.
func TestLateAndInvalid(t *testing.T) {
	m := New(2)
	m.Add(wmark(0, day(5)), 1)
	m.Add(wmark(1, day(5)), 2)
	m.Release(nil)
	if got := m.Add(order(0, 1, "u", day(4), 10), 3); got != Late {
		t.Errorf("event behind the watermark: %v, want Late", got)
	}
	if got := m.Add(abandon(1, "u", "a", day(4)), 4); got != Late {
		t.Errorf("abandonment behind the watermark: %v, want Late", got)
	}
	if got := m.Add(order(2, 1, "u", day(6), 10), 5); got != Invalid {
		t.Errorf("unknown source: %v, want Invalid", got)
	}
	if got := m.Add(Fact{Source: 0}, 6); got != Invalid {
		t.Errorf("empty fact: %v, want Invalid", got)
	}
	if got := m.Add(abandon(1, "u", "b", day(6)), 7); got != Kept {
		t.Fatalf("abandonment: %v", got)
	}
	m.Add(wmark(0, day(7)), 8)
	m.Add(wmark(1, day(7)), 9)
	if fs, _ := m.Release(nil); len(fs) != 1 || len(m.seen) != 0 {
		t.Errorf("released %d, %d ids kept; want 1 and none", len(fs), len(m.seen))
	}
	if err := New(3).Restore(mustCheckpoint(t, m)); err == nil {
		t.Error("a checkpoint of 2 sources restored into 3")
	}
}

func mustCheckpoint(t *testing.T, m *Merger) []byte {
	b, err := m.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
