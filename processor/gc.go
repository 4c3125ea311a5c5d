package processor

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// GCPercent is the processor's garbage-collector target (GOGC) when it
// has a soft memory limit and the environment sets no GOGC: between
// collections the heap may grow to five times what is live. The
// processor's live heap is mostly long-lived state (open sessions,
// visitors, carts, customers) that every collection scans again, so
// collecting a quarter as often saves CPU per event; the soft limit bounds
// the memory that costs.
const GCPercent = 400

// MemLimitRatio is the share of a container's memory limit (cgroup) that
// TuneGC makes the Go runtime's soft limit unless GOMEMLIMIT is set: near
// it the garbage collector runs as often as it must, whatever GOGC says.
const MemLimitRatio = 0.8

// TuneGC applies the processor's garbage-collector policy to this process.
// Unless GOMEMLIMIT is set, the soft memory limit becomes MemLimitRatio of
// the cgroup's memory limit, if there is one. Then, unless GOGC is set,
// a process with a soft limit runs at GOGC=GCPercent; one without keeps
// Go's default (100), so nothing lets its heap grow fivefold unbounded.
// Call it once, at start-up.
func TuneGC(log *slog.Logger) {
	if _, err := memlimit.Set(memlimit.WithRatio(MemLimitRatio), memlimit.WithProvider(memlimit.FromCgroup),
		memlimit.WithLogger(slog.New(slog.DiscardHandler))); err != nil {
		log.Debug("no cgroup memory limit read", "err", err)
	}
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		return
	}
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		debug.SetGCPercent(GCPercent)
		gogc = strconv.Itoa(GCPercent)
	}
	log.Info("garbage collector", "soft_limit_bytes", limit, "gogc", gogc)
}
