package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
)

// recorder is a Producer that keeps copies of what it was given.
type recorder struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (r *recorder) Produce(_ context.Context, msgs []kafka.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		m.Key, m.Value = bytes.Clone(m.Key), bytes.Clone(m.Value)
		r.msgs = append(r.msgs, m)
	}
	return nil
}
func (r *recorder) Close() error { return nil }

func (r *recorder) topic(t string) []kafka.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []kafka.Message
	for _, m := range r.msgs {
		if m.Topic == t {
			out = append(out, m)
		}
	}
	return out
}

func newTestServer(t testing.TB, cfg Config) (*Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	if cfg.IPRate == 0 {
		cfg.IPRate = -1
	}
	if cfg.KeyRate == 0 {
		cfg.KeyRate = -1
	}
	s, err := NewWithOptions(cfg, Options{Producer: rec})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

type answer struct {
	code   int
	header http.Header
	body   []byte
	json   map[string]any
}

func do(h http.Handler, method, path string, body []byte, header ...string) answer {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.RemoteAddr = "192.0.2.10:5555"
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	a := answer{code: w.Code, header: w.Header(), body: w.Body.Bytes()}
	json.Unmarshal(a.body, &a.json)
	return a
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// TestHostileInputs: each hostile input gets its documented status and an
// error naming the problem; nothing crashes, and the valid events of a
// batch are kept.
func TestHostileInputs(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	h := s.Handler()
	ev := func(props string) string {
		return `{"type":"track","event":"Order Completed","anonymousId":"a1","properties":` + props + `}`
	}
	deep := strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40)
	tooDeepForParser := strings.Repeat(`[`, 100000) + strings.Repeat(`]`, 100000)
	for _, c := range []struct {
		name, path string
		body       []byte
		header     []string
		code       int
		want       string
	}{
		{"wrong type of event name", "/v1/track", []byte(`{"event":42,"anonymousId":"a"}`), nil, 400, "event must be a string, not a number"},
		{"wrong type of properties", "/v1/track", []byte(`{"event":"E","anonymousId":"a","properties":[1]}`), nil, 400, "properties must be an object, not an array"},
		{"wrong type of context", "/v1/page", []byte(`{"anonymousId":"a","context":"x"}`), nil, 400, "context must be an object"},
		{"wrong type of page url", "/v1/page", []byte(`{"anonymousId":"a","context":{"page":{"url":7}}}`), nil, 400, "context.page.url must be a string"},
		{"object as id", "/v1/track", []byte(`{"event":"E","anonymousId":{"x":1}}`), nil, 400, "anonymousId must be a string or a number, not an object"},
		{"huge number as price", "/v1/track", []byte(ev(`{"order_id":"o","price":1e999}`)), nil, 400, "properties.price is not a finite number"},
		{"out of range revenue", "/v1/track", []byte(ev(`{"order_id":"o","revenue":1e20}`)), nil, 400, "properties.revenue is out of range"},
		{"price as string", "/v1/track", []byte(ev(`{"order_id":"o","price":"9.50"}`)), nil, 400, "properties.price must be a number, not a string"},
		{"NaN price", "/v1/track", []byte(ev(`{"order_id":"o","price":"NaN"}`)), nil, 400, "properties.price must be a number"},
		{"NaN literal", "/v1/track", []byte(ev(`{"order_id":"o","price":NaN}`)), nil, 400, "body is not a JSON message"},
		{"negative quantity", "/v1/track", []byte(ev(`{"order_id":"o","quantity":-2}`)), nil, 400, "properties.quantity must be from 0 to 1e9"},
		{"negative price in products", "/v1/track", []byte(ev(`{"order_id":"o","products":[{"product_id":"p","price":-1}]}`)), nil, 400, "properties.products[0].price must not be negative"},
		{"bad currency", "/v1/track", []byte(ev(`{"order_id":"o","currency":"dollars"}`)), nil, 400, `properties.currency "dollars" is not an ISO 4217 code`},
		{"order without order_id", "/v1/track", []byte(ev(`{"revenue":10}`)), nil, 400, `"Order Completed" needs properties.order_id`},
		{"empty order_id", "/v1/track", []byte(ev(`{"order_id":""}`)), nil, 400, "properties.order_id must not be empty"},
		{"product added without id", "/v1/track", []byte(`{"event":"Product Added","anonymousId":"a","properties":{"price":1}}`), nil, 400, "needs properties.product_id or properties.sku"},
		// Empty ids are absent (SDKs send "userId": "" before identify).
		{"blank anonymousId and no userId", "/v1/track", []byte(`{"event":"E","anonymousId":"  ","userId":""}`), nil, 400, "message needs an anonymousId or a userId"},
		{"no ids", "/v1/track", []byte(`{"event":"E"}`), nil, 400, "message needs an anonymousId or a userId"},
		{"overlong event name", "/v1/track", []byte(`{"event":"` + strings.Repeat("E", 201) + `","anonymousId":"a"}`), nil, 400, "event is longer than 200 bytes"},
		{"control characters in event name", "/v1/track", []byte(`{"event":"a\u0000b","anonymousId":"a"}`), nil, 400, "event contains control characters"},
		{"unknown type", "/v1/batch", []byte(`{"batch":[{"type":"purchase","anonymousId":"a"}]}`), nil, 400, "type must be track, page, screen, identify, group or alias"},
		{"type against endpoint", "/v1/track", []byte(`{"type":"page","event":"E","anonymousId":"a"}`), nil, 400, `type is "page" but the endpoint is /v1/track`},
		{"deep nesting", "/v1/track", []byte(`{"event":"E","anonymousId":"a","properties":` + deep + `}`), nil, 400, "nests objects or arrays deeper than 16 levels"},
		{"nesting beyond the parser", "/v1/batch", []byte(tooDeepForParser), nil, 400, "body is not a JSON batch"},
		{"invalid UTF-8", "/v1/track", []byte("{\"event\":\"E\xff\",\"anonymousId\":\"a\"}"), nil, 400, "contains invalid UTF-8"},
		{"10 MB body", "/v1/batch", bytes.Repeat([]byte(" "), 10<<20), nil, 413, "body is larger than 524288 bytes"},
		{"gzip bomb", "/v1/batch", gz(bytes.Repeat([]byte(" "), 10<<20)), []string{"Content-Encoding", "gzip"}, 413, "body is larger than"},
		{"bad gzip", "/v1/batch", []byte("not gzip"), []string{"Content-Encoding", "gzip"}, 400, "not valid gzip"},
		{"event over 32 KiB", "/v1/track", []byte(`{"event":"E","anonymousId":"a","properties":{"x":"` + strings.Repeat("y", 33<<10) + `"}}`), nil, 400, "event is larger than 32768 bytes"},
		{"event over 32 KiB with its context", "/v1/page", []byte(`{"anonymousId":"a","properties":{"x":"` + strings.Repeat("y", 30<<10) + `"},"context":{"page":{"url":"https://s.example/` + strings.Repeat("u", 2000) + `","referrer":"https://r.example/` + strings.Repeat("r", 2000) + `","title":"` + strings.Repeat("t", 500) + `"}}}`), nil, 400, "event is larger than 32768 bytes"},
		{"batch not an array", "/v1/batch", []byte(`{"batch":{}}`), nil, 400, `"batch" must be an array`},
		{"body an array", "/v1/batch", []byte(`[1,2]`), nil, 400, "not a JSON batch"},
		{"event not an object", "/v1/batch", []byte(`{"batch":[7]}`), nil, 400, "event 0: is not a JSON object"},
		{"bad timestamp", "/v1/track", []byte(`{"event":"E","anonymousId":"a","timestamp":"yesterday"}`), nil, 400, "timestamp is not an ISO 8601 time"},
		{"bad sentAt", "/v1/batch", []byte(`{"batch":[{"type":"track","event":"E","anonymousId":"a"}],"sentAt":5}`), nil, 400, "sentAt must be a string"},
		{"empty body", "/v1/track", nil, nil, 400, "body is empty"},
		{"no write key", "/v1/track", []byte(`{"event":"E","anonymousId":"a"}`), []string{"Authorization", ""}, 401, "missing write key"},
		{"unknown write key", "/v1/track", []byte(`{"event":"E","anonymousId":"a","writeKey":"nope"}`), []string{"Authorization", ""}, 401, "unknown write key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			hdr := append([]string{"Authorization", "Basic ZGV2Og=="}, c.header...) // dev:
			a := do(h, "POST", c.path, c.body, hdr...)
			msg, _ := a.json["error"].(string)
			if a.code != c.code || !strings.Contains(msg, c.want) || a.json["success"] != false {
				t.Errorf("got %d %s, want %d with an error containing %q", a.code, a.body, c.code, c.want)
			}
		})
	}
	// Unknown event names are custom events: accepted as they are.
	a := do(h, "POST", "/v1/track", []byte(`{"event":"Sample Requested 样品","anonymousId":"a","properties":{"x":1}}`), "Authorization", "Basic ZGV2Og==")
	if a.code != 200 {
		t.Errorf("custom event: %d %s", a.code, a.body)
	}
	// Rejected events are in the dead-letter topic with their reason.
	if dl := rec.topic(shoptrail.TopicDeadLetter); len(dl) < 20 {
		t.Errorf("%d events in the dead-letter topic, want one per rejected event", len(dl))
	} else if reason := header(dl[0], "reason"); reason != "event must be a string, not a number" {
		t.Errorf("first dead letter's reason = %q", reason)
	}
}

