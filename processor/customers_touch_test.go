package processor_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// TestCustomersFirstTouch: a customer's first_seen, first_channel and
// first_source are those of the first visit of any of its devices, the
// anonymous ones before the customer signed up included, through the real
// broker and ClickHouse.
//
// Ann came from Baidu's organic results, browsed, left, came back three
// days later directly, signed up and ordered. Ben and Cid each first came
// on the phone by the newsletter at 9:00, then on the desk directly at
// 10:00 (another partition); Ben logs in on the desk first, Cid on the
// phone first: both get the phone's touch, whatever order the links come
// in. A run fed in two parts with a restart between them, and a second run
// of the whole stream into the same database (a replay), give the same
// rows and signals.
func TestCustomersFirstTouch(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	n := 0
	ev := func(anon, user, typ, name string, at time.Duration, path string) *shoptrail.Event {
		n++
		x := &shoptrail.Event{V: 1, Site: "shop", MessageID: fmt.Sprintf("ft%d", n), Type: typ, Event: name,
			AnonymousID: anon, UserID: user, Timestamp: t0.Add(at), ReceivedAt: t0.Add(at)}
		x.Context.Page.Path, x.Context.Page.URL = path, "https://shop.example"+path
		return x
	}
	page := func(anon string, at time.Duration, path string) *shoptrail.Event {
		return ev(anon, "", shoptrail.TypePage, "", at, path)
	}
	fromBaidu := func(x *shoptrail.Event) *shoptrail.Event {
		x.Context.Page.Referrer = "https://www.baidu.com/s?wd=resistor"
		return x
	}
	fromNewsletter := func(x *shoptrail.Event) *shoptrail.Event {
		x.Context.Campaign.Source, x.Context.Campaign.Medium, x.Context.Campaign.Name = "newsletter", "email", "november"
		return x
	}
	m, h, day := time.Minute, time.Hour, 24*time.Hour
	ann := "ann-desk"
	benDesk, cidDesk := "ben-desk", "cid-desk"
	benPhone, cidPhone := otherPartition("ben-phone", benDesk), otherPartition("cid-phone", cidDesk)
	part1 := []*shoptrail.Event{
		fromBaidu(page(ann, 0, "/")),
		page(ann, 2*m, "/p/1"),
		fromNewsletter(page(benPhone, h, "/news")),
		fromNewsletter(page(cidPhone, h, "/news")),
		page(benDesk, 2*h, "/"),
		page(cidDesk, 2*h, "/"),
		ev(benDesk, "ben", shoptrail.TypeIdentify, "", day, "/login"),
		ev(cidPhone, "cid", shoptrail.TypeTrack, shoptrail.EventLoggedIn, day, "/login"),
	}
	// An event on every partition, so that each has an end to commit.
	for _, x := range tailEvents("shop", t0.Add(day+h)) {
		x.MessageID += "-early"
		part1 = append(part1, x)
	}
	part2 := []*shoptrail.Event{
		ev(benPhone, "ben", shoptrail.TypeTrack, shoptrail.EventLoggedIn, 2*day, "/login"),
		ev(cidDesk, "cid", shoptrail.TypeIdentify, "", 2*day, "/login"),
		page(ann, 3*day, "/"),
		ev(ann, "ann", shoptrail.TypeTrack, shoptrail.EventSignedUp, 3*day+m, "/signup"),
		ev(ann, "ann", shoptrail.TypeTrack, shoptrail.EventOrderCompleted, 3*day+5*m, "/checkout"),
	}
	part2[len(part2)-1].Properties = []byte(`{"order_id":"o1","revenue":30,"currency":"EUR","products":[{"product_id":"r1","price":30}]}`)
	part2 = append(part2, tailEvents("shop", t0.Add(10*day))...)

	// Run 1: the first part, stopped, then the rest after a restart
	// from the changelog.
	split := e.config("touch-split-" + testenv.RandomSuffix())
	splitDB, _ := e.database()
	e.produce(part1)
	stop, _, _ := e.start(split, splitDB)
	e.waitCommitted(split.GroupID, 60*time.Second)
	stop()
	e.produce(part2)
	_, _, splitReg := e.start(split, splitDB)
	e.waitDone(split.GroupID, 60*time.Second)
	checkFactsInTime(t, splitReg, 5)

	// Run 2: the whole stream at once.
	whole := e.config("touch-whole-" + testenv.RandomSuffix())
	_, _, wholeReg := e.start(whole, e.ch)
	e.waitDone(whole.GroupID, 60*time.Second)
	checkFactsInTime(t, wholeReg, 5)
	db := e.ch.Database

	want := "ann\t2026-11-03 08:00:00\t2026-11-06 08:01:00\tOrganic Search\tbaidu\tfirst_buyer\n" +
		"ben\t2026-11-03 09:00:00\t2026-11-04 08:00:00\tEmail\tnewsletter\tregistered\n" +
		"cid\t2026-11-03 09:00:00\t2026-11-04 08:00:00\tEmail\tnewsletter\tregistered\n"
	q := "SELECT customer_id, first_seen, registered_at, first_channel, first_source, stage FROM customers FINAL ORDER BY customer_id FORMAT TSV"
	if got := e.query(db, q); got != want {
		t.Errorf("customers:\n%s\nwant\n%s", got, want)
	}
	// Ann's signals carry her first touch.
	sigs := 0
	for _, s := range e.signals(whole.SignalsTopic) {
		if s.CustomerID != "ann" {
			continue
		}
		sigs++
		if c := s.Customer; c == nil || c.FirstChannel != "Organic Search" || c.FirstSource != "baidu" || !c.FirstSeenAt.Equal(t0) {
			t.Errorf("signal %s of ann carries %+v", s.Type, s.Customer)
		}
	}
	if sigs < 2 {
		t.Errorf("%d signals of ann, want her registration and first order", sigs)
	}
	e.compareTables(splitDB.Database, db)
	e.compareSignals(split.SignalsTopic, whole.SignalsTopic)

	// Run 3: the whole stream again, into the same database: a replay
	// writes the same rows, and nothing flips.
	replay := e.config("touch-replay-" + testenv.RandomSuffix())
	_, _, _ = e.start(replay, e.ch)
	e.waitDone(replay.GroupID, 60*time.Second)
	if got := e.query(db, q); got != want {
		t.Errorf("customers after the replay:\n%s\nwant\n%s", got, want)
	}
	e.compareTables(db, splitDB.Database)
	e.compareSignals(replay.SignalsTopic, whole.SignalsTopic)
}
