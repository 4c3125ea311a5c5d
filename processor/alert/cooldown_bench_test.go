package alert

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// BenchmarkCooldownMemory measures the heap held by 1,000,000 cooldown
// entries (one per customer and rule), after a garbage collection.
func BenchmarkCooldownMemory(b *testing.B) {
	const n = 1_000_000
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := newCooldowns()
		for i := range n {
			subject := fmt.Sprintf("customer-%d", i)
			c.set(rules.CooldownKey("shop-1", "valuable-carts", subject), at.Add(24*time.Hour), uint64(i))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.len() != n {
			b.Fatalf("%d entries, want %d", c.len(), n)
		}
		held := float64(after.HeapAlloc - before.HeapAlloc)
		b.ReportMetric(held/(1<<20), "MiB")
		b.ReportMetric(held/n, "B/entry")
		// A look-up stays a map access.
		if !c.active(rules.CooldownKey("shop-1", "valuable-carts", "customer-7"), at, 1) {
			b.Fatal("entry not found")
		}
		runtime.KeepAlive(c)
	}
}
