package processor_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor"
)

// BenchmarkPipeline measures the processor end to end on this machine:
// a topic of 4 partitions filled beforehand with about 960,000 events (the in-process Kafka broker of
// this test process), consumed by one processor running as its own process
// with the default batch and checkpoint settings (25,000 events, 1s; 5s),
// which decodes, sessionizes, inserts events, event_sessions, sessions,
// identity links and loss into the local ClickHouse 18.16 server,
// checkpoints to the state topic and commits.
//
// Reported:
//
//   - events/s: the stream's events over the time from the processor's start
//     until ClickHouse holds every event in events and its session in
//     event_sessions (polled every 100ms with count(), which reads part
//     metadata only);
//
//   - events/s-to-commit: the same over the time until every partition's
//     end is committed, which also waits for the next checkpoint (every 5s
//     by default) after the last batch, so it understates the rate the
//     processor sustains the more, the shorter the stream;
//
//   - the CPU time per event, up to the commit, of the processor, of the
//     broker (this process) and of the ClickHouse server, with the
//     throughput they add up to on two cores nobody else uses (the machine
//     is shared, so the wall clock depends on the neighbours); and the
//     same up to the end of the events/s window (-in-window), what the
//     rate is made of;
//
//   - reference-ns: the time of a fixed piece of work on one core before
//     and after the run (referenceNs), the machine's speed at the time.
//
//     go test -run '^$' -bench Pipeline -benchtime 1x ./processor/
//
// BENCH_VISITORS, BENCH_BATCH, BENCH_INTERVAL, BENCH_CKPT and BENCH_WRITES
// change the stream's visitors (40,000), the batch size (the processor's
// default), the batch interval (1s), the checkpoint interval (5s) and the
// inserts at once (the processor's default);
// BENCH_CPU_PROFILE=FILE writes the processor's CPU profile to FILE and
// its allocations to FILE.allocs, with BENCH_CPU_PROFILE_WINDOW=1 only up
// to the moment ClickHouse holds every event (the events/s window);
// BENCH_HEAP_MID=FILE writes the processor's live heap, once half the
// stream is consumed, to FILE.pprof; BENCH_CH_LOG=FILE writes what each
// table cost the ClickHouse server to FILE (reportServerCosts);
// BENCH_TIMELINE=FILE writes the run's progress and the CPU of the
// processor and of ClickHouse every 100ms to FILE (timeline);
// BENCH_METRICS=FILE writes the processor's metrics at the end to FILE;
// BENCH_DROP_MVS=VIEW,... drops those materialized views before the run
// (what they cost ClickHouse).
func BenchmarkPipeline(b *testing.B) {
	e := newEnv(b)
	rng := rand.New(rand.NewPCG(1, 1))
	stream := workload(rng, benchVisitors())
	e.produce(stream)
	decodable := 0
	for _, ev := range stream {
		if ev != nil {
			decodable++
		}
	}
	n := float64(len(stream))
	// The stream is in the broker now: let this process's garbage collector
	// (the broker's) forget it.
	stream = nil
	// The in-process broker holds the whole stream in this process's heap
	// for the run: at the default GOGC every collection rescans it, which
	// was most of the broker's CPU per event. The broker is a fixture (a
	// deployment's Kafka runs elsewhere), so it collects less often here;
	// the processor process has its own policy (processor.TuneGC).
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	b.ResetTimer()
	for range b.N {
		cfg := e.config("bench-" + testenv.RandomSuffix())
		cfg.BatchSize, cfg.BatchInterval, cfg.CheckpointInterval = benchBatch(), benchInterval(), 5*time.Second
		if d, err := time.ParseDuration(os.Getenv("BENCH_CKPT")); err == nil {
			cfg.CheckpointInterval = d
		}
		if n, err := strconv.Atoi(os.Getenv("BENCH_WRITES")); err == nil {
			cfg.Writes = n
		}
		cfg.GroupSessionTimeout = 30 * time.Second
		db, dbConn := e.database()
		if os.Getenv("BENCH_DROP_MVS") != "" {
			for _, v := range strings.Split(os.Getenv("BENCH_DROP_MVS"), ",") {
				if err := dbConn.Exec(context.Background(), "DROP TABLE "+v); err != nil {
					b.Fatal(err)
				}
			}
		}
		refBefore := referenceNs()
		self0, children0 := cpuTimes()
		start := time.Now()
		metricsFile := filepath.Join(b.TempDir(), "metrics")
		addrFile := filepath.Join(b.TempDir(), "metrics-addr")
		// The processor's memory limit as deployed (deploy/k8s), under
		// which it runs at GOGC=400 (processor.TuneGC).
		c := startChild(b, childSpec{Processor: cfg, ClickHouse: db, CPUProfile: os.Getenv("BENCH_CPU_PROFILE"),
			MetricsFile: metricsFile, MetricsAddrFile: addrFile, MemLimit: cmp.Or(os.Getenv("BENCH_MEMLIMIT"), "1600MiB"),
			MemFile: os.Getenv("BENCH_HEAP_MID")})
		heapTaken := os.Getenv("BENCH_HEAP_MID") == ""
		// Every decoded event is inserted into events, and has its row in
		// event_sessions but the tail events (one per partition, far in the
		// future: nothing moves the watermark past them).
		tlPid := 0
		if os.Getenv("BENCH_TIMELINE") != "" {
			tlPid = c.cmd.Process.Pid
		}
		tl := newTimeline(start, tlPid)
		for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			p := readProgress(addrFile)
			rows := p.rows
			tl.sample(p)
			if !heapTaken && float64(p.messages) > n/2 {
				c.cmd.Process.Signal(syscall.SIGUSR1)
				heapTaken = true
			}
			if rows["events"] == decodable && rows["event_sessions"] == decodable-partitions {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("timed out waiting for every event and its session in ClickHouse: inserted %v", rows)
			}
		}
		inserted := time.Since(start)
		procW := processCPU(c.cmd.Process.Pid)
		if os.Getenv("BENCH_CPU_PROFILE_WINDOW") != "" {
			c.cmd.Process.Signal(syscall.SIGUSR2)
		}
		selfW, childrenW := cpuTimes()
		if f := os.Getenv("BENCH_TIMELINE"); f != "" {
			if err := os.WriteFile(f, tl.text(), 0o644); err != nil {
				b.Error(err)
			}
		}
		e.waitDone(cfg.GroupID, 10*time.Minute)
		took := time.Since(start)
		proc := processCPU(c.cmd.Process.Pid)
		self1, children1 := cpuTimes()
		b.StopTimer()
		c.cmd.Process.Signal(syscall.SIGTERM)
		if !c.exited(time.Minute) {
			b.Error("the processor did not stop on SIGTERM")
		}
		refAfter := referenceNs()
		logInserts(b, metricsFile)
		reportStorage(b, dbConn, db.Database)
		reportServerCosts(b, dbConn, db.Database)
		perEvent := func(d time.Duration) float64 { return d.Seconds() * 1e6 / n }
		procUS, brokerUS, chUS := perEvent(proc), perEvent(self1-self0), perEvent(children1-children0-proc)
		b.ReportMetric(n/inserted.Seconds(), "events/s")
		b.ReportMetric(n/took.Seconds(), "events/s-to-commit")
		b.ReportMetric(procUS, "processor-cpu-µs/event")
		b.ReportMetric(brokerUS, "broker-cpu-µs/event")
		b.ReportMetric(chUS, "clickhouse-cpu-µs/event")
		b.ReportMetric(2e6/(procUS+brokerUS+chUS), "events/s-on-2-idle-cores")
		// The same until ClickHouse holds every event (the events/s window):
		// what the run's rate is made of.
		b.ReportMetric(perEvent(procW), "processor-cpu-µs/event-in-window")
		b.ReportMetric(perEvent(childrenW-children0-procW), "clickhouse-cpu-µs/event-in-window")
		b.ReportMetric(perEvent(selfW-self0), "broker-cpu-µs/event-in-window")
		b.ReportMetric((refBefore+refAfter)/2, "reference-ns")
		b.Logf("reference work: %.0f ns before the run, %.0f ns after", refBefore, refAfter)
		b.Logf("%.0f events: in ClickHouse after %v, committed after %v", n, inserted.Round(time.Millisecond), took.Round(time.Millisecond))
		b.StartTimer()
	}
	b.ReportMetric(0, "ns/op")
}

