package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// stack is a collector serving on a loopback port, producing to a broker.
type stack struct {
	url    string
	srv    *Server
	broker *devstack.Broker
	reg    *prometheus.Registry
	stop   func() // shuts the collector down and waits (idempotent)
}

// startCollector runs a collector against broker (a fresh one when nil)
// until the test ends, and waits until it is ready.
func startCollector(t *testing.T, cfg Config, broker *devstack.Broker) *stack {
	t.Helper()
	testenv.Integration(t)
	if broker == nil {
		broker = testenv.Broker(t, devstack.BrokerConfig{})
	}
	if len(cfg.Brokers) == 0 {
		cfg.Brokers = broker.Addrs
	}
	if cfg.IPRate == 0 {
		cfg.IPRate = -1
	}
	if cfg.KeyRate == 0 {
		cfg.KeyRate = -1
	}
	reg := prometheus.NewRegistry()
	s, err := NewWithOptions(cfg, Options{Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	st := &stack{url: "http://" + ln.Addr().String(), srv: s, broker: broker, reg: reg}
	st.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("collector: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		st.stop()
		http.DefaultClient.CloseIdleConnections()
	})
	waitFor(t, 90*time.Second, "collector ready", func() bool { return get(st.url+"/readyz") == 200 })
	return st
}

func get(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type reply struct {
	code   int
	header http.Header
	json   map[string]any
}

func send(t *testing.T, method, url string, body []byte, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, header: resp.Header}
	json.Unmarshal(b, &r.json)
	return r
}

// topicMessages reads every message of topic currently in the broker.
func topicMessages(t *testing.T, addr, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for _, p := range parts {
		lc, err := kafka.DialLeader(ctx, "tcp", addr, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		last, err := lc.ReadLastOffset()
		lc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("reading %s/%d: %v", topic, p.ID, err)
			}
			out = append(out, m)
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

func events(t *testing.T, msgs []kafka.Message) map[string]shoptrail.Event {
	t.Helper()
	out := map[string]shoptrail.Event{}
	for _, m := range msgs {
		var e shoptrail.Event
		if err := json.Unmarshal(m.Value, &e); err != nil {
			t.Fatalf("event %s: %v", m.Value, err)
		}
		if string(m.Key) != e.Key() {
			t.Errorf("event %s has key %q, want %q", e.MessageID, m.Key, e.Key())
		}
		out[e.MessageID] = e
	}
	return out
}

// TestSegmentAPI sends every Segment call the way the SDKs do — Basic auth
// (analytics.js), writeKey in the body (analytics-node, sendBeacon with
// text/plain), gzip — and finds each event in Kafka.
func TestSegmentAPI(t *testing.T) {
	st := startCollector(t, Config{}, nil)
	basic := []string{"Authorization", "Basic ZGV2Og==", "Content-Type", "application/json"}
	ok := func(r reply) {
		t.Helper()
		if r.code != 200 || r.json["success"] != true {
			t.Fatalf("got %d %v", r.code, r.json)
		}
	}
	ok(send(t, "POST", st.url+"/v1/batch", []byte(`{"batch":[
	  {"type":"page","name":"Home","anonymousId":"a1","messageId":"b-page"},
	  {"type":"track","event":"Product Viewed","anonymousId":"a1","messageId":"b-track","properties":{"product_id":"p1","price":3}}]}`), basic...))
	ok(send(t, "POST", st.url+"/v1/track", []byte(`{"event":"Order Completed","userId":"u1","messageId":"t-1","writeKey":"dev","properties":{"order_id":"o1","total":3,"currency":"USD"}}`), "Content-Type", "text/plain"))
	ok(send(t, "POST", st.url+"/v1/page", []byte(`{"anonymousId":"a1","messageId":"p-1","name":"Cart"}`), basic...))
	ok(send(t, "POST", st.url+"/v1/screen", []byte(`{"anonymousId":"a1","messageId":"s-1","name":"Home"}`), basic...))
	ok(send(t, "POST", st.url+"/v1/identify", []byte(`{"anonymousId":"a1","userId":"u1","messageId":"i-1","traits":{"company":"ACME"}}`), basic...))
	ok(send(t, "POST", st.url+"/v1/group", []byte(`{"userId":"u1","groupId":"g1","messageId":"g-1","traits":{"name":"ACME"}}`), basic...))
	ok(send(t, "POST", st.url+"/v1/alias", []byte(`{"userId":"u1","previousId":"a1","messageId":"al-1"}`), basic...))
	// analytics.js (analytics-next): the calls' first letters, writeKey in
	// each message, text/plain.
	ok(send(t, "POST", st.url+"/v1/t", []byte(`{"type":"track","event":"Cart Viewed","anonymousId":"a1","messageId":"ajs-t","writeKey":"dev","sentAt":"2026-11-22T10:00:00Z"}`), "Content-Type", "text/plain"))
	ok(send(t, "POST", st.url+"/v1/p", []byte(`{"type":"page","anonymousId":"a1","messageId":"ajs-p","writeKey":"dev"}`), "Content-Type", "text/plain"))
	ok(send(t, "POST", st.url+"/v1/b", []byte(`{"batch":[{"type":"identify","userId":"u3","messageId":"ajs-b","writeKey":"dev"}],"sentAt":"2026-11-22T10:00:00Z"}`), "Content-Type", "text/plain"))
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte(`{"batch":[{"type":"track","event":"Signed Up","userId":"u2","messageId":"gz-1"}],"writeKey":"dev"}`))
	zw.Close()
	ok(send(t, "POST", st.url+"/v1/batch", zb.Bytes(), "Content-Encoding", "gzip", "Content-Type", "application/json"))

	got := events(t, topicMessages(t, st.broker.Addrs[0], shoptrail.TopicEvents))
	want := map[string]string{"b-page": "page", "b-track": "track", "t-1": "track", "p-1": "page", "s-1": "screen",
		"i-1": "identify", "g-1": "group", "al-1": "alias", "gz-1": "track", "ajs-t": "track", "ajs-p": "page", "ajs-b": "identify"}
	if len(got) != len(want) {
		t.Errorf("%d events in Kafka, want %d", len(got), len(want))
	}
	for id, typ := range want {
		e, found := got[id]
		if !found || e.Type != typ || e.Site != "dev" || e.V != shoptrail.EventVersion || e.ReceivedAt.IsZero() {
			t.Errorf("event %s = %+v, want type %s", id, e, typ)
		}
	}
	if e := got["i-1"]; string(e.Traits) != `{"company":"ACME"}` || e.Context.Device.Class != "server" || e.Context.IP != "127.0.0.0" {
		t.Errorf("identify = %+v", e)
	}
	if e := got["al-1"]; e.PreviousID != "a1" || e.UserID != "u1" {
		t.Errorf("alias = %+v", e)
	}
}

// TestMetricsEndpoint: /metrics tells accepted, rejected (by reason) and
// shed events, request and produce latency, in-flight bytes.
func TestMetricsEndpoint(t *testing.T) {
	st := startCollector(t, Config{}, nil)
	send(t, "POST", st.url+"/v1/batch", []byte(`{"writeKey":"dev","batch":[{"type":"track","event":"E","anonymousId":"a"},{"type":"track","anonymousId":"a"}]}`))
	resp, err := http.Get(st.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`shoptrail_collector_events_total{reason="",result="accepted"} 1`,
		`shoptrail_collector_events_total{reason="invalid",result="rejected"} 1`,
		`shoptrail_collector_request_duration_seconds_count{code="400",route="batch"} 1`,
		`shoptrail_collector_kafka_produce_duration_seconds_count{topic="shoptrail.events"}`,
		`shoptrail_collector_inflight_bytes 0`,
		`shoptrail_collector_ready 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// ledger runs clients that send batches of fresh ids until stop, and
// remembers the ids of every batch answered 2xx.
type ledger struct {
	mu       sync.Mutex
	acked    map[string]bool
	statuses map[int]int
	retry    atomic.Int64 // 503s that carried Retry-After
	noRetry  atomic.Int64
	seq      atomic.Int64
}

func newLedger() *ledger { return &ledger{acked: map[string]bool{}, statuses: map[int]int{}} }

func (l *ledger) run(t *testing.T, url string, clients, batch int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	pad := strings.Repeat("x", 300)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var ids []string
				var b strings.Builder
				b.WriteString(`{"writeKey":"dev","batch":[`)
				for i := 0; i < batch; i++ {
					id := fmt.Sprintf("ledger-%d", l.seq.Add(1))
					ids = append(ids, id)
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"type":"track","event":"E","anonymousId":"v%d","messageId":%q,"properties":{"pad":%q}}`, i, id, pad)
				}
				b.WriteString("]}")
				resp, err := cl.Post(url+"/v1/batch", "text/plain", strings.NewReader(b.String()))
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				l.mu.Lock()
				l.statuses[resp.StatusCode]++
				if resp.StatusCode/100 == 2 {
					for _, id := range ids {
						l.acked[id] = true
					}
				}
				l.mu.Unlock()
				if resp.StatusCode == 503 {
					if resp.Header.Get("Retry-After") != "" {
						l.retry.Add(1)
					} else {
						l.noRetry.Add(1)
					}
					time.Sleep(5 * time.Millisecond) // a client backing off a little
				}
			}
		}()
	}
	wg.Wait()
}

