package processor

import (
	"context"
	"slices"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/repart"
	"github.com/shoptrail/shoptrail/processor/session"
)

// A checkpoint has two halves. The worker takes a snapshot of the
// partition's state (snapshot: the changelog records of what changed, the
// offset after it, the signals and customer facts concluded so far) on its
// own goroutine, between two batches; another goroutine then writes it
// (writeCheckpoint): it waits until the batches handed to the writer
// before the snapshot are in ClickHouse, writes the signals, the facts and
// the state records, commits the offset and sends the watermark to the
// customer stage. Meanwhile the worker goes on reading, decoding and
// writing the next batches. When the worker waited for all of that
// instead, every partition stood still for a second or two every
// CheckpointInterval under load (their checkpoints fall due together),
// while ClickHouse worked off their batches on one core and the other
// idled.
//
// Writing batches after the snapshot before the checkpoint is written
// changes nothing of what a crash leaves behind: a restore from the
// previous checkpoint writes the same rows with the same keys again, as it
// always did for the batches written between two checkpoints. At most one
// checkpoint of a partition is written at a time, so their records reach
// the changelog in order.

// checkpointJob is a snapshot of the partition, to be written.
type checkpointJob struct {
	// state tells whether there are records to write; without, the job
	// only writes signals and facts (a final flush with nothing changed).
	state bool
	recs  []session.StateRecord
	loss  []byte
	next  int64
	// sent is the watermark to send the customer stage after the records,
	// zero for none; resend tells that it was not sent already.
	sent   time.Time
	resend bool
	// sentOK tells that sent reached the customer stage, err how writing
	// the job ended (set by writeCheckpoint and startCheckpoint).
	sentOK bool
	err    error

	signals []shoptrail.Signal
	facts   []repart.Fact
	// batches are the batches in flight when the snapshot was taken.
	batches []*inflightBatch
	start   time.Time
}

// snapshot takes what the next checkpoint writes; with state false only
// the signals and facts. The worker's state counts as saved from here on.
func (w *worker) snapshot(state bool) (*checkpointJob, error) {
	j := &checkpointJob{state: state, start: time.Now(), signals: w.cart.signals, facts: w.cart.facts}
	w.cart.signals, w.cart.facts = nil, nil
	if !state {
		return j, nil
	}
	if wm := w.sess.Watermark(); !wm.IsZero() {
		j.sent = broadcastWatermark(wm)
		j.resend = !j.sent.Equal(w.sent) && w.p.customerPartitions > 0
	}
	recs, err := w.cust.checkpoint(w.recs[:0], j.sent)
	if err != nil {
		return nil, err
	}
	w.recs = nil // the job's until it is done
	recs = w.cart.checkpoint(recs)
	j.recs = w.sess.Checkpoint(recs)
	j.loss = w.loss.encode()
	j.next = w.sess.Offset() + 1
	if !j.sent.IsZero() {
		// The facts from here on are after the watermark this checkpoint
		// sends, as after a restore from it (see restore).
		w.cart.floor = j.sent.Add(time.Millisecond)
	}
	w.dirty = false
	w.lastCkpt = j.start
	return j, nil
}

// startCheckpoint takes a snapshot and writes it on another goroutine,
// after the checkpoint before it, if any, is written.
func (w *worker) startCheckpoint(ctx context.Context, leaving <-chan struct{}) error {
	if err := w.waitCheckpoint(); err != nil {
		return err
	}
	j, err := w.snapshot(true)
	if err != nil {
		return err
	}
	j.batches = slices.Clone(w.inflight)
	done := make(chan *checkpointJob, 1)
	w.ckpt = done
	go func() {
		j.err = w.writeCheckpoint(ctx, leaving, j)
		done <- j
	}()
	return nil
}

// pollCheckpoint takes the outcome of the checkpoint being written, if it
// is done.
func (w *worker) pollCheckpoint() error {
	if w.ckpt == nil {
		return nil
	}
	select {
	case j := <-w.ckpt:
		w.ckpt = nil
		return w.finishCheckpoint(j, j.err)
	default:
		return nil
	}
}

