package session

import (
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the randomized sessionizer tests (0: time-based)")

// oracle computes the expected output from the whole input at once: which
// events are late (by the watermark over arrival order), which are
// duplicates, and the sessions of the rest, sessionized from sorted data.
// It shares no code with the Sessionizer beyond Attribute, Channel and
// SessionID, which are its specification.
type oracle struct {
	cfg Config
}

type oracleResult struct {
	sessions    map[string]Session
	assignments map[string][]Assignment // by message id, in arrival order
}

func (o oracle) run(events []*shoptrail.Event) oracleResult {
	cfg := o.cfg.withDefaults()
	res := oracleResult{sessions: map[string]Session{}, assignments: map[string][]Assignment{}}
	// Lateness and duplicates in arrival order.
	maxSeen := time.Time{}
	accepted := map[string]*shoptrail.Event{} // message id -> the copy that counts
	byVisitor := map[string][]*shoptrail.Event{}
	var visitors []string
	status := make([]Status, len(events))
	lateAt := make([]int64, len(events)) // a late event's watermark
	for i, e := range events {
		if e.Timestamp.After(maxSeen) {
			maxSeen = e.Timestamp
		}
		if _, dup := accepted[e.MessageID]; dup {
			status[i] = Duplicate
			continue
		}
		if e.Timestamp.Before(maxSeen.Add(-cfg.AllowedLateness)) {
			status[i] = Late
			lateAt[i] = maxSeen.Add(-cfg.AllowedLateness).UnixMilli()
			continue
		}
		accepted[e.MessageID] = e
		k := e.Key()
		if byVisitor[k] == nil {
			visitors = append(visitors, k)
		}
		byVisitor[k] = append(byVisitor[k], e)
	}
	sessionOf := map[string]string{}
	type tabState struct {
		maxSeq   int64
		lastPath string
	}
	type gap struct {
		lost int32
		path string
	}
	lossOf := map[string]gap{}
	for _, k := range visitors {
		evs := slices.Clone(byVisitor[k])
		slices.SortStableFunc(evs, func(a, b *shoptrail.Event) int {
			if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
				return c
			}
			return strings.Compare(a.MessageID, b.MessageID)
		})
		var cur *oracleSession
		returning := false
		// user is the customer id of the visitor's latest event carrying
		// one, in event time: a session carries the one in force when it
		// ends, so an identify after the session's timeout is not its.
		user := ""
		finish := func() {
			if cur.row.AnonymousID != "" {
				cur.row.UserID = user
			}
			res.sessions[cur.row.SessionID] = cur.finish()
		}
		tabs := map[string]*tabState{}
		for _, e := range evs {
			if d := e.Context.Delivery; d.Tab != "" {
				ts := tabs[d.Tab]
				switch {
				case ts == nil:
					tabs[d.Tab] = &tabState{d.Seq, e.Context.Page.Path}
				case d.Seq > ts.maxSeq:
					if d.Seq > ts.maxSeq+1 {
						lossOf[e.MessageID] = gap{int32(d.Seq - ts.maxSeq - 1), ts.lastPath}
					}
					ts.maxSeq, ts.lastPath = d.Seq, e.Context.Page.Path
				case d.Seq < ts.maxSeq:
					lossOf[e.MessageID] = gap{-1, ts.lastPath}
				}
			}
			src := Attribute(e.Context.Page.URL, e.Context.Page.Referrer, e.Context.Campaign, cfg.OwnDomains[e.Site])
			if cur != nil && (e.Timestamp.Sub(cur.row.End) >= cfg.Timeout ||
				e.Timestamp.Sub(cur.row.Start) >= cfg.MaxLength ||
				(!cfg.NoCampaignSplit && !src.IsDirect() && src != cur.src)) {
				finish()
				returning = true
				cur = nil
			}
			if cur == nil {
				cur = &oracleSession{src: src}
				if src.IsDirect() {
					cur.src = Direct
				}
				cur.start(e, returning)
			}
			cur.add(e, cfg)
			if e.UserID != "" && e.AnonymousID != "" {
				user = e.UserID
			}
			sessionOf[e.MessageID] = cur.row.SessionID
		}
		if cur != nil {
			finish()
		}
	}
	for i, e := range events {
		a := Assignment{Site: e.Site, MessageID: e.MessageID, Status: status[i]}
		if status[i] != Late {
			a.SessionID = sessionOf[e.MessageID]
		} else {
			a.Watermark = lateAt[i]
		}
		if status[i] == Assigned {
			g := lossOf[e.MessageID]
			a.Lost, a.LostPath = g.lost, g.path
		}
		res.assignments[e.MessageID] = append(res.assignments[e.MessageID], a)
	}
	return res
}

