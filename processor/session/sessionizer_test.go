package session

import (
	"flag"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
)

// TestSplits covers the rules that end a session, each with a hit and a near
// miss: inactivity, campaign change (and with the switch off), max length.
func TestSplits(t *testing.T) {
	type want struct {
		events []uint32 // events per session, by start
		source []string // source per session
	}
	for _, tc := range []struct {
		name   string
		cfg    Config
		events []*shoptrail.Event
		want   want
	}{
		{"29m59s gap stays", Config{}, []*shoptrail.Event{
			page("a", "1", at(0), "/"),
			page("a", "2", at(29+59.0/60), "/p"),
		}, want{[]uint32{2}, []string{"(direct)"}}},
		{"30m gap splits", Config{}, []*shoptrail.Event{
			page("a", "1", at(0), "/"),
			page("a", "2", at(30), "/p"),
		}, want{[]uint32{1, 1}, []string{"(direct)", "(direct)"}}},
		{"gaps measured from the last event", Config{}, []*shoptrail.Event{
			page("a", "1", at(0), "/"),
			page("a", "2", at(25), "/p"),
			page("a", "3", at(50), "/p"),
			page("a", "4", at(81), "/q"),
		}, want{[]uint32{3, 1}, []string{"(direct)", "(direct)"}}},
		{"timeout 10m", Config{Timeout: 10 * time.Minute}, []*shoptrail.Event{
			page("a", "1", at(0), "/"),
			page("a", "2", at(11), "/p"),
		}, want{[]uint32{1, 1}, []string{"(direct)", "(direct)"}}},
		{"new campaign splits", Config{}, []*shoptrail.Event{
			page("a", "1", at(0), "/"),
			page("a", "2", at(5), "/sale", withUTM("newsletter", "email", "march")),
			page("a", "3", at(6), "/p"),
		}, want{[]uint32{1, 2}, []string{"(direct)", "newsletter"}}},
		{"new referrer splits", Config{}, []*shoptrail.Event{
			page("a", "1", at(0), "/", withRef("https://www.baidu.com/")),
			page("a", "2", at(5), "/p", withRef("https://www.zhihu.com/question/1")),
		}, want{[]uint32{1, 1}, []string{"baidu", "zhihu"}}},
		{"same campaign again stays", Config{}, []*shoptrail.Event{
			page("a", "1", at(0), "/", withUTM("baidu", "cpc", "brand")),
			page("a", "2", at(5), "/", withUTM("baidu", "cpc", "brand")),
		}, want{[]uint32{2}, []string{"baidu"}}},
		{"internal referrer and direct hits stay", Config{}, []*shoptrail.Event{
			page("a", "1", at(0), "/", withRef("https://www.google.com/")),
			page("a", "2", at(1), "/p", withRef("https://www.shop.example/")),
			page("a", "3", at(2), "/q"),
			page("a", "4", at(3), "/r", withRef("https://m.shop.example/x")),
		}, want{[]uint32{4}, []string{"google"}}},
		{"the site's other own domain splits without OwnDomains", Config{}, []*shoptrail.Event{
			page("a", "1", at(0), "/", withRef("https://www.baidu.com/")),
			page("a", "2", at(3), "/p", withRef("https://blog.shop-news.example/post")),
		}, want{[]uint32{1, 1}, []string{"baidu", "blog.shop-news.example"}}},
		{"the site's other own domain stays with OwnDomains", Config{OwnDomains: map[string][]string{site: {"shop-news.example"}}}, []*shoptrail.Event{
			page("a", "1", at(0), "/", withRef("https://www.baidu.com/")),
			page("a", "2", at(3), "/p", withRef("https://blog.shop-news.example/post")),
		}, want{[]uint32{2}, []string{"baidu"}}},
		{"payment gateway return stays", Config{}, []*shoptrail.Event{
			page("a", "1", at(0), "/checkout", withRef("https://www.baidu.com/")),
			page("a", "2", at(3), "/done", withRef("https://mclient.alipay.com/")),
		}, want{[]uint32{2}, []string{"baidu"}}},
		{"campaign change with the switch off", Config{NoCampaignSplit: true}, []*shoptrail.Event{
			page("a", "1", at(0), "/"),
			page("a", "2", at(5), "/sale", withUTM("newsletter", "email", "march")),
			page("a", "3", at(6), "/p", withRef("https://www.zhihu.com/")),
		}, want{[]uint32{3}, []string{"(direct)"}}},
		{"24h cap", Config{}, func() []*shoptrail.Event {
			var evs []*shoptrail.Event
			for i := range 80 { // every 20 minutes for 26h40m
				evs = append(evs, page("a", string(rune('A'+i)), at(float64(20*i)), "/"))
			}
			return evs
		}(), want{[]uint32{72, 8}, []string{"(direct)", "(direct)"}}},
		{"just under the cap", Config{MaxLength: time.Hour}, []*shoptrail.Event{
			page("a", "1", at(0), "/"),
			page("a", "2", at(25), "/"),
			page("a", "3", at(50), "/"),
			page("a", "4", at(59.9), "/"),
			page("a", "5", at(60), "/"),
		}, want{[]uint32{4, 1}, []string{"(direct)", "(direct)"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, out := run(t, tc.cfg, true, tc.events...)
			ss := sessionsByStart(out.Sessions)
			var events []uint32
			var sources []string
			for _, s := range ss {
				events = append(events, s.Events)
				sources = append(sources, s.Source)
			}
			if !slices.Equal(events, tc.want.events) || !slices.Equal(sources, tc.want.source) {
				t.Errorf("sessions (events, source) = %v %v, want %v %v", events, sources, tc.want.events, tc.want.source)
			}
		})
	}
}

func TestSessionRow(t *testing.T) {
	events := []*shoptrail.Event{
		page("a", "1", at(0), "/landing", withRef("https://mp.weixin.qq.com/s/x"), withDevice("mobile", "WeChat", "iOS")),
		track("a", "2", at(0.5), shoptrail.EventProductViewed, "/p/1"),
		page("a", "3", at(2), "/p/2", withRef("https://www.shop.example/landing")),
	}
	_, out := run(t, Config{}, true, events...)
	if len(out.Sessions) != 1 {
		t.Fatalf("%d sessions", len(out.Sessions))
	}
	got := out.Sessions[0]
	want := Session{
		Site: site, SessionID: SessionID(site, "a", "1"), AnonymousID: "a",
		Start: at(0), End: at(2), Duration: 2 * time.Minute,
		Events: 3, PageViews: 2, LandingPage: "/landing", ExitPage: "/p/2",
		Referrer: "https://mp.weixin.qq.com/s/x", Source: "wechat", Medium: "referral",
		Channel: ChannelOrganicSocial, RulesVersion: RulesVersion,
		DeviceClass: "mobile", Browser: "WeChat", OS: "iOS",
		Engaged: true, Funnel: FunnelProduct, Final: true,
	}
	if d := sessionDiff(got, want); d != "" {
		t.Error(d)
	}
}

// TestProvisionalRows: Open gives the open sessions as they stand, once per
// change, and the final row comes after them with everything.
func TestProvisionalRows(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.Add(0, page("a", "1", at(0), "/landing"))
	s.Add(1, page("a", "2", at(1), "/p/1"))
	if rows := s.Open(nil); len(rows) != 0 {
		t.Fatalf("rows before anything settled: %+v", rows)
	}
	s.Add(2, page("b", "3", at(7), "/")) // the watermark passes a's events
	rows := s.Open(nil)
	if len(rows) != 1 {
		t.Fatalf("provisional rows %+v", rows)
	}
	p := rows[0]
	if p.Final || p.SessionID != SessionID(site, "a", "1") || p.Events != 2 || p.PageViews != 2 ||
		!p.End.Equal(at(1)) || p.ExitPage != "/p/1" {
		t.Errorf("provisional row %+v", p)
	}
	if rows := s.Open(nil); len(rows) != 0 {
		t.Errorf("rows again without a change: %+v", rows)
	}
	recs := s.Checkpoint(nil)
	s.Add(3, page("a", "4", at(8), "/p/2", withUser("cust-1")))
	s.Add(4, page("b", "5", at(14), "/x"))
	// A restored copy continues alike.
	r, _ := New(Config{})
	if err := r.Restore(recs); err != nil {
		t.Fatal(err)
	}
	r.Add(3, page("a", "4", at(8), "/p/2", withUser("cust-1")))
	r.Add(4, page("b", "5", at(14), "/x"))
	for _, x := range []*Sessionizer{s, r} {
		rows := sessionsByStart(x.Open(nil))
		if len(rows) != 2 || rows[0].Events != 3 || rows[0].UserID != "cust-1" || rows[0].Final || rows[1].AnonymousID != "b" {
			t.Errorf("provisional rows after more events: %+v", rows)
		}
		x.Flush()
		var out Output
		x.Drain(&out)
		final := sessionsByStart(out.Sessions)
		if len(final) != 2 || !final[0].Final || final[0].Events != 3 || final[0].SessionID != p.SessionID {
			t.Errorf("final rows %+v", final)
		}
		if rows := x.Open(nil); len(rows) != 0 {
			t.Errorf("rows after close: %+v", rows)
		}
	}
}

func TestLateBeyondLateness(t *testing.T) {
	cfg := Config{AllowedLateness: 5 * time.Minute}
	events := []*shoptrail.Event{
		page("a", "1", at(0), "/"),
		page("b", "x", at(10), "/"), // another visitor moves the watermark to 5m
		page("a", "2", at(6), "/p"), // 4m behind: on time
		page("a", "3", at(4.9), "/q"),
		page("c", "late", at(1), "/"), // behind the watermark: late, new visitor
	}
	s, out := run(t, cfg, true, events...)
	a := assignmentsByID(out.Assignments)
	if a["3"][0].Status != Late || a["3"][0].SessionID != "" || a["late"][0].Status != Late {
		t.Errorf("late assignments: %+v %+v", a["3"], a["late"])
	}
	if a["2"][0].Status != Assigned {
		t.Errorf("on-time event: %+v", a["2"])
	}
	for _, ss := range out.Sessions {
		if ss.AnonymousID == "a" && ss.Events != 2 {
			t.Errorf("late event counted: %+v", ss)
		}
		if ss.AnonymousID == "c" {
			t.Errorf("late event made a session: %+v", ss)
		}
	}
	if st := s.Stats(); st.Late != 2 || st.Assigned != 3 {
		t.Errorf("stats %+v", st)
	}
	if got := s.Watermark(); !got.Equal(at(5)) {
		t.Errorf("watermark %v, want %v", got, at(5))
	}
}

func TestDuplicates(t *testing.T) {
	p1 := page("a", "m1", at(0), "/")
	p2 := page("a", "m2", at(1), "/p")
	order := track("a", "o1", at(2), shoptrail.EventOrderCompleted, "/done", withProps(`{"order_id":"A1","revenue":100}`))
	reload := track("a", "o2", at(3), shoptrail.EventOrderCompleted, "/done", withProps(`{"order_id":"A1","revenue":100}`))
	s, _ := New(Config{})
	var out Output
	// Three copies while pending, then more after the watermark settled it.
	for i, e := range []*shoptrail.Event{p1, p1, p2, p1, order, reload, order} {
		s.Add(int64(i), e)
	}
	s.Advance(at(20)) // settles everything; session stays open
	s.Drain(&out)
	if len(out.Sessions) != 0 {
		t.Fatalf("session closed early: %+v", out.Sessions)
	}
	s.Add(7, p1)
	s.Add(8, p2)
	s.Flush()
	s.Drain(&out)
	if len(out.Sessions) != 1 {
		t.Fatalf("%d sessions", len(out.Sessions))
	}
	ss := out.Sessions[0]
	if ss.Events != 4 || ss.PageViews != 2 || ss.Orders != 1 || ss.Revenue != 100 {
		t.Errorf("session %+v, want 4 events, 2 page views, 1 order of 100", ss)
	}
	a := assignmentsByID(out.Assignments)
	if got := a["m1"]; len(got) != 4 || got[0].Status != Assigned || got[1].Status != Duplicate || got[3].Status != Duplicate {
		t.Errorf("m1: %+v", got)
	}
	for id, as := range a {
		for _, x := range as {
			if x.SessionID != ss.SessionID {
				t.Errorf("%s assigned to %q", id, x.SessionID)
			}
		}
	}
	if st := s.Stats(); st.Duplicates != 5 {
		t.Errorf("duplicates %d, want 5", st.Duplicates)
	}
}

func TestIdentityStitching(t *testing.T) {
	s, _ := New(Config{})
	var out Output
	evs := []*shoptrail.Event{
		page("a", "1", at(0), "/"),
		page("a", "2", at(1), "/login"),
		track("a", "3", at(2), shoptrail.EventLoggedIn, "/login", withUser("cust-7")),
		page("a", "4", at(3), "/account", withUser("cust-7")), // same link: no new record
	}
	for i, e := range evs {
		s.Add(int64(i), e)
	}
	idf := &shoptrail.Event{Site: site, MessageID: "5", Type: shoptrail.TypeIdentify, AnonymousID: "a", UserID: "cust-7", Timestamp: at(4)}
	s.Add(4, idf)
	s.Add(5, page("a", "6", at(60), "/again")) // a later session, no userId on the event
	s.Add(6, page("a", "7", at(61), "/x", withUser("cust-9")))
	// A server-side event known only by user id is its own visitor.
	s.Add(7, &shoptrail.Event{Site: site, MessageID: "8", Type: shoptrail.TypeTrack, Event: "Order Completed", UserID: "cust-7", Timestamp: at(61)})
	s.Flush()
	s.Drain(&out)
	wantLinks := []IdentityLink{
		// The visitor's first link carries its first touch: its first
		// session, direct; a later link none.
		{Site: site, AnonymousID: "a", UserID: "cust-7", FirstSeen: at(2), FirstTouchAt: at(0),
			FirstChannel: ChannelDirect, FirstSource: SourceDirect},
		{Site: site, AnonymousID: "a", UserID: "cust-9", FirstSeen: at(61)},
	}
	if !slices.Equal(out.Links, wantLinks) {
		t.Errorf("links %+v, want %+v", out.Links, wantLinks)
	}
	ss := sessionsByStart(out.Sessions)
	if len(ss) != 3 {
		t.Fatalf("%d sessions: %+v", len(ss), ss)
	}
	if ss[0].UserID != "cust-7" || ss[0].AnonymousID != "a" {
		t.Errorf("first session: user %q", ss[0].UserID)
	}
	// The later session carries the newest link.
	for _, x := range ss[1:] {
		switch x.AnonymousID {
		case "a":
			if x.UserID != "cust-9" {
				t.Errorf("later session: user %q", x.UserID)
			}
		case "":
			if x.UserID != "cust-7" || x.SessionID != SessionID(site, "cust-7", "8") || x.Orders != 1 {
				t.Errorf("user-keyed session %+v", x)
			}
		}
	}
}

// TestLateIdentifyStillLinks: identity is kept even from a late event.
func TestLateIdentifyStillLinks(t *testing.T) {
	_, out := run(t, Config{}, true,
		page("b", "1", at(60), "/"),
		page("a", "2", at(0), "/", withUser("cust-1")), // late, unknown visitor
	)
	if len(out.Links) != 1 || out.Links[0].UserID != "cust-1" || out.Links[0].AnonymousID != "a" {
		t.Errorf("links %+v", out.Links)
	}
}

// TestIdentifyAfterTimeoutIndependentOfOrder: a visitor identifies a few
// minutes after its session's inactivity timeout. Whether another visitor's
// event (moving the watermark past the session's close) arrives before the
// identify or after it, the closed session has no customer id and the next
// one has it; every order of the events within the allowed lateness gives
// the same sessions and links.
func TestIdentifyAfterTimeoutIndependentOfOrder(t *testing.T) {
	evs := []*shoptrail.Event{
		page("a", "a1", at(0), "/"),
		page("a", "a2", at(2), "/list"),
		track("a", "a3", at(35), shoptrail.EventLoggedIn, "/login", withUser("cust-1")), // 33 min after a2
		page("a", "a4", at(36), "/account"),
		page("b", "b1", at(37.5), "/"), // moves the watermark to 32.5: past a's first session
		page("b", "b2", at(38), "/p/1"),
	}
	var want []Session
	var wantLinks []IdentityLink
	n, bFirst := 0, 0
	for perm := range permutations(len(evs)) {
		order := make([]*shoptrail.Event, len(evs))
		for i, j := range perm {
			order[i] = evs[j]
		}
		if !withinLateness(order, DefaultAllowedLateness) {
			continue
		}
		_, out := run(t, Config{}, true, order...)
		for _, a := range out.Assignments {
			if a.Status != Assigned {
				t.Fatalf("order %v: %+v", perm, a)
			}
		}
		got := sessionsByStart(out.Sessions)
		if want == nil {
			want, wantLinks = got, out.Links
			if len(want) != 3 || want[0].AnonymousID != "a" || want[0].UserID != "" || want[1].UserID != "cust-1" {
				t.Fatalf("sessions %+v", want)
			}
			if len(wantLinks) != 1 || !wantLinks[0].FirstSeen.Equal(at(35)) {
				t.Fatalf("links %+v", wantLinks)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("order %v: sessions %+v, want %+v", perm, got, want)
		}
		if !slices.Equal(out.Links, wantLinks) {
			t.Fatalf("order %v: links %+v, want %+v", perm, out.Links, wantLinks)
		}
		n++
		if slices.Index(order, evs[4]) < slices.Index(order, evs[2]) {
			bFirst++
		}
	}
	t.Logf("%d orders, %d with b's event first", n, bFirst)
	if bFirst == 0 || bFirst == n {
		t.Fatalf("the orders do not cover both sides of the race")
	}
}

// withinLateness tells whether no event of order arrives more than
// lateness behind the newest event time before it.
func withinLateness(order []*shoptrail.Event, lateness time.Duration) bool {
	var newest time.Time
	for _, e := range order {
		if e.Timestamp.Before(newest.Add(-lateness)) {
			return false
		}
		if e.Timestamp.After(newest) {
			newest = e.Timestamp
		}
	}
	return true
}

// permutations yields every permutation of 0..n-1.
func permutations(n int) func(yield func([]int) bool) {
	return func(yield func([]int) bool) {
		p := make([]int, n)
		for i := range p {
			p[i] = i
		}
		var gen func(k int) bool
		gen = func(k int) bool {
			if k == n {
				return yield(p)
			}
			for i := k; i < n; i++ {
				p[k], p[i] = p[i], p[k]
				if !gen(k + 1) {
					return false
				}
				p[k], p[i] = p[i], p[k]
			}
			return true
		}
		gen(0)
	}
}

func TestReturningVisitor(t *testing.T) {
	cfg := Config{VisitorRetention: 48 * time.Hour}
	s, _ := New(cfg)
	var out Output
	s.Add(0, page("a", "1", at(0), "/"))
	s.Add(1, page("a", "2", at(120), "/"))     // returns 2h later
	s.Add(2, page("a", "3", at(60*60), "/"))   // 60h later: the record expired
	s.Add(3, page("b", "4", at(60*60+1), "/")) // a new visitor
	s.Flush()
	s.Drain(&out)
	ss := sessionsByStart(out.Sessions)
	want := []bool{false, true, false, false}
	for i, x := range ss {
		if x.Returning != want[i] {
			t.Errorf("session %d (%s at %v): returning %v, want %v", i, x.AnonymousID, x.Start, x.Returning, want[i])
		}
	}
	if st := s.Stats(); st.VisitorsPurged != 1 {
		t.Errorf("purged %d, want 1", st.VisitorsPurged)
	}
}

func TestFunnelCartRevenue(t *testing.T) {
	for _, tc := range []struct {
		name    string
		events  []*shoptrail.Event
		funnel  FunnelStep
		cart    float64
		orders  uint32
		revenue float64
	}{
		{"browse only", []*shoptrail.Event{page("a", "1", at(0), "/")}, FunnelView, 0, 0, 0},
		{"product view", []*shoptrail.Event{
			page("a", "1", at(0), "/"),
			track("a", "2", at(1), "Product Viewed", "/p/1"),
		}, FunnelProduct, 0, 0, 0},
		{"cart adds and removes", []*shoptrail.Event{
			track("a", "1", at(0), "Product Added", "/p/1", withProps(`{"product_id":"x","price":10.5,"quantity":2}`)),
			track("a", "2", at(1), "Product Added", "/p/2", withProps(`{"price":"5"}`)),
			track("a", "3", at(2), "Product Removed", "/cart", withProps(`{"price":10.5,"quantity":2}`)),
		}, FunnelCart, 26, 0, 0},
		{"snapshot sets the cart", []*shoptrail.Event{
			track("a", "1", at(0), "Product Added", "/p/1", withProps(`{"price":10}`)),
			track("a", "2", at(1), "Cart Viewed", "/cart", withProps(`{"cart_id":"c","products":[{"price":10,"quantity":3},{"price":2.5}]}`)),
		}, FunnelCart, 32.5, 0, 0},
		{"checkout", []*shoptrail.Event{
			track("a", "1", at(0), "Checkout Started", "/checkout", withProps(`{"value":99.9,"currency":"CNY"}`)),
			track("a", "2", at(1), "Checkout Step Completed", "/checkout", withProps(`{"step":2}`)),
		}, FunnelCheckout, 99.9, 0, 0},
		{"order: revenue wins, reload counts once", []*shoptrail.Event{
			track("a", "1", at(0), "Product Added", "/p", withProps(`{"price":50,"quantity":2}`)),
			track("a", "2", at(1), "Order Completed", "/done", withProps(`{"order_id":"A-1","total":110,"revenue":100,"products":[{"price":50,"quantity":2}]}`)),
			track("a", "3", at(2), "Order Completed", "/done", withProps(`{"order_id":"A-1","total":110,"revenue":100}`)),
			track("a", "4", at(3), "Order Completed", "/done", withProps(`{"order_id":"A-2","total":20.5}`)),
			track("a", "5", at(4), "Order Completed", "/done", withProps(`{"orderId":7,"products":[{"price":"1.25","quantity":"4"}]}`)),
		}, FunnelOrder, 100, 3, 125.5},
		{"GA4 names", []*shoptrail.Event{
			track("a", "1", at(0), "add_to_cart", "/p", withProps(`{"price":3}`)),
			track("a", "2", at(1), "purchase", "/done", withProps(`{"value":3}`)),
		}, FunnelOrder, 3, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, out := run(t, Config{}, true, tc.events...)
			if len(out.Sessions) != 1 {
				t.Fatalf("%d sessions", len(out.Sessions))
			}
			x := out.Sessions[0]
			if x.Funnel != tc.funnel || math.Abs(x.CartValue-tc.cart) > 1e-9 || x.Orders != tc.orders || math.Abs(x.Revenue-tc.revenue) > 1e-9 {
				t.Errorf("funnel %v cart %v orders %d revenue %v, want %v %v %d %v",
					x.Funnel, x.CartValue, x.Orders, x.Revenue, tc.funnel, tc.cart, tc.orders, tc.revenue)
			}
		})
	}
}

func TestEcomProps(t *testing.T) {
	f := func(k evKind, props string, want float64, hasValue bool, hasOrder bool) {
		t.Helper()
		got := ecomOf(k, []byte(props))
		if got.hasValue != hasValue || (hasValue && math.Abs(got.value-want) > 1e-9) || (got.orderKey != 0) != hasOrder {
			t.Errorf("ecomOf(%d, %s) = %+v, want %v %v order %v", k, props, got, want, hasValue, hasOrder)
		}
	}
	f(kindProductAdded, `{"price": 12.34 , "quantity": 3}`, 37.02, true, false)
	f(kindProductAdded, `{"price":"1e2"}`, 100, true, false)
	f(kindProductAdded, `{"name":"a \"quoted\" name","nested":{"price":1,"x":[1,{"y":null}]},"price":2}`, 2, true, false)
	f(kindProductAdded, `{"products":[{"price":1,"quantity":2},{"sku":"x"},{"price":3}]}`, 5, true, false)
	f(kindProductAdded, `{"quantity":2}`, 0, false, false)
	f(kindOrder, `{"order_id":"x","total":10,"value":5}`, 10, true, true)
	f(kindOrder, `{"order_id":null,"value":5}`, 5, true, false)
	f(kindOrder, `{"products":[{"price":2,"quantity":2}]}`, 4, true, false)
	f(kindCheckout, `{"revenue":8,"products":[{"price":2,"quantity":2}]}`, 4, true, false)
	f(kindCartViewed, `{"products":[]}`, 0, false, false)
	f(kindOrder, `{"revenue":`, 0, false, false)
	f(kindOrder, `not json`, 0, false, false)
	f(kindOrder, `{"revenue":-5.5}`, -5.5, true, false)
	f(kindOrder, `{"revenue":123456789012345678}`, 123456789012345678, true, false)
	f(kindOrder, `{"revenue":"abc"}`, 0, false, false)
}

func FuzzEcomProps(f *testing.F) {
	for _, s := range []string{`{"price":1}`, `{"products":[{"price":1,"quantity":2}]}`, `{"order_id":"x","revenue":3}`, `{`, `[`, `"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for k := kindOther; k <= kindKey; k++ {
			ecomOf(k, b)
		}
	})
}

func TestLossGaps(t *testing.T) {
	s, _ := New(Config{})
	var out Output
	chrome := withDevice("desktop", "Chrome", "Windows")
	evs := []*shoptrail.Event{
		page("a", "1", at(0), "/", withTab("t1", 1), chrome),
		page("a", "2", at(1), "/p/1", withTab("t1", 2), chrome),
		// seq 3 and 4 were sent from /p/1 and lost; 6 arrives before 5.
		page("a", "6", at(4), "/cart", withTab("t1", 6), chrome),
		page("a", "5", at(3), "/p/2", withTab("t1", 5), chrome),
		// A second tab starts at seq 1 and loses nothing.
		page("a", "7", at(5), "/", withTab("t2", 1), chrome),
		page("a", "8", at(6), "/list", withTab("t2", 2), chrome),
	}
	for i, e := range evs {
		s.Add(int64(i), e)
	}
	// Much later the first tab sends again: seq 7 went missing on /cart.
	s.Add(10, page("a", "9", at(50), "/", withTab("t1", 8), chrome))
	// A very late event fills no gap: it counts as lost.
	s.Add(11, page("b", "x", at(100), "/", withTab("tb", 1), chrome))
	s.Add(12, page("a", "late", at(49), "/", withTab("t1", 7), chrome))
	s.Flush()
	s.Drain(&out)
	want := []LossRecord{
		{Site: site, Browser: "Chrome", Path: "/", Received: 4, Lost: 0},
		{Site: site, Browser: "Chrome", Path: "/cart", Received: 1, Lost: 1},
		{Site: site, Browser: "Chrome", Path: "/list", Received: 1, Lost: 0},
		{Site: site, Browser: "Chrome", Path: "/p/1", Received: 1, Lost: 2},
		{Site: site, Browser: "Chrome", Path: "/p/2", Received: 1, Lost: 0},
	}
	if !slices.Equal(out.Loss, want) {
		t.Errorf("loss\n got  %+v\n want %+v", out.Loss, want)
	}
	// The same gaps, on the events that revealed them.
	perEvent := map[string]string{}
	for _, a := range out.Assignments {
		if a.Status == Assigned && a.Lost != 0 {
			perEvent[a.MessageID] = fmt.Sprintf("%d@%s", a.Lost, a.LostPath)
		}
	}
	if w := map[string]string{"5": "2@/p/1", "9": "1@/cart"}; !maps.Equal(perEvent, w) {
		t.Errorf("per-event loss %v, want %v", perEvent, w)
	}
}

func TestAdvanceClosesIdlePartition(t *testing.T) {
	s, _ := New(Config{})
	var out Output
	s.Add(0, page("a", "1", at(0), "/"))
	s.Add(1, page("a", "2", at(10), "/p"))
	s.Advance(at(30)) // wall clock: 20m after the last event
	s.Drain(&out)
	if len(out.Sessions) != 0 || len(out.Assignments) != 2 {
		t.Fatalf("after 20m idle: %d sessions, %d assignments", len(out.Sessions), len(out.Assignments))
	}
	s.Advance(at(44.9)) // 5m lateness + 30m timeout after 10m is 45m
	s.Drain(&out)
	if len(out.Sessions) != 0 {
		t.Fatal("closed too early")
	}
	s.Advance(at(46))
	s.Drain(&out)
	if len(out.Sessions) != 1 || out.Sessions[0].Events != 2 {
		t.Fatalf("after the timeout: %+v", out.Sessions)
	}
	s.Advance(at(10)) // the clock never goes back
	if !s.Watermark().Equal(at(41)) {
		t.Errorf("watermark %v", s.Watermark())
	}
}

func TestInvalidEvents(t *testing.T) {
	_, out := run(t, Config{}, true,
		&shoptrail.Event{MessageID: "1", AnonymousID: "a", Timestamp: at(0)},              // no site
		&shoptrail.Event{Site: site, AnonymousID: "a", Timestamp: at(0)},                  // no message id
		&shoptrail.Event{Site: site, MessageID: "3", Timestamp: at(0)},                    // no visitor
		&shoptrail.Event{Site: site, MessageID: "4", AnonymousID: "a"},                    // no time
		&shoptrail.Event{Site: site, MessageID: "5", AnonymousID: "a", ReceivedAt: at(0)}, // receive time will do
	)
	n := 0
	for _, a := range out.Assignments {
		if a.Status == Invalid {
			n++
		}
	}
	if n != 4 || len(out.Sessions) != 1 {
		t.Errorf("%d invalid, %d sessions", n, len(out.Sessions))
	}
}

// TestDeterministic: the same input gives the same output, and so does the
// input in another order within the allowed lateness.
func TestDeterministic(t *testing.T) {
	evs := []*shoptrail.Event{
		page("a", "1", at(0), "/", withRef("https://www.baidu.com/")),
		page("b", "2", at(0.5), "/"),
		page("a", "3", at(1), "/p"),
		page("b", "5", at(2), "/r"),
		page("a", "4", at(40), "/q"),
	}
	_, out1 := run(t, Config{}, true, evs...)
	_, out2 := run(t, Config{}, true, evs...)
	if !slices.Equal(out1.Sessions, out2.Sessions) || !slices.Equal(out1.Assignments, out2.Assignments) {
		t.Fatal("same input, different output")
	}
	// Another order, all within the allowed lateness (a at 40m comes last).
	shuffled := []*shoptrail.Event{evs[2], evs[0], evs[3], evs[1], evs[4]}
	_, out3 := run(t, Config{}, true, shuffled...)
	if !slices.Equal(sessionsByStart(out1.Sessions), sessionsByStart(out3.Sessions)) {
		t.Errorf("order changed the sessions:\n%+v\n%+v", out1.Sessions, out3.Sessions)
	}
	for _, x := range out1.Sessions {
		first := map[string]string{"a": "1", "b": "2"}[x.AnonymousID]
		if x.AnonymousID == "a" && x.Start.Equal(at(40)) {
			first = "4"
		}
		if x.SessionID != SessionID(site, x.AnonymousID, first) {
			t.Errorf("session %+v: id not derived from its first event %s", x, first)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, bad := range []Config{
		{Timeout: time.Millisecond},
		{MaxLength: time.Minute},
		{MaxLength: 72 * time.Hour},
		{AllowedLateness: -time.Second},
		{VisitorRetention: time.Minute},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v: no error", bad)
		}
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v): no error", bad)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Error(err)
	}
	var c Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-session.timeout=10m", "-session.no-campaign-split"}); err != nil {
		t.Fatal(err)
	}
	if c.Timeout != 10*time.Minute || !c.NoCampaignSplit || c.AllowedLateness != DefaultAllowedLateness {
		t.Errorf("flags: %+v", c)
	}
}

// TestVisitorKeys: every kind of visitor key packs, finds its visitor again,
// and comes back unchanged in the rows and through the changelog.
func TestVisitorKeys(t *testing.T) {
	ids := []string{
		"0b7e7d1c-8e2f-4c1a-9c39-1f2e3d4c5b6a", // lower-case UUID: packed
		"0B7E7D1C-8E2F-4C1A-9C39-1F2E3D4C5B6A", // upper-case UUID (iOS): packed, another visitor
		"0b7e7d1c-8E2F-4c1a-9c39-1f2e3d4c5b6a", // mixed case: kept as is
		"short",
		"a-rather-long-anonymous-id-that-does-not-fit-inline-0123456789",
	}
	s, _ := New(Config{})
	for i, id := range ids {
		s.Add(int64(2*i), page(id, "m"+id, at(float64(i)), "/"))
		s.Add(int64(2*i+1), page(id, "n"+id, at(float64(i)+0.5), "/p"))
	}
	s.Add(20, &shoptrail.Event{Site: site, MessageID: "srv", Type: shoptrail.TypeTrack, UserID: "customer-with-a-long-user-id", Timestamp: at(6)})
	recs := s.Checkpoint(nil)
	r, _ := New(Config{})
	if err := r.Restore(recs); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*Sessionizer{s, r} {
		x.Flush()
		var out Output
		x.Drain(&out)
		got := map[string]Session{}
		for _, ss := range out.Sessions {
			got[ss.AnonymousID+"|"+ss.UserID] = ss
		}
		if len(got) != len(ids)+1 {
			t.Fatalf("%d sessions: %+v", len(got), out.Sessions)
		}
		for _, id := range ids {
			ss, ok := got[id+"|"]
			if !ok || ss.Events != 2 || ss.SessionID != SessionID(site, id, "m"+id) {
				t.Errorf("visitor %q: %+v", id, ss)
			}
		}
		if ss := got["|customer-with-a-long-user-id"]; ss.SessionID != SessionID(site, "customer-with-a-long-user-id", "srv") {
			t.Errorf("user-keyed visitor: %+v", ss)
		}
	}
}

func TestFutureClockDoesNotMoveWatermark(t *testing.T) {
	s, _ := New(Config{})
	bad := page("a", "1", at(0), "/")
	bad.Timestamp = at(60 * 24 * 365) // a year ahead of its receive time
	s.Add(0, bad)
	s.Add(1, page("b", "2", at(1), "/"))
	s.Flush()
	var out Output
	s.Drain(&out)
	for _, a := range out.Assignments {
		if a.Status != Assigned {
			t.Errorf("%+v", a)
		}
	}
	if !s.Watermark().Equal(at(-4)) {
		t.Errorf("watermark %v", s.Watermark())
	}
}
