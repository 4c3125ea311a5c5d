package customer

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/commerce"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

type step struct {
	at    time.Duration
	cust  string
	anon  string
	name  string
	props string
	// wm: a watermark advance to at (no event)
	wm bool
	// abandon: hand over an abandonment flagged at at
	abandon *cart.Abandonment
	// arrived: a late event, arrived at this time (Event.Arrived)
	arrived time.Duration
}

func ev(at time.Duration, cust, name, props string) step {
	return step{at: at, cust: cust, anon: "dev-" + cust, name: name, props: props}
}
func order(at time.Duration, cust, id string, revenue float64) step {
	return ev(at, cust, shoptrail.EventOrderCompleted, fmt.Sprintf(`{"order_id":%q,"revenue":%v,"currency":"EUR","products":[{"product_id":"p","price":%v}]}`, id, revenue, revenue))
}
func wm(at time.Duration) step { return step{at: at, wm: true} }

func run(t *testing.T, cfg Config, steps []step) (Output, *Tracker) {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out Output
	for i := range steps {
		apply(tr, steps, i)
		tr.Drain(&out)
	}
	return out, tr
}

// apply applies steps[i] to tr; the message id of an event is "m" and
// its number among the steps' events, from 1.
func apply(tr *Tracker, steps []step, i int) {
	s := steps[i]
	switch {
	case s.wm:
		tr.Advance(t0.Add(s.at))
	case s.abandon != nil:
		tr.AddAbandonment(s.abandon, true, cart.DefaultRecoveryWindow, s.abandon.AbandonedAt)
	default:
		var p commerce.Props
		var ps commerce.Parser
		ps.Parse([]byte(s.props), &p)
		n := 0
		for _, x := range steps[:i+1] {
			if !x.wm && x.abandon == nil {
				n++
			}
		}
		e := &Event{Site: "shop", CustomerID: s.cust, AnonymousID: s.anon, MessageID: fmt.Sprintf("m%d", n), Type: "track",
			Name: s.name, Time: t0.Add(s.at), Props: &p, Channel: "Direct", Source: "(direct)"}
		if s.arrived != 0 {
			e.Arrived = t0.Add(s.arrived)
		}
		tr.Add(e)
	}
}

// flows renders the transitions of one kind as "from>to@days cause".
func flows(ts []Transition, kind string) []string {
	var s []string
	for _, tr := range ts {
		if tr.Kind != kind {
			continue
		}
		cause := tr.Cause
		if strings.HasPrefix(cause, "event:") {
			cause = strings.Split(cause, ":")[1]
		}
		s = append(s, fmt.Sprintf("%s:%s>%s@%.4gd %s", tr.CustomerID, tr.From, tr.To, tr.At.Sub(t0).Hours()/24, cause))
	}
	return s
}

