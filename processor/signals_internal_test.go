package processor

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/devstack"
)

// TestSignalWriterConcurrent: partitions write large batches of signals at
// once, and every write returns promptly.
func TestSignalWriterConcurrent(t *testing.T) {
	b, err := devstack.StartBroker(devstack.BrokerConfig{Partitions: 4, Topics: []string{"ev"}})
	if err != nil {
		t.Fatalf("cannot start the test broker: %v", err)
	}
	defer b.Close()
	s := newSignalWriter(b.Addrs, "ev.signals")
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.ensure(ctx, "ev"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	start := time.Now()
	for p := range 4 {
		wg.Go(func() {
			for round := range 3 {
				sigs := make([]shoptrail.Signal, 700)
				for i := range sigs {
					sigs[i] = shoptrail.Signal{V: 1, ID: fmt.Sprintf("%d-%d-%d", p, round, i), Type: shoptrail.SignalCartAbandoned,
						AnonymousID: fmt.Sprintf("a%d", i), Cart: &shoptrail.SignalCart{AbandonmentID: "x"}}
				}
				if err := s.write(ctx, sigs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("8400 signals in %v", time.Since(start))
}
