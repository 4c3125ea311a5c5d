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

// linkFact is the link fact of device anon linked to cust at at, first
// seen at touch by channel and source.
func linkFact(cust, anon string, at, touch time.Duration, channel, source string) *Event {
	return &Event{Site: "shop", CustomerID: cust, AnonymousID: anon, MessageID: fmt.Sprintf("link:%s:%d", anon, t0.Add(at).UnixMilli()),
		Type: TypeLink, Time: t0.Add(at), SessionStart: t0.Add(touch), Channel: channel, Source: source}
}

// trackFact is a track event of a customer on device anon.
func trackFact(cust, anon, id string, at time.Duration, name, props string) *Event {
	var p commerce.Props
	var ps commerce.Parser
	ps.Parse([]byte(props), &p)
	return &Event{Site: "shop", CustomerID: cust, AnonymousID: anon, MessageID: id, Type: "track", Name: name, Time: t0.Add(at), Props: &p}
}

// sessionFact is the fact of a closed session of cust on device anon.
func sessionFact(cust, anon, sid string, start, end time.Duration, channel, source string) *Event {
	return &Event{Site: "shop", CustomerID: cust, AnonymousID: anon, MessageID: "session:" + sid, Type: TypeSession,
		Time: t0.Add(end + 30*time.Minute), SessionID: sid, SessionStart: t0.Add(start), Channel: channel, Source: source}
}

func lastRow(t *testing.T, rows []Row, cust string) Row {
	t.Helper()
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].CustomerID == cust {
			return rows[i]
		}
	}
	t.Fatalf("no row of %s in %+v", cust, rows)
	return Row{}
}

// TestFirstTouch: a visitor came from Baidu's organic results at t0,
// anonymously, and signs up three days later on a direct visit, then
// orders. The link fact (at the sign-up, before it) carries the first
// visit: the customer was first seen at t0, first came by Organic Search
// from baidu, registered at the sign-up; the transitions' signals carry
// that. The link alone writes nothing: the row and the registration
// transition come with the sign-up, as before.
func TestFirstTouch(t *testing.T) {
	tr, _ := New(Config{})
	var out Output
	signup := 3*day + time.Minute
	tr.Add(linkFact("ann", "desk", signup, 0, "Organic Search", "baidu"))
	tr.Drain(&out)
	if len(out.Customers) != 0 || len(out.Transitions) != 0 || len(out.Signals) != 0 {
		t.Fatalf("a link alone wrote %+v", out)
	}
	tr.Add(trackFact("ann", "desk", "m1", signup, shoptrail.EventSignedUp, `{}`))
	tr.Add(trackFact("ann", "desk", "m2", signup+4*time.Minute, shoptrail.EventOrderCompleted,
		`{"order_id":"o1","revenue":30,"currency":"EUR","products":[{"product_id":"p","price":30}]}`))
	// The sign-up session closes: direct, started at 3 days.
	tr.Add(sessionFact("ann", "desk", "s2", 3*day, signup+4*time.Minute, "Direct", "(direct)"))
	tr.Drain(&out)
	r := lastRow(t, out.Customers, "ann")
	if !r.FirstSeen.Equal(t0) || !r.RegisteredAt.Equal(t0.Add(signup)) || r.FirstChannel != "Organic Search" || r.FirstSource != "baidu" ||
		r.Stage != shoptrail.StageFirstBuyer || !r.LastVisitAt.Equal(t0.Add(signup+4*time.Minute)) {
		t.Errorf("row %+v", r)
	}
	if got := flows(out.Transitions, "stage"); !reflect.DeepEqual(got, []string{"ann:stranger>registered@3.001d Signed Up",
		"ann:registered>first_buyer@3.003d Order Completed"}) {
		t.Errorf("transitions %v", got)
	}
	if out.Transitions[0].Cause != "event:"+shoptrail.EventSignedUp+":m1" || !out.Transitions[0].At.Equal(t0.Add(signup)) {
		t.Errorf("registration %+v", out.Transitions[0])
	}
	for _, s := range out.Signals {
		if c := s.Customer; c == nil || c.FirstChannel != "Organic Search" || c.FirstSource != "baidu" || !c.FirstSeenAt.Equal(t0) {
			t.Errorf("signal %s carries %+v", s.Type, s.Customer)
		}
	}
}

