package processor

import (
	"context"
	"errors"
	"slices"
	"time"
)

// groupWriter coalesces the partition workers' batches into shared Sink
// writes (group commit): while a write is in progress, the batches that
// arrive wait and go together in a next one. ClickHouse pays a large fixed
// cost per insert (a new part, later merged), so a few large inserts cost
// far less than many small ones: on ClickHouse 18.16 an insert of 40,000
// events costs about a third of the server CPU per event of one of 10,000.
//
// Up to writers writes are in progress at once, each with the batches of
// other partitions: ClickHouse works on an insert with one thread, and
// with one write at a time the partitions' workers, their batches in
// flight all waiting for it, left a core idle (DefaultWrites). A
// partition's batches are written one write at a time, in the order its
// worker made them (Batch.seq), also when a failed write is retried after
// later batches came: sessions keeps the last row written of a session
// (its final row after its provisional ones).
type groupWriter struct {
	sink Sink
	reqs chan *writeReq
	// abandoned takes the batches whose workers gave up writing them
	// (abandon); stopped is closed when run returns.
	abandoned chan *Batch
	stopped   chan struct{}
	// linger is how long a batch waits for others to go with it, when a
	// writer is free.
	linger  time.Duration
	writers int
}

type writeReq struct {
	batch *Batch
	at    time.Time // when it came
	done  chan error
}

// errAbandoned answers the batches of a worker that gave up writing.
var errAbandoned = errors.New("an earlier batch of the partition was not written")

// source identifies the Kafka partition of a batch.
type source struct {
	topic     string
	partition int
}

func (b *Batch) source() source { return source{b.Topic, b.Partition} }

func newGroupWriter(sink Sink, linger time.Duration, writers int) *groupWriter {
	return &groupWriter{sink: sink, reqs: make(chan *writeReq), abandoned: make(chan *Batch), stopped: make(chan struct{}),
		linger: linger, writers: max(writers, 1)}
}

// run writes until ctx is done. Writes in progress finish first; batches
// still waiting then get ctx's error.
func (g *groupWriter) run(ctx context.Context) {
	var (
		queue   []*writeReq
		busy    = map[source]bool{} // partitions with a write in progress
		o       = newWriteOrder()
		running int
		done    = make(chan writeDone)
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	defer close(g.stopped)
	for {
		// Start a write while a writer is free and a batch that may go
		// has waited its linger; else wake when the first one will have.
		for running < g.writers {
			take, wait := o.take(queue, busy, g.linger)
			if wait > 0 {
				timer.Reset(wait)
			}
			if len(take) == 0 {
				break
			}
			queue = slices.DeleteFunc(queue, func(r *writeReq) bool { return slices.Contains(take, r) })
			for _, r := range take {
				busy[r.batch.source()] = true
			}
			running++
			go func() {
				batches := make([]*Batch, len(take))
				for i, r := range take {
					batches[i] = r.batch
				}
				err := g.sink.Write(context.WithoutCancel(ctx), batches)
				for _, r := range take {
					r.done <- err
				}
				done <- writeDone{take, err}
			}()
		}
		select {
		case <-ctx.Done():
			for ; running > 0; running-- {
				<-done
			}
			for _, r := range queue {
				r.done <- ctx.Err()
			}
			return
		case r := <-g.reqs:
			r.at = time.Now()
			if o.abandoned[r.batch.owner] {
				r.done <- errAbandoned
				break
			}
			queue = append(queue, r)
		case d := <-done:
			running--
			for _, r := range d.reqs {
				delete(busy, r.batch.source())
			}
			if d.err == nil {
				o.written(d.reqs)
			}
		case b := <-g.abandoned:
			o.abandon(b)
			queue = slices.DeleteFunc(queue, func(r *writeReq) bool {
				if r.batch.owner == b.owner {
					r.done <- errAbandoned
					return true
				}
				return false
			})
		case <-timer.C:
		}
	}
}

type writeDone struct {
	reqs []*writeReq
	err  error
}

// writeOrder keeps the order of each worker's batches: the seq of the
// batch each writes next.
type writeOrder struct {
	next map[uint64]uint64 // by owner
	// owners is the latest owner of each partition: a worker's entries go
	// when another takes its partition, so they stay as many as the
	// partitions.
	owners    map[source]uint64
	abandoned map[uint64]bool
}

func newWriteOrder() *writeOrder {
	return &writeOrder{next: map[uint64]uint64{}, owners: map[source]uint64{}, abandoned: map[uint64]bool{}}
}

// take returns the batches of queue to write now: those of the partitions
// not busy whose turn it is (each partition's in seq order, as many as
// follow each other), once the first of them has waited linger; else how
// long until it will have (0: nothing may go).
func (o *writeOrder) take(queue []*writeReq, busy map[source]bool, linger time.Duration) ([]*writeReq, time.Duration) {
	var take []*writeReq
	next := map[uint64]uint64{}
	for more := true; more; {
		more = false
		for _, r := range queue {
			b := r.batch
			if busy[b.source()] || slices.Contains(take, r) {
				continue
			}
			if b.owner != 0 {
				n, ok := next[b.owner]
				if !ok {
					n = o.next[b.owner]
				}
				if b.seq > n {
					continue // an earlier batch of its worker is not written yet
				}
				next[b.owner] = max(n, b.seq+1)
			}
			take = append(take, r)
			more = true
		}
	}
	if len(take) == 0 {
		return nil, 0
	}
	first := take[0].at
	for _, r := range take[1:] {
		if r.at.Before(first) {
			first = r.at
		}
	}
	if wait := linger - time.Since(first); wait > 0 {
		return nil, wait
	}
	return take, 0
}

// written records the batches of a successful write.
func (o *writeOrder) written(reqs []*writeReq) {
	for _, r := range reqs {
		if b := r.batch; b.owner != 0 {
			o.own(b)
			o.next[b.owner] = max(o.next[b.owner], b.seq+1)
		}
	}
}

// abandon records that b's worker gave up writing it.
func (o *writeOrder) abandon(b *Batch) {
	o.own(b)
	o.abandoned[b.owner] = true
}

// own records b's worker as its partition's latest, forgetting the one
// before.
func (o *writeOrder) own(b *Batch) {
	if prev, ok := o.owners[b.source()]; ok && prev != b.owner {
		delete(o.next, prev)
		delete(o.abandoned, prev)
	}
	o.owners[b.source()] = b.owner
}

// abandon tells the writer that b's worker gave up writing it: its later
// batches, waiting for b, get errAbandoned. A batch without an order
// (owner 0) has no later batches.
func (g *groupWriter) abandon(b *Batch) {
	if b.owner == 0 {
		return
	}
	select {
	case g.abandoned <- b:
	case <-g.stopped:
	}
}

// write writes b together with whatever other batches are waiting. It
// always waits for the write's outcome: the batch is not the caller's to
// change until then.
func (g *groupWriter) write(ctx context.Context, b *Batch) error {
	r := &writeReq{batch: b, done: make(chan error, 1)}
	select {
	case g.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.done
}
