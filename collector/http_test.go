package collector

import (
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sitesFile(t *testing.T, content string) *Sites {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sites.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSitesFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSitesAndCORS: a site's allowed origins get CORS headers and may
// send; other origins get none and are refused; requests without Origin
// (server SDKs) are allowed.
func TestSitesAndCORS(t *testing.T) {
	sites := sitesFile(t, `[
	  {"id":"shop","writeKeys":["k1","k2"],"allowedOrigins":["https://shop.example","https://*.shop.example"],"timeZone":"Asia/Shanghai","ownDomains":["shop.example"]},
	  {"id":"other","writeKeys":["k3"],"allowedOrigins":["https://other.example"]}]`)
	if got := sites.OwnDomains(); !reflect.DeepEqual(got, map[string][]string{"shop": {"shop.example"}}) {
		t.Errorf("OwnDomains() = %v, want shop's only", got)
	}
	s, rec := newTestServer(t, Config{Sites: sites})
	h := s.Handler()
	body := []byte(`{"writeKey":"k1","event":"E","anonymousId":"a"}`)
	f := func(origin string, wantCode int, wantACAO string) {
		t.Helper()
		var hdr []string
		if origin != "" {
			hdr = []string{"Origin", origin}
		}
		a := do(h, "POST", "/v1/track", body, hdr...)
		if a.code != wantCode || a.header.Get("Access-Control-Allow-Origin") != wantACAO {
			t.Errorf("origin %q: %d ACAO %q, want %d %q (%s)", origin, a.code, a.header.Get("Access-Control-Allow-Origin"), wantCode, wantACAO, a.body)
		}
		if wantACAO != "" && a.header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("origin %q: no Access-Control-Allow-Credentials", origin)
		}
	}
	f("https://shop.example", 200, "https://shop.example")
	f("https://m.shop.example", 200, "https://m.shop.example")
	f("", 200, "")
	f("https://evil.example", 403, "")
	f("http://shop.example", 403, "") // another scheme is another origin
	f("https://other.example", 403, "")
	if n := len(rec.topic("shoptrail.events")); n != 3 {
		t.Errorf("%d events stored, want the 3 allowed", n)
	}
	// Preflight: answered for any site's origin.
	a := do(h, "OPTIONS", "/v1/batch", nil, "Origin", "https://other.example", "Access-Control-Request-Method", "POST")
	if a.code != 204 || a.header.Get("Access-Control-Allow-Origin") != "https://other.example" || !strings.Contains(a.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", a.code, a.header)
	}
	if a := do(h, "OPTIONS", "/v1/batch", nil, "Origin", "https://evil.example"); a.code != 403 || a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of a foreign origin: %d %v", a.code, a.header)
	}
	// Bad site files are refused with the reason.
	for _, bad := range []string{
		`[{"id":"s","writeKeys":[]}]`,
		`[{"id":"s","writeKeys":["k"],"timeZone":"Mars/Olympus"}]`,
		`[{"id":"s","writeKeys":["k"],"allowedOrigins":["shop.example"]}]`,
		`[{"id":"s","writeKeys":["k"]},{"id":"t","writeKeys":["k"]}]`,
		`[{"id":"s","writeKeys":["k"],"colour":"red"}]`,
	} {
		p := filepath.Join(t.TempDir(), "bad.json")
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := LoadSitesFile(p); err == nil {
			t.Errorf("sites file %s accepted", bad)
		}
	}
}

// TestRateLimits: one network sending too fast gets 429 with Retry-After,
// another is unaffected; a write key over its event rate too.
func TestRateLimits(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	s, _ := newTestServer(t, Config{IPRate: 1, IPBurst: 5, KeyRate: -1, TrustedProxies: proxies})
	// A stopped clock: no token comes back while the test runs, however
	// slow the machine.
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	stopped := func() time.Time { return t0 }
	s.ipLimit.now = stopped
	h := s.Handler()
	body := []byte(`{"writeKey":"dev","event":"E","anonymousId":"a"}`)
	codes := map[int]int{}
	var retry string
	for i := 0; i < 20; i++ {
		a := do(h, "POST", "/v1/track", body, "X-Forwarded-For", "198.51.100.7")
		codes[a.code]++
		if a.code == 429 {
			retry = a.header.Get("Retry-After")
		}
	}
	if codes[200] != 5 || codes[429] != 15 || retry == "" {
		t.Errorf("one network, 20 requests: %v (Retry-After %q), want 5 x 200 then 429s with Retry-After", codes, retry)
	}
	// Another address of the same /24 shares the limit; another network not.
	if a := do(h, "POST", "/v1/track", body, "X-Forwarded-For", "198.51.100.99"); a.code != 429 {
		t.Errorf("same /24: %d", a.code)
	}
	if a := do(h, "POST", "/v1/track", body, "X-Forwarded-For", "203.0.113.5"); a.code != 200 {
		t.Errorf("other network: %d %s", a.code, a.body)
	}
	// X-Forwarded-For from an untrusted peer is ignored: the peer is limited.
	s2, _ := newTestServer(t, Config{IPRate: 1, IPBurst: 2, KeyRate: -1})
	s2.ipLimit.now = stopped
	for i, want := range []int{200, 200, 429} {
		if a := do(s2.Handler(), "POST", "/v1/track", body, "X-Forwarded-For", "203.0.113."+strconv.Itoa(i)); a.code != want {
			t.Errorf("untrusted XFF request %d: %d, want %d", i, a.code, want)
		}
	}
	// Per write key, counted in events.
	s3, _ := newTestServer(t, Config{IPRate: -1, KeyRate: 1, KeyBurst: 30})
	s3.keyLimit.now = stopped
	batch := []byte(`{"writeKey":"dev","batch":[` + strings.Repeat(`{"type":"track","event":"E","anonymousId":"a"},`, 19) + `{"type":"track","event":"E","anonymousId":"a"}]}`)
	if a := do(s3.Handler(), "POST", "/v1/batch", batch); a.code != 200 {
		t.Errorf("first batch: %d", a.code)
	}
	if a := do(s3.Handler(), "POST", "/v1/batch", batch); a.code != 429 || !strings.Contains(a.json["error"].(string), "write key") {
		t.Errorf("second batch over the key's rate: %d %s", a.code, a.body)
	}
}

