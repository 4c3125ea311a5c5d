package processor_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/session"
)

func TestMain(m *testing.M) {
	if childMain() {
		return
	}
	testenv.Main(m)
}

const site = "shop"

var t0 = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

// at returns t0 plus minutes.
func at(minutes float64) time.Time { return t0.Add(time.Duration(minutes * float64(time.Minute))) }

type evOpt func(*shoptrail.Event)

func withUTM(source, medium, campaign string) evOpt {
	return func(e *shoptrail.Event) {
		e.Context.Campaign.Source, e.Context.Campaign.Medium, e.Context.Campaign.Name = source, medium, campaign
	}
}
func withRef(ref string) evOpt { return func(e *shoptrail.Event) { e.Context.Page.Referrer = ref } }
func withUser(id string) evOpt { return func(e *shoptrail.Event) { e.UserID = id } }
func withProps(p string) evOpt { return func(e *shoptrail.Event) { e.Properties = []byte(p) } }
func withTab(tab string, seq int64) evOpt {
	return func(e *shoptrail.Event) { e.Context.Delivery.Tab, e.Context.Delivery.Seq = tab, seq }
}
func withDevice(class, browser, os string) evOpt {
	return func(e *shoptrail.Event) { e.Context.Device = shoptrail.Device{Class: class, Browser: browser, OS: os} }
}

func page(anon, id string, t time.Time, path string, opts ...evOpt) *shoptrail.Event {
	e := &shoptrail.Event{
		V: shoptrail.EventVersion, Site: site, MessageID: id, Type: shoptrail.TypePage,
		AnonymousID: anon, Timestamp: t, ReceivedAt: t.Add(time.Second),
	}
	e.Context.Page.Path = path
	e.Context.Page.URL = "https://www.shop.example" + path
	for _, o := range opts {
		o(e)
	}
	return e
}

func track(anon, id string, t time.Time, name, path string, opts ...evOpt) *shoptrail.Event {
	e := page(anon, id, t, path, opts...)
	e.Type, e.Event = shoptrail.TypeTrack, name
	return e
}

func identify(anon, id string, t time.Time, user string) *shoptrail.Event {
	e := page(anon, id, t, "", withUser(user))
	e.Type = shoptrail.TypeIdentify
	e.Context.Page = shoptrail.Page{}
	return e
}

// sid is the id of the session whose first event has message id
// m-<anon>-<n>.
func sid(first string) string { return session.SessionID(site, strings.Split(first, "-")[1], first) }