// check fails the test unless every acknowledged id is in the topic.
func (l *ledger) check(t *testing.T, addr string) {
	t.Helper()
	got := events(t, topicMessages(t, addr, shoptrail.TopicEvents))
	missing := 0
	for id := range l.acked {
		if _, ok := got[id]; !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged events are not in Kafka", missing, len(l.acked))
	}
	if len(l.acked) == 0 {
		t.Error("no event was acknowledged")
	}
	t.Logf("statuses %v, %d acknowledged events all in Kafka (%d events there)", l.statuses, len(l.acked), len(got))
}

// TestOverloadShedsAndLosesNothing: a broker slowed to a crawl and ten
// times more concurrent requests than the in-flight budget holds. The
// collector sheds with 503 + Retry-After, its memory stays bounded, and
// every event it acknowledged is in Kafka.
func TestOverloadShedsAndLosesNothing(t *testing.T) {
	broker := testenv.Broker(t, devstack.BrokerConfig{})
	st := startCollector(t, Config{MaxBodyBytes: 64 << 10, MaxInflightBytes: 4 << 20}, broker)
	var slow atomic.Bool
	slow.Store(true)
	c := broker.Cluster()
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if slow.Load() {
			c.SleepControl(func() { time.Sleep(30 * time.Millisecond) })
		}
		return nil, nil, false
	})
	l := newLedger()
	stop := make(chan struct{})
	var peak atomic.Uint64
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			default:
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	// 4 MiB budget / (4 x 64 KiB + 8 KiB) per request = 15 in flight; 150
	// clients are ten times that.
	time.AfterFunc(3*time.Second, func() { close(stop) })
	l.run(t, st.url, 150, 20, stop)
	slow.Store(false)
	st.stop() // graceful: flushes what it accepted
	if l.statuses[503] == 0 || l.noRetry.Load() > 0 {
		t.Errorf("statuses %v: want 503s, all with Retry-After (%d without)", l.statuses, l.noRetry.Load())
	}
	if p := peak.Load(); p > 512<<20 {
		t.Errorf("heap in use peaked at %d MiB (collector and broker together), want < 512", p>>20)
	}
	t.Logf("peak heap in use %d MiB", peak.Load()>>20)
	l.check(t, broker.Addrs[0])
}

