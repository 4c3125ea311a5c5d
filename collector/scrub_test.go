package collector

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
)

func TestRedactText(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := redactText(in, textRules); got != want {
			t.Errorf("redactText(%q)\n got %q\nwant %q", in, got, want)
		}
	}
	// Nothing to redact: the same string.
	f("Sample Requested 样品", "Sample Requested 样品")
	f("metal-film-resistor-10k-ohm-1-percent", "metal-film-resistor-10k-ohm-1-percent")
	f("2026-11-22T10:00:00.000Z", "2026-11-22T10:00:00.000Z")
	f("3.14159265358979", "3.14159265358979") // a decimal number
	f("order 12345678", "order 12345678")     // 8 digits: no phone
	f("user@localhost", "user@localhost")     // no dot in the domain
	// Emails, anywhere in a text.
	f("bob@example.com", "[email]")
	f("write to Bob.Smith+shop@mail.example.co.uk, please.", "write to [email], please.")
	f("a@b.cd and c@d.ef", "[email] and [email]")
	// Phones: with + or ( and 7+ digits; bare 10 to 15 digits.
	f("call +86 138 0013 8000 now", "call [phone] now")
	f("(555) 123-4567", "[phone]")
	f("tel:13800138000", "tel:[phone]")
	f("138-0013-8000", "[phone]")
	f("+1-555-123-4567, +44 20 7946 0958", "[phone], [phone]")
	// Tokens: JWTs and long random strings.
	f("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl-x_y", "Bearer [token]")
	f("key=4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c;", "key=[token];")
	f("id 4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4f9a8b7c", "id [token]")
}

func TestRedactSegmentPhones(t *testing.T) {
	// In a path a bare long number is an id (item 100012043978); a phone
	// needs its + there.
	if got := redactPath("/item/100012043978"); got != "/item/100012043978" {
		t.Errorf("id in path redacted: %q", got)
	}
	if got := redactPath("/call/+8613800138000/x"); got != "/call/[phone]/x" {
		t.Errorf("phone in path: %q", got)
	}
}

// TestScrubbingHoles: the paths that escaped scrubbing before it became one
// step, each checked on the stored event and on a dead letter.
func TestScrubbingHoles(t *testing.T) {
	s, rec := newTestServer(t, Config{})
	h := s.Handler()
	post := func(body string, hdr ...string) answer {
		t.Helper()
		return do(h, "POST", "/v1/track", []byte(body), append([]string{"Authorization", "Basic ZGV2Og=="}, hdr...)...)
	}
	last := func(topic string) kafka.Message {
		t.Helper()
		m := rec.topic(topic)
		if len(m) == 0 {
			t.Fatalf("nothing in %s", topic)
		}
		return m[len(m)-1]
	}
	// A search none of whose parameters is kept is stored empty, not raw.
	if a := post(`{"event":"E","anonymousId":"a","properties":{"search":"?email=bob@example.com&x=1"}}`); a.code != 200 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	if v := string(last(shoptrail.TopicEvents).Value); strings.Contains(v, "bob@") || !strings.Contains(v, `"search":""`) {
		t.Errorf("search kept: %s", v)
	}
	// Five rewritten properties: all five rewritten.
	a := post(`{"event":"E","anonymousId":"a","properties":{"url":"https://s.example/?email=bob@example.com","referrer":"https://s.example/u/bob@example.com",
		"search":"?t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl","path":"/u/bob@example.com","currency":"cny","note":"call +86 138 0013 8000"}}`)
	if a.code != 200 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	if v := string(last(shoptrail.TopicEvents).Value); strings.Contains(v, "bob@") || strings.Contains(v, "eyJ") || strings.Contains(v, "138 0013") || !strings.Contains(v, `"currency":"CNY"`) {
		t.Errorf("properties not all scrubbed: %s", v)
	}
	// A duplicated key is rejected, and no copy of it reaches the dead
	// letter raw.
	a = post(`{"event":"E","anonymousId":"a","properties":{"note":"fine","note":"bob@example.com"}}`)
	if msg, _ := a.json["error"].(string); a.code != 400 || !strings.Contains(msg, "properties.note is given twice") {
		t.Errorf("duplicate key: %d %s", a.code, a.body)
	}
	if dl := last(shoptrail.TopicDeadLetter); strings.Contains(string(dl.Value), "bob@") || header(dl, "field") != "properties.note" {
		t.Errorf("dead letter of a duplicate key: %s %v", dl.Value, dl.Headers)
	}
	a = post(`{"event":"E","event":"F","anonymousId":"a"}`)
	if a.code != 400 || !strings.Contains(a.json["error"].(string), "event is given twice") {
		t.Errorf("duplicate top-level key: %d %s", a.code, a.body)
	}
	// A dead letter is scrubbed as an event is: texts, titles, campaign,
	// nested properties, keys, and the reason quoting what was sent.
	a = post(`{"event":"E","anonymousId":"a","writeKey":"dev","context":{"page":{"title":"Hi bob@example.com","path":"/u/bob@example.com"},
		"campaign":{"name":"+86 138 0013 8000"},"custom":{"x":["bob@example.com"]}},
		"properties":{"price":"9.5","deep":{"bob@example.com":{"y":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}}}}`)
	if a.code != 400 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	dl := last(shoptrail.TopicDeadLetter)
	if v := string(dl.Value); strings.Contains(v, "bob@") || strings.Contains(v, "eyJ") || strings.Contains(v, "138 0013") || strings.Contains(v, "writeKey") {
		t.Errorf("dead letter not scrubbed: %s", v)
	}
	// An email hidden behind JSON escapes is found all the same.
	if a := post(`{"event":"E","anonymousId":"a","properties":{"note":"bob\u0040example.com"}}`); a.code != 200 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	if v := string(last(shoptrail.TopicEvents).Value); strings.Contains(v, "example.com") || strings.Contains(v, "bob") {
		t.Errorf("escaped email kept: %s", v)
	}
	a = post(`{"event":"E","anonymousId":"a","properties":{"currency":"bob@x.com"}}`)
	if dl := last(shoptrail.TopicDeadLetter); a.code != 400 || strings.Contains(header(dl, "reason"), "bob@") {
		t.Errorf("dead letter reason quotes an email: %q", header(dl, "reason"))
	}
}

