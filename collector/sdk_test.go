package collector

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shoptrail/shoptrail"
)

// TestSDKCompatibility: the endpoints, auth forms and headers that real
// SDKs use (analytics.js, RudderStack's browser SDK, Jitsu, sendBeacon)
// are taken; the browser tests in test/sdk drive the SDKs themselves.
func TestSDKCompatibility(t *testing.T) {
	sites := sitesFile(t, `[{"id":"shop","writeKeys":["k1"],"allowedOrigins":["https://shop.example"]}]`)
	s, rec := newTestServer(t, Config{Sites: sites})
	h := s.Handler()
	origin := []string{"Origin", "https://shop.example"}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("k1:"))

	// Preflights allow the headers the SDK asks for: RudderStack's (as its
	// v3 sends them, retry headers included), analytics.js's retry count,
	// Jitsu's write key.
	asked := "anonymousid,authorization,content-type,rsa-retry-attempt,rsa-retry-reason,rsa-since-first-attempt,rsa-since-last-attempt,sentat"
	for _, asked := range []string{asked, "content-type,x-retry-count", "content-type,x-write-key"} {
		a := do(h, "OPTIONS", "/v1/batch", nil, "Origin", "https://shop.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", asked)
		if a.code != 204 || a.header.Get("Access-Control-Allow-Headers") != asked {
			t.Errorf("preflight asking %q: %d, allowed %q", asked, a.code, a.header.Get("Access-Control-Allow-Headers"))
		}
	}
	// A header list that is not one is not reflected.
	a := do(h, "OPTIONS", "/v1/batch", nil, "Origin", "https://shop.example", "Access-Control-Request-Headers", "x-a\x7f")
	if a.code != 204 || strings.Contains(a.header.Get("Access-Control-Allow-Headers"), "x-a") {
		t.Errorf("preflight with a malformed list: %d, allowed %q", a.code, a.header.Get("Access-Control-Allow-Headers"))
	}
	for _, p := range []string{"/beacon/v1/batch", "/api/s/track", "/v1/m"} {
		if a := do(h, "OPTIONS", p, nil, "Origin", "https://shop.example"); a.code != 204 {
			t.Errorf("preflight of %s: %d", p, a.code)
		}
	}

	ev := func(id string) string {
		return `{"type":"track","event":"E","messageId":"` + id + `","anonymousId":"a1","userId":""}`
	}
	for _, c := range []struct {
		name, path string
		body       string
		header     []string
	}{
		{"analytics.js single", "/v1/t", ev("m1"), []string{"Authorization", basic, "Content-Type", "text/plain"}},
		{"analytics.js batching", "/v1/b", `{"batch":[` + strings.TrimSuffix(ev("m2"), "}") + `,"writeKey":"k1"}],"sentAt":"2026-01-01T00:00:00Z"}`, []string{"Content-Type", "text/plain", "X-Retry-Count", "2"}},
		{"RudderStack XHR", "/v1/track", ev("m3"), []string{"Authorization", basic, "AnonymousId", base64.StdEncoding.EncodeToString([]byte("a1"))}},
		{"RudderStack beacon", "/beacon/v1/batch?writeKey=k1", `{"batch":[` + ev("m4") + `],"sentAt":"2026-01-01T00:00:00Z"}`, []string{"Content-Type", "text/plain;charset=UTF-8"}},
		{"Jitsu", "/api/s/track", ev("m5"), []string{"X-Write-Key", "k1"}},
		{"plain sendBeacon", "/v1/batch?writeKey=k1", `{"batch":[` + ev("m6") + `]}`, []string{"Content-Type", "text/plain;charset=UTF-8"}},
	} {
		a := do(h, "POST", c.path, []byte(c.body), append(append([]string{}, origin...), c.header...)...)
		if a.code != 200 || a.header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
			t.Errorf("%s: %d ACAO %q %s", c.name, a.code, a.header.Get("Access-Control-Allow-Origin"), a.body)
		}
		if !strings.Contains(a.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
			t.Errorf("%s: Retry-After is not exposed to browser code (%q)", c.name, a.header.Get("Access-Control-Expose-Headers"))
		}
	}
	got := events(t, rec.topic(shoptrail.TopicEvents))
	for _, id := range []string{"m1", "m2", "m3", "m4", "m5", "m6"} {
		if e, ok := got[id]; !ok || e.AnonymousID != "a1" || e.UserID != "" || e.Site != "shop" {
			t.Errorf("event %s: %+v (stored: %v), want it with anonymousId a1 and no userId", id, e, ok)
		}
	}

	// analytics.js's and RudderStack's telemetry is taken (no CORS error
	// on every page).
	for _, p := range []string{"/v1/m", "/rsaMetrics"} {
		a = do(h, "POST", p, []byte(`{"series":[{"type":"Counter","metric":"analytics_js.invoke","value":1}]}`), origin...)
		if a.code != 200 || a.header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
			t.Errorf("%s: %d %v", p, a.code, a.header)
		}
	}
}

