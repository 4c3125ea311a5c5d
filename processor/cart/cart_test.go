package cart

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/commerce"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// step is one input of a scenario: an event (props as JSON) or, when name
// is "", a watermark advance to at.
type step struct {
	at      time.Duration // after t0
	anon    string
	user    string
	msg     string
	name    string
	props   string
	session string
}

func ev(at time.Duration, anon, msg, name, props string) step {
	return step{at: at, anon: anon, msg: msg, name: name, props: props, session: sessionOf(anon)}
}

func sessionOf(anon string) string {
	return fmt.Sprintf("%032x", anon)
}

func wm(at time.Duration) step { return step{at: at} }

func run(t *testing.T, cfg Config, steps []step) Output {
	t.Helper()
	out, _ := runTracker(t, cfg, steps)
	return out
}

func runTracker(t *testing.T, cfg Config, steps []step) (Output, *Tracker) {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ps commerce.Parser
	var out Output
	for _, s := range steps {
		if s.name == "" {
			tr.Advance(t0.Add(s.at))
			continue
		}
		var p commerce.Props
		ps.Parse([]byte(s.props), &p)
		tr.Add(&Event{Site: "shop", AnonymousID: s.anon, CustomerID: s.user, MessageID: s.msg, Name: s.name,
			Time: t0.Add(s.at), Props: &p, SessionID: s.session, Channel: "Organic Search", Source: "google"})
		tr.Drain(&out)
	}
	tr.Drain(&out)
	return out, tr
}

// summary is an abandonment in short, for the table.
type summary struct {
	ID, Anon, Customer string
	Value, Count       float64
	Currency, Step     string
	Mixed              bool
	AbandonedAt        time.Duration
	RecoveredBy        string
	RecoveredValue     float64
}

func summarize(as []Abandonment) []summary {
	var s []summary
	for _, a := range as {
		s = append(s, summary{ID: a.ID, Anon: a.AnonymousID, Customer: a.CustomerID, Value: a.Value, Count: a.ItemCount,
			Currency: a.Currency, Step: a.Step, Mixed: a.MixedCurrency, AbandonedAt: a.AbandonedAt.Sub(t0),
			RecoveredBy: a.RecoveredOrderID, RecoveredValue: a.RecoveredValue})
	}
	return s
}

const (
	add  = shoptrail.EventProductAdded
	rem  = shoptrail.EventProductRemoved
	view = shoptrail.EventCartViewed
	co   = shoptrail.EventCheckoutStarted
	pay  = shoptrail.EventPaymentInfoEntered
	buy  = shoptrail.EventOrderCompleted
)