// TestFirstTouchTwoDevices: a customer's phone first came at 1h by an
// email, the desk at 2h directly; whichever device is linked first, the
// customer ends with the phone's touch, and a row never goes back to a
// later touch.
func TestFirstTouchTwoDevices(t *testing.T) {
	for _, phoneFirst := range []bool{false, true} {
		tr, _ := New(Config{})
		var out Output
		first, second := day, 2*day
		if phoneFirst {
			first, second = second, first
		}
		// In event time order, as the merger releases them.
		type fact struct {
			at time.Duration
			e  *Event
		}
		facts := []fact{
			{first, linkFact("ben", "desk", first, 2*time.Hour, "Direct", "(direct)")},
			{first, trackFact("ben", "desk", "d1", first, shoptrail.EventLoggedIn, `{}`)},
			{second, linkFact("ben", "phone", second, time.Hour, "Email", "newsletter")},
			{second, trackFact("ben", "phone", "p1", second, shoptrail.EventLoggedIn, `{}`)},
		}
		if phoneFirst {
			facts[0], facts[1], facts[2], facts[3] = facts[2], facts[3], facts[0], facts[1]
		}
		var channels []string
		for _, f := range facts {
			tr.Add(f.e)
			tr.Advance(t0.Add(f.at))
			tr.Drain(&out)
			for _, r := range out.Customers {
				channels = append(channels, r.FirstChannel)
			}
			out.Reset()
		}
		tr.Add(sessionFact("ben", "desk", "s9", 3*day, 3*day+time.Minute, "Referral", "example.com"))
		tr.Drain(&out)
		r := lastRow(t, out.Customers, "ben")
		if !r.FirstSeen.Equal(t0.Add(time.Hour)) || !r.RegisteredAt.Equal(t0.Add(day)) || r.FirstChannel != "Email" || r.FirstSource != "newsletter" {
			t.Errorf("phone first %v: row %+v", phoneFirst, r)
		}
		// A row per login, and one at the phone's link, which moves the
		// first touch back; the desk's later touch changes nothing.
		want := []string{"Direct", "Email", "Email"}
		if phoneFirst {
			want = []string{"Email", "Email"}
		}
		if !reflect.DeepEqual(channels, want) {
			t.Errorf("phone first %v: rows' first channels %v, want %v", phoneFirst, channels, want)
		}
	}
}

// TestFirstTouchRestoreOldRecord: a customer record written before the
// registration and the first touch were kept apart from first seen
// restores with both at its first seen; an earlier touch learnt later
// still wins, a later one does not, and the next checkpoint keeps them.
func TestFirstTouchRestoreOldRecord(t *testing.T) {
	reg := t0.Add(2 * day).UnixMilli()
	old := fmt.Sprintf(`{"channel":"Direct","source":"(direct)","firstSeen":%d,"lastVisit":%d,"clock":%d,"st":1}`, reg, reg, reg)
	tr, _ := New(Config{})
	if err := tr.Restore([]Record{{Key: keyPrefix + "shop\x00cy", Value: []byte(old)}}); err != nil {
		t.Fatal(err)
	}
	var out Output
	tr.Add(linkFact("cy", "tablet", 3*day, 2*day+time.Hour, "Paid Search", "google")) // later than the record's: no change
	tr.Drain(&out)
	if len(out.Customers) != 0 {
		t.Errorf("a later touch wrote %+v", out.Customers)
	}
	tr.Add(linkFact("cy", "phone", 4*day, day, "Organic Social", "weibo"))
	tr.Drain(&out)
	r := lastRow(t, out.Customers, "cy")
	if !r.FirstSeen.Equal(t0.Add(day)) || !r.RegisteredAt.Equal(t0.Add(2*day)) || r.FirstChannel != "Organic Social" || r.FirstSource != "weibo" ||
		r.Stage != shoptrail.StageRegistered || r.Version != t0.Add(4*day).UnixMilli() {
		t.Errorf("row %+v", r)
	}
	again, _ := New(Config{})
	if err := again.Restore(tr.Checkpoint(nil)); err != nil {
		t.Fatal(err)
	}
	c := again.lookup("shop", "cy", false)
	if c == nil || c.firstSeen.ms() != t0.Add(day).UnixMilli() || c.registered.ms() != reg || c.touchAt != c.firstSeen || c.prof.channel != "Organic Social" {
		t.Errorf("restored %+v", c)
	}
}

// TestFirstTouchAfterHandoff: a cart left anonymously is handed over at
// the login, before the login's link and event (hand-offs come first at
// equal times). The link never causes a transition: the registration is
// the login's, and its signal carries the traits and the first touch.
func TestFirstTouchAfterHandoff(t *testing.T) {
	tr, _ := New(Config{})
	var out Output
	ab := &cart.Abandonment{ID: "ab1", Site: "shop", CustomerID: "dee", AnonymousID: "desk", Value: 50,
		LastActivityAt: t0.Add(2 * time.Minute), AbandonedAt: t0.Add(time.Hour), Step: cart.StepCheckout}
	tr.AddAbandonment(ab, false, cart.DefaultRecoveryWindow, t0.Add(3*time.Hour))
	tr.Add(linkFact("dee", "desk", 3*time.Hour, 0, "Organic Search", "baidu"))
	login := &Event{Site: "shop", CustomerID: "dee", AnonymousID: "desk", MessageID: "m1", Type: shoptrail.TypeIdentify,
		Time: t0.Add(3 * time.Hour), Traits: &Traits{Company: "ACME"}}
	tr.Add(login)
	tr.Drain(&out)
	if got := flows(out.Transitions, "stage"); !reflect.DeepEqual(got, []string{"dee:stranger>registered@0.125d identify"}) {
		t.Errorf("transitions %v", got)
	}
	if len(out.Signals) != 1 || out.Signals[0].Customer.Company != "ACME" || out.Signals[0].Customer.FirstChannel != "Organic Search" {
		t.Errorf("signals %+v", out.Signals)
	}
	r := lastRow(t, out.Customers, "dee")
	if !r.FirstSeen.Equal(t0) || !r.RegisteredAt.Equal(t0.Add(2*time.Minute)) || r.FirstSource != "baidu" {
		t.Errorf("row %+v", r)
	}
}
