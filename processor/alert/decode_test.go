package alert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// plainValues fill a signal with values json.Marshal writes without
// escapes (the decoder's fast path): a field added to shoptrail.Signal is
// covered without touching the test.
var plainValues = testenv.Filler{
	Str: func(n int) string { return fmt.Sprintf("s%d-张三", n) },
	// Fractions, a tiny and a huge value (json writes 1e-7, 1e+21).
	Float: func(n int) float64 { return []float64{1234.5678901234567, 1e-7, 1e21, 0.1, 99.99}[n%5] + float64(n) },
	Time: func(n int) time.Time {
		return time.Date(2026, 3, 2, 10, n%60, 5, 123456789, time.FixedZone("", 8*3600))
	},
}

// The fast decoder gives what json.Unmarshal gives, on a signal with every
// field set.
func TestDecodeSignalAsJSON(t *testing.T) {
	var sig shoptrail.Signal
	plainValues.Fill(t, reflect.ValueOf(&sig).Elem())
	b, err := json.Marshal(&sig)
	if err != nil {
		t.Fatal(err)
	}
	var p fastjson.Parser
	var fast, slow shoptrail.Signal
	if !plain(b) {
		t.Fatalf("json.Marshal's output is not plain, the fast path is not tested: %s", b)
	}
	v, err := p.ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	d := decoder{ok: true}
	if d.signal(v, &fast); !d.ok {
		t.Fatalf("the fast path refused json.Marshal's output: %s", b)
	}
	if err := json.Unmarshal(b, &slow); err != nil {
		t.Fatal(err)
	}
	bf, _ := json.Marshal(&fast)
	bs, _ := json.Marshal(&slow)
	if !bytes.Equal(bf, b) || !bytes.Equal(bs, b) {
		t.Errorf("decoded and encoded again:\nfast %s\njson %s\nwant %s", bf, bs, b)
	}
	if !fast.At.Equal(sig.At) || fast.At.Nanosecond() != 123456789 {
		t.Errorf("at %v, want %v", fast.At, sig.At)
	}
}

// Whatever the fast path is unsure of goes to json.Unmarshal: the same
// result, the same error.
func TestDecodeSignalOddRecords(t *testing.T) {
	f := func(in string, wantFast bool) {
		t.Helper()
		var p fastjson.Parser
		var got, want shoptrail.Signal
		gotErr := decodeSignal(&p, []byte(in), &got)
		wantErr := json.Unmarshal([]byte(in), &want)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v, %v\nwant %+v, %v", in, got, gotErr, want, wantErr)
		}
		fast := false
		if plain([]byte(in)) {
			if v, err := p.ParseBytes([]byte(in)); err == nil {
				d := decoder{ok: true}
				var s shoptrail.Signal
				d.signal(v, &s)
				fast = d.ok
			}
		}
		if fast != wantFast {
			t.Errorf("%s: fast path %v, want %v", in, fast, wantFast)
		}
	}
	// Taken fast: unknown fields, nulls, an empty items list (an empty
	// slice, not nil), a null item, exponents.
	f(`{"v":1,"id":"a","site":"s","x":{"y":[1,2,{"z":null}]},"customer":null,"transition":null}`, true)
	f(`{"id":"a","cart":{"items":[],"value":1.5e3,"itemCount":-0}}`, true)
	f(`{"id":"a","cart":{"items":null,"recoveredAt":null}}`, true)
	f(`{"id":"a","cart":{"items":[null,{"price":2E-2}]}}`, true)
	f(`{"id":"a","at":"2026-03-02T10:00:00Z","customer":{"id":"c","lastOrderAt":"2026-03-01T10:00:00Z"}}`, true)
	// Not JSON, or not an object.
	f(`{not json`, false)
	f(`null`, false)
	f(`[]`, false)
	f(`"x"`, false)
	f(`{"id":"a"} x`, false)
	// Wrong types.
	f(`{"v":"1"}`, false)
	f(`{"v":1.5}`, false)
	f(`{"v":99999999999999999999}`, false)
	f(`{"id":7}`, false)
	f(`{"at":123}`, false)
	f(`{"at":"2026-13-01T00:00:00Z"}`, false)
	f(`{"cart":{"value":1e400}}`, false)
	f(`{"cart":{"items":{}}}`, false)
	f(`{"cart":[]}`, false)
	f(`{"customer":"c1"}`, false)
	f(`{"v":true}`, false)
	// Numbers JSON does not write.
	f(`{"v":01}`, false)
	f(`{"cart":{"value":.5}}`, false)
	f(`{"cart":{"value":NaN}}`, false)
	// Escapes, control characters, invalid UTF-8, whitespace: slow.
	f(`{"id":"a\"b","site":"Smith \u0026 Co"}`, false)
	f("{\"id\":\"a\tb\"}", false)
	f("{\"id\":\"a\xffb\"}", false)
	f("{\"id\": \"a\"}\n", false)
	// A key matching only case-insensitively, a repeated key: slow.
	f(`{"ID":"upper"}`, false)
	f(`{"id":"a","id":"b"}`, false)
	f(`{"customer":{"tier":"A","TIER":"B"}}`, false)
}

// BenchmarkDecodeSignal: the fast path against json.Unmarshal on an
// abandoned cart with its customer.
func BenchmarkDecodeSignal(b *testing.B) {
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	sig := &shoptrail.Signal{V: 1, ID: "0123456789abcdef0123456789abcdef", Type: shoptrail.SignalCartAbandoned, Site: "shop-1", At: at,
		CustomerID: "c-42", AnonymousID: "a-42",
		Customer: &shoptrail.SignalCustomer{ID: "c-42", Email: "zhang@example.com", Name: "张三", Company: "Acme", Stage: shoptrail.StageLoyal,
			Tier: "A", OrderCount: 9, NetRevenue: 20450.5, Currency: "CNY", FirstSeenAt: at.AddDate(-1, 0, 0), LastOrderAt: at.AddDate(0, -1, 0),
			LastVisitAt: at, FirstChannel: "Paid Search", FirstSource: "baidu"},
		Cart: &shoptrail.SignalCart{CartID: "cart-1", Value: 1280, Currency: "CNY", ItemCount: 2, Step: "checkout",
			Items: []shoptrail.SignalCartItem{{ProductID: "p1", SKU: "S1", Name: "Pump", Price: 1200, Quantity: 1},
				{ProductID: "p2", Name: "Seal", Price: 40, Quantity: 2}},
			LastActivityAt: at, AbandonedAt: at, SessionID: "sess", Channel: "Paid Search", Source: "baidu", AbandonmentID: "ab-1"}}
	raw, _ := json.Marshal(sig)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		var p fastjson.Parser
		for b.Loop() {
			var s shoptrail.Signal
			if err := decodeSignal(&p, raw, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			var s shoptrail.Signal
			if err := json.Unmarshal(raw, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