// referenceNs times a fixed piece of CPU work on one core, the same in
// every sitting: encoding/json decoding BenchmarkDecode's 957-byte event,
// in ns. This shared virtual machine's speed varies (BenchmarkDecode's
// encoding-json case, the same work, took 10.5 µs on 2026-11-22 and
// 20.5–22.5 µs on 2026-12-07 afternoon), and the pipeline's figures
// follow it: compare runs of different sittings only with their reference
// time beside them.
func referenceNs() float64 {
	data := processor.ReferenceEventJSON()
	n := 0
	start := time.Now()
	for time.Since(start) < 300*time.Millisecond {
		for range 50 {
			var e shoptrail.Event
			if err := json.Unmarshal(data, &e); err != nil {
				panic(err)
			}
		}
		n += 50
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// progress is a run's progress as the processor reports it: the messages
// it consumed and the rows it inserted per table so far.
type progress struct {
	messages int
	rows     map[string]int
}

// readProgress reads the processor's progress from its metrics; rows is
// nil while they cannot be read.
func readProgress(addrFile string) progress {
	var p progress
	addr, err := os.ReadFile(addrFile)
	if err != nil {
		return p
	}
	resp, err := noKeepAlive.Get("http://" + string(addr) + "/metrics")
	if err != nil {
		return p
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return p
	}
	p.rows = make(map[string]int)
	const prefix = `shoptrail_processor_insert_rows_sum{table="`
	for _, l := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			table, value, _ := strings.Cut(rest, `"} `)
			n, _ := strconv.ParseFloat(value, 64)
			p.rows[table] = int(n)
		}
		if rest, ok := strings.CutPrefix(l, "shoptrail_processor_messages_total "); ok {
			n, _ := strconv.ParseFloat(rest, 64)
			p.messages = int(n)
		}
	}
	return p
}

