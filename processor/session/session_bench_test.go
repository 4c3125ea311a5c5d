package session

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
)

// benchStream builds a realistic, time-ordered (with delivery jitter) stream
// of fully populated events, as the processor has them after JSON decoding:
// visitors arriving over two hours, each visit 1-15 events some seconds
// apart, landing hits with referrers or utm tags, e-commerce events with
// properties, the beacon's tab sequence numbers; a retried beacon now and
// then.
func benchStream(n int) []*shoptrail.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	type item struct {
		e   *shoptrail.Event
		key int64
	}
	items := make([]item, 0, n+n/50)
	refs := []string{"", "", "https://www.baidu.com/link?url=abc", "https://www.google.com/",
		"https://mp.weixin.qq.com/s/xyz", "https://www.zhihu.com/question/1", "https://www.made-in-china.com/"}
	utms := [][3]string{{}, {}, {}, {"baidu", "cpc", "brand-2025"}, {"douyin", "paid", "live-0301"}}
	paths := []string{"/", "/category/ic", "/p/stm32f103c8t6", "/p/ne555", "/p/lm358", "/search", "/cart", "/checkout"}
	browsers := []string{"Chrome", "WeChat", "Safari", "Edge"}
	span := 2 * time.Hour
	msg := 0
	for v := 0; len(items) < n; v++ {
		anon := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), v&0xffff, v&0xfff, v&0xfff, rng.Uint64()&0xffffffffffff)
		tab := fmt.Sprintf("%016x", rng.Uint64())
		t := t0.Add(time.Duration(rng.Int64N(int64(span))))
		ref := refs[rng.IntN(len(refs))]
		utm := utms[rng.IntN(len(utms))]
		dev := shoptrail.Device{Class: "mobile", Browser: browsers[v%len(browsers)], OS: "Android"}
		for i := range 1 + rng.IntN(15) {
			msg++
			path := paths[rng.IntN(len(paths))]
			e := &shoptrail.Event{
				V: 1, Site: "shop-components", MessageID: fmt.Sprintf("%016x-%08x", rng.Uint64(), msg),
				Type: shoptrail.TypePage, AnonymousID: anon,
				Timestamp: t, OriginalTimestamp: t, SentAt: t.Add(time.Second), ReceivedAt: t.Add(1200 * time.Millisecond),
			}
			e.Context.Page = shoptrail.Page{URL: "https://www.icshop.example" + path, Path: path, Title: "NE555 timer IC - icshop",
				Referrer: "https://www.icshop.example/"}
			e.Context.UserAgent = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"
			e.Context.IP = "203.0.113.0"
			e.Context.Library = shoptrail.Library{Name: "shoptrail.js", Version: "1.0.0"}
			e.Context.Locale = "zh-CN"
			e.Context.Device = dev
			e.Context.Delivery = shoptrail.Delivery{Tab: tab, Seq: int64(i + 1), Transport: "beacon"}
			if i == 0 {
				e.Context.Page.Referrer = ref
				e.Context.Campaign.Source, e.Context.Campaign.Medium, e.Context.Campaign.Name = utm[0], utm[1], utm[2]
			}
			switch rng.IntN(12) {
			case 0, 1:
				e.Type, e.Event = shoptrail.TypeTrack, shoptrail.EventProductViewed
				e.Properties = []byte(`{"product_id":"p-555","sku":"NE555DR","name":"NE555 timer","brand":"TI","price":0.35,"currency":"CNY"}`)
			case 2:
				e.Type, e.Event = shoptrail.TypeTrack, shoptrail.EventProductAdded
				e.Properties = []byte(`{"cart_id":"c-1","product_id":"p-555","sku":"NE555DR","name":"NE555 timer","price":0.35,"quantity":100}`)
			case 3:
				e.Type, e.Event = shoptrail.TypeTrack, shoptrail.EventOrderCompleted
				e.Properties = []byte(`{"order_id":"o-` + fmt.Sprint(msg) + `","total":38.5,"revenue":35,"shipping":3.5,"currency":"CNY","products":[{"product_id":"p-555","price":0.35,"quantity":100}]}`)
			}
			jitter := rng.Int64N(int64(3 * time.Second))
			items = append(items, item{e, t.UnixNano() + jitter})
			if rng.IntN(50) == 0 {
				items = append(items, item{e, t.UnixNano() + jitter + int64(2*time.Second)})
			}
			t = t.Add(time.Duration(5+rng.IntN(60)) * time.Second)
		}
	}
	slicesSortItems(items, func(a, b item) bool { return a.key < b.key })
	out := make([]*shoptrail.Event, n)
	for i := range out {
		out[i] = items[i].e
	}
	return out
}

