package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
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
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

const partitions = 4

// env is one test's broker, topic and database.
type env struct {
	t       testing.TB
	broker  *devstack.Broker
	brokers []string
	topic   string
	ch      clickhouse.Config
	conn    driver.Conn
	http    string // ClickHouse HTTP address
}

// newEnv starts a broker with a fresh topic of 4 partitions (and fast
// group session timeouts) and creates a migrated database.
func newEnv(t testing.TB) *env {
	t.Helper()
	topic := "events-" + testenv.RandomSuffix()
	b := testenv.Broker(t, devstack.BrokerConfig{
		Partitions: partitions,
		Topics:     []string{topic},
		Opts:       []kfake.Opt{kfake.GroupMinSessionTimeout(100 * time.Millisecond)},
	})
	chc, conn := testenv.Database(t)
	return &env{t: t, broker: b, brokers: b.Addrs, topic: topic, ch: chc, conn: conn, http: testenv.ClickHouse(t).HTTPAddr}
}

// database creates one more migrated database on the same server, for a
// second (reference) run.
func (e *env) database() (clickhouse.Config, driver.Conn) {
	return testenv.Database(e.t)
}

// config returns a processor config for a fresh group of this topic: small
// batches and checkpoints, fast group timeouts (but not so fast that a
// loaded machine, or the race detector, stalls a member past its session
// and leaves it writing after its successor took over), no wall-clock
// watermark.
func (e *env) config(group string) processor.Config {
	return processor.Config{
		Brokers:             e.brokers,
		Topic:               e.topic,
		GroupID:             group,
		StateTopic:          e.topic + "." + group + ".state",
		SignalsTopic:        e.topic + "." + group + ".signals",
		BatchSize:           2000,
		BatchInterval:       100 * time.Millisecond,
		CheckpointInterval:  300 * time.Millisecond,
		IdleAdvance:         -1,
		GroupSessionTimeout: 3 * time.Second,
		RebalanceTimeout:    10 * time.Second,
	}
}

// start runs a processor in this process until the returned stop is
// called (or the test ends).
func (e *env) start(cfg processor.Config, db clickhouse.Config) (stop func(), p *processor.Processor, reg *prometheus.Registry) {
	e.t.Helper()
	conn, err := clickhouse.Open(context.Background(), db)
	if err != nil {
		e.t.Fatal(err)
	}
	reg = prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err = processor.New(cfg, clickhouse.NewSink(conn, log, reg), log, reg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("processor: %v", err)
			}
			conn.Close()
		})
	}
	e.t.Cleanup(stop)
	return stop, p, reg
}

// produce writes events to the topic keyed like the collector does (FNV-1a
// of the visitor key), in order, acks=all. A nil event stands for a
// message that is not JSON, sent under key "garbage".
func (e *env) produce(events []*shoptrail.Event) {
	e.t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(e.brokers...),
		Topic:        e.topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		BatchSize:    1000,
		// As the collector produces by default.
		Compression: kafka.Lz4,
	}
	defer w.Close()
	msgs := make([]kafka.Message, 0, len(events))
	for i, ev := range events {
		if ev == nil {
			msgs = append(msgs, kafka.Message{Key: []byte("garbage"), Value: []byte(fmt.Sprintf(`{"v":1,"site":%d`, i))})
			continue
		}
		b, err := json.Marshal(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(ev.Key()), Value: b})
	}
	for len(msgs) > 0 {
		n := min(len(msgs), 5000)
		if err := w.WriteMessages(context.Background(), msgs[:n]...); err != nil {
			e.t.Fatalf("cannot produce: %v", err)
		}
		msgs = msgs[n:]
	}
}

// tailKeys returns one visitor key per partition (by the collector's
// partitioner): an event of each, far in the future, moves every
// partition's watermark past the sessions before it.
func tailKeys() []string {
	keys := make([]string, partitions)
	found := 0
	h := &kafka.Hash{}
	for i := 0; found < partitions; i++ {
		k := fmt.Sprintf("tail-%d", i)
		p := h.Balance(kafka.Message{Key: []byte(k)}, 0, 1, 2, 3)
		if keys[p] == "" {
			keys[p] = k
			found++
		}
	}
	return keys
}

// samePartition returns prefix, or prefix with a number appended, so that
// it falls on the partition of key.
func samePartition(prefix, key string) string { return keyOn(prefix, key, true) }

// otherPartition returns prefix with a number appended, so that it falls
// on another partition than key.
func otherPartition(prefix, key string) string { return keyOn(prefix+"0", key, false) }

// keyOn returns prefix, or prefix with a number appended, that falls on
// key's partition (same) or on another.
func keyOn(prefix, key string, same bool) string {
	h := &kafka.Hash{}
	p := h.Balance(kafka.Message{Key: []byte(key)}, 0, 1, 2, 3)
	for i := 0; ; i++ {
		k := prefix
		if i > 0 {
			k = fmt.Sprintf("%s%d", prefix, i)
		}
		if (h.Balance(kafka.Message{Key: []byte(k)}, 0, 1, 2, 3) == p) == same {
			return k
		}
	}
}

