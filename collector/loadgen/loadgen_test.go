package loadgen

import (
	"math"
	"os"
	"testing"
	"time"
)

func TestHistogramQuantile(t *testing.T) {
	h := histogram{le: []float64{0.001, 0.01, 0.1, math.Inf(1)}, counts: []float64{50, 90, 99, 100}}
	f := func(q float64, want time.Duration) {
		t.Helper()
		if got := h.quantile(q); got < want-time.Microsecond || got > want+time.Microsecond {
			t.Errorf("quantile(%v) = %v, want %v", q, got, want)
		}
	}
	f(0.5, time.Millisecond)      // the 50th of 100 is at the top of the first bucket
	f(0.7, 5500*time.Microsecond) // halfway through the second
	f(0.99, 100*time.Millisecond) // top of the third
	f(1, 100*time.Millisecond)    // +Inf reports the last finite bound
	if got := (histogram{}).quantile(0.5); got != 0 {
		t.Errorf("empty histogram: %v", got)
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"} {
		if _, err := CheckLoopback(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:80", "http://192.0.2.1", "https://127.0.0.1", "127.0.0.1:80"} {
		if _, err := CheckLoopback(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestProcessStats: a local collector's CPU time and resident memory are
// read from /proc (-stack), without scraping its /metrics during a run.
func TestProcessStats(t *testing.T) {
	pid := os.Getpid()
	for start := time.Now(); processCPU(pid) == 0; {
		if time.Since(start) > 10*time.Second {
			t.Fatal("processCPU stays 0 for a busy process")
		}
		for i := 0; i < 1e6; i++ {
			sink += i
		}
	}
	if rss := processRSS(pid); rss < 1<<20 {
		t.Errorf("processRSS = %d bytes, want the test's resident memory (over 1 MiB)", rss)
	}
	if processCPU(0) != 0 || processRSS(1<<30) != 0 {
		t.Error("no process: want 0")
	}
}

var sink int