// timeline keeps a run's progress at every poll with the share of the
// machine's CPU left idle since the poll before (BENCH_TIMELINE): where a
// run waits, and on what.
type timeline struct {
	start, last time.Time
	idle        int // the machine's idle ticks at the last sample
	pid         int // the processor's
	// proc and others are the processor's CPU time and that of this
	// process's other children (the ClickHouse server) at the last sample.
	proc, others time.Duration
	lines        []string
}

func newTimeline(start time.Time, pid int) *timeline {
	t := &timeline{start: start, last: start, idle: idleTicks(), pid: pid,
		lines: []string{"seconds\tconsumed\tevents\tevent_sessions\tsessions\tidle%\tprocessor%\tclickhouse%"}}
	t.proc, t.others = t.cpu()
	return t
}

// cpu returns the CPU time so far of the processor and of this process's
// other children; zero without the processor's pid (no BENCH_TIMELINE:
// reading every process's stat ten times a second costs the broker's CPU).
func (t *timeline) cpu() (proc, others time.Duration) {
	if t.pid == 0 {
		return 0, 0
	}
	proc = processCPU(t.pid)
	_, children := cpuTimes()
	return proc, children - proc
}

func (t *timeline) sample(p progress) {
	now, idle := time.Now(), idleTicks()
	proc, others := t.cpu()
	// /proc/stat counts USER_HZ (100) ticks per CPU.
	wall := now.Sub(t.last).Seconds()
	pct := float64(idle-t.idle) / (wall * 100 * float64(runtime.NumCPU())) * 100
	share := func(d time.Duration) float64 { return d.Seconds() / wall * 100 }
	t.lines = append(t.lines, fmt.Sprintf("%.2f\t%d\t%d\t%d\t%d\t%.0f\t%.0f\t%.0f", now.Sub(t.start).Seconds(), p.messages,
		p.rows["events"], p.rows["event_sessions"], p.rows["sessions"], pct, share(proc-t.proc), share(others-t.others)))
	t.last, t.idle, t.proc, t.others = now, idle, proc, others
}

func (t *timeline) text() []byte { return []byte(strings.Join(t.lines, "\n") + "\n") }

// idleTicks returns the idle time of all CPUs so far, in ticks.
func idleTicks() int {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle ...
	if len(f) < 5 {
		return 0
	}
	n, _ := strconv.Atoi(f[4])
	return n
}

// logInserts logs the processor's inserts per table: how many, how many
// rows, how long.
func logInserts(b *testing.B, metricsFile string) {
	data, err := os.ReadFile(metricsFile)
	if err != nil {
		b.Logf("no metrics: %v", err)
		return
	}
	if f := os.Getenv("BENCH_METRICS"); f != "" {
		os.WriteFile(f, data, 0o644)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if (strings.HasPrefix(l, "shoptrail_processor_insert_rows_sum") || strings.HasPrefix(l, "shoptrail_processor_insert_rows_count") ||
			strings.HasPrefix(l, "shoptrail_processor_insert_duration_seconds_sum")) && !strings.Contains(l, "#") {
			lines = append(lines, l)
		}
	}
	b.Log("\n" + strings.Join(lines, "\n"))
}

// processCPU returns the CPU time a process has used so far.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// cpuTimes returns the CPU time used so far by this process and by its
// child processes that are still running (the test ClickHouse server).
func cpuTimes() (self, children time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	tick := 100 // USER_HZ
	ents, _ := os.ReadDir("/proc")
	me := os.Getpid()
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name in parentheses: state ppid ...
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) < 13 || f[1] != strconv.Itoa(me) || pid == me {
			continue
		}
		ut, _ := strconv.Atoi(f[11])
		st, _ := strconv.Atoi(f[12])
		children += time.Duration(ut+st) * time.Second / time.Duration(tick)
	}
	return self, children
}

// benchVisitors is the number of visitors of the pipeline benchmark's
// stream (about 24 events each); BENCH_VISITORS overrides it.
func benchVisitors() int {
	n, _ := strconv.Atoi(os.Getenv("BENCH_VISITORS"))
	return cmp.Or(n, 40000)
}

