package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// startStack runs the collector and the processor against a fresh broker
// and database, and stops them when the test ends.
func startStack(t *testing.T) (collectorURL string, query func(q string, dest ...any) error) {
	t.Helper()
	url, query, _ := startStackCH(t)
	return url, query
}

// startStackCH is startStack that also tells how to reach its ClickHouse
// database.
func startStackCH(t *testing.T) (collectorURL string, query func(q string, dest ...any) error, chc clickhouse.Config) {
	t.Helper()
	chc, conn := testenv.Database(t)
	broker := testenv.Broker(t, devstack.BrokerConfig{})
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	brokers := strings.Join(broker.Addrs, ",")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(name string, f func(context.Context, []string) error, args ...string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx, args); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	run("collector", runCollector, "-http.addr="+addr, "-kafka.brokers="+brokers, "-sites=shop=key1|key2@*,other=okey", "-log.level=warn")
	run("processor", runProcessor, "-http.addr=127.0.0.1:0", "-kafka.brokers="+brokers, "-clickhouse.addr="+chc.Addr,
		"-clickhouse.database="+chc.Database, "-batch.interval=100ms", "-kafka.group=test-"+testenv.RandomSuffix(), "-log.level=warn")
	t.Cleanup(func() { cancel(); wg.Wait() })
	url := "http://" + addr
	waitFor(t, 2*time.Minute, "collector ready", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return url, func(q string, dest ...any) error {
		return conn.QueryRow(context.Background(), q).Scan(dest...)
	}, chc
}

// waitFor polls cond until it holds or the deadline passes.
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

func post(t *testing.T, url, user, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if user != "" {
		req.SetBasicAuth(user, "")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("response to %s is not JSON: %v", url, err)
	}
	return resp.StatusCode, out
}

// TestPipeline posts a Segment batch and finds exactly those events, field
// by field, in ClickHouse.
func TestPipeline(t *testing.T) {
	url, query := startStack(t)
	batch := `{"batch":[
	  {"type":"page","name":"Home","anonymousId":"anon-1","messageId":"msg-page-1","timestamp":"2026-11-22T10:00:00.250Z",
	   "context":{"page":{"url":"https://shop.example/?utm_source=baidu","path":"/","referrer":"https://www.baidu.com/s?wd=x","title":"Home"},
	              "campaign":{"source":"baidu","medium":"cpc","name":"winter","term":"resistor","content":"ad1"},
	              "userAgent":"Mozilla/5.0 (X11; Linux x86_64)","locale":"zh-CN","library":{"name":"analytics.js","version":"2.1"}}},
	  {"type":"track","event":"Product Added","anonymousId":"anon-1","messageId":"msg-add-1","timestamp":"2026-11-22T10:00:05Z",
	   "properties":{"cart_id":"c1","product_id":"p1","price":9.5,"quantity":2}},
	  {"type":"identify","userId":"cust-7","anonymousId":"anon-1","messageId":"msg-id-1","timestamp":"2026-11-22T10:00:06Z",
	   "traits":{"company":"ACME","customer_type":"enterprise"}}
	],"sentAt":"2026-11-22T10:00:10Z"}`
	before := time.Now().UTC().Add(-time.Second)
	status, out := post(t, url+"/v1/batch", "key1", batch)
	if status != 200 || out["success"] != true {
		t.Fatalf("batch: %d %v", status, out)
	}
	status, out = post(t, url+"/v1/track", "", `{"writeKey":"key2","event":"Order Completed","userId":"cust-7","messageId":"msg-order-1",
	  "timestamp":"2026-11-22T10:01:00Z","properties":{"order_id":"o1","revenue":19}}`)
	if status != 200 || out["success"] != true {
		t.Fatalf("track: %d %v", status, out)
	}
	waitFor(t, 2*time.Minute, "4 events in ClickHouse", func() bool {
		var n uint64
		return query("SELECT count() FROM events FINAL", &n) == nil && n == 4
	})

	type row struct {
		site, typ, event, name, anon, user, url, path, ref, title string
		src, med, camp, term, content, ua, locale, lib, props     string
		traits                                                    string
		eventTime, received, original                             time.Time
	}
	get := func(id string) row {
		t.Helper()
		var r row
		err := query(`SELECT site, type, event, name, anonymous_id, user_id, page_url, page_path, page_referrer, page_title,
		  utm_source, utm_medium, utm_campaign, utm_term, utm_content, user_agent, locale, library, properties, traits,
		  original_time, event_time, received_at FROM events FINAL WHERE message_id = '`+id+`'`,
			&r.site, &r.typ, &r.event, &r.name, &r.anon, &r.user, &r.url, &r.path, &r.ref, &r.title,
			&r.src, &r.med, &r.camp, &r.term, &r.content, &r.ua, &r.locale, &r.lib, &r.props, &r.traits,
			&r.original, &r.eventTime, &r.received)
		if err != nil {
			t.Fatalf("event %s: %v", id, err)
		}
		return r
	}
	page := get("msg-page-1")
	want := row{site: "shop", typ: "page", name: "Home", anon: "anon-1", url: "https://shop.example/?utm_source=baidu", path: "/",
		ref: "https://www.baidu.com/s?wd=x", title: "Home", src: "baidu", med: "cpc", camp: "winter", term: "resistor", content: "ad1",
		ua: "Mozilla/5.0 (X11; Linux x86_64)", locale: "zh-CN", lib: "analytics.js/2.1", props: "{}", traits: "{}"}
	// Clock skew: the client's clock is days behind, so the event time is
	// receivedAt - (sentAt - timestamp) = receivedAt - 9.75 s.
	if got := page.received.Sub(page.eventTime); got < 9*time.Second || got > 11*time.Second {
		t.Errorf("page event time %v is %v before receive time %v, want about 9.75s", page.eventTime, got, page.received)
	}
	if page.received.Before(before.Truncate(time.Second)) {
		t.Errorf("received_at %v is before the request was sent (%v)", page.received, before)
	}
	if want := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC); !page.original.Equal(want) {
		t.Errorf("original_time = %v, want the client's %v", page.original, want)
	}
	page.eventTime, page.received, page.original = time.Time{}, time.Time{}, time.Time{}
	if page != want {
		t.Errorf("page row\n got %+v\nwant %+v", page, want)
	}
	add := get("msg-add-1")
	if add.typ != "track" || add.event != "Product Added" || add.anon != "anon-1" || add.site != "shop" {
		t.Errorf("add row = %+v", add)
	}
	var props map[string]any
	if err := json.Unmarshal([]byte(add.props), &props); err != nil || props["price"] != 9.5 || props["quantity"] != 2.0 || props["cart_id"] != "c1" {
		t.Errorf("add properties = %s (%v)", add.props, err)
	}
	ident := get("msg-id-1")
	if ident.typ != "identify" || ident.user != "cust-7" || ident.anon != "anon-1" || !strings.Contains(ident.traits, `"company":"ACME"`) {
		t.Errorf("identify row = %+v", ident)
	}
	order := get("msg-order-1")
	if order.typ != "track" || order.event != "Order Completed" || order.user != "cust-7" || order.anon != "" ||
		!strings.Contains(order.props, `"order_id":"o1"`) {
		t.Errorf("order row = %+v", order)
	}
}

