package processor

import (
	"errors"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// GCPercent is the processor's garbage-collector target (GOGC) unless the
// environment sets one: between collections the heap may grow to five
// times what is live. The processor's live heap is mostly long-lived state
// (open sessions, visitors, carts, customers) that every collection scans
// again, so collecting a quarter as often saves 15-25 % of its CPU per
// event (pipeline benchmark); the price is memory, which the soft limit
// TuneGC sets bounds.
const GCPercent = 400

// MemLimitRatio is the share of a container's memory limit (cgroup) that
// TuneGC makes the Go runtime's soft limit (GOMEMLIMIT) unless the
// environment sets one: near it the collector runs as often as it must,
// whatever GOGC says.
const MemLimitRatio = 0.8

// TuneGC applies the processor's garbage-collector policy to this process:
// GOGC=GCPercent unless GOGC is set, and a soft memory limit of
// MemLimitRatio of the cgroup's memory limit unless GOMEMLIMIT is set
// (none without a cgroup limit). Call it once, at start-up.
func TuneGC(log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	limit, err := memlimit.Set(memlimit.WithRatio(MemLimitRatio), memlimit.WithProvider(memlimit.FromCgroup),
		memlimit.WithLogger(slog.New(slog.DiscardHandler)))
	switch {
	case err != nil && !errors.Is(err, memlimit.ErrNoLimit):
		log.Debug("no cgroup memory limit found; no soft memory limit set", "err", err)
	case os.Getenv("GOMEMLIMIT") == "" && limit > 0 && limit < 1<<62:
		log.Info("soft memory limit from the cgroup", "bytes", limit, "ratio", MemLimitRatio)
	}
}