// TestBrokerDownAndBack: with the broker gone the collector answers 503
// within its produce timeout and turns unready; once the broker is back
// (from its data directory) it is ready again; every acknowledged event is
// in Kafka.
func TestBrokerDownAndBack(t *testing.T) {
	testenv.Integration(t)
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bc := devstack.BrokerConfig{Port: port, DataDir: dir}
	broker, err := devstack.StartBroker(bc)
	if err != nil {
		t.Fatal(err)
	}
	st := startCollector(t, Config{ProduceTimeout: time.Second}, broker)
	l := newLedger()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { l.run(t, st.url, 8, 5, stop); close(done) }()
	waitFor(t, 60*time.Second, "events acknowledged", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.acked) > 100 })
	broker.Close()
	waitFor(t, 60*time.Second, "collector unready", func() bool { return get(st.url+"/readyz") == 503 })
	start := time.Now()
	r := send(t, "POST", st.url+"/v1/track", []byte(`{"writeKey":"dev","event":"E","anonymousId":"down"}`))
	if r.code != 503 || r.header.Get("Retry-After") == "" || time.Since(start) > 5*time.Second {
		t.Errorf("with the broker down: %d %v after %v, want 503 with Retry-After within the produce timeout", r.code, r.json, time.Since(start))
	}
	broker, err = devstack.StartBroker(bc)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	waitFor(t, 90*time.Second, "collector ready again", func() bool { return get(st.url+"/readyz") == 200 })
	l.mu.Lock()
	n := len(l.acked)
	l.mu.Unlock()
	waitFor(t, 60*time.Second, "events acknowledged again", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.acked) > n+100 })
	close(stop)
	<-done
	st.stop()
	l.check(t, broker.Addrs[0])
}

