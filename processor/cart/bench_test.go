package cart

import (
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/commerce"
)

// openCarts opens n carts of one line each (a catalogue of 5,000 products,
// session ids and anonymous ids of their real lengths) and returns the heap
// bytes per open cart after GC, and how many of them are its items' room.
func openCarts(tb testing.TB, n int) (perCart, items float64) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	tr, _ := New(Config{})
	products := make([]commerce.Props, 5000)
	for i := range products {
		p := commerce.Product{ProductID: fmt.Sprintf("prod-%d", i), Name: fmt.Sprintf("Product %d", i), Category: "Parts", Price: 12.5, Quantity: 2, HasQuantity: true}
		products[i] = commerce.Props{Products: []commerce.Product{p}, Product: p, Currency: "EUR"}
	}
	step := 20 * time.Minute / time.Duration(n)
	for v := range n {
		tr.Add(&Event{
			Site: "shop", AnonymousID: fmt.Sprintf("%08x-0000-4000-8000-%012x", v, v*7919), MessageID: fmt.Sprintf("m-%d-4", v),
			Name: shoptrail.EventProductAdded, Time: t0.Add(time.Duration(v) * step), Props: &products[v%len(products)],
			SessionID: fmt.Sprintf("%032x", v*104729), Channel: "Organic Search", Source: "baidu",
		})
	}
	tr.Advance(t0.Add(21 * time.Minute))
	var out Output
	tr.Drain(&out)
	if st := tr.Stats(); st.OpenCarts != n || len(out.Abandonments) != 0 {
		tb.Fatalf("%d open carts, %d abandoned; want %d, 0", st.OpenCarts, len(out.Abandonments), n)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(tr)
	runtime.KeepAlive(products)
	var itemBytes float64
	for _, v := range tr.visitors {
		itemBytes += float64(cap(v.items)) * float64(unsafe.Sizeof(Item{}))
	}
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n), itemBytes / float64(n)
}

// BenchmarkOpenCartMemory reports heap bytes per open cart with 1,000,000
// carts open, and those of them beyond its items' room:
// go test -run '^$' -bench OpenCartMemory ./processor/cart/.
func BenchmarkOpenCartMemory(b *testing.B) {
	for range b.N {
		per, items := openCarts(b, 1_000_000)
		b.ReportMetric(per, "bytes/cart")
		b.ReportMetric(per-items, "bytes/cart-beyond-items")
	}
}

// TestOpenCartMemory holds the line: at most 300 bytes of heap per open
// cart beyond its items, measured with 1,000,000 open carts.
func TestOpenCartMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000,000 carts")
	}
	per, items := openCarts(t, 1_000_000)
	t.Logf("%.1f heap bytes per open cart, %.1f of them its items", per, items)
	if per-items > 300 {
		t.Errorf("%.1f bytes per open cart beyond its items, budget 300", per-items)
	}
}
