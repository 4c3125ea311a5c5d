package customer

import (
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/commerce"
)

// trackCustomers tracks n customers (ids of a shop's usual length), each
// registered and, when buyers, with one order (else one cart addition), and
// returns the heap bytes per customer after GC.
func trackCustomers(tb testing.TB, n int, buyers bool) float64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	tr, _ := New(Config{})
	var out Output
	props := commerce.Props{OrderID: "", Revenue: 120, Currency: "EUR", Has: commerce.HasRevenue,
		Products: []commerce.Product{{ProductID: "p1", Price: 120, Quantity: 1, HasQuantity: true}}}
	step := 20 * time.Minute / time.Duration(n)
	for i := range n {
		at := t0.Add(time.Duration(i) * step)
		p := props
		p.OrderID = fmt.Sprintf("ord-%d", i)
		name := shoptrail.EventOrderCompleted
		if !buyers {
			name = shoptrail.EventProductAdded
		}
		tr.Add(&Event{Site: "shop", CustomerID: fmt.Sprintf("user-%07d", i), AnonymousID: "a", MessageID: "m", Type: "track",
			Name: name, Time: at, Props: &p, Channel: "Organic Search", Source: "baidu"})
		if i%4096 == 0 {
			tr.Drain(&out)
			out.Reset()
		}
	}
	tr.Drain(&out)
	out = Output{}
	if tr.Len() != n {
		tb.Fatalf("%d customers, want %d", tr.Len(), n)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(tr)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// BenchmarkCustomerMemory reports heap bytes per tracked customer with
// 1,000,000 customers: go test -run '^$' -bench CustomerMemory ./processor/customer/.
func BenchmarkCustomerMemory(b *testing.B) {
	for range b.N {
		b.ReportMetric(trackCustomers(b, 1_000_000, false), "bytes/customer")
		b.ReportMetric(trackCustomers(b, 1_000_000, true), "bytes/buyer")
	}
}

// TestCustomerMemory holds the line, measured with 1,000,000 customers: at
// most 200 bytes of heap per tracked customer, also a buyer with one order
// (whose order history, 32 bytes an order, comes on top of the 80-byte
// struct).
func TestCustomerMemory(t *testing.T) {
	if size := unsafe.Sizeof(customer{}); size > 80 {
		t.Errorf("customer struct is %d bytes: over 80 it takes the next size class (96)", size)
	}
	if testing.Short() {
		t.Skip("tracks 1,000,000 customers")
	}
	per := trackCustomers(t, 1_000_000, false)
	t.Logf("%.1f heap bytes per tracked customer", per)
	if per > 200 {
		t.Errorf("%.1f bytes per tracked customer, budget 200", per)
	}
	per = trackCustomers(t, 1_000_000, true)
	t.Logf("%.1f heap bytes per buyer", per)
	if per > 200 {
		t.Errorf("%.1f bytes per buyer, budget 200", per)
	}
}
