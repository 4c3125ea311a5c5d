// Package gctune applies a service's garbage-collector policy: the Go
// runtime's soft memory limit from the environment or the container, and
// the GC target (GOGC) that goes with it.
package gctune

import (
	"cmp"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// ContainerRatio is the share of a container's memory limit (cgroup v1 or
// v2) that becomes the soft limit unless GOMEMLIMIT is set: near it the
// garbage collector runs as often as it must, so the process gives back
// memory before the kernel kills it, with room left for what the runtime
// does not count (stacks, the binary, buffers in the kernel).
const ContainerRatio = 0.8

// containerLimit reads the container's memory limit (a variable for tests).
var containerLimit memlimit.Provider = memlimit.FromCgroup

// Policy is a service's garbage-collector policy.
type Policy struct {
	// DefaultLimit is the soft memory limit, in bytes, when neither
	// GOMEMLIMIT nor a container limit gives one; 0 leaves the process
	// without a limit then.
	DefaultLimit int64
	// GCPercent is GOGC for a process that has a soft limit, unless the
	// environment sets GOGC. A process without a limit keeps Go's default,
	// so that nothing lets its heap grow that many times over unbounded.
	GCPercent int
}

// Apply applies p to this process and logs the outcome. Unless GOMEMLIMIT
// is set, the soft limit becomes ContainerRatio of the container's memory
// limit, or p.DefaultLimit without one. Call it once, at start-up.
func (p Policy) Apply(log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") == "" {
		_, err := memlimit.Set(memlimit.WithRatio(ContainerRatio), memlimit.WithProvider(containerLimit),
			memlimit.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			log.Debug("no container memory limit read", "err", err)
		}
		if debug.SetMemoryLimit(-1) == math.MaxInt64 && p.DefaultLimit > 0 {
			debug.SetMemoryLimit(p.DefaultLimit)
		}
	}
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		return
	}
	gogc := os.Getenv("GOGC")
	if gogc == "" && p.GCPercent != 0 {
		debug.SetGCPercent(p.GCPercent)
		gogc = strconv.Itoa(p.GCPercent)
	}
	log.Info("garbage collector", "soft_limit_bytes", limit, "gogc", cmp.Or(gogc, "100"))
}