func benchBatch() int {
	n, _ := strconv.Atoi(os.Getenv("BENCH_BATCH"))
	return cmp.Or(n, processor.DefaultBatchSize)
}

// BenchmarkOpenSessionMemory measures the processor's memory per open
// session: visitors with two events each, spread over 25 minutes, all
// sessions still open at the end, processed by a processor running as its
// own process (the Kafka broker and ClickHouse are elsewhere). It runs
// once with 100,000 visitors and once with 1,000,000, and reports the
// difference of the live heap (after a garbage collection), and of the
// resident memory, divided by the difference of open sessions: the memory
// each open session costs, without the fixed costs (connections, code,
// and the batches: each partition's batch filling and its up to two
// batches in flight, 10,000 events each, which the smaller run must also
// fill to have them all allocated).
//
//	go test -run '^$' -bench OpenSessionMemory -benchtime 1x ./processor/
func BenchmarkOpenSessionMemory(b *testing.B) {
	for range b.N {
		heapSmall, rssSmall := openSessionMemory(b, 100_000)
		heap, rss := openSessionMemory(b, 1_000_000)
		n := float64(1_000_000 - 100_000)
		b.ReportMetric((heap-heapSmall)/n, "heap-bytes/session")
		b.ReportMetric((rss-rssSmall)/n, "rss-bytes/session")
		b.ReportMetric(heap/1e6, "heap-bytes/session-with-fixed-costs")
		b.Logf("heap %.0f MB with 1M open sessions, %.0f MB with 100k; resident %.0f MB, %.0f MB", heap/1e6, heapSmall/1e6, rss/1e6, rssSmall/1e6)
	}
	b.ReportMetric(0, "ns/op")
}

// openSessionMemory runs a processor process over a stream that leaves
// visitors sessions open and returns its heap and resident memory.
func openSessionMemory(b *testing.B, visitors int) (heap, rss float64) {
	e := newEnv(b)
	evs := make([]*shoptrail.Event, 0, 2*visitors+partitions)
	step := 25 * time.Minute / time.Duration(visitors)
	for v := range visitors {
		anon := fmt.Sprintf("%08x-1111-4222-8333-%012x", v, v*7919)
		t := t0.Add(time.Duration(v) * step)
		evs = append(evs,
			page(anon, fmt.Sprintf("m-%d-1", v), t, fmt.Sprintf("/c/%d", v%200), withRef("https://www.baidu.com/s?wd=x"),
				withDevice("desktop", "Chrome", "Windows"), withTab(anon[:8], 1)),
			track(anon, fmt.Sprintf("m-%d-2", v), t.Add(30*time.Second), shoptrail.EventProductViewed, fmt.Sprintf("/p/%d", v%5000),
				withDevice("desktop", "Chrome", "Windows"), withTab(anon[:8], 2)))
	}
	slices.SortStableFunc(evs, func(a, b *shoptrail.Event) int { return a.Timestamp.Compare(b.Timestamp) })
	// Past the allowed lateness after the last event, so nothing is
	// pending, but within the session timeout, so every session is open.
	evs = append(evs, tailEvents(site, t0.Add(32*time.Minute))...)
	e.produce(evs)
	evs = nil
	cfg := e.config("mem-" + testenv.RandomSuffix())
	cfg.BatchSize, cfg.BatchInterval, cfg.CheckpointInterval = 10000, time.Second, 5*time.Second
	cfg.GroupSessionTimeout = 30 * time.Second
	memFile := filepath.Join(b.TempDir(), "mem")
	c := startChild(b, childSpec{Processor: cfg, ClickHouse: e.ch, MemFile: memFile})
	e.waitDone(cfg.GroupID, 30*time.Minute)
	if n := strings.TrimSpace(e.query(e.ch.Database, "SELECT count() FROM sessions WHERE is_final = 1")); n != "0" {
		b.Fatalf("%s sessions closed, want all open", n)
	}
	if n := strings.TrimSpace(e.query(e.ch.Database, "SELECT count() FROM event_sessions WHERE status = 'assigned'")); n != strconv.Itoa(2*visitors) {
		b.Fatalf("%s events assigned, want all %d settled", n, 2*visitors)
	}
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(b, time.Minute, "the memory report", func() bool {
		data, err := os.ReadFile(memFile)
		return err == nil && len(data) > 0 && func() bool { _, err := fmt.Sscan(string(data), &heap, &rss); return err == nil }()
	})
	c.kill()
	if dst := os.Getenv("BENCH_HEAP_PROFILE"); dst != "" {
		data, _ := os.ReadFile(memFile + ".pprof")
		os.WriteFile(fmt.Sprintf("%s.%d", dst, visitors), data, 0o644)
	}
	return heap, rss
}

func benchInterval() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("BENCH_INTERVAL"))
	return cmp.Or(d, time.Second)
}