// TestRateLimitSpray: a spray of fresh IPv6 /64s, far more than the
// limiter holds, neither grows it beyond its bound nor throttles a network
// that sends for the first time after it; a network over its rate stays
// limited while the spray goes on (clock stopped).
func TestRateLimitSpray(t *testing.T) {
	l := newLimiter(1, 3, hashAddr)
	l.maxKeys = 32 * 64
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return t0 }
	heavy := ipBlock(netip.MustParseAddr("2001:db8:1::1"))
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow(heavy, 1); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	refusedHeavy := 0
	for i := 0; i < 200000; i++ {
		b := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, byte(i >> 16), byte(i >> 8), byte(i)})
		l.allow(ipBlock(b), 1)
		l.allow(ipBlock(b), 1)
		if i%1000 == 0 {
			if ok, _ := l.allow(heavy, 1); !ok {
				refusedHeavy++
			}
		}
	}
	held := 0
	for i := range l.shards {
		held += len(l.shards[i].buckets)
	}
	if held > l.maxKeys {
		t.Errorf("limiter holds %d keys, bound %d", held, l.maxKeys)
	}
	for i := 0; i < 50; i++ {
		fresh := ipBlock(netip.AddrFrom16([16]byte{0x2a, 0x00, byte(i), 15: 1}))
		if ok, _ := l.allow(fresh, 1); !ok {
			t.Fatalf("a network's first request after the spray refused (fresh network %d)", i)
		}
	}
	if refusedHeavy < 150 {
		t.Errorf("the network over its rate was refused %d of 200 times during the spray: eviction lets it off too often", refusedHeavy)
	}
	if l.evicted.Load() == 0 {
		t.Error("no eviction counted")
	}
}