func TestLifecycle(t *testing.T) {
	cases := []struct {
		name   string
		cfg    Config
		steps  []step
		stages []string
		tiers  []string // nil: not checked
	}{
		{
			name: "first, second, third, loyal",
			steps: []step{
				ev(0, "c", shoptrail.EventSignedUp, `{}`),
				order(1*day, "c", "o1", 10), order(2*day, "c", "o2", 10), order(3*day, "c", "o3", 10), order(4*day, "c", "o4", 10),
				order(5*day, "c", "o5", 10),
			},
			stages: []string{
				"c:stranger>registered@0d Signed Up", "c:registered>first_buyer@1d Order Completed", "c:first_buyer>second_buyer@2d Order Completed",
				"c:second_buyer>third_buyer@3d Order Completed", "c:third_buyer>loyal@4d Order Completed",
			},
		},
		{
			name: "at risk, dormant, lost by the customer's own rhythm; an order reactivates",
			steps: []step{
				order(0, "c", "o1", 10), order(10*day, "c", "o2", 10), order(20*day, "c", "o3", 10),
				wm(100 * day),
				order(101*day, "c", "o4", 10),
			},
			stages: []string{
				"c:stranger>first_buyer@0d Order Completed", "c:first_buyer>second_buyer@10d Order Completed", "c:second_buyer>third_buyer@20d Order Completed",
				"c:third_buyer>at_risk@35d timer:at_risk", "c:at_risk>dormant@50d timer:dormant", "c:dormant>lost@80d timer:lost",
				"c:lost>loyal@101d Order Completed",
			},
		},
		{
			name: "a short rhythm is clamped to the minimum interval",
			steps: []step{
				order(0, "c", "o1", 10), order(1*day, "c", "o2", 10),
				wm(100 * day),
			},
			stages: []string{
				"c:stranger>first_buyer@0d Order Completed", "c:first_buyer>second_buyer@1d Order Completed",
				"c:second_buyer>at_risk@11.5d timer:at_risk", "c:at_risk>dormant@22d timer:dormant", "c:dormant>lost@43d timer:lost",
			},
		},
		{
			name: "one-time buyer: fixed thresholds; configurable",
			cfg:  Config{OneTimeAtRisk: 10 * day, OneTimeDormant: 20 * day, OneTimeLost: 40 * day},
			steps: []step{
				order(0, "c", "o1", 10),
				wm(39 * day),
				ev(39*day, "c", "Page", `{}`), // a visit does not reactivate a buyer
				wm(41 * day),
			},
			stages: []string{
				"c:stranger>first_buyer@0d Order Completed", "c:first_buyer>at_risk@10d timer:at_risk", "c:at_risk>dormant@20d timer:dormant",
				"c:dormant>lost@40d timer:lost",
			},
		},
		{
			name: "potential, potential dormant, back",
			steps: []step{
				ev(0, "c", shoptrail.EventLoggedIn, `{}`),
				ev(1*day, "c", shoptrail.EventProductAdded, `{"product_id":"p"}`),
				wm(40 * day),
				ev(45*day, "c", shoptrail.EventProductViewed, `{"product_id":"p"}`),
				ev(46*day, "c", shoptrail.EventInquiry, `{}`),
			},
			stages: []string{
				"c:stranger>registered@0d Logged In", "c:registered>potential@1d Product Added", "c:potential>potential_dormant@31d timer:potential_dormant",
				"c:potential_dormant>potential@45d Product Viewed",
			},
		},
		{
			name: "cancelling an order moves the stage back",
			steps: []step{
				order(0, "c", "o1", 10), order(1*day, "c", "o2", 10),
				ev(2*day, "c", shoptrail.EventOrderCancelled, `{"order_id":"o2"}`),
			},
			stages: []string{
				"c:stranger>first_buyer@0d Order Completed", "c:first_buyer>second_buyer@1d Order Completed",
				"c:second_buyer>first_buyer@2d Order Cancelled",
			},
		},
		{
			name: "value tier: from the RFM score, falling with recency",
			steps: []step{
				order(0, "c", "o1", 3000), order(5*day, "c", "o2", 3000), order(10*day, "c", "o3", 3000),
				wm(300 * day),
			},
			// R5 F1 M4 = 10 B; R5 F2 M5 = 12 B; R5 F3 M5 = 13 A; then recency
			// falls after 30 (R4: 12 B), 60 (R3: 11 B), 120 (R2: 10 B) and 240
			// days (R1: 9 C).
			tiers: []string{
				"c:>B@0d Order Completed", "c:B>A@10d Order Completed", "c:A>B@40d timer:recency", "c:B>C@250d timer:recency",
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _ := run(t, c.cfg, c.steps)
			got := flows(out.Transitions, "stage")
			if c.stages != nil {
				// Compare to the second: the fractional days of clamped
				// thresholds print rounded.
				if !reflect.DeepEqual(got, c.stages) {
					t.Errorf("stages\n got %q\nwant %q", got, c.stages)
				}
			}
			if c.tiers != nil {
				if got := flows(out.Transitions, "tier"); !reflect.DeepEqual(got, c.tiers) {
					t.Errorf("tiers\n got %q\nwant %q", got, c.tiers)
				}
			}
			// Every transition is a signal with the same facts.
			if len(out.Signals) != len(out.Transitions) {
				t.Fatalf("%d signals for %d transitions", len(out.Signals), len(out.Transitions))
			}
			for i, s := range out.Signals {
				tr := out.Transitions[i]
				if s.Transition == nil || s.Transition.From != tr.From || s.Transition.To != tr.To || !s.At.Equal(tr.At) || s.CustomerID != "c" || s.Customer == nil || s.ID == "" {
					t.Fatalf("signal %+v for transition %+v", s, tr)
				}
			}
		})
	}
}

func TestOrdersAndRevenue(t *testing.T) {
	out, tr := run(t, Config{}, []step{
		order(0, "c", "o1", 100),
		order(day, "c", "o2", 50),
		order(day, "c", "o2", 50), // redelivered under another message id: the first stands
		ev(2*day, "c", shoptrail.EventOrderRefunded, `{"order_id":"o1","revenue":30}`),
		ev(3*day, "c", shoptrail.EventOrderRefunded, `{"order_id":"o1"}`), // the rest
		ev(4*day, "c", shoptrail.EventOrderCancelled, `{"order_id":"o2"}`),
		order(5*day, "c", "o3", 20),
		ev(6*day, "c", "Order Updated", `{"order_id":"o3","revenue":25}`),
	})
	if len(out.Orders) != 3 || !out.Orders[0].FirstOrder || out.Orders[1].FirstOrder {
		t.Fatalf("orders %+v", out.Orders)
	}
	var ups []string
	for _, u := range out.OrderUpdates {
		ups = append(ups, fmt.Sprintf("%s %s %v->%v", u.OrderID, u.Status, u.Amount, u.NetRevenue))
	}
	want := []string{"o1 refunded 30->70", "o1 refunded 70->0", "o2 cancelled 50->0", "o3 updated 25->25"}
	if !reflect.DeepEqual(ups, want) {
		t.Fatalf("updates %q, want %q", ups, want)
	}
	last := out.Customers[len(out.Customers)-1]
	if last.NetRevenue != 25 || last.OrderCount != 2 || last.AvgOrderValue != 12.5 || last.Stage != shoptrail.StageSecondBuyer {
		t.Fatalf("customer row %+v", last)
	}
	if tr.Len() != 1 {
		t.Fatalf("%d customers", tr.Len())
	}
}