// TestTraitPolicy: traits are kept as sent, except a site's hashTraits
// (hashed) and dropTraits (removed), in traits and context.traits.
func TestTraitPolicy(t *testing.T) {
	sites := sitesFile(t, `[{"id":"shop","writeKeys":["k"],"hashTraits":["email"],"dropTraits":["phone"]}]`)
	s, rec := newTestServer(t, Config{Sites: sites})
	a := do(s.Handler(), "POST", "/v1/batch", []byte(`{"writeKey":"k","batch":[
		{"type":"identify","userId":"u1","traits":{"email":" Bob@Example.com","phone":"+86 138 0013 8000","name":"Bob"}},
		{"type":"track","event":"E","userId":"u1","context":{"traits":{"email":"bob@example.com","phone":"1"}}}]}`))
	if a.code != 200 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	sum := sha256.Sum256([]byte("bob@example.com"))
	want := `"email":"sha256:` + hex.EncodeToString(sum[:]) + `"`
	ev := rec.topic(shoptrail.TopicEvents)
	if len(ev) != 2 {
		t.Fatalf("%d events", len(ev))
	}
	var e shoptrail.Event
	json.Unmarshal(ev[0].Value, &e)
	if tr := string(e.Traits); !strings.Contains(tr, want) || strings.Contains(tr, "phone") || !strings.Contains(tr, `"name":"Bob"`) {
		t.Errorf("identify traits = %s, want %s, no phone, name kept", tr, want)
	}
	if v := string(ev[1].Value); strings.Contains(v, "bob@") || strings.Contains(v, "phone") {
		t.Errorf("context.traits not applied: %s", v)
	}
	if _, err := NewSites([]Site{{ID: "x", WriteKeys: []string{"k"}, HashTraits: []string{"a"}, DropTraits: []string{"a"}}}); err == nil {
		t.Error("a trait both hashed and dropped is accepted")
	}
}

var piiSeed = flag.Uint64("pii.seed", 0, "seed of TestNoPIIInAnyOutput (0: from the clock)")

// piiGen makes random events with emails, phones and tokens in every
// place that is not kept verbatim (ids and traits are; the README says
// so), and remembers what it put in.
type piiGen struct {
	r      *rand.Rand
	placed []string
}

const lower = "abcdefghijklmnopqrstuvwxyz"

func (g *piiGen) word(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(b)
}

func (g *piiGen) digits(n int) string { return g.word(n, "0123456789") }