func header(m kafka.Message, k string) string {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// TestMixedBatch: the valid events of a batch are accepted and the invalid
// ones named, by index, field and reason.
func TestMixedBatch(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	body := `{"batch":[
	  {"type":"track","event":"Product Added","anonymousId":"a","messageId":"ok-1","properties":{"product_id":"p1","price":9.5,"quantity":2,"currency":"cny"}},
	  {"type":"track","event":"Order Completed","anonymousId":"a","messageId":"bad-1","properties":{"total":5}},
	  {"type":"page","anonymousId":"a","messageId":"ok-2"}
	],"writeKey":"dev"}`
	a := do(s.Handler(), "POST", "/v1/batch", []byte(body), "Content-Type", "text/plain")
	if a.code != 400 || a.json["accepted"] != 2.0 {
		t.Fatalf("got %d %s", a.code, a.body)
	}
	rj := a.json["rejected"].([]any)[0].(map[string]any)
	if rj["index"] != 1.0 || rj["field"] != "properties.order_id" || !strings.Contains(rj["error"].(string), "needs properties.order_id") {
		t.Errorf("rejected = %v", rj)
	}
	ev := rec.topic(shoptrail.TopicEvents)
	if len(ev) != 2 {
		t.Fatalf("%d accepted events in Kafka, want 2", len(ev))
	}
	var e shoptrail.Event
	if err := json.Unmarshal(ev[0].Value, &e); err != nil {
		t.Fatal(err)
	}
	if e.MessageID != "ok-1" || !strings.Contains(string(e.Properties), `"currency":"CNY"`) || string(ev[0].Key) != "a" {
		t.Errorf("accepted event %s (key %q): want currency upper-cased", ev[0].Value, ev[0].Key)
	}
	if dl := rec.topic(shoptrail.TopicDeadLetter); len(dl) != 1 || !strings.Contains(string(dl[0].Value), "bad-1") || header(dl[0], "field") != "properties.order_id" {
		t.Errorf("dead letters = %v", dl)
	}
	// A dead letter keeps no raw IP and no private URL parts.
	a = do(s.Handler(), "POST", "/v1/track", []byte(`{"writeKey":"dev","event":42,"anonymousId":"a","context":{"ip":"203.0.113.77","page":{"url":"https://shop.example/?email=bob@example.com&utm_source=x"}}}`))
	dl := rec.topic(shoptrail.TopicDeadLetter)
	if last := string(dl[len(dl)-1].Value); a.code != 400 || strings.Contains(last, "203.0.113.77") || strings.Contains(last, "bob@") || !strings.Contains(last, `"ip":"203.0.113.0"`) {
		t.Errorf("dead letter %s", last)
	}
}

// FuzzIngest throws arbitrary bodies at every ingest route: no panic, a
// JSON answer of a documented status, and every produced event is a valid
// shoptrail.Event with its required fields. Seeds in testdata/fuzz run on
// every go test.
func FuzzIngest(f *testing.F) {
	f.Add(0, []byte(`{"batch":[{"type":"track","event":"Order Completed","anonymousId":"a","properties":{"order_id":"o","products":[{"price":1}]}}],"writeKey":"dev"}`))
	f.Add(1, []byte(`{"event":"E","userId":12,"timestamp":"2026-01-01T00:00:00Z","sentAt":"2026-01-01T00:00:01Z","writeKey":"dev","context":{"page":{"url":"https://a.example/?utm_source=x&gclid=1#f"}}}`))
	f.Add(2, []byte(`{"anonymousId":"a","writeKey":"dev","context":{"userAgent":"Googlebot/2.1","delivery":{"tab":"t","seq":3}}}`))
	f.Add(3, []byte(`{"type":"identify","userId":"u","writeKey":"dev","traits":{"email":"x@y.z"}}`))
	f.Add(0, []byte("{\"batch\":[{\"type\":\"track\",\"event\":\"\xff\",\"anonymousId\":\"a\"}],\"writeKey\":\"dev\"}"))
	s, rec := newTestServer(f, Config{})
	h := s.Handler()
	routes := []string{"/v1/batch", "/v1/track", "/v1/page", "/v1/identify", "/v1/group", "/v1/alias", "/v1/screen"}
	f.Fuzz(func(t *testing.T, route int, body []byte) {
		path := routes[(route%len(routes)+len(routes))%len(routes)]
		rec.mu.Lock()
		rec.msgs = rec.msgs[:0]
		rec.mu.Unlock()
		a := do(h, "POST", path, body, "Content-Type", "text/plain")
		switch a.code {
		case 200, 400, 401, 413:
		default:
			t.Fatalf("status %d for %q", a.code, body)
		}
		if a.json == nil {
			t.Fatalf("answer is not JSON: %q", a.body)
		}
		for _, m := range rec.topic(shoptrail.TopicEvents) {
			var e shoptrail.Event
			if err := json.Unmarshal(m.Value, &e); err != nil || !utf8.Valid(m.Value) {
				t.Fatalf("produced event is not valid JSON: %v\n%s", err, m.Value)
			}
			if e.MessageID == "" || e.Type == "" || (e.AnonymousID == "" && e.UserID == "") || e.Site != "dev" || e.Timestamp.IsZero() {
				t.Fatalf("produced event lacks required fields: %s", m.Value)
			}
		}
		// The pixel parses the same bodies.
		p := do(h, "GET", "/v1/p.gif?writeKey=dev&data="+base64.RawURLEncoding.EncodeToString(body), nil)
		if !bytes.Equal(p.body, gifBytes) {
			t.Fatalf("pixel answered %d %q", p.code, p.body)
		}
	})
}

func TestPixel(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	h := s.Handler()
	data := base64.RawURLEncoding.EncodeToString([]byte(`{"event":"Email Opened","userId":"c7","writeKey":"dev","properties":{"campaign":"winter"}}`))
	a := do(h, "GET", "/v1/p.gif?data="+data, nil, "User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	if a.code != 200 || a.header.Get("Content-Type") != "image/gif" || !bytes.Equal(a.body, gifBytes) {
		t.Fatalf("pixel: %d %v %q", a.code, a.header, a.body)
	}
	ev := rec.topic(shoptrail.TopicEvents)
	if len(ev) != 1 {
		t.Fatalf("%d events", len(ev))
	}
	var e shoptrail.Event
	json.Unmarshal(ev[0].Value, &e)
	if e.Type != "track" || e.Event != "Email Opened" || e.UserID != "c7" || e.Context.Device.Browser != "Chrome" || !strings.Contains(strings.Join(e.Flags, ","), "generated_id") {
		t.Errorf("pixel event = %s", ev[0].Value)
	}
	// Errors still answer a GIF, with the reason in a header.
	a = do(h, "GET", "/v1/p.gif?data=!!!", nil)
	if a.code != 400 || !bytes.Equal(a.body, gifBytes) || !strings.Contains(a.header.Get("X-Shoptrail-Error"), "base64url") {
		t.Errorf("bad pixel: %d %v", a.code, a.header)
	}
}

func TestEnrichment(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	body := `{"batch":[
	  {"type":"page","anonymousId":"a","messageId":"m1","timestamp":"2026-11-22T10:00:00Z",
	   "context":{"page":{"url":"https://shop.example/p?utm_source=baidu&utm_medium=cpc&utm_campaign=w&bd_vid=123&token=s3cret#x","referrer":"https://www.baidu.com/s?wd=resistor&ie=utf-8"},
	              "userAgent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN",
	              "ip":"203.0.113.77","delivery":{"tab":"t1","seq":4,"transport":"beacon"}}},
	  {"type":"track","event":"E","anonymousId":"b","messageId":"m2","context":{"userAgent":"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}},
	  {"type":"track","event":"E","userId":"u","timestamp":"2026-11-22T10:00:00Z"},
	  {"type":"track","event":"E","userId":"u","timestamp":"2026-11-22T10:00:00Z"}
	],"sentAt":"2026-11-22T10:00:05Z","writeKey":"dev"}`
	a := do(s.Handler(), "POST", "/v1/batch", []byte(body), "Origin", "https://shop.example")
	if a.code != 200 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	ev := rec.topic(shoptrail.TopicEvents)
	var es []shoptrail.Event
	for _, m := range ev {
		var e shoptrail.Event
		json.Unmarshal(m.Value, &e)
		es = append(es, e)
	}
	p := es[0].Context
	if p.Page.URL != "https://shop.example/p?utm_source=baidu&utm_medium=cpc&utm_campaign=w&bd_vid=123" ||
		p.Page.Referrer != "https://www.baidu.com/s?wd=resistor" {
		t.Errorf("page = %+v", p.Page)
	}
	if p.Campaign != (shoptrail.Campaign{Source: "baidu", Medium: "cpc", Name: "w", ClickIDKind: "bd_vid", ClickID: "123"}) {
		t.Errorf("campaign = %+v", p.Campaign)
	}
	// A browser (Origin) cannot choose its address: context.ip is ignored.
	if p.IP != "192.0.2.0" || p.Device != (shoptrail.Device{Class: "mobile", Browser: "WeChat", OS: "iOS"}) || p.Bot.IsBot {
		t.Errorf("ip %q device %+v bot %+v", p.IP, p.Device, p.Bot)
	}
	if p.Delivery != (shoptrail.Delivery{Tab: "t1", Seq: 4, Transport: "beacon"}) {
		t.Errorf("delivery = %+v", p.Delivery)
	}
	if d := es[0].ReceivedAt.Sub(es[0].Timestamp); d != 5*time.Second {
		t.Errorf("corrected time is %v before receipt, want 5s", d)
	}
	if b := es[1].Context; !b.Bot.IsBot || !strings.HasPrefix(b.Bot.Reason, "crawler-user-agents:") || b.Device.Class != "bot" {
		t.Errorf("bot = %+v %+v", b.Bot, b.Device)
	}
	if es[1].Context.IP != "192.0.2.0" {
		t.Errorf("request IP kept as %q, want truncated 192.0.2.0", es[1].Context.IP)
	}
	// A server-side library (no Origin) relays its visitor's address.
	a = do(s.Handler(), "POST", "/v1/track", []byte(`{"writeKey":"dev","event":"E","anonymousId":"a","context":{"ip":"203.0.113.77"}}`))
	var srv shoptrail.Event
	json.Unmarshal(rec.topic(shoptrail.TopicEvents)[4].Value, &srv)
	if a.code != 200 || srv.Context.IP != "203.0.113.0" {
		t.Errorf("server-side context.ip: %d, stored %q, want 203.0.113.0", a.code, srv.Context.IP)
	}
	// The same event without messageId twice: the same derived id.
	if es[2].MessageID == "" || es[2].MessageID != es[3].MessageID || !strings.Contains(strings.Join(es[2].Flags, ","), "generated_id") {
		t.Errorf("generated ids %q %q flags %v", es[2].MessageID, es[3].MessageID, es[2].Flags)
	}
}