// TestClearRefusals: the common mistakes get a status and words that say
// what to do, and every refused request is counted by reason.
func TestClearRefusals(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	h := s.Handler()
	auth := []string{"Authorization", "Basic ZGV2Og=="}
	f := func(method, path string, body []byte, header []string, code int, want ...string) {
		t.Helper()
		a := do(h, method, path, body, append(append([]string{}, auth...), header...)...)
		msg, _ := a.json["error"].(string)
		if a.code != code {
			t.Errorf("%s %s: %d %s, want %d", method, path, a.code, a.body, code)
		}
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s %s: error %q, want it to contain %q", method, path, msg, w)
			}
		}
	}
	ok := []byte(`{"event":"E","anonymousId":"a"}`)
	// gzip without Content-Encoding; an unknown Content-Encoding.
	f("POST", "/v1/track", gz(ok), nil, 400, "gzip-compressed", "Content-Encoding: gzip")
	f("POST", "/v1/track", ok, []string{"Content-Encoding", "br"}, 415, `Content-Encoding "br" is not supported`)
	f("POST", "/v1/track", gz(ok), []string{"Content-Encoding", "gzip"}, 200)
	// GET on an ingest path, or a path that does not exist: 404 with the list.
	f("GET", "/v1/batch", nil, nil, 404, "events are sent with POST", "POST /v1/batch")
	f("POST", "/v2/track", ok, nil, 404, "no endpoint POST /v2/track", "POST /v1/batch", "GET /v1/p.gif")
	// Invalid JSON: where, in plain words.
	f("POST", "/v1/batch", []byte("{\"batch\":[\n  {\"type\":\"track\" \"event\":\"E\"}]}"), nil, 400,
		"body is not a JSON batch", "line 2, column 19", "a missing comma?", `near `)
	f("POST", "/v1/track", []byte(`{'event':'E'}`), nil, 400, "line 1, column 2", "double quotes")
	f("POST", "/v1/track", []byte(`{"event":"E",}`), nil, 400, "expected a quoted property name")
	f("POST", "/v1/track", []byte(`{"event":"E"`), nil, 400, "ends too early")
	// Numbers beyond float64 anywhere in properties or traits.
	f("POST", "/v1/track", []byte(`{"event":"E","anonymousId":"a","properties":{"custom":{"n":[1,1e999]}}}`), nil, 400, "properties.custom.n[1] is 1e999, beyond the range")
	f("POST", "/v1/identify", []byte(`{"anonymousId":"a","traits":{"score":-2e308}}`), nil, 400, "traits.score is -2e308")
	f("POST", "/v1/track", []byte(`{"event":"E","anonymousId":"a","properties":{"tiny":1e-999,"big":1.7976931348623157e308}}`), nil, 200)

	m := s.m.refused
	for reason, want := range map[string]float64{refusedNotJSON: 5, refusedEncoding: 1, refusedNotFound: 2} {
		if got := counterValue(m.WithLabelValues(reason)); got != want {
			t.Errorf("requests_refused_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	f("POST", "/v1/track", ok, []string{"Authorization", "Basic bm9wZTo="}, 401, "unknown write key")
	if got := counterValue(m.WithLabelValues(refusedBadKey)); got != 1 {
		t.Errorf("unknown_key refusals = %v, want 1", got)
	}
}

// TestTimesInRange: every time an event carries is within what ClickHouse
// stores; year 0001 (a zero time) is clamped and flagged as year 9999 is.
func TestTimesInRange(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	h := s.Handler()
	for i, ts := range []string{`"0001-01-01T00:00:00Z"`, `"9999-12-31T23:59:59Z"`, `"1900-05-01T10:00:00Z"`,
		`"0001-01-01T00:00:00Z","sentAt":"0001-01-01T00:00:00Z"`, `"2026-01-01T00:00:00Z","sentAt":"9999-12-31T23:59:59Z"`} {
		id := "t" + string(rune('0'+i))
		a := do(h, "POST", "/v1/track", []byte(`{"event":"E","anonymousId":"a","messageId":"`+id+`","timestamp":`+ts+`}`), "Authorization", "Basic ZGV2Og==")
		if a.code != 200 {
			t.Fatalf("%s: %d %s", ts, a.code, a.body)
		}
		e := events(t, rec.topic(shoptrail.TopicEvents))[id]
		if len(e.Flags) == 0 || e.Flags[0] != shoptrail.FlagClockClamped {
			t.Errorf("%s: flags %v, want clock_clamped", ts, e.Flags)
		}
		for name, v := range map[string]any{"timestamp": e.Timestamp, "originalTimestamp": e.OriginalTimestamp, "sentAt": e.SentAt} {
			tv := v.(interface {
				Year() int
				IsZero() bool
			})
			if y := tv.Year(); !tv.IsZero() && (y < 1970 || y > 2105) { // zero: absent
				t.Errorf("%s: %s in year %d, outside 1970-2105", ts, name, y)
			}
		}
	}
}

// TestHeaderLimit: the request line and headers may take 16 KiB, as the
// README states, and no more.
func TestHeaderLimit(t *testing.T) {
	st := startCollector(t, Config{}, nil)
	if r := send(t, "POST", st.url+"/v1/track", []byte(`{}`), "X-Big", strings.Repeat("h", 15<<10)); r.code == http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("15 KiB of headers: %d, want them taken", r.code)
	}
	if r := send(t, "POST", st.url+"/v1/track", []byte(`{}`), "X-Big", strings.Repeat("h", 17<<10)); r.code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("17 KiB of headers: %d, want 431", r.code)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestRejectSummary: the log gets one line summing up rejected events (by
// reason, with the sites) and refused requests, and nothing when there
// were none.
func TestRejectSummary(t *testing.T) {
	var buf bytes.Buffer
	s, err := NewWithOptions(Config{IPRate: -1, KeyRate: -1}, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil)), Producer: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	auth := []string{"Authorization", "Basic ZGV2Og=="}
	for i := 0; i < 3; i++ {
		do(h, "POST", "/v1/track", []byte(`{"event":"E","anonymousId":"a","properties":{"price":"x"}}`), auth...)
	}
	do(h, "POST", "/v1/track", []byte(`{"anonymousId":"a"}`), auth...)
	do(h, "POST", "/v1/track", []byte(`{"event":`), auth...)
	do(h, "GET", "/nope", nil)
	buf.Reset() // start-up warnings
	s.logRejects(time.Minute)
	line := buf.String()
	for _, want := range []string{"rejects summary", "rejected_events=4", "refused_requests=2",
		`\"properties.price must be a number, not a string\" x3`, `\"track message needs an event name\" x1`,
		`\"dev\" x4`, `not_json`, `not_found`, "shoptrail dlq tail"} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %q lacks %q", line, want)
		}
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("summary is %d lines, want one", strings.Count(line, "\n"))
	}
	buf.Reset()
	s.logRejects(time.Minute)
	if buf.Len() != 0 {
		t.Errorf("a summary of nothing: %q", buf.String())
	}
}