type oracleSession struct {
	row      Session
	src      Source
	cartRun  float64
	orderIDs map[string]bool
	keyEvent bool
}

func (o *oracleSession) start(e *shoptrail.Event, returning bool) {
	o.row = Session{
		Site:         e.Site,
		SessionID:    SessionID(e.Site, e.Key(), e.MessageID),
		AnonymousID:  e.AnonymousID,
		UserID:       e.UserID,
		Start:        e.Timestamp.UTC().Truncate(time.Millisecond),
		RulesVersion: RulesVersion,
		Returning:    returning,
		Source:       o.src.Source, Medium: o.src.Medium, Campaign: o.src.Campaign,
		Term: o.src.Term, Content: o.src.Content, ClickIDKind: o.src.ClickIDKind,
		Channel: Channel(o.src.Source, o.src.Medium, o.src.Campaign),
	}
	if e.AnonymousID == "" {
		o.row.UserID = e.UserID
	}
	if _, _, ext := referrerSource(e.Context.Page.Referrer, hostOf(e.Context.Page.URL), nil); ext {
		o.row.Referrer = e.Context.Page.Referrer
	}
	o.orderIDs = map[string]bool{}
}

// add applies one event, with the E-commerce v2 reading done by hand on
// the few shapes the generator makes.
func (o *oracleSession) add(e *shoptrail.Event, cfg Config) {
	r := &o.row
	r.End = e.Timestamp.UTC().Truncate(time.Millisecond)
	r.Events++
	if e.Type == shoptrail.TypePage {
		r.PageViews++
	}
	if e.Context.Bot.IsBot {
		r.IsBot = true
	}
	if p := e.Context.Page.Path; p != "" {
		if r.LandingPage == "" {
			r.LandingPage = p
		}
		r.ExitPage = p
	}
	if d := e.Context.Device; r.DeviceClass == "" && r.Browser == "" && r.OS == "" {
		r.DeviceClass, r.Browser, r.OS = d.Class, d.Browser, d.OS
	}
	step := FunnelView
	val, hasVal := oracleValue(string(e.Properties))
	switch e.Event {
	case shoptrail.EventProductViewed:
		step = FunnelProduct
	case shoptrail.EventProductAdded:
		step = FunnelCart
		if hasVal {
			o.cartRun += val
		}
	case shoptrail.EventProductRemoved:
		step = FunnelCart
		if hasVal {
			o.cartRun = max(0, o.cartRun-val)
		}
	case shoptrail.EventCartViewed:
		step = FunnelCart
		if hasVal {
			o.cartRun = val
		}
	case shoptrail.EventCheckoutStarted:
		step = FunnelCheckout
		if hasVal {
			o.cartRun = val
		}
	case shoptrail.EventOrderCompleted:
		step = FunnelOrder
		o.keyEvent = true
		id := oracleOrderID(string(e.Properties))
		if id == "" || !o.orderIDs[id] {
			if id != "" {
				o.orderIDs[id] = true
			}
			r.Orders++
			if hasVal {
				r.Revenue += val
			}
		}
	case shoptrail.EventSignedUp:
		o.keyEvent = true
	}
	r.Funnel = max(r.Funnel, step)
	r.CartValue = max(r.CartValue, o.cartRun)
	if e.Event == shoptrail.EventOrderCompleted {
		o.cartRun = 0
	}
}

