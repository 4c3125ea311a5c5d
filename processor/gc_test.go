package processor_test

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/shoptrail/shoptrail/processor"
)

// TestTuneGC checks the processor's garbage-collector policy: GOGC=400
// unless the environment sets GOGC, and the environment's GOMEMLIMIT left
// alone.
func TestTuneGC(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))

	t.Setenv("GOGC", "")
	debug.SetGCPercent(100)
	processor.TuneGC(log)
	if got := debug.SetGCPercent(100); got != processor.GCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, processor.GCPercent)
	}

	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	processor.TuneGC(log)
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("GOGC=150: GC percent %d, want the environment's 150", got)
	}

	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	processor.TuneGC(log)
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("GOMEMLIMIT=1GiB: soft limit %d, want the environment's %d", got, 1<<30)
	}
}