// TestRefusedRequestsCountEvents: the events of a whole request refused
// (401, 403, 413, not JSON) are in shoptrail_collector_events_total with
// result "refused" and the refusal's reason — as many as it held, one when
// they cannot be counted, none for an empty batch — so that accepted,
// rejected, shed and refused add up to every event sent.
func TestRefusedRequestsCountEvents(t *testing.T) {
	sites, err := ParseSites("listed=k1@https://shop.example")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newTestServer(t, Config{Sites: sites, MaxBatchEvents: 5})
	h := s.Handler()
	batch := func(key string, n int) []byte {
		var b strings.Builder
		b.WriteString(`{"writeKey":"` + key + `","batch":[`)
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"type":"track","event":"E","anonymousId":"a"}`)
		}
		b.WriteString("]}")
		return []byte(b.String())
	}
	for _, c := range []struct {
		body   []byte
		header []string
		code   int
	}{
		{batch("", 3), nil, 401},     // no key: 3 events
		{batch("nope", 2), nil, 401}, // unknown key: 2
		{batch("k1", 4), []string{"Origin", "https://evil.example"}, 403},
		{batch("k1", 6), nil, 413},                          // over MaxBatchEvents
		{[]byte(`{"batch":[{"type":"track",}]}`), nil, 400}, // not JSON: counted as 1
		{batch("k1", 0), nil, 400},                          // empty: nothing
		{batch("k1", 2), nil, 200},
	} {
		if a := do(h, "POST", "/v1/batch", c.body, c.header...); a.code != c.code {
			t.Fatalf("%s: %d %s, want %d", c.body, a.code, a.body, c.code)
		}
	}
	for _, w := range []struct {
		result, reason string
		n              float64
	}{
		{resultRefused, refusedNoKey, 3},
		{resultRefused, refusedBadKey, 2},
		{resultRefused, refusedOrigin, 4},
		{resultRefused, refusedTooLarge, 6},
		{resultRefused, refusedNotJSON, 1},
		{resultRefused, refusedEmpty, 0},
		{resultAccepted, reasonNone, 2},
	} {
		if got := counterValue(s.m.events.WithLabelValues(w.result, w.reason)); got != w.n {
			t.Errorf("events_total{result=%q,reason=%q} = %v, want %v", w.result, w.reason, got, w.n)
		}
	}
}

// TestNotJSONAnswerBuildsNothing: wording why a body is refused costs
// little whatever the body: a valid one nested deeper than fastjson
// parses, with 250,000 values beside (0.5 MB), is not built as a tree
// (22 MiB, reserved nowhere) to find that encoding/json accepts it.
func TestNotJSONAnswerBuildsNothing(t *testing.T) {
	body := "[" + strings.Repeat("[", 301) + strings.Repeat("]", 301) + strings.Repeat(",0", 250_000) + "]"
	if _, ok := scanJSON([]byte(body)); ok {
		t.Fatal("scanJSON accepts 302 levels")
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	msg := jsonProblem([]byte(body), true, notJSONError([]byte(body)))
	runtime.ReadMemStats(&m1)
	if !strings.Contains(msg, "too big depth") {
		t.Errorf("message %q", msg)
	}
	if got := m1.TotalAlloc - m0.TotalAlloc; got > 2<<20 {
		t.Errorf("wording the refusal of a %d-byte body allocated %d KiB", len(body), got>>10)
	}
}