// newHTTPServer serves h on a loopback port until the test ends.
func newHTTPServer(t testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func tailEvents(site string, at time.Time) []*shoptrail.Event {
	var evs []*shoptrail.Event
	for _, k := range tailKeys() {
		evs = append(evs, &shoptrail.Event{V: 1, Site: site, MessageID: "msg-" + k, Type: shoptrail.TypeTrack,
			Event: "Tail", AnonymousID: k, Timestamp: at, ReceivedAt: at})
	}
	return evs
}

// endOffsets returns the end offset of each partition of the topic.
func (e *env) endOffsets() map[int]int64 {
	e.t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...)}
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := c.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{e.topic: reqs}})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int]int64{}
	for _, po := range resp.Topics[e.topic] {
		out[po.Partition] = po.LastOffset
	}
	return out
}

// committed returns the group's committed offset of each partition.
func (e *env) committed(group string) (map[int]int64, error) {
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 5 * time.Second}
	resp, err := c.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{
		GroupID: group, Topics: map[string][]int{e.topic: {0, 1, 2, 3}},
	})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[e.topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// waitDone waits until the group has committed every partition's end (all
// events are written and checkpointed), then for its customer stage to
// have merged what they sent (waitCustomers).
func (e *env) waitDone(group string, d time.Duration) {
	e.t.Helper()
	e.waitCommitted(group, d)
	e.waitCustomers(group, d)
}

// waitCommitted waits until the group has committed every partition's end.
func (e *env) waitCommitted(group string, d time.Duration) {
	e.t.Helper()
	end := e.endOffsets()
	waitFor(e.t, d, "group "+group+" to commit every partition's end", func() bool {
		got, err := e.committed(group)
		if err != nil {
			return false
		}
		for p, off := range end {
			if got[p] != off {
				return false
			}
		}
		return true
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// noKeepAlive leaves no idle connection behind: ClickHouse waits for open
// HTTP connections when it is stopped at the end of the tests.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// groupMembers returns how many members of the group have partitions.
func (e *env) groupMembers(group string) int {
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 5 * time.Second}
	resp, err := c.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(resp.Groups) != 1 || resp.Groups[0].GroupState != "Stable" {
		return -1
	}
	n := 0
	for _, m := range resp.Groups[0].Members {
		for _, t := range m.MemberAssignments.Topics {
			if len(t.Partitions) > 0 {
				n++
				break
			}
		}
	}
	return n
}

// query runs a query over ClickHouse's HTTP interface in db and returns
// the TSV result.
func (e *env) query(db, q string) string {
	e.t.Helper()
	u := "http://" + e.http + "/?database=" + db + "&query=" + url.QueryEscape(q)
	resp, err := noKeepAlive.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("query %q: %d %s %v", q, resp.StatusCode, b, err)
	}
	return string(b)
}

// tableDumps are the queries whose results must be equal between a run and
// its reference: every table the processor writes, in full, collapsed.
var tableDumps = map[string]string{
	"events":            "SELECT * FROM events FINAL ORDER BY site, message_id",
	"event_sessions":    "SELECT * FROM event_sessions FINAL ORDER BY site, message_id",
	"sessions":          "SELECT * FROM sessions FINAL ORDER BY site, session_id",
	"identity_links":    "SELECT * FROM identity_links FINAL ORDER BY site, anonymous_id, customer_id, first_seen",
	"delivery_loss":     "SELECT * FROM delivery_loss FINAL ORDER BY site, browser, page_path, kafka_partition, bucket_offset",
	"dead_letters":      "SELECT table_name, row_key, topic, kafka_partition, kafka_offset, time, error_code, error, payload FROM dead_letters FINAL ORDER BY table_name, row_key",
	"cart_abandonments": "SELECT * FROM cart_abandonments FINAL ORDER BY site, abandonment_id",
	"orders":            "SELECT * FROM orders FINAL ORDER BY site, order_id",
	"order_updates":     "SELECT * FROM order_updates FINAL ORDER BY site, order_id, message_id",
	"customers":         "SELECT * FROM customers FINAL ORDER BY site, customer_id",
	"customer_trans":    "SELECT * FROM customer_transitions FINAL ORDER BY site, kind, at, customer_id, transition_id",
	"customer_orders":   "SELECT * FROM customer_orders FINAL ORDER BY site, order_id",
}

// compareTables fails the test unless every table of db equals that of ref
// (after FINAL), and reports the row counts.
func (e *env) compareTables(db, ref string) {
	e.t.Helper()
	names := make([]string, 0, len(tableDumps))
	for n := range tableDumps {
		names = append(names, n)
	}
	slices.Sort(names)
	var counts []string
	for _, n := range names {
		got, want := e.query(db, tableDumps[n]), e.query(ref, tableDumps[n])
		counts = append(counts, fmt.Sprintf("%s=%d", n, strings.Count(want, "\n")))
		if got != want {
			e.t.Errorf("table %s differs from the reference run:\n%s", n, lineDiff(got, want))
		}
	}
	e.t.Logf("tables equal to the reference: %s", strings.Join(counts, " "))
}

// lineDiff shows the first lines only one side has.
func lineDiff(got, want string) string {
	g := strings.Split(got, "\n")
	w := strings.Split(want, "\n")
	inG := map[string]int{}
	for _, l := range g {
		inG[l]++
	}
	inW := map[string]int{}
	for _, l := range w {
		inW[l]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "got %d lines, want %d\n", len(g), len(w))
	n := 0
	for _, l := range g {
		if inW[l] < inG[l] && n < 5 {
			fmt.Fprintf(&b, "+ %s\n", l)
			n++
		}
	}
	n = 0
	for _, l := range w {
		if inG[l] < inW[l] && n < 5 {
			fmt.Fprintf(&b, "- %s\n", l)
			n++
		}
	}
	return b.String()
}
