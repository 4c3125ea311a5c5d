package processor

import (
	"log/slog"

	"github.com/shoptrail/shoptrail/internal/gctune"
)

// GCPercent is the processor's garbage-collector target (GOGC) when it
// has a soft memory limit and the environment sets no GOGC: between
// collections the heap may grow to five times what is live. The
// processor's live heap is mostly long-lived state (open sessions,
// visitors, carts, customers) that every collection scans again, so
// collecting a quarter as often saves CPU per event; the soft limit bounds
// the memory that costs.
const GCPercent = 400

// TuneGC applies the processor's garbage-collector policy to this process:
// unless GOMEMLIMIT is set, the soft memory limit is gctune.ContainerRatio
// of the container's memory limit, if there is one; with a soft limit, and
// unless GOGC is set, GOGC=GCPercent; without one, Go's default (100), so
// nothing lets its heap grow fivefold unbounded. Call it once, at start-up.
func TuneGC(log *slog.Logger) {
	gctune.Policy{GCPercent: GCPercent}.Apply(log)
}