// TestOriginsFailClosed: a site without allowedOrigins takes no browser;
// "*" must be explicit and is warned about at start.
func TestOriginsFailClosed(t *testing.T) {
	sites, err := ParseSites("closed=k1,open=k2@*,listed=k3@https://shop.example|https://*.shop.example")
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	s, err := NewWithOptions(Config{Sites: sites, IPRate: -1, KeyRate: -1}, Options{Producer: &recorder{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if l := logs.String(); !strings.Contains(l, `level=WARN msg="site allows every browser origin`) || !strings.Contains(l, "site=open") {
		t.Errorf("start-up log does not warn about site open:\n%s", l)
	}
	h := s.Handler()
	f := func(key, origin string, want int) {
		t.Helper()
		var hdr []string
		if origin != "" {
			hdr = []string{"Origin", origin}
		}
		if a := do(h, "POST", "/v1/track", []byte(`{"writeKey":"`+key+`","event":"E","anonymousId":"a"}`), hdr...); a.code != want {
			t.Errorf("key %s origin %q: %d, want %d (%s)", key, origin, a.code, want, a.body)
		}
	}
	f("k1", "https://shop.example", 403) // no origins listed: no browser
	f("k1", "", 200)                     // a server-side SDK
	f("k2", "https://anything.example", 200)
	f("k3", "https://m.shop.example", 200)
	f("k3", "https://evil.example", 403)
	// A sites file without allowedOrigins is closed too.
	closed := sitesFile(t, `[{"id":"s","writeKeys":["k"]}]`)
	s2, _ := newTestServer(t, Config{Sites: closed})
	if a := do(s2.Handler(), "POST", "/v1/track", []byte(`{"writeKey":"k","event":"E","anonymousId":"a"}`), "Origin", "https://shop.example"); a.code != 403 {
		t.Errorf("site without allowedOrigins: %d, want 403", a.code)
	}
}

// TestIDCookie: the collector's HttpOnly id cookie is set for a new
// browser and, for a beacon reporting a fresh id, replaces it.
func TestIDCookie(t *testing.T) {
	s, rec := newTestServer(t, Config{IDCookie: "st_vid", IDCookieDomain: "shop.example"})
	h := s.Handler()
	batch := func(newID bool) []byte {
		n := "false"
		if newID {
			n = "true"
		}
		return []byte(`{"writeKey":"dev","anonymousIdNew":` + n + `,"batch":[{"type":"page","anonymousId":"fresh-1","messageId":"m-` + n + `"}]}`)
	}
	a := do(h, "POST", "/v1/batch", batch(true), "Origin", "https://shop.example")
	c := a.header.Get("Set-Cookie")
	if a.code != 200 || !strings.Contains(c, "st_vid=fresh-1") || !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "Domain=shop.example") || !strings.Contains(c, "SameSite=Lax") {
		t.Fatalf("first batch: %d Set-Cookie %q", a.code, c)
	}
	// The browser already has an id: the fresh one is replaced, and the
	// beacon told to adopt it.
	a = do(h, "POST", "/v1/batch", batch(true), "Origin", "https://shop.example", "Cookie", "st_vid=known-7")
	if a.code != 200 || a.json["anonymousId"] != "known-7" || a.header.Get("Set-Cookie") != "" {
		t.Fatalf("adoption: %d %v %q", a.code, a.json, a.header.Get("Set-Cookie"))
	}
	ev := rec.topic("shoptrail.events")
	if !strings.Contains(string(ev[len(ev)-1].Value), `"anonymousId":"known-7"`) || string(ev[len(ev)-1].Key) != "known-7" {
		t.Errorf("adopted event %s key %q", ev[len(ev)-1].Value, ev[len(ev)-1].Key)
	}
	// Server-side requests (no Origin) get no cookie.
	if a := do(h, "POST", "/v1/batch", batch(false)); a.header.Get("Set-Cookie") != "" {
		t.Errorf("server request got a cookie")
	}
	// GET /v1/id answers the cookie's id.
	if a := do(h, "GET", "/v1/id", nil, "Cookie", "st_vid=known-7"); a.json["anonymousId"] != "known-7" {
		t.Errorf("/v1/id: %s", a.body)
	}
}

// TestPathPrefixAndBeacon: alias prefixes answer as /v1, and the beacon is
// served at /beacon.js and under every prefix.
func TestPathPrefixAndBeacon(t *testing.T) {
	rec := &recorder{}
	beacon := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("/*beacon*/")) })
	s, err := NewWithOptions(Config{PathPrefixes: []string{"/e"}, IPRate: -1, KeyRate: -1}, Options{Producer: rec, Beacon: beacon})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	if a := do(h, "POST", "/e/batch", []byte(`{"writeKey":"dev","batch":[{"type":"track","event":"E","anonymousId":"a"}]}`)); a.code != 200 {
		t.Errorf("/e/batch: %d %s", a.code, a.body)
	}
	if a := do(h, "POST", "/e/track", []byte(`{"writeKey":"dev","event":"E","anonymousId":"a"}`)); a.code != 200 {
		t.Errorf("/e/track: %d", a.code)
	}
	for _, p := range []string{"/beacon.js", "/e/beacon.js", "/s.js", "/e/s.js"} {
		if a := do(h, "GET", p, nil); a.code != 200 || string(a.body) != "/*beacon*/" {
			t.Errorf("%s: %d %q", p, a.code, a.body)
		}
	}
	if len(rec.topic("shoptrail.events")) != 2 {
		t.Errorf("events through the prefix not stored")
	}
	if _, err := NewWithOptions(Config{PathPrefixes: []string{"e/"}}, Options{Producer: rec}); err == nil {
		t.Error("prefix without a leading slash accepted")
	}
}

// TestShedWhenBudgetSpent: a request that would exceed the in-flight
// budget is answered 503 with Retry-After at once.
func TestShedWhenBudgetSpent(t *testing.T) {
	s, _ := newTestServer(t, Config{MaxBodyBytes: 64 << 10, MaxInflightBytes: 256 << 10})
	if !s.budget.acquire(250 << 10) { // requests already in flight
		t.Fatal("budget refused the first reservation")
	}
	a := do(s.Handler(), "POST", "/v1/track", []byte(`{"writeKey":"dev","event":"E","anonymousId":"a"}`))
	if a.code != 503 || a.header.Get("Retry-After") != "1" || !strings.Contains(a.json["error"].(string), "overloaded") {
		t.Errorf("got %d %v %s", a.code, a.header, a.body)
	}
	s.budget.release(250 << 10)
	if a := do(s.Handler(), "POST", "/v1/track", []byte(`{"writeKey":"dev","event":"E","anonymousId":"a"}`)); a.code != 200 {
		t.Errorf("after release: %d", a.code)
	}
}

// TestDefaultBeacon: without Options.Beacon the collector serves the
// embedded beacon build.
func TestDefaultBeacon(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	a := do(s.Handler(), "GET", "/beacon.js", nil)
	if a.code != 200 || !strings.Contains(a.header.Get("Content-Type"), "javascript") || len(a.body) < 500 {
		t.Errorf("/beacon.js: %d %v %d bytes", a.code, a.header, len(a.body))
	}
}
