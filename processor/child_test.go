package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

// The crash tests run the processor as its own OS process, so that it can
// be killed with SIGKILL: the test binary runs itself with
// SHOPTRAIL_PROCESSOR_CHILD set to a childSpec in JSON.
const childEnv = "SHOPTRAIL_PROCESSOR_CHILD"

type childSpec struct {
	Processor  processor.Config
	ClickHouse clickhouse.Config
	// KillAt, if set, makes the process SIGKILL itself at the KillAfter-th
	// call of the test hook at this point ("written": the batch is in
	// ClickHouse but not checkpointed; "state": checkpointed but not
	// committed).
	KillAt    string
	KillAfter int64
	// MemFile, if set, is where the process writes its heap (after a
	// garbage collection) and resident memory, in bytes, on SIGUSR1.
	MemFile string
	// CPUProfile, if set, is where the process writes its CPU profile
	// when it stops on SIGTERM.
	CPUProfile string
	// MetricsFile, if set, is where the process writes its metrics
	// (Prometheus text format) when it stops on SIGTERM.
	MetricsFile string
	// MetricsAddrFile, if set, makes the process serve its metrics over
	// HTTP on a free loopback port, and write the address to this file.
	MetricsAddrFile string
	// MemLimit, if set, is the process's GOMEMLIMIT.
	MemLimit string
}

// childMain runs the processor when the test binary was started as a
// child, and reports whether it was.
func childMain() bool {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return false
	}
	var c childSpec
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, "bad child spec:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The processor process, as the binary runs it.
	processor.TuneGC(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := clickhouse.Open(ctx, c.ClickHouse)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if c.KillAt != "" {
		var n atomic.Int64
		c.Processor.TestHook = func(point string, _ int) {
			if point == c.KillAt && n.Add(1) == c.KillAfter {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}
	if c.CPUProfile != "" {
		if f, err := os.Create(c.CPUProfile); err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
			// SIGUSR2 ends the profile early (the benchmark's window).
			usr2 := make(chan os.Signal, 1)
			signal.Notify(usr2, syscall.SIGUSR2)
			go func() { <-usr2; pprof.StopCPUProfile() }()
		}
	}
	if c.MemFile != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				status, _ := os.ReadFile("/proc/self/status")
				rss := 0
				for _, l := range strings.Split(string(status), "\n") {
					if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
						rss, _ = strconv.Atoi(f[1])
					}
				}
				if f, err := os.Create(c.MemFile + ".pprof"); err == nil {
					pprof.WriteHeapProfile(f)
					f.Close()
				}
				os.WriteFile(c.MemFile+".tmp", fmt.Appendf(nil, "%d %d\n", ms.HeapAlloc, rss*1024), 0o644)
				os.Rename(c.MemFile+".tmp", c.MemFile)
			}
		}()
	}
	reg := prometheus.NewRegistry()
	if c.MetricsAddrFile != "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go http.Serve(ln, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		os.WriteFile(c.MetricsAddrFile+".tmp", []byte(ln.Addr().String()), 0o644)
		os.Rename(c.MetricsAddrFile+".tmp", c.MetricsAddrFile)
	}
	p, err := processor.New(c.Processor, clickhouse.NewSink(conn, log, reg), log, reg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = p.Run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if c.MetricsFile != "" {
		if mfs, err := reg.Gather(); err == nil {
			var b strings.Builder
			for _, mf := range mfs {
				expfmt.MetricFamilyToText(&b, mf)
			}
			os.WriteFile(c.MetricsFile, []byte(b.String()), 0o644)
		}
	}
	pprof.StopCPUProfile()
	if c.CPUProfile != "" {
		if f, err := os.Create(c.CPUProfile + ".allocs"); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	if err != nil {
		os.Exit(1)
	}
	os.Exit(0)
	return true
}
