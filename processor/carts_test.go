package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

// signals reads the whole signals topic of cfg's group and returns the
// signals by id, failing the test when two records of one id differ (a
// replay must repeat a signal exactly).
func (e *env) signals(topic string) map[string]shoptrail.Signal {
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
	out := map[string]shoptrail.Signal{}
	raw := map[string]string{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			e.t.Fatalf("signals topic %s/%d: %v", topic, po.Partition, po.Error)
		}
		if po.LastOffset <= po.FirstOffset {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: topic, Partition: po.Partition, MaxWait: time.Second})
		if err := r.SetOffset(po.FirstOffset); err != nil {
			e.t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				e.t.Fatalf("reading %s/%d: %v", topic, po.Partition, err)
			}
			var s shoptrail.Signal
			if err := json.Unmarshal(m.Value, &s); err != nil {
				e.t.Fatalf("signal %s: %v", m.Value, err)
			}
			if string(m.Key) != s.Key() {
				e.t.Errorf("signal %s keyed %q, want %q", s.ID, m.Key, s.Key())
			}
			if prev, ok := raw[s.ID]; ok && prev != string(m.Value) {
				e.t.Errorf("signal %s repeated with other contents:\n%s\n%s", s.ID, prev, m.Value)
			}
			raw[s.ID] = string(m.Value)
			out[s.ID] = s
			if m.Offset+1 >= po.LastOffset {
				break
			}
		}
		cancel()
		r.Close()
	}
	return out
}

// compareSignals fails the test unless the signals of two groups are the
// same (collapsed by id).
func (e *env) compareSignals(topic, refTopic string) {
	e.t.Helper()
	got, want := e.signals(topic), e.signals(refTopic)
	if !reflect.DeepEqual(got, want) {
		var only []string
		for id := range got {
			if _, ok := want[id]; !ok {
				only = append(only, "+"+id)
			}
		}
		for id := range want {
			if _, ok := got[id]; !ok {
				only = append(only, "-"+id)
			}
		}
		sort.Strings(only)
		e.t.Errorf("signals differ from the reference run: %d vs %d, %v", len(got), len(want), only[:min(len(only), 10)])
		return
	}
	types := map[string]int{}
	for _, s := range got {
		types[s.Type]++
	}
	e.t.Logf("signals equal to the reference: %v", types)
}

// checkCartsNotVacuous makes sure the stream flagged and recovered carts,
// and that every abandonment has its one signal.
func checkCartsNotVacuous(t *testing.T, e *env, db, signalsTopic string) {
	t.Helper()
	f := strings.Fields(e.query(db, "SELECT count(), countIf(recovered = 1) FROM cart_abandonments FINAL FORMAT TSV"))
	n, _ := strconv.Atoi(f[0])
	rec, _ := strconv.Atoi(f[1])
	if n < 20 || rec < 1 {
		t.Errorf("only %d abandonments, %d recovered", n, rec)
	}
	sigs := e.signals(signalsTopic)
	byType := map[string]int{}
	for _, s := range sigs {
		byType[s.Type]++
	}
	if byType[shoptrail.SignalCartAbandoned] != n || byType[shoptrail.SignalCartRecovered] != rec {
		t.Errorf("%d abandonments (%d recovered) but signals %v", n, rec, byType)
	}
	t.Logf("carts: %d abandoned, %d recovered", n, rec)
}

