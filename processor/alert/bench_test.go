package alert_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
)

// BenchmarkDeliver measures signals decided and delivered per second: 50,000
// abandoned-cart signals already in the topic, each alerted to a local
// receiver (Standard Webhooks signed, over real HTTP), until the last
// outcome is recorded in alert_deliveries. Besides the wall-clock rates it
// reports CPU per signal, which a shared machine disturbs far less: this
// process's (alerter, receiver and in-process broker: cpu-µs/signal) and the
// test ClickHouse server's (look-ups and inserts: ch-cpu-µs/signal).
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
		cfg.RecordInterval = 0 // the default, as in production
		b.StartTimer()
		cpu0, ch0 := cpuTime(), childrenCPU(b)
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
		cpu, chCPU := cpuTime()-cpu0, childrenCPU(b)-ch0
		b.StopTimer()
		r.stop(b)
		srv.Close()
		b.ReportMetric(n/delivered.Seconds(), "delivered/s")
		b.ReportMetric(n/recorded.Seconds(), "recorded/s")
		b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/signal")
		b.ReportMetric(float64(chCPU.Microseconds())/n, "ch-cpu-µs/signal")
		b.Logf("%d signals: delivered in %v (%.0f/s), recorded in %v (%.0f/s); CPU of this process (alerter, receiver and broker) %v, %.0f µs per signal; of the ClickHouse server %v, %.0f µs per signal",
			n, delivered.Round(time.Millisecond), n/delivered.Seconds(), recorded.Round(time.Millisecond), n/recorded.Seconds(),
			cpu.Round(time.Millisecond), float64(cpu.Microseconds())/n, chCPU.Round(time.Millisecond), float64(chCPU.Microseconds())/n)
	}
}

// cpuTime is the CPU time (user + system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childrenCPU is the CPU time (user + system) the running child processes
// of this one used so far: the test ClickHouse server (getrusage counts
// children only once they exit, so /proc is read).
func childrenCPU(t testing.TB) time.Duration {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("cannot read the child processes' CPU time: %v", err)
	}
	self := os.Getpid()
	var ticks int64
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue // not a process, or gone
		}
		// pid (comm) state ppid ... utime(14) stime(15): comm may hold
		// spaces, so fields are counted after its closing parenthesis.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(ticks) * 10 * time.Millisecond
}