// pii returns an email, a phone or a token; plus says whether it may sit
// in a URL path (bare phone numbers there are ids).
func (g *piiGen) pii(path bool) string {
	var p string
	switch k := g.r.IntN(9); {
	case k == 0:
		p = g.word(1+g.r.IntN(8), lower+"0123456789") + "@" + g.word(2+g.r.IntN(6), lower) + "." + g.word(2+g.r.IntN(3), lower)
	case k == 1:
		p = g.word(2, lower) + "." + g.word(3, lower) + "+" + g.word(2, lower) + "@" + g.word(3, lower) + "-" + g.word(2, lower) + ".co." + g.word(2, lower)
	case k == 2:
		p = "+" + g.digits(2) + " " + g.digits(3) + " " + g.digits(4) + " " + g.digits(4)
	case k == 3:
		p = "+" + g.digits(1) + "-" + g.digits(3) + "-" + g.digits(3) + "-" + g.digits(4)
	case k == 4 && !path:
		p = "1" + g.digits(10) // a Chinese mobile number
	case k == 5 && !path:
		p = "(" + g.digits(3) + ") " + g.digits(3) + "-" + g.digits(4)
	case k == 6:
		p = "eyJ" + g.word(20, lower+"ABCXYZ0123456789_-") + "." + g.word(30, lower+"0123456789") + "." + g.word(25, lower+"0123456789-_")
	default:
		p = g.word(16, "0123456789abcdef") + "9" + g.word(23, "0123456789abcdef") + "a"
	}
	g.placed = append(g.placed, p)
	return p
}

// text puts a PII string into some words, standing apart as the README
// says it must.
func (g *piiGen) text() string {
	p := g.pii(false)
	switch g.r.IntN(4) {
	case 0:
		return p
	case 1:
		return "note: " + p
	case 2:
		return "ask " + p + ", then go"
	}
	return "(" + p + ")"
}

// url puts PII into a URL: path, kept and dropped query values, fragment,
// credentials.
func (g *piiGen) url() string {
	u := "https://shop.example/p/" + url.PathEscape(g.pii(true)) + "/x?utm_term=" + url.QueryEscape(g.text()) +
		"&session=" + url.QueryEscape(g.pii(false)) + "&q=" + url.QueryEscape(g.pii(false)) + "&page=2"
	switch g.r.IntN(3) {
	case 0:
		u += "#" + g.pii(false)
	case 1:
		u = strings.Replace(u, "https://", "https://"+url.QueryEscape(g.pii(true))+":pw@", 1)
	}
	return u
}

func (g *piiGen) message(i int) map[string]any {
	ctx := map[string]any{
		"page": map[string]any{"url": g.url(), "referrer": g.url(), "title": g.text(), "path": "/p/" + g.pii(true),
			"search": "?utm_source=" + url.QueryEscape(g.text()) + "&email=" + url.QueryEscape(g.pii(false))},
		"campaign":  map[string]any{"name": g.text(), "source": g.text(), "content": g.text()},
		"library":   map[string]any{"name": g.text(), "version": "1.0"},
		"locale":    g.text(),
		"userAgent": "Mozilla/5.0 " + g.text(),
		"ip":        "203.0.113.77",
		"custom":    map[string]any{"deep": []any{g.text(), map[string]any{"k": g.text()}}},
		"traits":    map[string]any{"plan": "pro"},
	}
	props := map[string]any{
		"url": g.url(), "referrer": g.url(), "search": "?q=" + url.QueryEscape(g.pii(false)), "path": "/u/" + g.pii(true),
		"note": g.text(), "nested": map[string]any{"a": []any{g.text(), 1, true}, g.pii(false): "key holds it"},
		"products": []any{map[string]any{"product_id": "p1", "name": g.text(), "price": 9.5, "url": g.url()}},
		"order_id": "o-" + strconv.Itoa(i),
	}
	m := map[string]any{
		"type": "track", "event": "E " + g.text(), "anonymousId": "anon-" + strconv.Itoa(i), "messageId": "m-" + strconv.Itoa(i),
		"context": ctx, "properties": props, "timestamp": "2026-11-22T10:00:00Z",
		"traits": map[string]any{"plan": "pro"},
	}
	switch g.r.IntN(5) { // some invalid, for the dead letters
	case 0:
		props["price"] = g.text()
	case 1:
		m["type"] = g.text()
	case 2:
		m["name"] = g.text()
		m["type"] = "page"
	}
	if g.r.IntN(6) == 0 {
		m["garbage"] = map[string]any{"x": g.text()}
	}
	return m
}

var (
	emailShape = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-][A-Za-z0-9.-]*\.[A-Za-z0-9]{2,}`)
	jwtShape   = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.`)
)

