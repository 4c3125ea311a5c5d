package processor_test

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// TestBrokerRestart stops the Kafka broker in the middle of the stream and
// starts it again from its data directory a few seconds later. The
// processor reconnects by itself, catches up, and the tables equal those
// of an uninterrupted run.
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
	stop, _, _ := e.start(cfg, e.ch)
	e.produce(stream[:half])
	waitFor(t, 60*time.Second, "progress before the broker stops", func() bool {
		n, _ := strconv.Atoi(strings.TrimSpace(e.query(e.ch.Database, "SELECT count() FROM events")))
		return n >= half/2
	})
	b.Close()
	time.Sleep(3 * time.Second) // the outage itself, not a synchronization
	if b, err = devstack.StartBroker(bcfg); err != nil {
		t.Fatalf("cannot restart the broker: %v", err)
	}
	e.broker = b
	e.produce(stream[half:])
	e.waitDone(cfg.GroupID, 120*time.Second)
	stop()

	refDB, _ := e.database()
	refCfg := e.config("ref-" + testenv.RandomSuffix())
	e.start(refCfg, refDB)
	e.waitDone(refCfg.GroupID, 60*time.Second)
	e.compareTables(e.ch.Database, refDB.Database)
}
