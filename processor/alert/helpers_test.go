package alert_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/alert"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

func TestMain(m *testing.M) {
	if childMain() {
		return
	}
	testenv.Main(m)
}

const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// env is one test's broker, signals topic, database and rules file.
type env struct {
	t       testing.TB
	brokers []string
	topic   string
	ch      clickhouse.Config
	conn    driver.Conn
	dir     string
	group   string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	topic := "signals-" + testenv.RandomSuffix()
	b := testenv.Broker(t, devstack.BrokerConfig{Partitions: 4, Topics: []string{topic},
		Opts: []kfake.Opt{kfake.GroupMinSessionTimeout(100 * time.Millisecond)}})
	chc, conn := testenv.Database(t)
	return &env{t: t, brokers: b.Addrs, topic: topic, ch: chc, conn: conn, dir: t.TempDir(), group: "alerter-" + testenv.RandomSuffix()}
}

// rules writes the rules file and returns its path.
func (e *env) rules(yaml string) string {
	p := filepath.Join(e.dir, "rules.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) config(rulesFile, id string) alert.Config {
	return alert.Config{Brokers: e.brokers, Topic: e.topic, GroupID: e.group, RulesFile: rulesFile, AllowLoopback: true,
		ID: id, RecordInterval: 50 * time.Millisecond, BackoffBase: time.Second,
		BackoffMax: time.Minute, Timeout: 5 * time.Second, SessionTimeout: time.Second}
}

// running is an alerter running in the test.
type running struct {
	a      *alert.Alerter
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func (e *env) start(cfg alert.Config, clock alert.Clock, reload chan struct{}) *running {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	a, err := alert.New(cfg, e.conn, alert.Options{Registerer: reg, Clock: clock, Reload: reload})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

func (r *running) stop(t testing.TB) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("alerter: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("alerter did not stop within 30s")
	}
}

// produce writes signals keyed by their Key, like the processor does.
func (e *env) produce(sigs ...*shoptrail.Signal) {
	e.t.Helper()
	tr := &kafka.Transport{}
	w := &kafka.Writer{Addr: kafka.TCP(e.brokers...), Topic: e.topic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, AllowAutoTopicCreation: true, Transport: tr}
	defer tr.CloseIdleConnections()
	defer w.Close()
	var ms []kafka.Message
	for _, s := range sigs {
		b, err := json.Marshal(s)
		if err != nil {
			e.t.Fatal(err)
		}
		ms = append(ms, kafka.Message{Key: []byte(s.Key()), Value: b})
	}
	if err := w.WriteMessages(context.Background(), ms...); err != nil {
		e.t.Fatal(err)
	}
}

// delivery is one alert_deliveries row (the columns tests look at).
type delivery struct {
	AlertID, Rule, Subject, Destination, Status, Alerter string
	Attempt                                              uint16
	Final, HeldOut                                       uint8
	HTTPStatus                                           uint16
}

func (e *env) deliveries() []delivery {
	e.t.Helper()
	rows, err := e.conn.Query(context.Background(), `SELECT alert_id, rule, subject, destination, status, alerter, attempt,
final, held_out, http_status FROM alert_deliveries ORDER BY alert_id, attempt, recorded_at`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []delivery
	for rows.Next() {
		var d delivery
		if err := rows.Scan(&d.AlertID, &d.Rule, &d.Subject, &d.Destination, &d.Status, &d.Alerter, &d.Attempt, &d.Final, &d.HeldOut, &d.HTTPStatus); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// finals counts final rows by status.
func finals(ds []delivery) map[string]int {
	m := map[string]int{}
	for _, d := range ds {
		if d.Final == 1 {
			m[d.Status]++
		}
	}
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receiver is a real HTTP listener that records what it got and answers
// with what the test sets.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []request
	// answer decides the status (and headers) of each request; nil is 200.
	answer func(r *http.Request, n int) (int, http.Header)
}

type request struct {
	ID     string
	Header http.Header
	Body   []byte
	URL    string
}

func newReceiver(t testing.TB) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, request{ID: r.Header.Get("webhook-id"), Header: r.Header.Clone(), Body: b, URL: r.URL.String()})
		n := len(rc.got)
		ans := rc.answer
		rc.mu.Unlock()
		status := 200
		if ans != nil {
			var h http.Header
			status, h = ans(r, n)
			for k, v := range h {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(status)
		if r.URL.Path == "/slack" && status == 200 {
			w.Write([]byte("ok"))
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) setAnswer(f func(r *http.Request, n int) (int, http.Header)) {
	rc.mu.Lock()
	rc.answer = f
	rc.mu.Unlock()
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.got...)
}

// ids returns the distinct webhook-ids of the 2xx-answered requests... all
// requests, and how many arrived more than once.
func (rc *receiver) ids() (distinct []string, repeats int) {
	seen := map[string]int{}
	for _, r := range rc.requests() {
		seen[r.ID]++
	}
	for id, n := range seen {
		distinct = append(distinct, id)
		repeats += n - 1
	}
	sort.Strings(distinct)
	return distinct, repeats
}

// fakeClock is an injected clock the test moves by hand.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock and fires the timers that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

// cart is an abandoned-cart signal.
func cart(id, customer string, value float64, tier string, at time.Time) *shoptrail.Signal {
	return &shoptrail.Signal{V: shoptrail.SignalVersion, ID: id, Type: shoptrail.SignalCartAbandoned, Site: "shop-1", At: at,
		CustomerID: customer,
		Customer:   &shoptrail.SignalCustomer{ID: customer, Name: "Customer " + customer, Tier: tier, Stage: shoptrail.StageFirstBuyer, OrderCount: 1},
		Cart: &shoptrail.SignalCart{CartID: "cart-" + id, Value: value, Currency: "CNY", ItemCount: 1, AbandonmentID: "ab-" + id,
			Items: []shoptrail.SignalCartItem{{ProductID: "p1", Name: "Board", Price: value, Quantity: 1}}, AbandonedAt: at}}
}

func metricValue(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}
