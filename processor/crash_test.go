package processor_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the randomized processor tests (0: time-based)")

func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	return seed
}

// child is a processor running as its own OS process.
type child struct {
	cmd  *exec.Cmd
	done chan error
}

// startChild runs the test binary as a processor process.
func startChild(t testing.TB, spec childSpec) *child {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	if spec.MemLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+spec.MemLimit)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() { c.kill() })
	return c
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	c.done <- nil // for a second kill
}

// exited reports whether the process has ended (by itself, e.g. a
// failpoint), waiting at most d.
func (c *child) exited(d time.Duration) bool {
	select {
	case err := <-c.done:
		c.done <- err
		return true
	case <-time.After(d):
		return false
	}
}

// TestCrashSIGKILL kills the processor process with SIGKILL five times at
// random points of a 20,000-event stream, restarting it each time: twice
// from outside at a random moment, and from inside right after a batch
// reached ClickHouse (before its checkpoint), in the middle of a checkpoint
// (visitor records written, meta record not), and after a checkpoint
// before its offset commit. Then every table must hold exactly what an
// uninterrupted run over the same stream holds.
func TestCrashSIGKILL(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	e := newEnv(t)
	stream := workload(rng, 900)
	t.Logf("%d messages", len(stream))
	chunks := 6
	group := "crash-" + testenv.RandomSuffix()
	cfg := e.config(group)
	count := func() int {
		n, _ := strconv.Atoi(strings.TrimSpace(e.query(e.ch.Database, "SELECT uniqExact(message_id) FROM events")))
		return n
	}
	const kills = 5
	for run := 0; run <= kills; run++ {
		lo, hi := len(stream)*run/chunks, len(stream)*(run+1)/chunks
		e.produce(stream[lo:hi])
		spec := childSpec{Processor: cfg, ClickHouse: e.ch}
		if run == kills {
			startChild(t, spec)
			break
		}
		switch run {
		case 1: // the batch is in ClickHouse, its checkpoint not begun
			spec.KillAt, spec.KillAfter = "written", 1+rng.Int64N(4)
		case 2: // the checkpoint's visitor records are written, its meta record not
			spec.KillAt, spec.KillAfter = "records", 1+rng.Int64N(4)
		case 4: // the checkpoint is complete, the offset not committed
			spec.KillAt, spec.KillAfter = "state", 1+rng.Int64N(4)
		}
		before := count()
		c := startChild(t, spec)
		if spec.KillAt != "" {
			if !c.exited(60 * time.Second) {
				t.Fatalf("run %d: the failpoint %s #%d did not kill the process", run, spec.KillAt, spec.KillAfter)
			}
			t.Logf("run %d: killed itself at %s #%d, %d distinct events stored", run, spec.KillAt, spec.KillAfter, count())
			continue
		}
		// Kill from outside once a random part of this run's messages is
		// in ClickHouse, a random moment later.
		target := before + 1 + rng.IntN((hi-lo)/2)
		waitFor(t, 60*time.Second, "progress before kill "+strconv.Itoa(run), func() bool { return count() >= target })
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond) // a random moment, not a synchronization
		c.kill()
		t.Logf("run %d: SIGKILL after %d distinct events stored", run, count())
	}
	e.waitDone(group, 120*time.Second)

	refDB, _ := e.database()
	refCfg := e.config("ref-" + testenv.RandomSuffix())
	e.start(refCfg, refDB)
	e.waitDone(refCfg.GroupID, 120*time.Second)
	e.compareTables(e.ch.Database, refDB.Database)
	e.compareSignals(cfg.SignalsTopic, refCfg.SignalsTopic)
	checkNotVacuous(t, e, e.ch.Database, stream)
	checkCartsNotVacuous(t, e, e.ch.Database, cfg.SignalsTopic)
}

// checkNotVacuous makes sure the compared stream exercised what it should:
// duplicates in the input, and in the output sessions of several channels,
// late events, identity links, beacon loss and dead letters.
func checkNotVacuous(t *testing.T, e *env, db string, stream []*shoptrail.Event) {
	t.Helper()
	seen := map[string]bool{}
	dups := 0
	for _, ev := range stream {
		if ev != nil {
			if seen[ev.MessageID] {
				dups++
			}
			seen[ev.MessageID] = true
		}
	}
	got := e.query(db, "SELECT (SELECT count() FROM sessions FINAL), (SELECT countIf(status = 'late') FROM event_sessions FINAL), "+
		"(SELECT count() FROM identity_links FINAL), (SELECT sum(lost) FROM delivery_loss FINAL), "+
		"(SELECT count() FROM dead_letters FINAL), (SELECT uniqExact(channel) FROM sessions) FORMAT TSV")
	f := append(strings.Fields(got), strconv.Itoa(dups))
	names := []string{"sessions", "late events", "identity links", "lost beacon events", "dead letters", "channels", "duplicates"}
	mins := []int{1000, 1, 50, 10, 1, 5, 1}
	var report []string
	for i, n := range names {
		v, _ := strconv.Atoi(f[i])
		report = append(report, fmt.Sprintf("%s=%d", n, v))
		if v < mins[i] {
			t.Errorf("only %d %s in the stream, want at least %d", v, n, mins[i])
		}
	}
	t.Logf("stream: %s", strings.Join(report, " "))
}