func slicesSortItems[T any](s []T, less func(a, b T) bool) {
	// A stable merge sort keeps equal keys in generation order.
	if len(s) < 2 {
		return
	}
	tmp := make([]T, len(s))
	var sortRange func(lo, hi int)
	sortRange = func(lo, hi int) {
		if hi-lo < 2 {
			return
		}
		mid := (lo + hi) / 2
		sortRange(lo, mid)
		sortRange(mid, hi)
		i, j, k := lo, mid, lo
		for i < mid && j < hi {
			if less(s[j], s[i]) {
				tmp[k] = s[j]
				j++
			} else {
				tmp[k] = s[i]
				i++
			}
			k++
		}
		k += copy(tmp[k:], s[i:mid])
		copy(tmp[k:], s[j:hi])
		copy(s[lo:hi], tmp[lo:hi])
	}
	sortRange(0, len(s))
}

var (
	streamOnce sync.Once
	streamJSON [][]byte // the stream, one JSON-encoded event each
)

// BenchmarkSessionizer measures the sessionizer alone: one op is one event
// through Add, with its share of settling, closing sessions and draining
// the outputs. The events come JSON-decoded in batches of 1000, as from a
// Kafka fetch; decoding is outside the timer, so the event data is fresh in
// the cache, as in the processor, while the visitors' state is not.
func BenchmarkSessionizer(b *testing.B) {
	streamOnce.Do(func() {
		for _, e := range benchStream(1 << 20) {
			j, err := json.Marshal(e)
			if err != nil {
				b.Fatal(err)
			}
			streamJSON = append(streamJSON, j)
		}
	})
	const batch = 1000
	events := make([]shoptrail.Event, batch)
	var s *Sessionizer
	var out Output
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		b.StopTimer()
		j := i % len(streamJSON)
		if j == 0 {
			s, _ = New(Config{})
		}
		n := min(batch, b.N-i, len(streamJSON)-j)
		for k := range n {
			events[k] = shoptrail.Event{}
			if err := json.Unmarshal(streamJSON[j+k], &events[k]); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for k := range n {
			s.Add(int64(j+k), &events[k])
		}
		s.Drain(&out)
		out.Reset()
		i += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// openSessions opens n sessions of four settled events each (landing page
// with referrer and device, product view, page, cart addition; one tab)
// and returns the heap bytes per open session after GC.
func openSessions(tb testing.TB, n int) float64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, _ := New(Config{})
	var out Output
	off := int64(0)
	add := func(e *shoptrail.Event) {
		s.Add(off, e)
		off++
		if off%4096 == 0 {
			s.Drain(&out)
			out.Reset()
		}
	}
	// Visitors arrive over 20 minutes, so that every session is still
	// open (30 minute timeout) when the watermark has settled all events.
	step := 20 * time.Minute / time.Duration(n)
	for v := range n {
		anon := fmt.Sprintf("%08x-0000-4000-8000-%012x", v, v*7919)
		tab := fmt.Sprintf("tab-%x", v)
		t := t0.Add(time.Duration(v) * step)
		e := page(anon, fmt.Sprintf("m-%d-1", v), t, "/", withRef([]string{"", "https://www.baidu.com/", "https://mp.weixin.qq.com/s/1"}[v%3]),
			withDevice("mobile", []string{"Chrome", "WeChat", "Safari"}[v%3], "Android"), withTab(tab, 1))
		add(e)
		add(track(anon, fmt.Sprintf("m-%d-2", v), t.Add(20*time.Second), shoptrail.EventProductViewed, "/p/1", withTab(tab, 2)))
		add(page(anon, fmt.Sprintf("m-%d-3", v), t.Add(40*time.Second), fmt.Sprintf("/p/%d", v%5000), withTab(tab, 3)))
		add(track(anon, fmt.Sprintf("m-%d-4", v), t.Add(60*time.Second), shoptrail.EventProductAdded, "/p/1",
			withTab(tab, 4), withProps(`{"price":12.5,"quantity":2}`)))
	}
	s.Advance(t0.Add(21*time.Minute + DefaultAllowedLateness + 2*time.Minute))
	s.Drain(&out)
	out = Output{}
	st := s.Stats()
	if st.OpenSessions != n || st.PendingEvents != 0 {
		tb.Fatalf("open %d pending %d, want %d and 0", st.OpenSessions, st.PendingEvents, n)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// BenchmarkOpenSessionMemory reports heap bytes per open session with
// 1,000,000 sessions open: go test -run '^$' -bench OpenSessionMemory.
func BenchmarkOpenSessionMemory(b *testing.B) {
	for range b.N {
		per := openSessions(b, 1_000_000)
		b.ReportMetric(per, "bytes/session")
	}
}

// TestOpenSessionMemory holds the line: at most 300 bytes of heap per open
// session, measured with 1,000,000 open sessions.
func TestOpenSessionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000,000 sessions")
	}
	if raceEnabled {
		t.Skip("the race detector changes memory use")
	}
	per := openSessions(t, 1_000_000)
	t.Logf("%.1f heap bytes per open session", per)
	if per > 300 {
		t.Errorf("%.1f bytes per open session, budget 300", per)
	}
}