func (o *oracleSession) finish() Session {
	r := o.row
	r.Duration = r.End.Sub(r.Start)
	r.Engaged = r.Duration > 10*time.Second || r.PageViews >= 2 || o.keyEvent
	r.Final = true
	return r
}

// oracleValue reads the generator's property shapes: {"v":x,...} with the
// value under "price"*"quantity", "revenue" or "products".
func oracleValue(p string) (float64, bool) {
	var price, qty, revenue float64
	switch {
	case p == "":
		return 0, false
	case strings.HasPrefix(p, `{"price":`):
		fmt.Sscanf(p, `{"price":%g,"quantity":%g}`, &price, &qty)
		return price * qty, true
	case strings.HasPrefix(p, `{"order_id":`):
		i := strings.Index(p, `"revenue":`)
		fmt.Sscanf(p[i+len(`"revenue":`):], `%g}`, &revenue)
		return revenue, true
	case strings.HasPrefix(p, `{"products":[{"price":`):
		fmt.Sscanf(p, `{"products":[{"price":%g,"quantity":%g}]}`, &price, &qty)
		return price * qty, true
	}
	return 0, false
}

func oracleOrderID(p string) string {
	if !strings.HasPrefix(p, `{"order_id":"`) {
		return ""
	}
	rest := p[len(`{"order_id":"`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// genWorkload makes a realistic shuffled stream: visitors with several
// sessions (gaps around the timeout), utm campaigns, referrers, e-commerce
// events, duplicates shortly after their original, and arrival delays mostly
// within the allowed lateness and some far beyond it.
func genWorkload(rng *rand.Rand, visitors int, lateness time.Duration) []*shoptrail.Event {
	type arrival struct {
		e   *shoptrail.Event
		key time.Time
		seq int
	}
	var all []arrival
	n := 0
	refs := []string{"", "", "", "https://www.baidu.com/link?url=x", "https://www.google.com/",
		"https://mp.weixin.qq.com/s/1", "https://www.shop.example/list", "https://partner.org/a"}
	utms := [][3]string{{}, {}, {}, {}, {"baidu", "cpc", "brand"}, {"newsletter", "email", "march"}, {"douyin", "paid", "live"}}
	paths := []string{"/", "/list", "/p/1", "/p/2", "/cart", "/checkout", "/done"}
	for v := range visitors {
		anon := fmt.Sprintf("%08x-0000-4000-8000-%012x", v, v)
		if v%7 == 3 {
			anon = fmt.Sprintf("Visitor-%d", v) // not a packable UUID
		}
		t := t0.Add(time.Duration(rng.IntN(120)) * time.Minute)
		tab := fmt.Sprintf("tab%d", v)
		seq := int64(0)
		for range 1 + rng.IntN(4) { // visits
			ref := refs[rng.IntN(len(refs))]
			utm := utms[rng.IntN(len(utms))]
			for i := range 1 + rng.IntN(8) {
				n++
				id := fmt.Sprintf("m%06d", n)
				path := paths[rng.IntN(len(paths))]
				var e *shoptrail.Event
				switch rng.IntN(10) {
				case 0:
					e = track(anon, id, t, shoptrail.EventProductViewed, path)
				case 1:
					e = track(anon, id, t, shoptrail.EventProductAdded, path,
						withProps(fmt.Sprintf(`{"price":%d.5,"quantity":%d}`, rng.IntN(100), 1+rng.IntN(3))))
				case 2:
					e = track(anon, id, t, shoptrail.EventCartViewed, path,
						withProps(fmt.Sprintf(`{"products":[{"price":%d.25,"quantity":%d}]}`, rng.IntN(100), 1+rng.IntN(3))))
				case 3:
					e = track(anon, id, t, shoptrail.EventOrderCompleted, path,
						withProps(fmt.Sprintf(`{"order_id":"o%d","revenue":%d.75}`, rng.IntN(3), rng.IntN(500))))
				case 4:
					e = track(anon, id, t, shoptrail.EventProductRemoved, path,
						withProps(fmt.Sprintf(`{"price":%d.5,"quantity":1}`, rng.IntN(50))))
				default:
					e = page(anon, id, t, path)
				}
				if i == 0 {
					e.Context.Page.Referrer = ref
					e.Context.Campaign.Source, e.Context.Campaign.Medium, e.Context.Campaign.Name = utm[0], utm[1], utm[2]
				} else if rng.IntN(5) == 0 {
					e.Context.Page.Referrer = "https://www.shop.example/"
				}
				if rng.IntN(40) == 0 {
					e.Context.Bot.IsBot = true
				}
				e.Context.Device = shoptrail.Device{Class: "mobile", Browser: []string{"Chrome", "WeChat", "Safari"}[v%3], OS: "Android"}
				seq++
				e.Context.Delivery.Tab, e.Context.Delivery.Seq = tab, seq
				// Now and then the visitor logs in (or out, as someone
				// else): the event carries a customer id. Such events
				// arrive within the allowed lateness, never late: a late
				// one links the visitor in arrival order, which sorted
				// data cannot tell.
				identified := rng.IntN(12) == 0
				if identified {
					e.UserID = fmt.Sprintf("cust-%d", rng.IntN(3))
				}
				// Arrival: mostly within the allowed lateness, some far beyond.
				delay := time.Duration(rng.Int64N(int64(lateness * 3 / 4)))
				if !identified && rng.IntN(30) == 0 {
					delay = lateness + time.Duration(rng.Int64N(int64(4*lateness)))
				}
				all = append(all, arrival{e, t.Add(delay), len(all)})
				if !identified && rng.IntN(25) == 0 { // a retried beacon
					d := *e
					all = append(all, arrival{&d, t.Add(delay + time.Duration(rng.IntN(20))*time.Second), len(all)})
				}
				t = t.Add(time.Duration(rng.Int64N(int64(4 * time.Minute))))
			}
			// Gap to the next visit: around the timeout, sometimes hours.
			gaps := []time.Duration{20 * time.Minute, 29 * time.Minute, 30 * time.Minute, 31 * time.Minute, 45 * time.Minute, 3 * time.Hour}
			t = t.Add(gaps[rng.IntN(len(gaps))])
		}
	}
	slices.SortStableFunc(all, func(a, b arrival) int {
		if c := a.key.Compare(b.key); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	events := make([]*shoptrail.Event, len(all))
	for i, a := range all {
		events[i] = a.e
	}
	return events
}

func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	return seed
}

// TestOutOfOrderMatchesOracle feeds shuffled events and compares every
// session and every assignment with sessions computed from sorted data.
func TestOutOfOrderMatchesOracle(t *testing.T) {
	seed := testSeed(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"defaults", Config{}},
		{"no campaign split", Config{NoCampaignSplit: true}},
		{"max length 40m", Config{MaxLength: 40 * time.Minute}},
		{"lateness 1m", Config{AllowedLateness: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			events := genWorkload(rng, 300, tc.cfg.withDefaults().AllowedLateness)
			want := oracle{tc.cfg}.run(events)
			_, out := run(t, tc.cfg, true, events...)
			compareWithOracle(t, out, want)
			// Without Flush: the timers alone close everything once the
			// clock passes the last session's timeout.
			s, out := run(t, tc.cfg, false, events...)
			s.Advance(at(24 * 60 * 3))
			s.Drain(&out)
			compareWithOracle(t, out, want)
			if st := s.Stats(); st.OpenSessions != 0 || st.PendingEvents != 0 {
				t.Errorf("after Advance: %+v", st)
			}
		})
	}
}

func compareWithOracle(t *testing.T, out Output, want oracleResult) {
	t.Helper()
	got := map[string]Session{}
	for _, s := range out.Sessions {
		if _, dup := got[s.SessionID]; dup {
			t.Errorf("session %s emitted twice", s.SessionID)
		}
		got[s.SessionID] = s
	}
	if len(got) != len(want.sessions) {
		t.Errorf("%d sessions, oracle %d", len(got), len(want.sessions))
	}
	bad := 0
	for id, w := range want.sessions {
		g, ok := got[id]
		if !ok {
			t.Errorf("missing session %s: %+v", id, w)
		} else if d := sessionDiff(g, w); d != "" {
			t.Errorf("session %s differs:%s", id, d)
		} else {
			continue
		}
		if bad++; bad > 5 {
			t.Fatal("too many differences")
		}
	}
	gotA := assignmentsByID(out.Assignments)
	late := 0
	for id, w := range want.assignments {
		g := gotA[id]
		slices.SortFunc(g, cmpAssignment)
		w = slices.Clone(w)
		slices.SortFunc(w, cmpAssignment)
		if !slices.Equal(g, w) {
			t.Errorf("assignments of %s: got %+v, want %+v", id, g, w)
			if bad++; bad > 10 {
				t.Fatal("too many differences")
			}
		}
		for _, a := range w {
			if a.Status == Late {
				late++
			}
		}
	}
	if len(gotA) != len(want.assignments) {
		t.Errorf("assignments for %d messages, oracle %d", len(gotA), len(want.assignments))
	}
	t.Logf("%d sessions, %d messages, %d late", len(got), len(want.assignments), late)
}

func cmpAssignment(a, b Assignment) int {
	if a.Status != b.Status {
		return int(a.Status) - int(b.Status)
	}
	return strings.Compare(a.SessionID, b.SessionID)
}

// TestGapFillMergesAndResplits checks the two cases where an out-of-order
// event changes sessions already under way: one that fills a gap merges two
// sessions, one with a new campaign splits a session.
func TestGapFillMergesAndResplits(t *testing.T) {
	// 0 and 40 minutes apart: two sessions, unless the event at 20 arrives
	// (late, but within the lateness) and bridges the gap.
	events := []*shoptrail.Event{
		page("a", "m1", at(0), "/"),
		page("a", "m3", at(40), "/p/1"),
		page("a", "m2", at(20), "/list"),
	}
	_, out := run(t, Config{AllowedLateness: 30 * time.Minute}, true, events...)
	if len(out.Sessions) != 1 || out.Sessions[0].Events != 3 || out.Sessions[0].ExitPage != "/p/1" {
		t.Fatalf("gap fill: got %+v, want one session of 3 events", out.Sessions)
	}
	// A campaign hit that arrives after later events splits the session at
	// its time: the events after it belong to the new campaign.
	events = []*shoptrail.Event{
		page("b", "n1", at(0), "/"),
		page("b", "n3", at(3), "/p/1"),
		page("b", "n4", at(4), "/p/2"),
		page("b", "n2", at(2), "/landing", withUTM("newsletter", "email", "march")),
	}
	_, out = run(t, Config{}, true, events...)
	ss := sessionsByStart(out.Sessions)
	if len(ss) != 2 || ss[0].Events != 1 || ss[1].Events != 3 || ss[1].Source != "newsletter" || ss[1].LandingPage != "/landing" {
		t.Fatalf("resplit: got %+v", ss)
	}
	a := assignmentsByID(out.Assignments)
	if a["n3"][0].SessionID != ss[1].SessionID || a["n1"][0].SessionID != ss[0].SessionID {
		t.Errorf("assignments %+v", out.Assignments)
	}
	if ss[1].SessionID != SessionID(site, "b", "n2") {
		t.Errorf("session id %s, want the one derived from its first event n2", ss[1].SessionID)
	}
}

func TestSessionIDFormat(t *testing.T) {
	id := SessionID("s", "v", "m")
	if len(id) != 32 {
		t.Fatalf("len %d", len(id))
	}
	if _, err := hex.DecodeString(id); err != nil {
		t.Fatal(err)
	}
	if id == SessionID("s", "v", "m2") || id == SessionID("s2", "v", "m") || id == SessionID("s", "v2", "m") {
		t.Error("ids collide")
	}
	if SessionID("s", "v", "m") != id {
		t.Error("not deterministic")
	}
}
