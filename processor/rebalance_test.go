package processor_test

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/internal/testenv"
)

// TestRebalance shares the topic between processors of one group while the
// stream flows: A runs alone, B joins (A hands partitions over), A leaves
// gracefully and C joins, then B is killed with SIGKILL mid-stream (C takes
// its partitions once the group notices). The tables must equal those of
// one processor that ran alone: no session split, lost or doubled.
func TestRebalance(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	e := newEnv(t)
	stream := workload(rng, 600)
	t.Logf("%d messages", len(stream))
	group := "rebal-" + testenv.RandomSuffix()
	cfg := e.config(group)
	spec := childSpec{Processor: cfg, ClickHouse: e.ch}
	count := func() int {
		n, _ := strconv.Atoi(strings.TrimSpace(e.query(e.ch.Database, "SELECT uniqExact(message_id) FROM events")))
		return n
	}
	part := func(i int) int { return len(stream) * i / 4 }
	progress := func(i int) {
		t.Helper()
		target := part(i) + rng.IntN(part(i+1)-part(i))/2
		waitFor(t, 60*time.Second, "progress in part "+strconv.Itoa(i), func() bool { return count() >= target })
	}
	members := func(n int) {
		t.Helper()
		waitFor(t, 60*time.Second, strconv.Itoa(n)+" members with partitions", func() bool { return e.groupMembers(group) == n })
	}

	a := startChild(t, spec)
	e.produce(stream[part(0):part(1)])
	progress(0)
	b := startChild(t, spec)
	members(2)
	e.produce(stream[part(1):part(2)])
	progress(1)
	// A leaves: it writes and checkpoints its partitions, then the group
	// gives them to B and C.
	a.cmd.Process.Signal(syscall.SIGTERM)
	if !a.exited(30 * time.Second) {
		t.Fatal("A did not stop on SIGTERM")
	}
	c := startChild(t, spec)
	members(2)
	e.produce(stream[part(2):part(3)])
	progress(2)
	b.kill()
	t.Logf("B killed after %d distinct events stored", count())
	e.produce(stream[part(3):])
	e.waitDone(group, 120*time.Second)
	_ = c

	refDB, _ := e.database()
	refCfg := e.config("ref-" + testenv.RandomSuffix())
	e.start(refCfg, refDB)
	e.waitDone(refCfg.GroupID, 120*time.Second)
	e.compareTables(e.ch.Database, refDB.Database)
	e.compareSignals(cfg.SignalsTopic, refCfg.SignalsTopic)
	checkNotVacuous(t, e, e.ch.Database, stream)
	checkCartsNotVacuous(t, e, e.ch.Database, cfg.SignalsTopic)
}

// TestFailover measures how long a SIGKILLed processor's partitions wait
// for a new owner with the default group settings (-kafka.session-timeout
// 10s, heartbeats every second, -kafka.rebalance-timeout 10s): the group
// notices the silent member after the session timeout, the survivor
// rejoins, restores the partitions from the state topic and commits past
// where the dead one stood. The partitions must move well before the 30 s
// of kafka-go's default session timeout.
func TestFailover(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 5))
	e := newEnv(t)
	stream := workload(rng, 300)
	group := "failover-" + testenv.RandomSuffix()
	cfg := e.config(group)
	cfg.GroupSessionTimeout, cfg.RebalanceTimeout = 0, 0 // the defaults
	spec := childSpec{Processor: cfg, ClickHouse: e.ch}
	a := startChild(t, spec)
	b := startChild(t, spec)
	waitFor(t, 60*time.Second, "2 members with partitions", func() bool { return e.groupMembers(group) == 2 })
	half := len(stream) / 2
	e.produce(stream[:half])
	e.waitDone(group, 60*time.Second)
	before, err := e.committed(group)
	if err != nil {
		t.Fatal(err)
	}
	b.kill()
	killed := time.Now()
	e.produce(stream[half:])
	waitFor(t, 60*time.Second, "the survivor to own every partition", func() bool { return e.groupMembers(group) == 1 })
	moved := time.Since(killed)
	waitFor(t, 60*time.Second, "commits past the kill", func() bool {
		got, err := e.committed(group)
		if err != nil {
			return false
		}
		for p, off := range before {
			if got[p] <= off {
				return false
			}
		}
		return true
	})
	resumed := time.Since(killed)
	t.Logf("failover: partitions moved %v after the SIGKILL, commits resumed %v after", moved.Round(time.Millisecond), resumed.Round(time.Millisecond))
	// The coordinator cannot move them before the session timeout: 30 s
	// with kafka-go's default. 28 s leaves room for a loaded machine.
	if moved > 28*time.Second {
		t.Errorf("partitions moved %v after the SIGKILL, want about the 10 s session timeout", moved.Round(time.Millisecond))
	}
	e.waitDone(group, 60*time.Second)
	_ = a
}
