package processor_test

import (
	"sync"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// TestCheckpointInBackground: a partition goes on writing batches while
// its checkpoint is being written. The test holds the first checkpoint of
// a partition between its state records and its meta record; events of
// that partition produced meanwhile reach ClickHouse all the same (a
// partition that waited for its checkpoint would write nothing until it is
// let go), and once it is let go every partition's end is checkpointed and
// committed, with the sessions of both waves.
func TestCheckpointInBackground(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("g-" + testenv.RandomSuffix())
	// The partition stops once its next checkpoint falls due while the
	// held one is not written (one at a time): the events produced while
	// it is held have this long to be read and written.
	cfg.CheckpointInterval = 10 * time.Second
	held := make(chan int, 1)
	release := make(chan struct{})
	var first sync.Once
	cfg.TestHook = func(point string, partition int) {
		if point != "records" {
			return
		}
		hold := false
		first.Do(func() { hold = true })
		if hold {
			held <- partition
			<-release
		}
	}
	e.start(cfg, e.ch)
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(letGo) // before the processor stops: cleanups run last first

	keys := tailKeys()
	var wave []*shoptrail.Event
	for _, k := range keys {
		wave = append(wave, page(k, "m-"+k+"-1", at(0), "/"))
	}
	e.produce(wave)
	var p int
	select {
	case p = <-held:
	case <-time.After(90 * time.Second):
		t.Fatal("no checkpoint began within 90s")
	}
	anon := keys[p]
	e.produce([]*shoptrail.Event{page(anon, "m-"+anon+"-2", at(1), "/p/1"), page(anon, "m-"+anon+"-3", at(2), "/cart")})
	waitFor(t, 60*time.Second, "the events of the partition whose checkpoint is held", func() bool {
		return e.query(e.ch.Database, "SELECT count() FROM events WHERE anonymous_id = '"+anon+"'") == "3\n"
	})
	letGo()
	e.produce(tailEvents(site, at(48*60)))
	e.waitCommitted(cfg.GroupID, 60*time.Second)
	got := e.query(e.ch.Database, "SELECT events, exit_page, is_final FROM sessions FINAL WHERE anonymous_id = '"+anon+"' FORMAT TSV")
	if got != "3\t/cart\t1\n" {
		t.Errorf("session of %s = %q, want its 3 events, final", anon, got)
	}
}