// waitCheckpoint waits for the checkpoint being written, if any, and
// returns its outcome.
func (w *worker) waitCheckpoint() error {
	if w.ckpt == nil {
		return nil
	}
	j := <-w.ckpt
	w.ckpt = nil
	return w.finishCheckpoint(j, j.err)
}

// finishCheckpoint takes the outcome err of writing j back to the worker.
func (w *worker) finishCheckpoint(j *checkpointJob, err error) error {
	if err != nil {
		return err
	}
	if j.sentOK {
		w.sent = j.sent
	}
	if j.state && cap(j.recs) <= maxKeptCap { // after a burst, do not hold on to its size
		clear(j.recs)
		w.recs = j.recs[:0]
	}
	return nil
}

// writeCheckpoint writes j: once the batches before it are stored, the
// signals and customer facts, then the state records, then it commits
// the offset after them and sends the watermark to the customer stage.
// It runs on the worker's goroutine or on its own, and touches nothing of
// the worker but j.
func (w *worker) writeCheckpoint(ctx context.Context, leaving <-chan struct{}, j *checkpointJob) error {
	for _, f := range j.batches {
		<-f.done
		if f.err != nil {
			return f.err
		}
	}
	// The signals and the customer facts, before the checkpoint past
	// them.
	if len(j.signals) > 0 {
		err := w.produce(ctx, leaving, "write signals", func(ctx context.Context) error { return w.p.signals.write(ctx, j.signals) })
		if err != nil {
			return err
		}
		w.p.cm.signals.Add(float64(len(j.signals)))
	}
	if err := w.produceFacts(ctx, leaving, j.facts); err != nil {
		return err
	}
	if !j.state {
		return nil
	}
	cl := w.p.changelog
	// The pending record first, then the visitors, then the meta record:
	// see pendingKey.
	err := w.retry(ctx, leaving, "write checkpoint", func() error { return cl.writePending(ctx, w.partition, j.next, j.loss) })
	if err == nil {
		err = w.retry(ctx, leaving, "write checkpoint", func() error { return cl.writeRecords(ctx, w.partition, j.recs) })
	}
	if err == nil {
		w.hook("records")
		err = w.retry(ctx, leaving, "write checkpoint", func() error { return cl.writeMeta(ctx, w.partition, j.recs, j.loss) })
	}
	if err != nil {
		return err
	}
	w.p.m.stateRecords.Add(float64(len(j.recs)))
	w.hook("state")
	if j.next > 0 {
		// A refused commit is harmless: the changelog's meta record is
		// where a restore resumes; the committed offset serves lag
		// monitoring and the group's tools.
		if err := w.commit(w.partition, j.next); err != nil {
			w.p.m.commitErrors.Inc()
			w.log.Warn("offset commit refused", "offset", j.next, "err", err)
		}
	}
	w.hook("committed")
	w.broadcast(ctx, j)
	w.p.m.checkpoint.Observe(time.Since(j.start).Seconds())
	return nil
}

// broadcastWatermark is the watermark a partition sends the customer
// stage for a checkpoint at watermark wm: a second less (see repart),
// whole milliseconds.
func broadcastWatermark(wm time.Time) time.Time {
	return wm.Add(-time.Second).Truncate(time.Millisecond)
}

// broadcast sends the checkpointed watermark to every customer partition.
// One attempt: if it fails, the next checkpoint sends a later one.
func (w *worker) broadcast(ctx context.Context, j *checkpointJob) {
	if !j.resend {
		return
	}
	actx, cancel := context.WithTimeout(ctx, signalWriteTimeout)
	defer cancel()
	if err := w.p.facts.broadcast(actx, w.partition, w.p.customerPartitions, j.sent); err != nil {
		w.log.Warn("cannot send the watermark to the customer stage; the next checkpoint sends a later one", "err", err)
		return
	}
	j.sentOK = true
}