// TestLateOrder: an order that arrives behind the allowed lateness counts
// when it arrived: the timers before its arrival have fired (at risk), its
// stage change is stamped at the arrival, and the order keeps its own time
// (last order, median interval, the next timers).
func TestLateOrder(t *testing.T) {
	late := order(35*day, "c", "o2", 50)
	late.arrived = 40 * day
	out, _ := run(t, Config{}, []step{
		order(0, "c", "o1", 100),
		wm(40 * day),
		late,
		wm(100 * day),
	})
	got := flows(out.Transitions, "stage")
	want := []string{"c:stranger>first_buyer@0d Order Completed", "c:first_buyer>at_risk@30d timer:at_risk",
		"c:at_risk>second_buyer@40d Order Completed", "c:second_buyer>at_risk@87.5d timer:at_risk"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stage transitions\n%q\nwant\n%q", got, want)
	}
	if len(out.Orders) != 2 || !out.Orders[1].At.Equal(t0.Add(35*day)) || out.Orders[1].Number != 2 {
		t.Errorf("orders %+v", out.Orders)
	}
	last := out.Customers[len(out.Customers)-1]
	if last.OrderCount != 2 || last.NetRevenue != 150 || !last.LastOrderAt.Equal(t0.Add(35*day)) || last.MedianDaysBetweenOrders != 35 {
		t.Errorf("customer row %+v", last)
	}
}