// TestCarts: carts through the real broker and ClickHouse: abandoned (one
// row and one signal, with its items, value, step and session), emptied,
// converted, and recovered later by the same visitor; bad input counted.
func TestCarts(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 11, 3, 8, 0, 0, 0, time.UTC)
	n := 0
	ev := func(anon, name string, at time.Duration, props string) *shoptrail.Event {
		n++
		return &shoptrail.Event{V: 1, Site: "shop", MessageID: fmt.Sprintf("m%d", n), Type: shoptrail.TypeTrack, Event: name,
			AnonymousID: anon, Timestamp: t0.Add(at), ReceivedAt: t0.Add(at), Properties: json.RawMessage(props)}
	}
	m := time.Minute
	stream := []*shoptrail.Event{
		ev("abandoner", shoptrail.EventProductAdded, 0, `{"product_id":"r1","sku":"R-1","name":"Relay","category":"Parts","price":2.5,"quantity":4,"currency":"EUR"}`),
		ev("abandoner", shoptrail.EventProductAdded, m, `{"product_id":"c1","price":10,"currency":"EUR"}`),
		ev("abandoner", shoptrail.EventCheckoutStarted, 2*m, `{"currency":"EUR","products":[{"product_id":"r1","price":2.5,"quantity":4},{"product_id":"c1","price":10,"quantity":1}]}`),
		ev("emptier", shoptrail.EventProductAdded, 0, `{"product_id":"r1","price":2.5}`),
		ev("emptier", shoptrail.EventProductRemoved, m, `{"product_id":"r1"}`),
		ev("buyer", shoptrail.EventProductAdded, 0, `{"product_id":"r1","price":2.5}`),
		ev("buyer", shoptrail.EventOrderCompleted, 3*m, `{"order_id":"o1","revenue":2.5}`),
		ev("returner", shoptrail.EventProductAdded, 0, `{"product_id":"x","price":99}`),
		ev("returner", shoptrail.EventProductAdded, m, `{"price":1}`), // no product id: counted, ignored
		ev("returner", shoptrail.EventOrderCompleted, 30*time.Hour, `{"order_id":"o2","revenue":120}`),
		ev("returner", shoptrail.EventOrderRefunded, 31*time.Hour, `{"order_id":"o2","revenue":20}`),
		ev("returner", shoptrail.EventOrderCancelled, 32*time.Hour, `{"order_id":"o2"}`),
	}
	stream = append(stream, tailEvents("shop", t0.Add(10*24*time.Hour))...)
	e.produce(stream)
	cfg := e.config("carts-" + strconv.Itoa(int(time.Now().UnixNano()%1e6)))
	_, _, reg := e.start(cfg, e.ch)
	e.waitDone(cfg.GroupID, 60*time.Second)

	got := e.query(e.ch.Database, "SELECT anonymous_id, abandonment_id, items_product_id, items_quantity, item_count, value, currency, step, "+
		"toString(last_activity_at), toString(abandoned_at), stage, recovered, recovered_order_id, recovered_value, length(session_id) "+
		"FROM cart_abandonments FINAL ORDER BY anonymous_id FORMAT TSV")
	want := fmt.Sprintf("abandoner\t%s\t['r1','c1']\t[4,1]\t5\t20\tEUR\tcheckout\t2026-11-03 08:02:00\t2026-11-03 09:02:00\tstranger\t0\t\t0\t32\n", cart.AbandonmentID("shop", "abandoner", "m3"))
	want += fmt.Sprintf("returner\t%s\t['x']\t[1]\t1\t99\t\tcart\t2026-11-03 08:00:00\t2026-11-03 09:00:00\tstranger\t1\to2\t120\t32\n", cart.AbandonmentID("shop", "returner", "m8"))
	if got != want {
		t.Fatalf("cart_abandonments:\n%s\nwant\n%s", got, want)
	}
	orders := e.query(e.ch.Database, "SELECT order_id, anonymous_id, message_id, revenue, items_product_id, length(session_id), problem != '' "+
		"FROM orders FINAL ORDER BY order_id FORMAT TSV")
	wantOrders := "o1\tbuyer\tm7\t2.5\t[]\t32\t1\no2\treturner\tm10\t120\t[]\t32\t1\n"
	if orders != wantOrders {
		t.Errorf("orders:\n%s\nwant\n%s", orders, wantOrders)
	}
	updates := e.query(e.ch.Database, "SELECT order_id, message_id, status, amount FROM order_updates FINAL ORDER BY message_id FORMAT TSV")
	if want := "o2\tm11\trefunded\t20\no2\tm12\tcancelled\t-1\n"; updates != want {
		t.Errorf("order_updates:\n%s\nwant\n%s", updates, want)
	}
	sigs := e.signals(cfg.SignalsTopic)
	var types []string
	for _, s := range sigs {
		types = append(types, s.Type+" "+s.AnonymousID)
		if s.Cart == nil || s.Cart.AbandonmentID == "" || s.V != shoptrail.SignalVersion {
			t.Errorf("signal %+v", s)
		}
	}
	sort.Strings(types)
	wantTypes := []string{"cart.abandoned abandoner", "cart.abandoned returner", "cart.recovered returner"}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Fatalf("signals %q, want %q", types, wantTypes)
	}
	mfs, _ := reg.Gather()
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "shoptrail_processor_cart_bad_input_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == cart.ProblemNoProductID && m.GetCounter().GetValue() == 1 {
					found = true
				}
			}
		}
	}
	if !found {
		t.Error("the cart event without a product id was not counted")
	}
}

// TestThreeProcessors: three processors sharing the partitions from the
// start, and two, give the same tables and signals as one processor alone.
func TestThreeProcessors(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	e := newEnv(t)
	stream := workload(rng, 400)
	e.produce(stream)
	run := func(members int) (processor.Config, clickhouse.Config) {
		db, _ := e.database()
		cfg := e.config(fmt.Sprintf("p%d-%s", members, testenv.RandomSuffix()))
		for range members {
			startChild(t, childSpec{Processor: cfg, ClickHouse: db})
		}
		waitFor(t, 60*time.Second, fmt.Sprintf("%d members with partitions", members), func() bool {
			n := e.groupMembers(cfg.GroupID)
			return n == members || n == partitions && members > partitions
		})
		e.waitDone(cfg.GroupID, 120*time.Second)
		return cfg, db
	}
	one, oneDB := run(1)
	for _, n := range []int{3, 2} {
		cfg, db := run(n)
		e.compareTables(db.Database, oneDB.Database)
		e.compareSignals(cfg.SignalsTopic, one.SignalsTopic)
	}
	checkCartsNotVacuous(t, e, oneDB.Database, one.SignalsTopic)
}
