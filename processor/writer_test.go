package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// gateSink is a Sink whose writes each report their batches on started
// and wait for an outcome on release.
type gateSink struct {
	started chan []*Batch
	release chan error
}

func (s *gateSink) Write(_ context.Context, batches []*Batch) error {
	s.started <- batches
	return <-s.release
}

func newGateSink() *gateSink {
	return &gateSink{started: make(chan []*Batch, 16), release: make(chan error)}
}

// names returns the batches as "topic/partition#seq".
func names(bs []*Batch) []string {
	var out []string
	for _, b := range bs {
		out = append(out, fmt.Sprintf("%s/%d#%d", b.Topic, b.Partition, b.seq))
	}
	return out
}

func receive(t *testing.T, c <-chan []*Batch) []*Batch {
	t.Helper()
	select {
	case bs := <-c:
		return bs
	case <-time.After(10 * time.Second):
		t.Fatal("no write started")
		return nil
	}
}

// TestGroupWriterConcurrentWrites: up to Writes writes at once, each with
// the batches of partitions not being written; a partition's later batches
// wait for its write in progress and go together, in the order they came.
func TestGroupWriterConcurrentWrites(t *testing.T) {
	sink := newGateSink()
	g := newGroupWriter(sink, time.Millisecond, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { g.run(ctx); close(done) }()

	// Batches without an owner (0) are not ordered; seq only names them.
	batch := func(p int, seq uint64) *Batch { return &Batch{Topic: "ev", Partition: p, seq: seq} }
	// submit hands b to the writer as write does, returning once the
	// writer took it (so batches come in the order submitted).
	results := make(chan error, 16)
	write := func(b *Batch) {
		r := &writeReq{batch: b, done: make(chan error, 1)}
		g.reqs <- r
		go func() { results <- <-r.done }()
	}

	write(batch(0, 1))
	first := receive(t, sink.started)
	if got := names(first); !slices.Equal(got, []string{"ev/0#1"}) {
		t.Fatalf("first write took %v", got)
	}
	// Partition 0 again, and partition 1: 1 goes in a second write at
	// once; 0's waits for its first.
	write(batch(0, 2))
	write(batch(1, 1))
	second := receive(t, sink.started)
	if got := names(second); !slices.Equal(got, []string{"ev/1#1"}) {
		t.Fatalf("second write took %v, want only partition 1's batch", got)
	}
	// Both writers busy: more of partition 0 and one of partition 2 wait.
	write(batch(0, 3))
	write(batch(2, 1))
	select {
	case bs := <-sink.started:
		t.Fatalf("a third write started while two were in progress: %v", names(bs))
	default:
	}
	// The first write ends: partition 0's waiting batches, in order, and
	// partition 2's go together (partition 1 is still being written).
	sink.release <- nil
	if err := <-results; err != nil {
		t.Fatal(err)
	}
	third := receive(t, sink.started)
	got := names(third)
	want := []string{"ev/0#2", "ev/0#3", "ev/2#1"}
	if !slices.Equal(got, want) {
		t.Fatalf("third write took %v, want %v", got, want)
	}
	sink.release <- errors.New("refused")
	sink.release <- nil
	var errs int
	for range 4 {
		if err := <-results; err != nil {
			errs++
		}
	}
	// The second write (partition 1) or the third (three batches) failed,
	// and each of its batches got the error.
	if errs != 1 && errs != 3 {
		t.Fatalf("%d writes failed, want the batches of one write", errs)
	}
	cancel()
	<-done
}

// TestGroupWriterStopAnswersWaiting: a writer stopped with batches waiting
// answers them with the context's error after the writes in progress.
func TestGroupWriterStopAnswersWaiting(t *testing.T) {
	sink := newGateSink()
	g := newGroupWriter(sink, time.Millisecond, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.run(ctx); close(done) }()
	results := make(chan error, 2)
	go func() { results <- g.write(context.Background(), &Batch{Topic: "ev", Partition: 0}) }()
	receive(t, sink.started)
	// Partition 1's batch waits: the only writer is busy. Submitting
	// returns once the writer took it.
	r := &writeReq{batch: &Batch{Topic: "ev", Partition: 1}, done: make(chan error, 1)}
	g.reqs <- r
	cancel()
	sink.release <- nil
	if err := <-results; err != nil {
		t.Fatalf("the write in progress: %v", err)
	}
	<-done
	if err := <-r.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the waiting batch got %v, want context.Canceled", err)
	}
}

// TestGroupWriterOrder: a worker's batches are written in its order: a
// later batch that comes while an earlier one's write failed waits for
// that batch to be written again, and goes after it (or with it); when the
// worker gives the earlier one up, the later ones get errAbandoned.
func TestGroupWriterOrder(t *testing.T) {
	sink := newGateSink()
	g := newGroupWriter(sink, time.Millisecond, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.run(ctx)
	w := &worker{id: 7}
	batch := func(p int) *Batch {
		b := &Batch{Topic: "ev", Partition: p}
		w.sequence(b)
		return b
	}
	submit := func(b *Batch) *writeReq {
		r := &writeReq{batch: b, done: make(chan error, 1)}
		g.reqs <- r
		return r
	}
	b0, b1, b2 := batch(0), batch(0), batch(0)
	// b1 comes first: it waits for b0.
	r1 := submit(b1)
	select {
	case bs := <-sink.started:
		t.Fatalf("wrote %v before the worker's first batch", names(bs))
	case <-time.After(50 * time.Millisecond):
	}
	r0 := submit(b0)
	if got := names(receive(t, sink.started)); !slices.Equal(got, []string{"ev/0#0", "ev/0#1"}) {
		t.Fatalf("wrote %v, want the worker's batches in its order", got)
	}
	// That write fails; b1 is retried first, and must wait for b0 again.
	sink.release <- errors.New("ClickHouse is down")
	if <-r0.done == nil || <-r1.done == nil {
		t.Fatal("a failed write reported success")
	}
	r1 = submit(b1)
	r2 := submit(b2)
	select {
	case bs := <-sink.started:
		t.Fatalf("wrote %v while the batch before them waits to be retried", names(bs))
	case <-time.After(50 * time.Millisecond):
	}
	r0 = submit(b0)
	if got := names(receive(t, sink.started)); !slices.Equal(got, []string{"ev/0#0", "ev/0#1", "ev/0#2"}) {
		t.Fatalf("wrote %v, want the worker's batches in its order", got)
	}
	sink.release <- nil
	for _, r := range []*writeReq{r0, r1, r2} {
		if err := <-r.done; err != nil {
			t.Fatal(err)
		}
	}
	// The worker gives up a batch (its write failed and it is leaving):
	// the later one, waiting for it, gets errAbandoned, and so does one
	// that comes after.
	b3, b4, b5 := batch(0), batch(0), batch(0)
	r4 := submit(b4)
	g.abandon(b3)
	if err := <-r4.done; !errors.Is(err, errAbandoned) {
		t.Fatalf("the batch after an abandoned one got %v, want errAbandoned", err)
	}
	if err := <-submit(b5).done; !errors.Is(err, errAbandoned) {
		t.Fatalf("a later batch of the worker got %v, want errAbandoned", err)
	}
	// The partition's next worker starts its own order.
	next := &worker{id: 8}
	nb := &Batch{Topic: "ev", Partition: 0}
	next.sequence(nb)
	rn := submit(nb)
	receive(t, sink.started)
	sink.release <- nil
	if err := <-rn.done; err != nil {
		t.Fatal(err)
	}
}