// TestSessions runs the processor on a hand-made stream and checks the
// sessions table and its companions row by row: a split by inactivity and
// one by campaign change, an out-of-order event placed in its session,
// duplicates counted once, identity stitching, a late event kept and
// flagged, funnel and value, beacon loss, and an undecodable message kept
// as a dead letter.
func TestSessions(t *testing.T) {
	e := newEnv(t)
	chrome := withDevice("desktop", "Chrome", "Windows")
	dup := page("a4", "m-a4-1", at(1), "/d", chrome)
	stream := []*shoptrail.Event{
		// a5's anonymous session long before it logs in.
		page("a5", "m-a5-0", at(-120), "/early"),
		// a1: inactivity split (35 minutes without events).
		page("a1", "m-a1-1", at(0), "/", chrome),
		dup,
		page("a5", "m-a5-1", at(1), "/home"),
		dup, // beacon retries of the same message
		page("a7", "m-a7-1", at(1), "/p/7", chrome, withTab("tab7", 1)),
		identify("a5", "m-a5-2", at(2), "cust-5"),
		track("a7", "m-a7-2", at(2), "Product Viewed", "/p/7", chrome, withTab("tab7", 2)),
		track("a4", "m-a4-2", at(2), "Product Added", "/d", withProps(`{"price":10,"quantity":2}`)),
		dup,
		page("a5", "m-a5-3", at(3), "/account"),
		// a2: campaign change splits the session (google/cpc -> email).
		page("a2", "m-a2-1", at(3), "/lp", withUTM("google", "cpc", "winter")),
		track("a7", "m-a7-5", at(4), "Product Added", "/p/7", chrome, withTab("tab7", 5), withProps(`{"price":10,"quantity":2}`)),
		page("a1", "m-a1-2", at(5), "/p"),
		track("a7", "m-a7-6", at(6), "Checkout Started", "/checkout", chrome, withTab("tab7", 6), withProps(`{"value":20}`)),
		track("a7", "m-a7-7", at(7), "Order Completed", "/done", chrome, withTab("tab7", 7), withProps(`{"order_id":"o7","revenue":25}`)),
		nil, // not JSON
		// a3: the 8-minute event arrives after the 10-minute one.
		page("a3", "m-a3-2", at(10), "/second"),
		page("a3", "m-a3-1", at(8), "/first"),
		page("a2", "m-a2-2", at(13), "/news", withUTM("newsletter", "email", "nov")),
		page("a2", "m-a2-3", at(15), "/more", withRef("https://www.shop.example/news")),
		page("a1", "m-a1-3", at(40), "/x"),
		// a6 (on a1's partition): 45 minutes behind the newest event
		// there: late.
		page(samePartition("a6", "a1"), "m-a6-1", at(-5), "/late"),
		page("a5", "m-a5-4", at(60), "/again"),
	}
	stream = append(stream, tailEvents(site, at(48*60))...)
	e.produce(stream)
	cfg := e.config("g-" + testenv.RandomSuffix())
	e.start(cfg, e.ch)
	e.waitDone(cfg.GroupID, 60*time.Second)
	db := e.ch.Database

	sessions := func(anon string) string {
		return e.query(db, "SELECT session_id, customer_id, start_time, end_time, events, page_views, landing_page, exit_page, "+
			"source, medium, campaign, channel, funnel_step, cart_value, orders, revenue, is_returning FROM sessions FINAL "+
			"WHERE anonymous_id = '"+anon+"' ORDER BY start_time FORMAT TSV")
	}
	f := func(anon, want string) {
		t.Helper()
		if got := sessions(anon); got != want {
			t.Errorf("sessions of %s:\n got %s\nwant %s", anon, got, want)
		}
	}
	// a1: split after 35 idle minutes.
	f("a1", fmt.Sprintf("%s\t\t2026-11-01 10:00:00\t2026-11-01 10:05:00\t2\t2\t/\t/p\t(direct)\t(none)\t\tDirect\tview\t0\t0\t0\t0\n", sid("m-a1-1"))+
		fmt.Sprintf("%s\t\t2026-11-01 10:40:00\t2026-11-01 10:40:00\t1\t1\t/x\t/x\t(direct)\t(none)\t\tDirect\tview\t0\t0\t0\t1\n", sid("m-a1-3")))
	// a2: a new session when the campaign changes; the internal referrer
	// that follows stays in it.
	f("a2", fmt.Sprintf("%s\t\t2026-11-01 10:03:00\t2026-11-01 10:03:00\t1\t1\t/lp\t/lp\tgoogle\tcpc\twinter\tPaid Search\tview\t0\t0\t0\t0\n", sid("m-a2-1"))+
		fmt.Sprintf("%s\t\t2026-11-01 10:13:00\t2026-11-01 10:15:00\t2\t2\t/news\t/more\tnewsletter\temail\tnov\tEmail\tview\t0\t0\t0\t1\n", sid("m-a2-2")))
	// a3: the out-of-order event is the session's first.
	f("a3", fmt.Sprintf("%s\t\t2026-11-01 10:08:00\t2026-11-01 10:10:00\t2\t2\t/first\t/second\t(direct)\t(none)\t\tDirect\tview\t0\t0\t0\t0\n", sid("m-a3-1")))
	// a4: three copies of the page view count once.
	f("a4", fmt.Sprintf("%s\t\t2026-11-01 10:01:00\t2026-11-01 10:02:00\t2\t1\t/d\t/d\t(direct)\t(none)\t\tDirect\tcart\t20\t0\t0\t0\n", sid("m-a4-1")))
	// a5: the open session and the later one carry the customer id; the
	// early anonymous one is attributed through identity_links.
	f("a5", fmt.Sprintf("%s\t\t2026-11-01 08:00:00\t2026-11-01 08:00:00\t1\t1\t/early\t/early\t(direct)\t(none)\t\tDirect\tview\t0\t0\t0\t0\n", sid("m-a5-0"))+
		fmt.Sprintf("%s\tcust-5\t2026-11-01 10:01:00\t2026-11-01 10:03:00\t3\t2\t/home\t/account\t(direct)\t(none)\t\tDirect\tview\t0\t0\t0\t1\n", sid("m-a5-1"))+
		fmt.Sprintf("%s\tcust-5\t2026-11-01 11:00:00\t2026-11-01 11:00:00\t1\t1\t/again\t/again\t(direct)\t(none)\t\tDirect\tview\t0\t0\t0\t1\n", sid("m-a5-4")))
	// a6: late, in no session.
	f(samePartition("a6", "a1"), "")
	// a7: funnel to the order, cart value, revenue.
	f("a7", fmt.Sprintf("%s\t\t2026-11-01 10:01:00\t2026-11-01 10:07:00\t5\t1\t/p/7\t/done\t(direct)\t(none)\t\tDirect\torder\t20\t1\t25\t0\n", sid("m-a7-1")))

	check := func(what, q, want string) {
		t.Helper()
		if got := e.query(db, q+" FORMAT TSV"); got != want {
			t.Errorf("%s:\n got %q\nwant %q", what, got, want)
		}
	}
	check("identity links", "SELECT site, anonymous_id, customer_id, first_seen FROM identity_links FINAL",
		"shop\ta5\tcust-5\t2026-11-01 10:02:00\n")
	check("sessions of cust-5, earlier anonymous ones included",
		"SELECT count() FROM sessions FINAL WHERE (site, anonymous_id) IN (SELECT site, anonymous_id FROM identity_links WHERE customer_id = 'cust-5')",
		"3\n")
	check("statuses", "SELECT status, count() FROM event_sessions FINAL WHERE message_id NOT LIKE 'msg-tail%' GROUP BY status ORDER BY status",
		"assigned\t20\nlate\t1\n")
	check("late event", "SELECT message_id, session_id FROM event_sessions FINAL WHERE status = 'late'", "m-a6-1\t\n")
	check("late event kept in events", "SELECT count() FROM events FINAL WHERE message_id = 'm-a6-1'", "1\n")
	check("duplicates stored once", "SELECT count() FROM events FINAL WHERE message_id = 'm-a4-1'", "1\n")
	check("event session ids", "SELECT session_id FROM event_sessions FINAL WHERE message_id IN ('m-a3-1', 'm-a3-2') GROUP BY session_id",
		sid("m-a3-1")+"\n")
	check("beacon loss", "SELECT site, browser, page_path, sum(received), sum(lost) FROM delivery_loss FINAL GROUP BY site, browser, page_path ORDER BY page_path",
		"shop\tChrome\t/checkout\t1\t0\nshop\tChrome\t/done\t1\t0\nshop\tChrome\t/p/7\t3\t2\n")
	// Its time is the message's (produced by this test, so within the
	// hour), which the partition reader reads for it alone.
	check("dead letter", "SELECT table_name, kafka_offset >= 0, error LIKE 'cannot decode event:%', payload LIKE '{\"v\":1,\"site\":%', time > now() - 3600 FROM dead_letters FINAL",
		"\t1\t1\t1\t1\n")
}

