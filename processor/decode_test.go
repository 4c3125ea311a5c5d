package processor

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/shoptrail/shoptrail"
)

// checkDecode fails unless the decoder and encoding/json agree on data:
// both fail, or both yield the same event.
func checkDecode(t *testing.T, d *eventDecoder, data []byte) {
	t.Helper()
	var want, got shoptrail.Event
	werr := json.Unmarshal(data, &want)
	gerr := d.decode(data, &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("decode(%s): error %v, encoding/json: %v", data, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("decode(%s)\n got %+v\nwant %+v", data, got, want)
	}
}

// TestDecodeStringWords puts each kind of byte the decoder's strings must
// stop at (a quote or a backslash escaped, a raw control character, UTF-8,
// invalid UTF-8) at every position around the 8-byte words it skips, in a
// decoded string and in one it only skips (properties), and checks the
// result against encoding/json.
func TestDecodeStringWords(t *testing.T) {
	d := newEventDecoder()
	for _, special := range []string{`\"`, `\\`, `\n`, "\x01", "\x7f", "é", "\xff", "\xe2\x82"} {
		for n := range 25 {
			v := strings.Repeat("a", n) + special + "bcdefghijklmnopq"
			checkDecode(t, d, []byte(`{"v":1,"site":"shop","messageId":"m1","type":"track","event":"E","anonymousId":"`+v+`"}`))
			checkDecode(t, d, []byte(`{"v":1,"site":"shop","messageId":"m1","type":"track","event":"E","properties":{"k":"`+v+`"}}`))
		}
	}
}

// fillEvent sets every field of an event, with strings drawn from pick.
func fillEvent(rng *rand.Rand, pick func() string) *shoptrail.Event {
	ts := func() time.Time {
		switch rng.IntN(4) {
		case 0:
			return time.Time{}
		case 1:
			return time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(1e15)))
		case 2:
			return time.Date(2024, 2, 29, 23, 59, 59, rng.IntN(1e9), time.UTC)
		}
		return time.Date(1999, 12, 31, 1, 2, 3, 4000, time.FixedZone("x", 8*3600))
	}
	e := &shoptrail.Event{
		V: rng.IntN(3), Site: pick(), MessageID: pick(), Type: pick(), Event: pick(), Name: pick(),
		AnonymousID: pick(), UserID: pick(), GroupID: pick(), PreviousID: pick(),
		Timestamp: ts(), OriginalTimestamp: ts(), SentAt: ts(), ReceivedAt: ts(),
	}
	c := &e.Context
	c.Page = shoptrail.Page{URL: pick(), Path: pick(), Referrer: pick(), Title: pick(), Search: pick()}
	c.Campaign = shoptrail.Campaign{Name: pick(), Source: pick(), Medium: pick(), Term: pick(), Content: pick(), ClickIDKind: pick(), ClickID: pick()}
	c.UserAgent, c.IP, c.Locale, c.Timezone = pick(), pick(), pick(), pick()
	c.Library = shoptrail.Library{Name: pick(), Version: pick()}
	c.Device = shoptrail.Device{Class: pick(), Browser: pick(), OS: pick()}
	c.Bot = shoptrail.Bot{IsBot: rng.IntN(2) == 0, Reason: pick()}
	c.Delivery = shoptrail.Delivery{Tab: pick(), Seq: rng.Int64N(1 << 40), Transport: pick()}
	props := []string{``, `{}`, `{"price":9.5,"quantity":2,"name":"a \"b\" \u00e9"}`, `[1,2,{"a":[true,false,null]}]`, `"x"`, `-1.5e+10`}
	if p := props[rng.IntN(len(props))]; p != "" {
		e.Properties = json.RawMessage(p)
	}
	if p := props[rng.IntN(len(props))]; p != "" {
		e.Traits = json.RawMessage(p)
	}
	for range rng.IntN(3) {
		e.Flags = append(e.Flags, pick())
	}
	return e
}