func TestBadInput(t *testing.T) {
	out, _ := run(t, Config{}, []step{
		ev(0, "c", shoptrail.EventOrderCompleted, `{"order_id":"o1","revenue":40}`),
		ev(1, "c", shoptrail.EventOrderCompleted, `{"order_id":"o2","revenue":-5,"products":[{"product_id":"p"}]}`),
		ev(2, "c", shoptrail.EventOrderCompleted, `{"revenue":5}`),
		ev(3, "c", shoptrail.EventOrderRefunded, `{"order_id":"nope"}`),
		ev(4, "c", shoptrail.EventOrderRefunded, `{"order_id":"o1","revenue":1e12}`),
		ev(5, "c", shoptrail.EventOrderCompleted, `{"order_id":"o3","revenue":"x"}`),
	})
	want := map[string]int{ProblemOrderWithoutItems: 2, ProblemBadAmount: 2, ProblemNoOrderID: 1, ProblemUnknownOrder: 1, ProblemProperties: 1}
	got := map[string]int{}
	for k, n := range out.Problems {
		if n > 0 {
			got[k] = n
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems %v, want %v", got, want)
	}
	if len(out.Orders) != 3 || out.Orders[0].Revenue != 40 || out.Orders[1].Revenue != 0 || out.Orders[1].Problem == "" {
		t.Fatalf("orders %+v", out.Orders)
	}
	if c := out.Customers[len(out.Customers)-1]; c.NetRevenue != 40 || c.OrderCount != 3 {
		t.Fatalf("customer %+v", c)
	}
}

// TestRecoveryAcrossDevices: a cart abandoned on one device, handed over
// once the visitor logged in, is recovered by the customer's order on
// another device, once; an order after the window recovers nothing.
func TestRecoveryAcrossDevices(t *testing.T) {
	a := &cart.Abandonment{ID: "ab1", Site: "shop", AnonymousID: "phone", CustomerID: "c", Value: 30, Currency: "EUR", ItemCount: 1,
		Items: []cart.Item{{ProductID: "p", Price: 30, Quantity: 1}}, LastActivityAt: t0, AbandonedAt: t0.Add(time.Hour), Step: cart.StepCheckout}
	b := *a
	b.ID, b.AbandonedAt = "ab2", t0.Add(time.Hour)
	out, _ := run(t, Config{}, []step{
		order(0, "c", "o0", 5),
		{at: time.Hour, abandon: a},
		{at: 2 * time.Hour, cust: "c", anon: "laptop", name: shoptrail.EventOrderCompleted, props: `{"order_id":"o1","revenue":31,"products":[{"product_id":"p"}]}`},
		order(3*time.Hour, "c", "o2", 1),
	})
	var recovered []Abandonment
	for _, r := range out.Abandonments {
		if r.Recovered {
			recovered = append(recovered, r)
		}
	}
	if len(recovered) != 1 || recovered[0].RecoveredOrderID != "o1" || recovered[0].RecoveredValue != 31 || recovered[0].Stage != shoptrail.StageFirstBuyer || recovered[0].Tier == "" {
		t.Fatalf("recovered %+v", recovered)
	}
	types := map[string]int{}
	for _, s := range out.Signals {
		types[s.Type]++
		if s.Type == shoptrail.SignalCartRecovered && (s.Cart.RecoveredOrderID != "o1" || s.Cart.AbandonmentID != "ab1" || s.Customer.OrderCount != 2) {
			t.Fatalf("recovery signal %+v %+v", s.Cart, s.Customer)
		}
	}
	if types[shoptrail.SignalCartAbandoned] != 1 || types[shoptrail.SignalCartRecovered] != 1 {
		t.Fatalf("signals %v", types)
	}

	out, _ = run(t, Config{}, []step{
		{at: time.Hour, abandon: &b},
		order(9*day, "c", "o1", 5),
	})
	for _, r := range out.Abandonments {
		if r.Recovered {
			t.Fatalf("recovered after the window: %+v", r)
		}
	}
}

// TestBackfillEqualsLive: the same month of events gives the same
// transitions whether the watermark moved after every event (live) or
// only at the end (a backfill).
func TestBackfillEqualsLive(t *testing.T) {
	var evs []step
	names := []string{shoptrail.EventProductAdded, shoptrail.EventProductViewed, shoptrail.EventOrderCompleted, shoptrail.EventOrderRefunded,
		shoptrail.EventProductAddedToWishlist, shoptrail.EventOrderCancelled}
	for i := range 400 {
		cust := fmt.Sprintf("c%d", i%23)
		at := time.Duration(i) * 107 * time.Minute
		name := names[(i*5+i/7)%len(names)]
		evs = append(evs, ev(at, cust, name, fmt.Sprintf(`{"order_id":"o%d","revenue":%d,"products":[{"product_id":"p"}]}`, i/2, 10+i%900)))
	}
	end := wm(400*107*time.Minute + 400*day)
	var live []step
	for _, s := range evs {
		live = append(live, s, wm(s.at))
	}
	a, _ := run(t, Config{}, append(append([]step(nil), evs...), end))
	b, _ := run(t, Config{}, append(live, end))
	sortT := func(ts []Transition) {
		sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
	}
	sortT(a.Transitions)
	sortT(b.Transitions)
	if len(a.Transitions) < 50 {
		t.Fatalf("scenario too tame: %d transitions", len(a.Transitions))
	}
	for i := range a.Transitions {
		if a.Transitions[i] != b.Transitions[i] {
			t.Errorf("first difference:\n%+v\n%+v", a.Transitions[i], b.Transitions[i])
			break
		}
	}
	if !reflect.DeepEqual(a.Transitions, b.Transitions) {
		t.Fatalf("backfill %d and live %d transitions differ", len(a.Transitions), len(b.Transitions))
	}
}

// TestTimersPast2106: timers later than a deadline holds (unix seconds in
// 32 bits, February 2106) neither hang Advance nor fire early; the ones
// before still fire. (The collector clamps event times to its clock, but
// the processor reads whatever the topic holds.)
func TestTimersPast2106(t *testing.T) {
	tr, _ := New(Config{})
	var p commerce.Props
	var ps commerce.Parser
	ps.Parse([]byte(`{"order_id":"o1","revenue":10,"products":[{"product_id":"p","price":10}]}`), &p)
	at := time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC) // at risk 30 days later, dormant past 2106-02-07
	tr.Add(&Event{Site: "shop", CustomerID: "c", AnonymousID: "a", MessageID: "m1", Type: "track",
		Name: shoptrail.EventOrderCompleted, Time: at, Props: &p})
	var out Output
	for _, wm := range []time.Time{time.Date(2106, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)} {
		done := make(chan struct{})
		go func() {
			tr.Advance(wm)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Advance(%v) did not return with a timer past 2106", wm)
		}
		tr.Drain(&out)
	}
	var to []string
	for _, x := range out.Transitions {
		if x.Kind == "stage" {
			to = append(to, x.To+"@"+x.At.Format("2006-01-02"))
		}
	}
	want := []string{"first_buyer@2106-01-01", "at_risk@2106-01-31", "dormant@2106-04-01", "lost@2106-06-30"}
	if !reflect.DeepEqual(to, want) {
		t.Errorf("stage transitions %q, want %q", to, want)
	}
}