// TestMetrics checks the processor's HTTP endpoints and that its metrics
// move.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.produce(append([]*shoptrail.Event{page("m1", "m-m1-1", at(0), "/"), page("m1", "m-m1-1", at(0), "/")},
		tailEvents(site, at(48*60))...))
	cfg := e.config("g-" + testenv.RandomSuffix())
	_, p, reg := e.start(cfg, e.ch)
	srv := newHTTPServer(t, p.Handler(reg))
	e.waitDone(cfg.GroupID, 60*time.Second)
	get := func(path string) (int, string) {
		resp, err := http.Get(srv + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d %s", code, body)
	}
	_, body := get("/metrics")
	for _, want := range []string{
		"shoptrail_processor_messages_total 6",
		`shoptrail_processor_events_total{status="assigned"} 1`,
		`shoptrail_processor_events_total{status="duplicate"} 1`,
		"shoptrail_processor_sessions_closed_total 1",
		`shoptrail_processor_consumer_lag{partition="0"} 0`,
		`shoptrail_processor_open_sessions{partition=`,
		`shoptrail_processor_insert_duration_seconds_count{table="events"}`,
		"shoptrail_processor_batch_events_count",
		"shoptrail_processor_checkpoint_duration_seconds_count",
		`shoptrail_processor_state_bytes{partition=`,
		"shoptrail_processor_provisional_sessions_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestVisitorCapEvicts: with -session.max-visitors 8, 100 fresh visitors
// (some 25 a partition) evict the least recently seen, counted in
// visitors_evicted_total; every event is still assigned and every visitor's
// session written once, final.
func TestVisitorCapEvicts(t *testing.T) {
	e := newEnv(t)
	var evs []*shoptrail.Event
	for i := range 100 {
		evs = append(evs, page(fmt.Sprintf("cap%d", i), fmt.Sprintf("m-cap%d", i), at(float64(i)/10), "/"))
	}
	e.produce(append(evs, tailEvents(site, at(48*60))...))
	cfg := e.config("g-" + testenv.RandomSuffix())
	cfg.Session.MaxVisitors = 8
	_, _, reg := e.start(cfg, e.ch)
	e.waitDone(cfg.GroupID, 60*time.Second)
	if n := sumCounter(t, reg, "shoptrail_processor_visitors_evicted_total"); n < 100-4*8 {
		t.Errorf("%.0f visitors evicted, want at least %d", n, 100-4*8)
	}
	got := e.query(e.ch.Database, "SELECT count(), countIf(is_final = 1), sum(events) FROM sessions FINAL WHERE anonymous_id LIKE 'cap%'")
	if got != "100\t100\t100\n" {
		t.Errorf("sessions: %q, want 100 final sessions of one event", got)
	}
	got = e.query(e.ch.Database, "SELECT count() FROM event_sessions FINAL WHERE message_id LIKE 'm-cap%' AND status = 'assigned'")
	if got != "100\n" {
		t.Errorf("assigned events: %q", got)
	}
}

// TestIdlePartition: a partition that receives nothing more still closes
// its sessions, once it has been idle for IdleAdvance and its watermark
// follows the wall clock.
func TestIdlePartition(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Second)
	e.produce([]*shoptrail.Event{
		page("idle1", "m-idle1-1", now.Add(-50*time.Minute), "/"),
		page("idle1", "m-idle1-2", now.Add(-45*time.Minute), "/p"),
	})
	cfg := e.config("g-" + testenv.RandomSuffix())
	cfg.IdleAdvance = 500 * time.Millisecond
	e.start(cfg, e.ch)
	waitFor(t, 30*time.Second, "the idle partition's session", func() bool {
		return e.query(e.ch.Database, "SELECT count() FROM sessions FINAL WHERE anonymous_id = 'idle1' AND is_final = 1") == "1\n"
	})
	got := e.query(e.ch.Database, "SELECT events, landing_page, exit_page FROM sessions FINAL FORMAT TSV")
	if got != "2\t/\t/p\n" {
		t.Errorf("session = %q", got)
	}
}

// TestProvisionalSessions: an open session is in the sessions table long
// before its inactivity timeout, as a provisional row (is_final = 0) that
// the next checkpoints update, and its final row replaces it: with FINAL
// there is one row per session all along.
func TestProvisionalSessions(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("g-" + testenv.RandomSuffix())
	e.start(cfg, e.ch)
	tails := 0
	tail := func(minutes float64) []*shoptrail.Event {
		tails++
		evs := tailEvents(site, at(minutes))
		for _, ev := range evs {
			ev.MessageID += "-" + strconv.Itoa(tails)
		}
		return evs
	}
	row := func() string {
		return e.query(e.ch.Database, "SELECT count(), any(events), any(exit_page), any(is_final) FROM sessions FINAL WHERE anonymous_id = 'live1'")
	}
	// Settled (the watermark, 5 minutes behind the newest event, passes
	// them) but 30 minutes from closing.
	e.produce(append([]*shoptrail.Event{page("live1", "m-live1-1", at(0), "/"), page("live1", "m-live1-2", at(1), "/p/1")}, tail(7)...))
	waitFor(t, 60*time.Second, "a provisional row", func() bool { return row() == "1\t2\t/p/1\t0\n" })
	e.produce(append([]*shoptrail.Event{page("live1", "m-live1-3", at(3), "/cart")}, tail(9)...))
	waitFor(t, 60*time.Second, "the provisional row updated", func() bool { return row() == "1\t3\t/cart\t0\n" })
	e.produce(tail(48 * 60))
	e.waitDone(cfg.GroupID, 60*time.Second)
	if got := row(); got != "1\t3\t/cart\t1\n" {
		t.Errorf("after the session closed: %q, want its final row alone", got)
	}
}

// TestStateTopicMismatch: a state topic whose partition count differs from
// the events topic's cannot hold their state; the processor refuses to run.
func TestStateTopicMismatch(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("g-" + testenv.RandomSuffix())
	if err := e.broker.Cluster().CreateTopic(cfg.StateTopic, 2, map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	p, err := processor.New(cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Run(ctx); err == nil || !strings.Contains(err.Error(), "partitions do not match") {
		t.Fatalf("Run = %v, want a partition mismatch", err)
	}
}

// TestNoGoroutineLeak: a processor that ran and stopped leaves no
// goroutine behind (its readers, writers, group, ClickHouse connections).
func TestNoGoroutineLeak(t *testing.T) {
	testenv.Integration(t)
	chc, conn := testenv.Database(t)
	before := goleak.IgnoreCurrent()
	topic := "events-" + testenv.RandomSuffix()
	b, err := devstack.StartBroker(devstack.BrokerConfig{Partitions: partitions, Topics: []string{topic},
		Opts: []kfake.Opt{kfake.GroupMinSessionTimeout(100 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, broker: b, brokers: b.Addrs, topic: topic, ch: chc, conn: conn, http: testenv.ClickHouse(t).HTTPAddr}
	e.produce(append([]*shoptrail.Event{page("l1", "m-l1-1", at(0), "/")}, tailEvents(site, at(48*60))...))
	cfg := e.config("g-" + testenv.RandomSuffix())
	stop, _, _ := e.start(cfg, e.ch)
	e.waitDone(cfg.GroupID, 60*time.Second)
	stop()
	b.Close()
	// The test's own clients use kafka-go's default transport.
	kafka.DefaultTransport.(*kafka.Transport).CloseIdleConnections()
	noKeepAlive.CloseIdleConnections()
	goleak.VerifyNone(t, before)
}
