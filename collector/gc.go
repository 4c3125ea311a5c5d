package collector

import (
	"log/slog"

	"github.com/shoptrail/shoptrail/internal/gctune"
)

// DefaultMemLimit is the collector's soft memory limit when neither
// GOMEMLIMIT nor a container memory limit gives one. The in-flight budget
// and the connection limit bound what is live; the limit makes the garbage
// collector work harder before the process nears it.
const DefaultMemLimit = 384 << 20

// GCPercent is the collector's GOGC unless the environment sets it. The
// live heap is small (~20 MiB: the crawler matcher, caches, free lists)
// and every request allocates: at the default GOGC the GC ran three times
// a second under single events, 3.1 µs of CPU per event; at 200 it costs
// 1.1 µs (0.4 at 400). 200, not 400: the resident memory under 400-event
// batches peaked at 190 MiB (134 at 100, 305 at 400), within the 256 MiB
// the Kubernetes manifest requests.
const GCPercent = 200

// TuneGC applies the collector's garbage-collector policy to this process:
// unless GOMEMLIMIT is set, the soft memory limit is gctune.ContainerRatio
// of the container's memory limit, or DefaultMemLimit without one; GOGC is
// GCPercent unless set. Call it once, at start-up.
func TuneGC(log *slog.Logger) {
	gctune.Policy{DefaultLimit: DefaultMemLimit, GCPercent: GCPercent}.Apply(log)
}
