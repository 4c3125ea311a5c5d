package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/cart"
)

// readTopic returns the messages of every partition of topic, from the
// first to the current end.
func (e *env) readTopic(topic string) []kafka.Message {
	e.t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 10 * time.Second}
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := c.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []kafka.Message
	for _, po := range resp.Topics[topic] {
		if po.Error != nil || po.LastOffset <= po.FirstOffset {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: topic, Partition: po.Partition, MaxWait: time.Second, MaxBytes: 4 << 20})
		if err := r.SetOffset(po.FirstOffset); err != nil {
			e.t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				e.t.Fatalf("reading %s/%d: %v", topic, po.Partition, err)
			}
			out = append(out, m)
			if m.Offset+1 >= po.LastOffset {
				break
			}
		}
		cancel()
		r.Close()
	}
	return out
}

// customerMetaKey is the changelog key of a customer partition's meta
// record (processor.customerStateKey + customer.MetaKey).
const customerMetaKey = "\x00kcust\x00meta"

// waitCustomers waits until every customer partition of the group has
// merged, and checkpointed, the watermarks every events partition sent it
// after its last checkpoint: the customer stage's rows are written. When
// some events partition never had an event (it sends no watermark; the
// tests turn the wall-clock advance off), there is nothing to wait for.
// Call it after waitDone: every events partition has checkpointed its end.
func (e *env) waitCustomers(group string, d time.Duration) {
	e.t.Helper()
	state := e.topic + "." + group + ".state"
	deadline := time.Now().Add(d)
	for {
		type meta struct {
			Merger struct {
				Merged time.Time `json:"merged"`
			} `json:"merger"`
			Sent time.Time `json:"sent"`
		}
		last := map[int]meta{}
		for _, m := range e.readTopic(state) {
			if string(m.Key) == customerMetaKey {
				var v meta
				if err := json.Unmarshal(m.Value, &v); err != nil {
					e.t.Fatalf("customer meta record %s: %v", m.Value, err)
				}
				last[m.Partition] = v
			}
		}
		if len(last) < partitions {
			return // a partition that never checkpointed: it had no events
		}
		var least time.Time
		done := true
		for _, v := range last {
			if v.Sent.IsZero() {
				return // a source that never sent a watermark
			}
			if least.IsZero() || v.Sent.Before(least) {
				least = v.Sent
			}
		}
		for _, v := range last {
			done = done && !v.Merger.Merged.Before(least)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for the customer stage of %s (%d partitions checkpointed: %+v)", d, group, len(last), last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkFactsInTime fails the test unless the processor's customer stage
// kept at least min facts and none came late or invalid.
func checkFactsInTime(t *testing.T, reg *prometheus.Registry, min float64) {
	t.Helper()
	outcomes := map[string]float64{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "shoptrail_processor_customer_facts_total" {
			for _, m := range mf.GetMetric() {
				outcomes[m.GetLabel()[0].GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	if outcomes["kept"] < min || outcomes["late"] != 0 || outcomes["invalid"] != 0 {
		t.Errorf("customer facts by outcome %v: want %v or more kept, none late or invalid", outcomes, min)
	}
}

// TestCustomers: the customer stage through the real broker and
// ClickHouse. A visitor leaves a cart anonymously on the desktop, logs in
// later, and orders on the phone (another partition): the cart is
// recovered across devices; the customer's identify traits, orders, stage
// and transitions land in customers, customer_transitions and
// customer_orders; a known customer's abandoned cart carries the
// customer's stage; the signals carry the customer.
func TestCustomers(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	n := 0
	ev := func(anon, user, typ, name string, at time.Duration, props string) *shoptrail.Event {
		n++
		x := &shoptrail.Event{V: 1, Site: "shop", MessageID: fmt.Sprintf("m%d", n), Type: typ, Event: name,
			AnonymousID: anon, UserID: user, Timestamp: t0.Add(at), ReceivedAt: t0.Add(at)}
		if typ == shoptrail.TypeIdentify {
			x.Traits = json.RawMessage(props)
		} else {
			x.Properties = json.RawMessage(props)
		}
		return x
	}
	track, identify := shoptrail.TypeTrack, shoptrail.TypeIdentify
	desk := "desk"
	phone := otherPartition("phone", desk)
	carols := samePartition("carol", desk)
	m, h, day := time.Minute, time.Hour, 24*time.Hour
	stream := []*shoptrail.Event{
		ev(desk, "", track, shoptrail.EventProductAdded, 0, `{"product_id":"r1","price":25,"quantity":2,"currency":"EUR"}`),
		ev(desk, "", track, shoptrail.EventCheckoutStarted, 2*m, `{"currency":"EUR","products":[{"product_id":"r1","price":25,"quantity":2}]}`),
		ev(carols, "carol", identify, "", 2*h, `{"company":"Late Co"}`),
		// Abandoned at 1:02, anonymous. Logs in at 3:00, orders on the phone.
		ev(desk, "alice", identify, "", 3*h, `{"company":{"name":"ACME"},"customer_type":"Enterprise","role":"Purchaser","industry":"Machinery"}`),
		ev(phone, "alice", track, shoptrail.EventOrderCompleted, 5*h, `{"order_id":"o1","revenue":100,"currency":"EUR","products":[{"product_id":"r1","price":50,"quantity":2}]}`),
		ev(desk, "alice", track, shoptrail.EventOrderCompleted, 5*day, `{"order_id":"o2","revenue":50,"currency":"EUR","products":[{"product_id":"c1","price":50,"quantity":1}]}`),
		// Carol's order reaches the desk's partition five days late: it
		// counts for her when it arrived (the watermark, 5 days - 5 min).
		ev(carols, "carol", track, shoptrail.EventOrderCompleted, 2*h+30*m, `{"order_id":"o3","revenue":70,"currency":"EUR","products":[{"product_id":"c2","price":70}]}`),
		ev(phone, "alice", track, shoptrail.EventOrderRefunded, 6*day, `{"order_id":"o2","revenue":20}`),
		// A known customer's cart.
		ev("bobs", "bob", track, shoptrail.EventProductAdded, h, `{"product_id":"x1","price":500,"currency":"EUR"}`),
	}
	// Dave's identify and order come in one batch, stamped alike: they
	// count in the order they arrived (whatever their message ids).
	stream = append([]*shoptrail.Event{
		withID(ev("daves", "dave", identify, "", 0, `{}`), "z-identify"),
		withID(ev("daves", "dave", track, shoptrail.EventOrderCompleted, 0, `{"order_id":"o4","revenue":5,"currency":"EUR","products":[{"product_id":"c3","price":5}]}`), "a-order"),
	}, stream...)
	stream = append(stream, tailEvents("shop", t0.Add(10*day))...)
	e.produce(stream)
	cfg := e.config("customers-" + fmt.Sprint(time.Now().UnixNano()%1e6))
	_, _, reg := e.start(cfg, e.ch)
	e.waitDone(cfg.GroupID, 60*time.Second)
	checkFactsInTime(t, reg, 8)
	db := e.ch.Database

	deskAb := cart.AbandonmentID("shop", desk, "m2")
	bobAb := cart.AbandonmentID("shop", "bobs", "m9")
	got := e.query(db, "SELECT abandonment_id, customer_id, stage, recovered, recovered_order_id, recovered_value FROM cart_abandonments FINAL ORDER BY anonymous_id FORMAT TSV")
	// The desk's cart keeps the stage of when it was flagged: a stranger.
	want := fmt.Sprintf("%s\tbob\tpotential\t0\t\t0\n%s\talice\tstranger\t1\to1\t100\n", bobAb, deskAb)
	if got != want {
		t.Errorf("cart_abandonments:\n%s\nwant\n%s", got, want)
	}
	got = e.query(db, "SELECT customer_id, company, customer_type, role, industry, order_count, net_revenue, stage, tier != '', "+
		"if(toUInt32(first_order_at) = 0, '-', toString(first_order_at)), if(toUInt32(last_order_at) = 0, '-', toString(last_order_at)), first_channel FROM customers FINAL ORDER BY customer_id FORMAT TSV")
	want = "alice\tACME\tenterprise\tpurchaser\tMachinery\t2\t130\tsecond_buyer\t1\t2026-11-03 13:00:00\t2026-11-08 08:00:00\tDirect\n" +
		"bob\t\t\t\t\t0\t0\tpotential\t0\t-\t-\tDirect\n" +
		"carol\tLate Co\t\t\t\t1\t70\tfirst_buyer\t1\t2026-11-03 10:30:00\t2026-11-03 10:30:00\tDirect\n" +
		"dave\t\t\t\t\t1\t5\tfirst_buyer\t1\t2026-11-03 08:00:00\t2026-11-03 08:00:00\tDirect\n"
	if got != want {
		t.Errorf("customers:\n%s\nwant\n%s", got, want)
	}
	got = e.query(db, "SELECT order_id, customer_id, order_number, first_order FROM customer_orders FINAL ORDER BY order_id FORMAT TSV")
	if want := "o1\talice\t1\t1\no2\talice\t2\t0\no3\tcarol\t1\t1\no4\tdave\t1\t1\n"; got != want {
		t.Errorf("customer_orders:\n%s\nwant\n%s", got, want)
	}
	got = e.query(db, "SELECT groupArray(to_value) FROM (SELECT to_value FROM customer_transitions FINAL "+
		"WHERE customer_id = 'alice' AND kind = 'stage' ORDER BY at) FORMAT TSV")
	if want := "['registered','first_buyer','second_buyer']\n"; got != want {
		t.Errorf("alice's stage transitions: %s, want %s", got, want)
	}
	got = e.query(db, "SELECT groupArray(t) FROM (SELECT concat(from_value, '>', to_value) AS t FROM customer_transitions FINAL "+
		"WHERE customer_id = 'dave' AND kind = 'stage' ORDER BY t) FORMAT TSV")
	if want := "['registered>first_buyer','stranger>registered']\n"; got != want {
		t.Errorf("dave's stage transitions: %s, want %s", got, want)
	}
	got = e.query(db, "SELECT to_value, at FROM customer_transitions FINAL WHERE customer_id = 'carol' AND kind = 'stage' ORDER BY at FORMAT TSV")
	if want := "registered\t2026-11-03 10:00:00\nfirst_buyer\t2026-11-08 07:55:00\n"; got != want {
		t.Errorf("carol's stage transitions (her order arrived late):\n%s\nwant\n%s", got, want)
	}

	types := map[string][]string{}
	for _, s := range e.signals(cfg.SignalsTopic) {
		who := s.AnonymousID
		if s.Customer != nil {
			who = s.Customer.ID + "/" + s.Customer.Company
		}
		types[s.Type] = append(types[s.Type], who)
	}
	for _, v := range types {
		slices.Sort(v)
	}
	wantTypes := map[string][]string{
		shoptrail.SignalCartAbandoned: {"bob/", desk},
		shoptrail.SignalCartRecovered: {"alice/ACME"},
	}
	for typ, whom := range wantTypes {
		if !slices.Equal(types[typ], whom) {
			t.Errorf("%s signals for %q, want %q", typ, types[typ], whom)
		}
	}
	if st := types[shoptrail.SignalStageChanged]; len(st) < 3 || !strings.HasPrefix(st[0], "alice/ACME") {
		t.Errorf("stage signals %q, want alice's (registered, first, second buyer) and bob's", st)
	}
}

func withID(e *shoptrail.Event, id string) *shoptrail.Event {
	e.MessageID = id
	return e
}

// monthOfCustomers makes a month of a shop's known customers, in event-time
// order: each of them logs in on one of two devices now and then, carts,
// favorites and orders at their own pace (some weekly, some once), orders
// are sometimes refunded; it ends with one event per partition 200 days
// later, so that every customer's dormancy runs its course.
func monthOfCustomers(rng *rand.Rand, customers int) []*shoptrail.Event {
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	var evs []*shoptrail.Event
	n := 0
	add := func(anon, user, typ, name string, at time.Time, props string) {
		n++
		e := &shoptrail.Event{V: 1, Site: "shop", MessageID: fmt.Sprintf("mm%d", n), Type: typ, Event: name,
			AnonymousID: anon, UserID: user, Timestamp: at, ReceivedAt: at}
		if typ == shoptrail.TypeIdentify {
			e.Traits = json.RawMessage(props)
		} else if props != "" {
			e.Properties = json.RawMessage(props)
		}
		evs = append(evs, e)
	}
	for c := range customers {
		user := fmt.Sprintf("cust-%d", c)
		devices := []string{fmt.Sprintf("laptop-%d", c), fmt.Sprintf("phone-%d", c)}
		pace := time.Duration(1+rng.IntN(10)) * 24 * time.Hour
		t := t0.Add(time.Duration(rng.Int64N(int64(5 * 24 * time.Hour))))
		add(devices[0], user, shoptrail.TypeIdentify, "", t, fmt.Sprintf(`{"company":"Co %d","customer_type":"enterprise"}`, c%7))
		for visit := 0; t.Before(t0.Add(30 * 24 * time.Hour)); visit++ {
			dev := devices[rng.IntN(2)]
			add(dev, user, shoptrail.TypePage, "", t, "")
			p := rng.IntN(40)
			add(dev, user, shoptrail.TypeTrack, shoptrail.EventProductAdded, t.Add(time.Minute), fmt.Sprintf(`{"product_id":"p%d","price":%d,"currency":"EUR"}`, p, 10+p))
			switch r := rng.IntN(10); {
			case r < 5:
				order := fmt.Sprintf("%s-o%d", user, visit)
				add(devices[rng.IntN(2)], user, shoptrail.TypeTrack, shoptrail.EventOrderCompleted, t.Add(3*time.Hour),
					fmt.Sprintf(`{"order_id":%q,"revenue":%d,"currency":"EUR","products":[{"product_id":"p%d","price":%d}]}`, order, 10+p, p, 10+p))
				if rng.IntN(6) == 0 {
					add(dev, user, shoptrail.TypeTrack, shoptrail.EventOrderRefunded, t.Add(30*time.Hour), fmt.Sprintf(`{"order_id":%q,"revenue":5}`, order))
				}
			case r < 6:
				add(dev, user, shoptrail.TypeTrack, shoptrail.EventProductAddedToWishlist, t.Add(2*time.Minute), `{"product_id":"w"}`)
			}
			t = t.Add(pace + time.Duration(rng.Int64N(int64(pace))))
		}
	}
	slices.SortStableFunc(evs, func(a, b *shoptrail.Event) int { return a.Timestamp.Compare(b.Timestamp) })
	return append(evs, tailEvents("shop", t0.Add(230*24*time.Hour))...)
}

// TestBackfillEqualsLive: a month of customers processed as a backfill
// (all in the topic before the processor starts) gives the same customers,
// transitions, orders, carts and signals as the same month fed live, two
// days at a time with the processor keeping up.
func TestBackfillEqualsLive(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 7))
	e := newEnv(t)
	month := monthOfCustomers(rng, 60)
	// Live: two days at a time, each committed before the next is sent.
	live := e.config("live-" + testenv.RandomSuffix())
	liveDB, _ := e.database()
	_, _, liveReg := e.start(live, liveDB)
	for i := 0; i < len(month); {
		j := i
		for j < len(month) && month[j].Timestamp.Sub(month[i].Timestamp) < 48*time.Hour {
			j++
		}
		e.produce(month[i:j])
		e.waitCommitted(live.GroupID, 60*time.Second)
		i = j
	}
	e.waitDone(live.GroupID, 120*time.Second)
	// Backfill: a second group reads the whole month at once.
	backfill := e.config("backfill-" + testenv.RandomSuffix())
	backDB, _ := e.database()
	_, _, backReg := e.start(backfill, backDB)
	e.waitDone(backfill.GroupID, 120*time.Second)
	checkFactsInTime(t, liveReg, 500)
	checkFactsInTime(t, backReg, 500)

	e.compareTables(backDB.Database, liveDB.Database)
	e.compareSignals(backfill.SignalsTopic, live.SignalsTopic)
	kinds := e.query(liveDB.Database, "SELECT groupUniqArray(to_value) FROM customer_transitions FINAL WHERE kind = 'stage' FORMAT TSV")
	for _, st := range []string{"first_buyer", "second_buyer", "at_risk", "dormant", "lost", "potential_dormant"} {
		if !strings.Contains(kinds, "'"+st+"'") {
			t.Errorf("no transition to %s in the month (%s): the scenario tests too little", st, kinds)
		}
	}
}