// TestDecodeMatchesEncodingJSON decodes events that fill every field with
// plain, escaped and non-ASCII strings, and edited variants of them
// (nulls, unknown and differently cased keys, wrong types, truncation),
// with the fast decoder and with encoding/json: the results must be equal.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "shop", "Product Viewed", "/p/r-10k", "电阻 10k", "a\"quote", "back\\slash", "tab\there",
		"ctl\x01", "bad\xffutf8", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "2026-11-01T10:00:00Z", "\u2028"}
	pick := func() string { return strs[rng.IntN(len(strs))] }
	d := newEventDecoder()
	edits := []func(string) string{
		func(s string) string { return s },
		func(s string) string { return strings.Replace(s, `"site":`, `"Site":`, 1) },
		func(s string) string { return strings.Replace(s, `{"v":`, `{"unknown":[1,{"x":null}],"v":`, 1) },
		func(s string) string { return strings.Replace(s, `"messageId":"`, `"messageId":null,"x":"`, 1) },
		func(s string) string { return strings.Replace(s, `"v":`, `"v":1.5,"w":`, 1) },
		func(s string) string { return strings.Replace(s, `"seq":`, `"seq":"7","s":`, 1) },
		func(s string) string { return strings.Replace(s, `"isBot":true`, `"isBot":null`, 1) },
		func(s string) string { return strings.Replace(s, `"properties":`, `"properties":null,"p":`, 1) },
		func(s string) string { return strings.ReplaceAll(s, `,"`, ` , "`) },
		func(s string) string { return s[:len(s)/2] },
		func(s string) string { return s + "x" },
		func(s string) string {
			return strings.Replace(s, `"timestamp":"`, `"timestamp":"2026-02-30T00:00:00Z","t":"`, 1)
		},
		func(s string) string { return strings.Replace(s, `"flags":[`, `"flags":[],"f":[`, 1) },
	}
	for range 3000 {
		e := fillEvent(rng, pick)
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		checkDecode(t, d, []byte(edits[rng.IntN(len(edits))](string(b))))
	}
}

// TestDecodeFastPath makes sure the collector's ordinary events do not
// fall back to encoding/json.
func TestDecodeFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	strs := []string{"", "shop", "Product Viewed", "/p/r-10k", "电阻 10k", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}
	e := fillEvent(rng, func() string { return strs[rng.IntN(len(strs))] })
	e.Timestamp = time.Date(2026, 11, 1, 10, 0, 0, 123456789, time.UTC)
	e.OriginalTimestamp, e.SentAt, e.ReceivedAt = e.Timestamp, e.Timestamp, e.Timestamp
	b, _ := json.Marshal(e)
	var got shoptrail.Event
	p := parser{b: b, d: newEventDecoder()}
	if !p.event(&got) {
		t.Fatalf("fast path refused %s", b)
	}
	if !reflect.DeepEqual(&got, e) {
		t.Fatalf("fast path\n got %+v\nwant %+v", got, e)
	}
}

func FuzzDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		b, _ := json.Marshal(fillEvent(rng, func() string { return fmt.Sprint(rng.IntN(100)) }))
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"site":"a\u0000b","context":{"page":{"url":"\ud800"}}}`))
	d := newEventDecoder()
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, d, data)
	})
}

func BenchmarkDecode(b *testing.B) {
	data := benchEventJSON()
	b.Run("fast", func(b *testing.B) {
		d := newEventDecoder()
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		var out shoptrail.Event
		for b.Loop() {
			out = shoptrail.Event{}
			if err := d.decode(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var out shoptrail.Event
			if err := json.Unmarshal(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzEventRoundTrip: the wire format's two fast paths against each other
// and against encoding/json. An event with every field set (strings from
// the fuzzer) encoded by shoptrail's encoder (Event.AppendJSON, the
// collector's) and read back by the processor's decoder is the event that
// encoding/json's round trip gives.
func FuzzEventRoundTrip(f *testing.F) {
	for _, s := range []string{"", "shop", "电阻 10k", "a\"quote", "back\\slash", "ctl\x01", "bad\xffutf8", "\u2028", "<&>"} {
		f.Add(uint64(len(s)), s, s+"x")
	}
	d := newEventDecoder()
	f.Fuzz(func(t *testing.T, seed uint64, s1, s2 string) {
		rng := rand.New(rand.NewPCG(seed, 9))
		strs := []string{"", s1, s2, s1 + s2, "Product Viewed"}
		e := fillEvent(rng, func() string { return strs[rng.IntN(len(strs))] })
		enc := e.AppendJSON(nil)
		var got, want shoptrail.Event
		if err := d.decode(enc, &got); err != nil {
			t.Fatalf("decoding the encoder's %s: %v", enc, err)
		}
		std, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip of %s\n got %+v\nwant %+v", enc, got, want)
		}
	})
}

// benchEventJSON is the event of BenchmarkDecode (and the pipeline
// benchmark's reference work, ReferenceEventJSON): 957 bytes of JSON with
// the fields a beacon sends.
func benchEventJSON() []byte {
	e := &shoptrail.Event{V: 1, Site: "shop", MessageID: "0b7c6f2e-1111-4222-8333-0123456789ab", Type: "track",
		Event: "Product Viewed", AnonymousID: "0b7c6f2e-aaaa-4222-8333-0123456789ab",
		Timestamp: time.Date(2026, 11, 1, 10, 0, 0, 123000000, time.UTC), ReceivedAt: time.Date(2026, 11, 1, 10, 0, 1, 0, time.UTC),
		OriginalTimestamp: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC), SentAt: time.Date(2026, 11, 1, 10, 0, 0, 500000000, time.UTC),
		Properties: json.RawMessage(`{"product_id":"p-123","price":12.5,"quantity":2,"name":"Resistor 10k 1%"}`)}
	e.Context.Page = shoptrail.Page{URL: "https://www.shop.example/p/r-10k?utm_source=google", Path: "/p/r-10k",
		Referrer: "https://www.google.com/", Title: "Resistor 10k"}
	e.Context.Campaign = shoptrail.Campaign{Source: "google", Medium: "cpc", Name: "winter"}
	e.Context.UserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	e.Context.Device = shoptrail.Device{Class: "desktop", Browser: "Chrome", OS: "Windows"}
	e.Context.Library = shoptrail.Library{Name: "shoptrail.js", Version: "1.0.0"}
	e.Context.Delivery = shoptrail.Delivery{Tab: "tab-1", Seq: 12, Transport: "fetch"}
	e.Context.IP, e.Context.Locale = "203.0.113.0", "zh-CN"
	data, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return data
}

// TestDecodeKeepsInternTable decodes events of many tabs and addresses,
// each unique, between events whose paths repeat: the tabs and addresses
// must not take the intern table's slots (it would start over every few
// thousand events and lose the paths), and each decoded value must still be
// right and shared with the event before when it repeats.
func TestDecodeKeepsInternTable(t *testing.T) {
	d := newEventDecoder()
	var prev shoptrail.Event
	for i := range 3 * maxInterned {
		tab := fmt.Sprintf("v%d-t0", i/2) // two events per tab, in a row
		ip := fmt.Sprintf("203.0.%d.0", i/2%256)
		b := fmt.Appendf(nil, `{"v":1,"site":"shop","messageId":"m%d","type":"page","anonymousId":"v%d","timestamp":"2026-11-01T10:00:00Z",`+
			`"context":{"page":{"path":"/p/%d"},"ip":%q,"delivery":{"tab":%q,"seq":1}}}`, i, i/2, i%7, ip, tab)
		var e shoptrail.Event
		if err := d.decode(b, &e); err != nil {
			t.Fatal(err)
		}
		if e.Context.Delivery.Tab != tab || e.Context.IP != ip || e.Context.Page.Path != fmt.Sprintf("/p/%d", i%7) {
			t.Fatalf("event %d decoded as tab %q, ip %q, path %q", i, e.Context.Delivery.Tab, e.Context.IP, e.Context.Page.Path)
		}
		if i%2 == 1 && unsafe.StringData(e.Context.Delivery.Tab) != unsafe.StringData(prev.Context.Delivery.Tab) {
			t.Fatalf("event %d: the tab of the event before was copied again", i)
		}
		prev = e
	}
	if n := len(d.strs); n > 100 {
		t.Errorf("the intern table holds %d strings, want the few repeating ones", n)
	}
}
