package processor_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// TestBrokerRestart stops the Kafka broker in the middle of the stream and
// starts it again from its data directory a few seconds later. The
// processor reconnects by itself, its checkpoints and commits resume within
// seconds of the broker's return (not after the group session timeout),
// it catches up, and the tables equal those of an uninterrupted run.
func TestBrokerRestart(t *testing.T) {
	testenv.Integration(t)
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 4))
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	topic := "events-" + testenv.RandomSuffix()
	bcfg := devstack.BrokerConfig{Port: port, DataDir: t.TempDir(), Partitions: partitions, Topics: []string{topic},
		Opts: []kfake.Opt{kfake.GroupMinSessionTimeout(100 * time.Millisecond)}}
	b, err := devstack.StartBroker(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Close() }()
	chc, conn := testenv.Database(t)
	e := &env{t: t, broker: b, brokers: b.Addrs, topic: topic, ch: chc, conn: conn, http: testenv.ClickHouse(t).HTTPAddr}
	stream := workload(rng, 300)
	half := len(stream) / 2
	cfg := e.config("restart-" + testenv.RandomSuffix())
	// The group timeouts that made the processor wait half a minute after
	// a broker restart (kafka-go's defaults), and the default checkpoint
	// interval.
	cfg.GroupSessionTimeout, cfg.RebalanceTimeout, cfg.CheckpointInterval = 30*time.Second, 30*time.Second, 5*time.Second
	stop, _, _ := e.start(cfg, e.ch)
	e.produce(stream[:half])
	var before map[int]int64
	waitFor(t, 60*time.Second, "commits before the broker stops", func() bool {
		var err error
		before, err = e.committed(cfg.GroupID)
		if err != nil {
			return false
		}
		for _, off := range before {
			if off < 0 {
				return false
			}
		}
		return true
	})
	b.Close()
	time.Sleep(3 * time.Second) // the outage itself, not a synchronization
	if b, err = devstack.StartBroker(bcfg); err != nil {
		t.Fatalf("cannot restart the broker: %v", err)
	}
	back := time.Now()
	e.broker = b
	e.produce(stream[half:])
	// Checkpoints and commits resume within seconds of the broker's
	// return: every partition commits past where it stood.
	waitFor(t, 60*time.Second, "commits past the restart", func() bool {
		got, err := e.committed(cfg.GroupID)
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
	resumed := time.Since(back)
	e.waitDone(cfg.GroupID, 120*time.Second)
	t.Logf("commits resumed %v after the broker came back; all done %v after", resumed.Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
	// Rejoining, restoring and the first checkpoint take a few seconds
	// (about 7 on an idle machine: most of it the 5 s checkpoint
	// interval); waiting for the member of before to time out took at
	// least the 30 s session timeout. 28 s leaves room for a loaded
	// machine.
	if resumed > 28*time.Second {
		t.Errorf("commits resumed %v after the broker came back, want well under the 30 s group session timeout", resumed.Round(time.Millisecond))
	}
	stop()

	refDB, _ := e.database()
	refCfg := e.config("ref-" + testenv.RandomSuffix())
	e.start(refCfg, refDB)
	e.waitDone(refCfg.GroupID, 60*time.Second)
	e.compareTables(e.ch.Database, refDB.Database)
}