// TestNoPIIInAnyOutput: over random events carrying emails, phones and
// tokens in every scrubbed place (valid events and rejected ones, by
// browsers and by servers), nothing that is produced — event, key, dead
// letter, header — holds any of them, raw or URL-escaped, nor anything
// email- or JWT-shaped. -pii.seed=N repeats a run.
func TestNoPIIInAnyOutput(t *testing.T) {
	seed := *piiSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (-pii.seed=%d repeats it)", seed, seed)
	g := &piiGen{r: rand.New(rand.NewPCG(seed, 7))}
	s, rec := newTestServer(t, Config{})
	h := s.Handler()
	var out []string
	for round := 0; round < 60; round++ {
		var batch []any
		for i := 0; i < 1+g.r.IntN(8); i++ {
			batch = append(batch, g.message(round*100+i))
		}
		if g.r.IntN(4) == 0 {
			batch = append(batch, g.text()) // not even an object
		}
		body, _ := json.Marshal(map[string]any{"batch": batch, "writeKey": "dev"})
		hdr := []string{"User-Agent", "Mozilla/5.0 " + g.text()}
		if g.r.IntN(2) == 0 {
			hdr = append(hdr, "Origin", "https://shop.example")
		}
		a := do(h, "POST", "/v1/batch", body, hdr...)
		if a.code != 200 && a.code != 400 {
			t.Fatalf("%d %s", a.code, a.body)
		}
	}
	rec.mu.Lock()
	for _, m := range rec.msgs {
		out = append(out, string(m.Key), string(m.Value))
		for _, h := range m.Headers {
			out = append(out, string(h.Value))
		}
	}
	nEvents := 0
	for _, m := range rec.msgs {
		if m.Topic == shoptrail.TopicEvents {
			nEvents++
		}
	}
	rec.mu.Unlock()
	if nEvents < 50 || len(out) < 300 {
		t.Fatalf("only %d events and %d outputs: the generator makes too few valid events", nEvents, len(out))
	}
	all := strings.Join(out, "\n")
	for _, p := range g.placed {
		for _, form := range []string{p, url.QueryEscape(p), url.PathEscape(p)} {
			if i := strings.Index(all, form); i >= 0 {
				t.Fatalf("%q is in the output: …%s…", form, all[max(0, i-200):min(len(all), i+len(form)+50)])
			}
		}
	}
	for _, re := range []*regexp.Regexp{emailShape, jwtShape} {
		if m := re.FindString(all); m != "" {
			t.Fatalf("%s-shaped string %q in the output", re, m)
		}
	}
	if strings.Contains(all, "203.0.113.77") {
		t.Fatal("a raw IP is in the output")
	}
	t.Logf("%d PII strings placed, %d events and %d outputs checked", len(g.placed), nEvents, len(out))
}

// FuzzRedactText: redacting is idempotent and never panics, and the cheap
// filters before it (mayNeedRedacting, scanJSON) never let through a
// string it would change.
func FuzzRedactText(f *testing.F) {
	for _, s := range []string{"bob@example.com", "+86 138 0013 8000", "a@b@c.de", "eyJa.b.c", "(((((1234567", "x" + strings.Repeat("+1 ", 50)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := redactText(s, textRules)
		if once != s && !mayNeedRedacting(s) {
			t.Fatalf("the filter lets %q pass, which redactText changes to %q", s, once)
		}
		if b, _ := json.Marshal(map[string]string{"k": s}); once != s {
			if sh, _ := scanJSON(b); !sh.mayPII {
				t.Fatalf("scanJSON lets %s pass, whose string redactText changes", b)
			}
		}
		if twice := redactText(once, textRules); twice != once {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, once, twice)
		}
	})
}

// TestPIIFiltersShortStrings: the cheap filters before redacting let no
// short string through that redactText changes (the shortest shapes: a
// 5-byte JWT, a 6-byte email, 7 digits after a + or ( ), and scanJSON
// finds them behind escapes too.
func TestPIIFiltersShortStrings(t *testing.T) {
	for _, s := range []string{"eyJ..", "eyJa.b.c", "a@b.cd", "+1234567", "(123)4567", "1234567890",
		"x eyJ.. y", "tel +1234567;", "JJJJ@a.bc"} {
		if redactText(s, textRules) == s {
			t.Errorf("redactText(%q) changes nothing", s)
		}
		if !mayNeedRedacting(s) {
			t.Errorf("mayNeedRedacting(%q) = false", s)
		}
		for _, body := range []string{`{"k":"` + s + `"}`, `{"k":"\"\\\n` + s + `\\"}`, `["\\\\",` + `"` + s + `"]`} {
			if sh, ok := scanJSON([]byte(body)); !ok || !sh.mayPII {
				t.Errorf("scanJSON(%s) lets it pass", body)
			}
		}
	}
	for _, s := range []string{"Product Viewed", "eyj..", "123456", "+123456", "lg-bench-1", "v-17 10:00:00"} {
		if mayNeedRedacting(s) {
			t.Errorf("mayNeedRedacting(%q) = true: the filter passes nothing", s)
		}
	}
	// Escapes between the quotes: strings end where they end (values are
	// counted outside strings only).
	sh, ok := scanJSON([]byte(`{"a\"":"x\\","b":["\\\"",1],"c":"\u0041"}`))
	if !ok || sh.deepest != 2 || sh.values != 8 || !sh.mayPII {
		t.Errorf("scanJSON = %+v, %v; want 2, 8, true (\\u may hide anything)", sh, ok)
	}
}
