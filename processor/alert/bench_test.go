package alert_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
)

// BenchmarkDeliver measures signals decided and delivered per second: 50,000
// abandoned-cart signals already in the topic, each alerted to a local
// receiver (Standard Webhooks signed, over real HTTP), until the last
// outcome is recorded in alert_deliveries.
func BenchmarkDeliver(b *testing.B) {
	const n = 50_000
	for range b.N {
		b.StopTimer()
		e := newEnv(b)
		var got atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got.Add(1)
			w.WriteHeader(http.StatusNoContent)
		}))
		file := e.rules(basicRules(srv.URL, ""))
		at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		sigs := make([]*shoptrail.Signal, 0, 5000)
		for i := range n {
			sigs = append(sigs, cart(fmt.Sprintf("b%06d", i), fmt.Sprintf("c%06d", i), 1000, "C", at))
			if len(sigs) == cap(sigs) {
				e.produce(sigs...)
				sigs = sigs[:0]
			}
		}
		cfg := e.config(file, "bench")
		cfg.Concurrency = 32
		cfg.RecordInterval = 200 * time.Millisecond
		b.StartTimer()
		cpu0 := cpuTime()
		start := time.Now()
		r := e.start(cfg, nil, nil)
		waitFor(b, "every alert delivered", 5*time.Minute, func() bool { return got.Load() >= n })
		delivered := time.Since(start)
		waitFor(b, "every outcome recorded", 5*time.Minute, func() bool {
			var c uint64
			e.conn.QueryRow(b.Context(), "SELECT count() FROM alert_deliveries WHERE final = 1").Scan(&c)
			return c >= n
		})
		recorded := time.Since(start)
		cpu := cpuTime() - cpu0
		b.StopTimer()
		r.stop(b)
		srv.Close()
		b.ReportMetric(n/delivered.Seconds(), "delivered/s")
		b.ReportMetric(n/recorded.Seconds(), "recorded/s")
		b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/signal")
		b.Logf("%d signals: delivered in %v (%.0f/s), recorded in %v (%.0f/s); CPU of this process (alerter, receiver and broker) %v, %.0f µs per signal",
			n, delivered.Round(time.Millisecond), n/delivered.Seconds(), recorded.Round(time.Millisecond), n/recorded.Seconds(),
			cpu.Round(time.Millisecond), float64(cpu.Microseconds())/n)
	}
}

// cpuTime is the CPU time (user + system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
