package processor_test

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/shoptrail/shoptrail/processor"
)

// TestTuneGC checks the processor's garbage-collector policy: GOGC=400
// with a soft memory limit unless the environment sets GOGC, Go's default
// without one, and the environment's GOMEMLIMIT left alone. (This machine
// runs the tests without a cgroup memory limit.)
func TestTuneGC(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))

	for _, c := range []struct {
		name, gogc, memlimit string
		limit                int64 // as the runtime read GOMEMLIMIT
		want                 int
	}{
		{"no limit", "", "", math.MaxInt64, 100},
		{"GOMEMLIMIT", "", "1GiB", 1 << 30, processor.GCPercent},
		{"GOMEMLIMIT and GOGC", "150", "1GiB", 1 << 30, 150},
	} {
		t.Setenv("GOGC", c.gogc)
		t.Setenv("GOMEMLIMIT", c.memlimit)
		gogc := 100
		if c.gogc != "" {
			gogc = 150
		}
		debug.SetGCPercent(gogc)
		debug.SetMemoryLimit(c.limit)
		processor.TuneGC(log)
		if got := debug.SetGCPercent(100); got != c.want {
			t.Errorf("%s: GC percent %d, want %d", c.name, got, c.want)
		}
		if got := debug.SetMemoryLimit(-1); got != c.limit {
			t.Errorf("%s: soft limit %d, want %d", c.name, got, c.limit)
		}
	}
}