func TestTracker(t *testing.T) {
	m := time.Minute
	h := time.Hour
	id := func(anon, msg string) string { return AbandonmentID("shop", anon, msg) }
	cases := []struct {
		name       string
		cfg        Config
		steps      []step
		abandoned  []summary
		recovered  []summary
		handoffs   []string // customer id: abandonment id
		problems   map[string]int
		emptied    int
		converted  int
		openAtEnd  int
		waitingEnd int
	}{
		{
			name: "abandoned after an hour of event time",
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10,"quantity":2,"currency":"EUR","name":"Relay"}`),
				ev(5*m, "a", "m2", add, `{"product_id":"p2","price":5,"currency":"EUR"}`),
				wm(65*m - time.Millisecond), // not yet
				wm(65 * m),
			},
			abandoned:  []summary{{ID: id("a", "m2"), Anon: "a", Value: 25, Count: 3, Currency: "EUR", Step: StepCart, AbandonedAt: 65 * m}},
			waitingEnd: 1,
		},
		{
			name: "activity restarts the window; furthest step kept",
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10}`),
				ev(50*m, "a", "m2", co, `{}`),
				ev(100*m, "a", "m3", pay, `{}`),
				wm(159 * m),
				ev(159*m, "a", "m4", view, `{}`),
				wm(5 * h),
			},
			abandoned:  []summary{{ID: id("a", "m4"), Anon: "a", Value: 10, Count: 1, Step: StepPayment, AbandonedAt: 219 * m}},
			waitingEnd: 1,
		},
		{
			name: "emptied cart is not abandoned",
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10,"quantity":2}`),
				ev(m, "a", "m2", rem, `{"product_id":"p1","quantity":1}`),
				ev(2*m, "a", "m3", rem, `{"product_id":"p1"}`),
				wm(5 * h),
			},
			emptied: 1,
		},
		{
			name: "converted cart is not abandoned",
			steps: []step{
				ev(0, "a", "m1", add, `{"sku":"S1","price":10}`),
				ev(30*m, "a", "m2", buy, `{"order_id":"o1","revenue":10}`),
				wm(5 * h),
			},
			converted: 1,
		},
		{
			name: "checkout snapshot replaces the cart",
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10}`),
				ev(m, "a", "m2", co, `{"currency":"USD","products":[{"product_id":"p2","price":7,"quantity":3},{"product_id":"p3","price":1}]}`),
				wm(3 * h),
			},
			abandoned:  []summary{{ID: id("a", "m2"), Anon: "a", Value: 22, Count: 4, Currency: "USD", Step: StepCheckout, AbandonedAt: 61 * m}},
			waitingEnd: 1,
		},
		{
			name: "recovered later by the same visitor",
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10}`),
				wm(2 * h),
				ev(30*h, "a", "m2", buy, `{"order_id":"o7","revenue":12.5}`),
				ev(31*h, "a", "m3", buy, `{"order_id":"o8","revenue":1}`),
			},
			abandoned: []summary{{ID: id("a", "m1"), Anon: "a", Value: 10, Count: 1, Step: StepCart, AbandonedAt: h}},
			recovered: []summary{{ID: id("a", "m1"), Anon: "a", Value: 10, Count: 1, Step: StepCart, AbandonedAt: h, RecoveredBy: "o7", RecoveredValue: 12.5}},
		},
		{
			name: "an order after the recovery window does not recover",
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10}`),
				ev(8*24*h, "a", "m2", buy, `{"order_id":"o7","revenue":12.5}`),
			},
			abandoned: []summary{{ID: id("a", "m1"), Anon: "a", Value: 10, Count: 1, Step: StepCart, AbandonedAt: h}},
		},
		{
			name: "an abandonment of a visitor who logs in later is handed to the customer stage",
			cfg:  Config{HandOff: true},
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10}`),
				wm(2 * h),
				{at: 3 * h, anon: "a", user: "c1", msg: "m2", name: shoptrail.EventLoggedIn},
				// An order on this device now belongs to the customer stage.
				{at: 4 * h, anon: "a", user: "c1", msg: "m3", name: buy, props: `{"order_id":"o1"}`},
			},
			abandoned: []summary{{ID: id("a", "m1"), Anon: "a", Value: 10, Count: 1, Step: StepCart, AbandonedAt: h}},
			handoffs:  []string{"c1:" + id("a", "m1")},
		},
		{
			name: "a known customer's abandonment goes to the customer stage at once",
			cfg:  Config{HandOff: true},
			steps: []step{
				{at: 0, anon: "a", user: "c1", msg: "m1", name: add, props: `{"product_id":"p1","price":3}`},
				wm(2 * h),
			},
			abandoned: []summary{{ID: id("a", "m1"), Anon: "a", Customer: "c1", Value: 3, Count: 1, Step: StepCart, AbandonedAt: h}},
			handoffs:  []string{"c1:" + id("a", "m1")},
		},
		{
			name: "without the customer stage, a known customer's abandonment is recovered by the same device",
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10}`),
				wm(2 * h),
				{at: 3 * h, anon: "a", user: "c1", msg: "m2", name: shoptrail.EventLoggedIn},
				{at: 4 * h, anon: "a", user: "c1", msg: "m3", name: buy, props: `{"order_id":"o1","revenue":4}`},
			},
			abandoned: []summary{{ID: id("a", "m1"), Anon: "a", Value: 10, Count: 1, Step: StepCart, AbandonedAt: h}},
			recovered: []summary{{ID: id("a", "m1"), Anon: "a", Value: 10, Count: 1, Step: StepCart, AbandonedAt: h, RecoveredBy: "o1", RecoveredValue: 4}},
		},
		{
			name: "a replayed cart event is skipped",
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10}`),
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10}`),
				ev(-time.Minute, "a", "m0", add, `{"product_id":"p1","price":10}`),
				wm(2 * h),
			},
			abandoned:  []summary{{ID: id("a", "m1"), Anon: "a", Value: 10, Count: 1, Step: StepCart, AbandonedAt: h}},
			waitingEnd: 1,
		},
		{
			name: "per-site abandonment window",
			cfg:  Config{SiteAbandonAfter: map[string]time.Duration{"shop": 10 * m}},
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10}`),
				wm(11 * m),
			},
			abandoned:  []summary{{ID: id("a", "m1"), Anon: "a", Value: 10, Count: 1, Step: StepCart, AbandonedAt: 10 * m}},
			waitingEnd: 1,
		},
		{
			name: "an event past the deadline flags before it applies, whatever the watermark",
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10}`),
				ev(3*h, "a", "m2", add, `{"product_id":"p2","price":1}`),
			},
			abandoned:  []summary{{ID: id("a", "m1"), Anon: "a", Value: 10, Count: 1, Step: StepCart, AbandonedAt: h}},
			openAtEnd:  1,
			waitingEnd: 1,
		},
		{
			name: "currency mix: kept as lines, out of the value, flagged and counted",
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10,"currency":"EUR"}`),
				ev(m, "a", "m2", add, `{"product_id":"p2","price":99,"currency":"USD"}`),
				ev(2*m, "a", "m3", add, `{"product_id":"p3","price":1,"currency":"GBP"}`),
				wm(3 * h),
			},
			abandoned:  []summary{{ID: id("a", "m3"), Anon: "a", Value: 10, Count: 3, Currency: "EUR", Mixed: true, Step: StepCart, AbandonedAt: 62 * m}},
			problems:   map[string]int{ProblemCurrencyMix: 1},
			waitingEnd: 1,
		},
		{
			name: "bad input is counted and ignored",
			steps: []step{
				ev(0, "a", "m1", add, `{"price":10}`),
				ev(m, "a", "m2", add, `{"product_id":"p","price":-5}`),
				ev(m, "a", "m3", add, `{"product_id":"p","price":5,"quantity":1e12}`),
				ev(m, "a", "m4", add, `{"product_id":"p","price":true}`),
				ev(m, "a", "m5", rem, `{}`),
				wm(5 * h),
			},
			// m4: the unreadable price is left out (price 0), the line kept.
			abandoned:  []summary{{ID: id("a", "m4"), Anon: "a", Value: 0, Count: 1, Step: StepCart, AbandonedAt: 61 * m}},
			problems:   map[string]int{ProblemNoProductID: 2, ProblemBadAmount: 2, ProblemProperties: 1},
			waitingEnd: 1,
		},
		{
			name: "visitors are apart",
			steps: []step{
				ev(0, "a", "m1", add, `{"product_id":"p1","price":10}`),
				ev(10*m, "b", "m2", add, `{"product_id":"p1","price":10}`),
				ev(20*m, "b", "m3", buy, `{"order_id":"o"}`),
				wm(2 * h),
			},
			abandoned:  []summary{{ID: id("a", "m1"), Anon: "a", Value: 10, Count: 1, Step: StepCart, AbandonedAt: h}},
			converted:  1,
			waitingEnd: 1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, tr := runTracker(t, c.cfg, c.steps)
			if st := tr.Stats(); st.OpenCarts != c.openAtEnd || st.Waiting != c.waitingEnd {
				t.Errorf("stats %+v, want %d open carts, %d waiting", st, c.openAtEnd, c.waitingEnd)
			}
			if got := summarize(out.Abandonments); !reflect.DeepEqual(got, c.abandoned) {
				t.Errorf("abandonments\n got %+v\nwant %+v", got, c.abandoned)
			}
			if got := summarize(out.Recoveries); !reflect.DeepEqual(got, c.recovered) {
				t.Errorf("recoveries\n got %+v\nwant %+v", got, c.recovered)
			}
			var hs []string
			for _, h := range out.Handoffs {
				hs = append(hs, h.CustomerID+":"+h.Abandonment.ID)
			}
			if !reflect.DeepEqual(hs, c.handoffs) {
				t.Errorf("handoffs %v, want %v", hs, c.handoffs)
			}
			probs := map[string]int{}
			for k, n := range out.Problems {
				if n > 0 {
					probs[k] = n
				}
			}
			if c.problems == nil {
				c.problems = map[string]int{}
			}
			if !reflect.DeepEqual(probs, c.problems) {
				t.Errorf("problems %v, want %v", probs, c.problems)
			}
			if out.Emptied != c.emptied || out.Converted != c.converted {
				t.Errorf("emptied %d converted %d, want %d %d", out.Emptied, out.Converted, c.emptied, c.converted)
			}
		})
	}
}

// TestAbandonmentRow: the row carries the items, the session and its
// attribution, and the ids are stable across runs (replays collapse).
func TestAbandonmentRow(t *testing.T) {
	steps := []step{
		ev(0, "a", "m1", add, `{"product_id":"p1","sku":"S1","name":"Relay","category":"Parts","price":2.5,"quantity":4,"currency":"CNY","cart_id":"k1"}`),
		wm(2 * time.Hour),
	}
	a := run(t, Config{}, steps).Abandonments
	b := run(t, Config{}, steps).Abandonments
	if len(a) != 1 || !reflect.DeepEqual(a, b) {
		t.Fatalf("runs differ or not one row: %+v / %+v", a, b)
	}
	r := a[0]
	want := Item{ProductID: "p1", SKU: "S1", Name: "Relay", Category: "Parts", Price: 2.5, Quantity: 4, Currency: "CNY"}
	if len(r.Items) != 1 || r.Items[0] != want || r.CartID != "k1" || r.SessionID != sessionOf("a") || r.Channel != "Organic Search" ||
		r.Source != "google" || !r.LastActivityAt.Equal(t0) || r.Value != 10 {
		t.Fatalf("row %+v", r)
	}
	if len(r.ID) != 32 {
		t.Fatalf("id %q", r.ID)
	}
}

// TestWatermarkIndependence: however often and wherever the watermark is
// advanced in between, the output is the same (a backfill and live traffic
// agree).
func TestWatermarkIndependence(t *testing.T) {
	var evs []step
	for i := range 300 {
		anon := fmt.Sprintf("v%d", i%17)
		at := time.Duration(i) * 7 * time.Minute
		names := []string{add, add, rem, view, co, pay, buy, shoptrail.EventProductViewed}
		name := names[(i*7+i/5)%len(names)]
		evs = append(evs, ev(at, anon, fmt.Sprintf("m%d", i), name, fmt.Sprintf(`{"product_id":"p%d","price":%d,"order_id":"o%d"}`, i%3, i%11, i)))
	}
	end := wm(time.Duration(300*7)*time.Minute + 10*24*time.Hour)
	sparse := append(append([]step(nil), evs...), end)
	var dense []step
	for _, s := range evs {
		dense = append(dense, s, wm(s.at))
	}
	dense = append(dense, end)
	a, b := run(t, Config{}, sparse), run(t, Config{}, dense)
	sortRows := func(o *Output) {
		sort.Slice(o.Abandonments, func(i, j int) bool { return o.Abandonments[i].ID < o.Abandonments[j].ID })
		sort.Slice(o.Recoveries, func(i, j int) bool { return o.Recoveries[i].ID < o.Recoveries[j].ID })
	}
	sortRows(&a)
	sortRows(&b)
	if len(a.Abandonments) == 0 || len(a.Recoveries) == 0 {
		t.Fatalf("scenario too tame: %d abandonments, %d recoveries", len(a.Abandonments), len(a.Recoveries))
	}
	if !reflect.DeepEqual(a.Abandonments, b.Abandonments) || !reflect.DeepEqual(a.Recoveries, b.Recoveries) {
		t.Fatalf("sparse and dense watermarks differ: %d/%d abandonments, %d/%d recoveries",
			len(a.Abandonments), len(b.Abandonments), len(a.Recoveries), len(b.Recoveries))
	}
}