// TestBadInput checks that each kind of bad request gets a 4xx with a JSON
// error saying what is wrong, and that nothing of it is stored.
func TestBadInput(t *testing.T) {
	url, query := startStack(t)
	valid := `{"type":"track","event":"E","anonymousId":"a","messageId":"bad-input-valid"}`
	big := `{"batch":[` + strings.Repeat(valid+",", 600<<10/len(valid)) + valid + `]}`
	for _, c := range []struct {
		name, path, user, body string
		status                 int
		want                   string
	}{
		{"not JSON", "/v1/batch", "key1", "{not json", 400, "not a JSON batch"},
		{"missing write key", "/v1/batch", "", `{"batch":[` + valid + `]}`, 401, "missing write key"},
		{"unknown write key", "/v1/batch", "nokey", `{"batch":[` + valid + `]}`, 401, "unknown write key"},
		{"body over the limit", "/v1/batch", "key1", big, 413, "larger than"},
		{"too many events", "/v1/batch", "key1", `{"batch":[` + strings.Repeat(valid+",", 500) + valid + `]}`, 413, "limit is 500"},
		{"empty batch", "/v1/batch", "key1", `{"batch":[]}`, 400, "empty"},
		{"track without event name", "/v1/track", "key1", `{"anonymousId":"a"}`, 400, "needs an event name"},
		{"no ids", "/v1/page", "key1", `{"name":"x"}`, 400, "anonymousId or a userId"},
		{"bad timestamp", "/v1/track", "key1", `{"event":"E","anonymousId":"a","timestamp":"yesterday"}`, 400, "not an ISO 8601 time"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := post(t, url+c.path, c.user, c.body)
			msg, _ := out["error"].(string)
			if status != c.status || !strings.Contains(msg, c.want) || out["success"] != false {
				t.Errorf("got %d %q, want %d with an error containing %q", status, msg, c.status, c.want)
			}
		})
	}
	// A batch with one bad event: the valid one is accepted, the bad one
	// named in the error.
	status, out := post(t, url+"/v1/batch", "key1", `{"batch":[`+valid+`,{"type":"track","anonymousId":"a"}]}`)
	if msg, _ := out["error"].(string); status != 400 || !strings.Contains(msg, "event 1: track message needs an event name") {
		t.Errorf("mixed batch: %d %v", status, out)
	}
	waitFor(t, 2*time.Minute, "the valid event in ClickHouse", func() bool {
		var n uint64
		return query("SELECT count() FROM events WHERE message_id = 'bad-input-valid'", &n) == nil && n >= 1
	})
	var total uint64
	if err := query("SELECT uniqExact(message_id) FROM events", &total); err != nil || total != 1 {
		t.Errorf("events stored = %d (%v), want only the valid one", total, err)
	}
}
