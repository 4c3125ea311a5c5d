package processor_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoptrail/shoptrail/internal/testenv"
)

// BenchmarkPipeline measures the processor end to end on this machine:
// a topic of 4 partitions filled beforehand (the in-process Kafka broker),
// consumed by one processor with the default batch and checkpoint settings
// (10,000 events, 1s; 5s), which decodes, sessionizes, and inserts events,
// event_sessions, sessions, identity links and loss into the local
// ClickHouse server, checkpoints to the state topic and commits. The clock
// runs from the processor's start until every partition's end is
// committed. Reported as events/s.
//
//	go test -run '^$' -bench Pipeline -benchtime 1x ./processor/
func BenchmarkPipeline(b *testing.B) {
	e := newEnv(b)
	rng := rand.New(rand.NewPCG(1, 1))
	stream := workload(rng, 20000)
	e.produce(stream)
	b.ResetTimer()
	for range b.N {
		cfg := e.config("bench-" + testenv.RandomSuffix())
		cfg.BatchSize, cfg.BatchInterval, cfg.CheckpointInterval = benchBatch(), time.Second, 5*time.Second
		cfg.GroupSessionTimeout = 30 * time.Second
		db, _ := e.database()
		selfCPU, chCPU := cpuTimes()
		start := time.Now()
		stop, _, reg := e.start(cfg, db)
		e.waitDone(cfg.GroupID, 10*time.Minute)
		took := time.Since(start)
		selfCPU2, chCPU2 := cpuTimes()
		b.StopTimer()
		stop()
		logTimings(b, reg)
		n := float64(len(stream))
		b.ReportMetric(n/took.Seconds(), "events/s")
		// CPU per event, of this process (processor and the in-process
		// Kafka broker) and of the ClickHouse server: what the events/s
		// would be on two idle cores, when others share the machine.
		self, ch := (selfCPU2-selfCPU).Seconds()*1e6/n, (chCPU2-chCPU).Seconds()*1e6/n
		b.ReportMetric(self, "proc-cpu-µs/event")
		b.ReportMetric(ch, "clickhouse-cpu-µs/event")
		b.ReportMetric(2e6/(self+ch), "events/s-on-2-idle-cores")
		b.Logf("%d events in %v", len(stream), took.Round(time.Millisecond))
		b.StartTimer()
	}
	b.ReportMetric(0, "ns/op")
}

// logTimings logs where the processor spent its time: the sums and counts
// of its duration histograms.
func logTimings(b *testing.B, reg *prometheus.Registry) {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		if !strings.HasSuffix(mf.GetName(), "_seconds") {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			lines = append(lines, fmt.Sprintf("%s{%s}: %d in %.2fs", mf.GetName(), strings.Join(labels, ","), h.GetSampleCount(), h.GetSampleSum()))
		}
	}
	b.Log("\n" + strings.Join(lines, "\n"))
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

func benchBatch() int {
	n, _ := strconv.Atoi(os.Getenv("BENCH_BATCH"))
	return cmp.Or(n, 10000)
}
