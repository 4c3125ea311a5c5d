package gctune

import (
	"cmp"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// TestPolicy checks both services' policies (the processor's: GOGC=400
// only with a soft limit and no default limit; the collector's: a 384 MiB
// default and GOGC=200) against each source of the limit: none, the
// container's, GOMEMLIMIT.
func TestPolicy(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	defer func(p memlimit.Provider) { containerLimit = p }(containerLimit)

	processor := Policy{GCPercent: 400}
	collector := Policy{DefaultLimit: 384 << 20, GCPercent: 200}
	noContainer := func() (uint64, error) { return 0, memlimit.ErrNoLimit }
	for _, c := range []struct {
		name      string
		policy    Policy
		container memlimit.Provider
		gogc      string
		memlimit  int64 // GOMEMLIMIT as the runtime read it; 0: unset
		wantLimit int64
		wantGOGC  int
	}{
		{"processor, no limit", processor, noContainer, "", 0, math.MaxInt64, 100},
		{"processor, container", processor, memlimit.Limit(2 << 30), "", 0, 2 << 30 * 8 / 10, 400},
		{"processor, GOMEMLIMIT", processor, memlimit.Limit(2 << 30), "", 1 << 30, 1 << 30, 400},
		{"processor, GOMEMLIMIT and GOGC", processor, noContainer, "150", 1 << 30, 1 << 30, 150},
		{"collector, no limit", collector, noContainer, "", 0, 384 << 20, 200},
		{"collector, container", collector, memlimit.Limit(256 << 20), "", 0, 256 << 20 * 8 / 10, 200},
		{"collector, GOMEMLIMIT", collector, noContainer, "", 400 << 20, 400 << 20, 200},
		{"collector, GOGC", collector, noContainer, "150", 0, 384 << 20, 150},
	} {
		containerLimit = c.container
		memlimitEnv := ""
		if c.memlimit != 0 {
			memlimitEnv = "set"
		}
		t.Setenv("GOMEMLIMIT", memlimitEnv)
		t.Setenv("GOGC", c.gogc)
		// The runtime reads both at start-up; do as it would have.
		gogc := 100
		if c.gogc != "" {
			gogc = 150
		}
		debug.SetGCPercent(gogc)
		debug.SetMemoryLimit(cmp.Or(c.memlimit, math.MaxInt64))

		c.policy.Apply(log)
		if got := debug.SetMemoryLimit(-1); got != c.wantLimit {
			t.Errorf("%s: soft limit %d, want %d", c.name, got, c.wantLimit)
		}
		if got := debug.SetGCPercent(100); got != c.wantGOGC {
			t.Errorf("%s: GOGC %d, want %d", c.name, got, c.wantGOGC)
		}
	}
}