// TestUnreadyUntilBrokerReachable: /readyz answers 503 until a produce
// succeeded.
func TestUnreadyUntilBrokerReachable(t *testing.T) {
	testenv.Integration(t)
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	reg := prometheus.NewRegistry()
	s, err := NewWithOptions(Config{Brokers: []string{addr}, ProduceTimeout: time.Second}, Options{Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	url := "http://" + ln.Addr().String()
	for i := 0; i < 5; i++ {
		if c := get(url + "/readyz"); c != 503 {
			t.Fatalf("readyz = %d without a broker", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := devstack.StartBroker(devstack.BrokerConfig{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitFor(t, 90*time.Second, "ready once the broker is up", func() bool { return get(url+"/readyz") == 200 })
}

// TestShutdownFlushes: a shutdown during load answers every request in
// flight, and every acknowledged event is in Kafka.
func TestShutdownFlushes(t *testing.T) {
	broker := testenv.Broker(t, devstack.BrokerConfig{})
	st := startCollector(t, Config{}, broker)
	l := newLedger()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { l.run(t, st.url, 16, 10, stop); close(done) }()
	waitFor(t, 60*time.Second, "events acknowledged", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.acked) > 200 })
	st.stop()
	close(stop)
	<-done
	l.check(t, broker.Addrs[0])
}

// TestSlowAndOversizedClients: a client dribbling its headers or body is
// cut off after the read timeout (no slowloris), and headers over 16 KiB
// are refused.
func TestSlowAndOversizedClients(t *testing.T) {
	st := startCollector(t, Config{ReadTimeout: 300 * time.Millisecond}, nil)
	addr := strings.TrimPrefix(st.url, "http://")
	for _, partial := range []string{
		"POST /v1/track HTTP/1.1\r\nHost: x\r\nX-Slow: ",                                // headers never end
		"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"event\":", // body never ends
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c.Write([]byte(partial))
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		io.Copy(io.Discard, c) // returns when the server closes the connection
		c.Close()
		// Cut off, not held: generous for a busy machine, far below 60 s.
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("a slow client held its connection for %v (read timeout 300ms)", d)
		}
	}
	r := send(t, "POST", st.url+"/v1/track", []byte(`{}`), "X-Big", strings.Repeat("h", 40<<10))
	if r.code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("40 KiB header: %d, want 431", r.code)
	}
}
