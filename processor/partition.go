package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/repart"
	"github.com/shoptrail/shoptrail/processor/session"
)

// worker owns one partition for one consumer group generation: it restores
// the partition's state from the changelog, consumes from the checkpoint's
// offset, writes a batch about every BatchInterval and checkpoints about
// every CheckpointInterval. It runs on one goroutine; nothing is shared with
// the other partitions' workers but the sink and the changelog writer.
type worker struct {
	p         *Processor
	cfg       *Config
	partition int
	label     string
	committed int64 // the group's offset at assignment (or kafka.FirstOffset)
	commit    func(partition int, offset int64) error
	log       *slog.Logger
	lag       prometheus.Gauge // this partition's consumer lag
	// id tells this worker's batches from those of the partition's next
	// owner; writeSeq numbers them in the order they are written.
	id, writeSeq uint64

	dec  *eventDecoder
	sess *session.Sessionizer
	cart *cartStage
	cust *customerStage
	loss lossAcc
	out  session.Output // only its Loss slice, reused
	// statusCount counts assignments by status between metric updates.
	statusCount [4]int
	// batch fills while the batches of inflight, oldest first, are being
	// written; free are written batches kept for reuse.
	batch    *Batch
	inflight []*inflightBatch
	free     []*Batch
	// held keeps the rows of the small tables (sessions, identity links,
	// loss, dead letters) until the next checkpoint, when they join the
	// batch written before it: one insert per table and checkpoint rather
	// than per batch. ClickHouse pays a large fixed cost for every insert
	// (a part of some 20 files, merged later), and these rows are only
	// needed in ClickHouse before the offsets past them are committed.
	held Batch
	// ckpt, when not nil, brings back the checkpoint being written, with
	// its outcome (see startCheckpoint); recs is the room for the next one's
	// records.
	ckpt chan *checkpointJob
	recs []session.StateRecord

	next      int64     // offset of the next message to read
	lastMsg   time.Time // wall time of the last fetch round with messages (or of the start)
	lastCkpt  time.Time
	dirty     bool // state changed since the last checkpoint
	lossDirty bool // the open loss bucket changed since its rows were written
	// lossUntil, when not -1, is the end of a checkpoint that was cut
	// short; until the replay reaches it, loss sums are not counted (nor
	// written, nor checkpointed), and there lossPending, that checkpoint's
	// loss bucket, is taken as the open bucket.
	lossUntil   int64
	lossPending []byte
	// sent is the watermark last sent to the customer stage.
	sent time.Time
	// evicted and sessEvicted are the sessionizer's eviction counts
	// already added to the metrics.
	evicted, sessEvicted int64
}

func newWorker(p *Processor, partition int, committed int64, commit func(int, int64) error) *worker {
	return &worker{
		p:         p,
		cfg:       &p.cfg,
		partition: partition,
		label:     strconv.Itoa(partition),
		committed: committed,
		commit:    commit,
		log:       p.log.With("partition", partition),
		id:        p.workerIDs.Add(1),
		lag:       p.m.lag.WithLabelValues(strconv.Itoa(partition)),
		loss:      newLossAcc(),
		dec:       newEventDecoder(),
		batch:     newBatch(p.cfg.Topic, partition, p.cfg.BatchSize, 0),
	}
}

// run restores the partition, then consumes until ctx (the process) or
// gctx (the generation) is done, then writes what it has, checkpoints and
// returns. It calls restored once the state is restored (or restoring
// failed). An error means the partition's state in memory was abandoned:
// the next owner restores the last checkpoint.
func (w *worker) run(ctx, gctx context.Context, restored func()) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(gctx, cancel)()
	restoredOnce := sync.OnceFunc(restored)
	defer restoredOnce()
	defer func() {
		// A batch or checkpoint in flight is not ours to drop: wait for
		// it, telling its retries to give up first.
		cancel()
		w.wait()
		w.waitCheckpoint()
	}()

	if err := w.restore(wctx); err != nil {
		return err
	}
	restoredOnce()
	// The customer stage's input, read on its own goroutine until the
	// worker returns.
	rctx, stopReading := context.WithCancel(wctx)
	readDone := make(chan struct{})
	from := w.cust.merger.Resume()
	go func() {
		defer close(readDone)
		w.cust.read(rctx, w.cfg, w.partition, from, kafka.LoggerFunc(w.p.kafkaLog))
	}()
	defer func() {
		stopReading()
		<-readDone
	}()
	r := newPartitionReader(w.cfg.Brokers, w.cfg.Topic, w.partition, w.next, w.log)
	defer r.Close()
	w.lastMsg, w.lastCkpt = time.Now(), time.Now()
	// Writes and checkpoints run under a context that outlives wctx by a
	// grace period: a batch being inserted when the partition is revoked
	// is finished and checkpointed, so the next owner has little to
	// replay. The group waits for us meanwhile, up to RebalanceTimeout.
	wctxDone := wctx.Done()
	flushCtx, cancelFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFlush()
	defer context.AfterFunc(wctx, func() { time.AfterFunc(w.cfg.RebalanceTimeout*2/3, cancelFlush) })()
	for {
		before := w.next
		err := w.fetch(wctx, r)
		stopping := wctx.Err() != nil
		if err != nil && !stopping {
			return fmt.Errorf("cannot read partition %d at %d: %w", w.partition, w.next, err)
		}
		if !stopping {
			w.idle()
		}
		if err := w.flush(flushCtx, wctxDone, stopping); err != nil {
			return err
		}
		if w.next == before {
			w.trim()
		}
		if stopping {
			w.log.Info("partition released", "offset", w.next)
			return nil
		}
	}
}

// Fetch bounds of the partition readers (and of the changelog's restore).
// The broker answers a fetch as soon as there is any data (MinBytes 1), so
// MaxWait adds no latency; but kafka-go also takes it as the deadline of
// the whole response. When a busy broker needs longer than that to send
// megabytes of backlog, the reader drops the connection and asks again,
// over and over: at 200ms, a processor starting on a backlog lost its
// first 2 to 3 seconds that way. A reader's Close waits for its fetch in
// flight, so MaxWait also bounds how long releasing a quiet partition takes.
const (
	fetchMaxBytes = 4 << 20
	fetchMaxWait  = time.Second
)

// restore loads the partition's state from the changelog and sets the
// offset to resume at: after the checkpoint, or the group's committed
// offset when there is no checkpoint yet.
func (w *worker) restore(ctx context.Context) error {
	start := time.Now()
	// A broker that just came back refuses the first requests on
	// connections from before: retry rather than give the partition up,
	// which would cost the group a rebalance.
	var st *restoredState
	err := w.retry(ctx, nil, "read the state topic", func() error {
		var err error
		st, err = w.p.changelog.read(ctx, w.partition)
		return err
	})
	if err != nil {
		return err
	}
	w.sess, err = session.New(w.cfg.Session)
	if err != nil {
		return err
	}
	if w.cart, err = newCartStage(w.cfg.Cart, w.cfg.Session.Timeout, w.p.cm, w.partition); err != nil {
		return err
	}
	if w.cust, err = newCustomerStage(w.cfg, w.p.customerPartitions, w.p.custm, w.label); err != nil {
		return err
	}
	recs, err := w.cust.restore(st.records)
	if err == nil {
		recs, err = w.cart.restore(recs)
	}
	if err != nil {
		return fmt.Errorf("cannot restore partition %d from %s: %w", w.partition, w.cfg.StateTopic, err)
	}
	if len(recs) > 0 {
		if err := w.sess.Restore(recs); err != nil {
			return fmt.Errorf("cannot restore partition %d from %s: %w", w.partition, w.cfg.StateTopic, err)
		}
	}
	if st.loss != nil {
		if err := w.loss.decode(st.loss); err != nil {
			return fmt.Errorf("cannot restore partition %d's loss bucket: %w", w.partition, err)
		}
	}
	w.lossUntil = -1
	if st.pendingNext > w.sess.Offset()+1 {
		// The last checkpoint was cut short: some visitor records are
		// ahead of the meta record, and those visitors will skip the
		// events up to it. Replaying up to its end reproduces everything
		// but their share of the loss sums, so take the sums that
		// checkpoint had computed when it gets there.
		w.lossUntil, w.lossPending = st.pendingNext, st.pendingLoss
		w.log.Info("last checkpoint was cut short; replaying to its end", "from", w.sess.Offset()+1, "to", w.lossUntil)
	}
	w.next = w.committed
	if off := w.sess.Offset(); off >= 0 {
		w.next = off + 1
	}
	if wm := w.sess.Watermark(); !wm.IsZero() {
		w.cart.floor = broadcastWatermark(wm).Add(time.Millisecond)
	}
	w.p.m.restore.Observe(time.Since(start).Seconds())
	stats := w.sess.Stats()
	w.log.Info("partition restored", "records", len(recs), "resume_at", w.next, "committed", w.committed,
		"open_sessions", stats.OpenSessions, "visitors", stats.Visitors, "took", time.Since(start).Round(time.Millisecond))
	w.gauges()
	return nil
}

// fetch adds messages to the batch until it is full, BatchInterval has
// passed, or ctx is done.
func (w *worker) fetch(ctx context.Context, r *partitionReader) error {
	fctx, cancel := context.WithTimeout(ctx, w.cfg.BatchInterval)
	defer cancel()
	// The round's messages are counted, and the time of the last one
	// taken, when it ends: per message, the clock and the metrics cost
	// about 1 % of the processor's CPU.
	n, hwm := 0, int64(-1)
	defer func() {
		if n > 0 {
			w.lastMsg = time.Now()
			w.p.m.messages.Add(float64(n))
			if lag := hwm - w.next; lag >= 0 {
				w.lag.Set(float64(lag))
			}
		}
	}()
	for len(w.batch.Events) < w.cfg.BatchSize {
		m, err := r.FetchMessage(fctx)
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		}
		n, hwm = n+1, m.HighWaterMark
		w.add(ctx, r, &m)
	}
	return nil
}

// add decodes one message, read by r, and feeds it to the sessionizer.
func (w *worker) add(ctx context.Context, r *partitionReader, m *kafka.Message) {
	w.next = m.Offset + 1
	w.dirty = true
	if cap(w.batch.Events) == 0 { // trimmed while the partition was quiet
		w.batch.makeRoom(w.cfg.BatchSize, 0)
	}
	// The slot is zero (Batch.reset clears the slots it used).
	w.batch.Events = extend(w.batch.Events, w.cfg.BatchSize)
	e := &w.batch.Events[len(w.batch.Events)-1]
	err := w.dec.decode(m.Value, e)
	if err == nil && e.V > shoptrail.EventVersion {
		err = fmt.Errorf("event schema version %d is newer than this processor's %d", e.V, shoptrail.EventVersion)
	}
	day := e.Timestamp
	if err != nil {
		t, terr := r.Time(ctx, m.Offset)
		if terr != nil {
			// The broker cannot be asked (gone since, or the partition
			// is being revoked): the dead letter gets the time it was
			// read at.
			w.log.Warn("cannot read the time of a message that is no event", "offset", m.Offset, "err", terr)
			t = time.Now()
		}
		m.Time, day = t.UTC(), t
	}
	if w.lossUntil >= 0 && m.Offset >= w.lossUntil {
		w.endLossReplay()
	}
	if b := bucketOf(m.Offset); b != w.loss.bucket {
		w.rollLossBucket(m.Offset, day)
	}
	if err != nil {
		*e = shoptrail.Event{} // slots past the batch's length are zero
		w.batch.Events = w.batch.Events[:len(w.batch.Events)-1]
		w.p.m.events.WithLabelValues("undecodable").Inc()
		w.held.DeadLetters = append(w.held.DeadLetters, DeadLetter{
			RowKey: fmt.Sprintf("%d/%d", m.Partition, m.Offset), Topic: m.Topic, Partition: m.Partition,
			Offset: m.Offset, Time: m.Time, Error: "cannot decode event: " + err.Error(), Payload: string(m.Value),
		})
		// The sessionizer still takes the offset, so the checkpoint moves
		// past the message; it counts it as invalid and emits nothing.
		w.sess.Add(m.Offset, &shoptrail.Event{})
		return
	}
	w.batch.Offsets = append(w.batch.Offsets, m.Offset)
	w.cart.capture(e, w.batch.addCommerce(w.dec, e), m.Offset)
	w.sess.Add(m.Offset, e)
}

// rollLossBucket closes the open loss bucket before the first message of
// another: what the sessionizer produced so far belongs to the old one.
func (w *worker) rollLossBucket(offset int64, day time.Time) {
	if w.loss.bucket >= 0 && w.lossUntil < 0 {
		w.drain()
		if w.lossDirty {
			w.held.Loss = w.loss.rows(w.held.Loss, w.partition, w.sess.Offset())
		}
	}
	w.loss.start(offset, day)
	w.lossDirty = false
}

// endLossReplay takes the loss bucket of the checkpoint that was cut
// short, once the replay has reached its end.
func (w *worker) endLossReplay() {
	w.drain() // what came before belongs to the cut checkpoint's sums
	if err := w.loss.decode(w.lossPending); err != nil {
		w.log.Error("cannot decode the pending loss bucket; loss sums of this bucket are incomplete", "err", err)
		w.loss = newLossAcc()
	}
	w.lossUntil, w.lossPending, w.lossDirty = -1, nil, false
}

// idle lets the watermark follow the wall clock on a partition that has
// been at its end for IdleAdvance, so its sessions close.
//
// A partition that never had an event follows the wall clock too: the
// customer stage merges the watermarks of all partitions, and must not
// wait for one that stays empty.
func (w *worker) idle() {
	if w.cfg.IdleAdvance <= 0 || w.lossUntil >= 0 || time.Since(w.lastMsg) < w.cfg.IdleAdvance {
		return
	}
	before := w.sess.Watermark()
	w.sess.Advance(time.Now())
	if !w.sess.Watermark().Equal(before) {
		w.dirty = true
	}
}

// drain moves the sessionizer's output into the batch and the loss bucket.
func (w *worker) drain() {
	// Drain appends straight to the batch's and the held rows' slices.
	o := session.Output{Sessions: w.held.Sessions, Links: w.held.Links, Loss: w.out.Loss[:0]}
	sessions, links, assigned := len(o.Sessions), len(o.Links), len(w.batch.Assignments)
	o.Assignments = w.batch.Assignments
	w.sess.Drain(&o)
	w.held.Sessions, w.held.Links = o.Sessions, o.Links
	w.cart.sessions(o.Sessions[sessions:])
	w.cart.links(o.Links[links:])
	// Abandonments are held for the checkpoint like sessions: few rows,
	// one insert per checkpoint rather than per batch.
	defer w.cart.advance(w.sess.Watermark(), &w.held)
	// Keep the assignments but an undecodable message's (it is in
	// dead_letters already), counting them by status.
	kept := o.Assignments[:assigned]
	for _, a := range o.Assignments[assigned:] {
		if a.MessageID == "" {
			continue
		}
		w.statusCount[a.Status]++
		kept = append(kept, a)
		w.cart.assigned(&a, &w.held)
	}
	clear(o.Assignments[len(kept):])
	w.batch.Assignments = kept
	if len(o.Loss) > 0 && w.lossUntil < 0 {
		w.loss.add(o.Loss)
		w.lossDirty = true
		for _, l := range o.Loss {
			w.p.m.beaconLost.Add(float64(max(l.Lost, 0)))
		}
	}
	clear(o.Loss)
	w.out.Loss = o.Loss[:0]
	w.p.m.sessions.Add(float64(len(w.held.Sessions) - sessions))
	w.p.m.links.Add(float64(len(w.held.Links) - links))
	for st, n := range w.statusCount {
		if n > 0 {
			w.p.m.events.WithLabelValues(session.Status(st).String()).Add(float64(n))
			w.statusCount[st] = 0
		}
	}
}

// flush hands the batch to the writer and, when due (or final),
// checkpoints. Batches are written in the background while the next one
// fills: decoding and sessionizing overlap with ClickHouse's work. A
// checkpoint saves the state as of now, and is written in the background
// too once the batches before it are (see startCheckpoint); a final one
// (the partition is left) is written before flush returns. Failed writes
// are retried until ctx is done, or until leaving is closed (the partition
// is being revoked or the process stops): then it gives up, and the error
// comes back from a later flush.
func (w *worker) flush(ctx context.Context, leaving <-chan struct{}, final bool) error {
	if w.lossUntil >= 0 && w.next >= w.lossUntil {
		w.endLossReplay()
	}
	if err := w.pollCheckpoint(); err != nil {
		return err
	}
	w.drain()
	took, err := w.cust.poll()
	if err != nil {
		return err
	}
	if took {
		w.dirty = true
	}
	if len(w.cart.facts) >= maxHeldFacts {
		if err := w.writeFacts(ctx, leaving); err != nil {
			return err
		}
	}
	checkpoint := w.dirty && w.lossUntil < 0 && (final || time.Since(w.lastCkpt) >= w.cfg.CheckpointInterval)
	if checkpoint {
		// The open sessions as they stand, written before the checkpoint
		// like the closed ones: provisional rows, replaced by the final
		// row, which comes after them (also in a replay).
		n := len(w.held.Sessions)
		w.held.Sessions = w.sess.Open(w.held.Sessions)
		w.p.m.provisional.Add(float64(len(w.held.Sessions) - n))
	}
	if checkpoint && w.lossDirty {
		// The open bucket's sums so far; the checkpoint carries them on.
		w.held.Loss = w.loss.rows(w.held.Loss, w.partition, w.sess.Offset())
		w.lossDirty = false
	}
	if checkpoint || final {
		w.cust.drain(&w.held, &w.cart.signals)
	}
	if checkpoint || final || w.held.Rows() >= maxHeldRows {
		w.release()
	}
	if final {
		// On the way out: everything written and checkpointed before
		// returning, on this goroutine.
		if err := w.waitCheckpoint(); err != nil {
			return err
		}
		if err := w.wait(); err != nil {
			return err
		}
		if w.batch.Rows() > 0 {
			w.sequence(w.batch)
			if err := w.writeBatch(ctx, leaving, w.batch); err != nil {
				return err
			}
		}
		j, err := w.snapshot(checkpoint)
		if err == nil {
			err = w.finishCheckpoint(j, w.writeCheckpoint(ctx, leaving, j))
		}
		w.gauges()
		return err
	}
	if w.batch.Rows() > 0 {
		if len(w.inflight) == maxInflight {
			if err := w.waitOldest(); err != nil {
				return err
			}
		}
		b := w.batch
		if n := len(w.free); n > 0 {
			w.batch, w.free = w.free[n-1], w.free[:n-1]
		} else {
			w.batch = newBatch(w.cfg.Topic, w.partition, w.cfg.BatchSize, cap(b.Events))
		}
		f := &inflightBatch{b: b, done: make(chan struct{})}
		w.inflight = append(w.inflight, f)
		w.sequence(b)
		go func() {
			f.err = w.writeBatch(ctx, leaving, b)
			close(f.done)
		}()
	}
	if checkpoint {
		if err := w.startCheckpoint(ctx, leaving); err != nil {
			return err
		}
	}
	w.gauges()
	return nil
}

// maxHeldRows bounds the rows held for the next checkpoint: past it they
// go with the next batch.
const maxHeldRows = 1 << 15

// release moves the held rows into the batch.
func (w *worker) release() {
	b, h := w.batch, &w.held
	b.Sessions, h.Sessions = move(b.Sessions, h.Sessions)
	b.Links, h.Links = move(b.Links, h.Links)
	b.Loss, h.Loss = move(b.Loss, h.Loss)
	b.DeadLetters, h.DeadLetters = move(b.DeadLetters, h.DeadLetters)
	b.Abandonments, h.Abandonments = move(b.Abandonments, h.Abandonments)
	b.Orders, h.Orders = move(b.Orders, h.Orders)
	b.OrderUpdates, h.OrderUpdates = move(b.OrderUpdates, h.OrderUpdates)
	b.Customers, h.Customers = move(b.Customers, h.Customers)
	b.Transitions, h.Transitions = move(b.Transitions, h.Transitions)
	b.CustomerOrders, h.CustomerOrders = move(b.CustomerOrders, h.CustomerOrders)
	h.reset()
}

// takeRoom moves the rows held for the checkpoint (h is the worker's held
// rows) into the room of spare, a written batch back for reuse, for each
// kind of row that spare has more room for; spare gets h's room. The batch
// that took the held rows at the last checkpoint comes back with their
// room, and the rows held for the next one would otherwise grow theirs
// again from whatever room the current batch had (Sessionizer.Drain, which
// appends the sessions, fell from 2.8 % to 0.7 % of the processor's CPU in
// the pipeline benchmark).
func (h *Batch) takeRoom(spare *Batch) {
	h.Sessions, spare.Sessions = roomier(h.Sessions, spare.Sessions)
	h.Links, spare.Links = roomier(h.Links, spare.Links)
	h.Loss, spare.Loss = roomier(h.Loss, spare.Loss)
	h.DeadLetters, spare.DeadLetters = roomier(h.DeadLetters, spare.DeadLetters)
	h.Abandonments, spare.Abandonments = roomier(h.Abandonments, spare.Abandonments)
	h.Orders, spare.Orders = roomier(h.Orders, spare.Orders)
	h.OrderUpdates, spare.OrderUpdates = roomier(h.OrderUpdates, spare.OrderUpdates)
	h.Customers, spare.Customers = roomier(h.Customers, spare.Customers)
	h.Transitions, spare.Transitions = roomier(h.Transitions, spare.Transitions)
	h.CustomerOrders, spare.CustomerOrders = roomier(h.CustomerOrders, spare.CustomerOrders)
}

// roomier returns rows in whichever of rows and spare (empty) has more
// room, and the other, empty, as the spare.
func roomier[T any](rows, spare []T) ([]T, []T) {
	if cap(spare) <= cap(rows) {
		return rows, spare
	}
	spare = append(spare[:0], rows...)
	clear(rows)
	return spare, rows[:0]
}

// move returns dst with the rows of src after its own, and what src may
// go on with. An empty dst (the usual case: only release fills these
// slices of a batch) trades places with src instead: copying the rows
// made a second slice as large as the held one in every batch that took
// them, some 80 MB of the processor's heap in the pipeline benchmark.
func move[T any](dst, src []T) ([]T, []T) {
	if len(dst) == 0 {
		return src, dst[:0]
	}
	return append(dst, src...), src
}

// trim lets go of the batches' memory while the partition is quiet (a
// fetch round brought nothing): the written batches kept for reuse, and
// the current batch's room for events, which also holds on to the strings
// of the events it held before. With three batches of 10,000 events that
// is some 40 MB a partition (some 100 MB at 25,000). It does nothing while
// a batch is in flight or the current one has events. (Trimming at every checkpoint too cost about
// 1 µs of processor CPU per event under load: fresh 7 MB allocations fault
// their pages in again.)
func (w *worker) trim() {
	if len(w.inflight) > 0 || len(w.batch.Events) > 0 || (len(w.free) == 0 && cap(w.batch.Events) == 0) {
		return
	}
	clear(w.free)
	w.free = w.free[:0]
	w.batch.Events = nil
	w.batch.Commerce, w.batch.CommerceOf = nil, nil
}

// maxInflight is how many batches of a partition may be waiting for or
// in a write while the next one fills. With more than one, a partition
// goes on decoding and sessionizing while ClickHouse is slower than it for
// a moment, and the batches that queue up meanwhile go into one insert:
// the slower ClickHouse, the larger (and cheaper per row) its inserts.
// Three rather than two since checkpoints are written in the background:
// ClickHouse then always has the next insert waiting (3 % of the CPU idle
// in a pipeline benchmark run against 7.7 %, and more events/s in seven of
// ten alternating pairs); while checkpoints waited for every batch in
// flight, three made each checkpoint's stall longer and the runs slower.
// The price is one more batch per partition in memory.
const maxInflight = 3

// inflightBatch is a batch handed to the writer, and its outcome: err,
// once done is closed (the worker and a checkpoint in progress both wait
// for it).
type inflightBatch struct {
	b    *Batch
	done chan struct{}
	err  error
}

// waitOldest waits for the oldest batch in flight and returns its outcome.
func (w *worker) waitOldest() error {
	f := w.inflight[0]
	<-f.done
	w.inflight = append(w.inflight[:0], w.inflight[1:]...)
	if f.err == nil {
		w.free = append(w.free, f.b) // emptied by writeBatch
		w.held.takeRoom(f.b)
	}
	return f.err
}

// wait waits for every batch in flight, and returns the first error.
func (w *worker) wait() error {
	var first error
	for len(w.inflight) > 0 {
		if err := w.waitOldest(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// sequence numbers b, the next batch to write.
func (w *worker) sequence(b *Batch) {
	b.owner, b.seq = w.id, w.writeSeq
	w.writeSeq++
}

// writeBatch writes b, retrying transient failures with capped, jittered
// backoff until it succeeds or ctx is done or leaving closed, and empties
// it.
func (w *worker) writeBatch(ctx context.Context, leaving <-chan struct{}, b *Batch) error {
	start := time.Now()
	events := len(b.Events)
	err := w.retry(ctx, leaving, "write batch", func() error { return w.p.writer.write(ctx, b) })
	if err != nil {
		// Its later batches must not be written before it.
		w.p.writer.abandon(b)
		return err
	}
	w.p.m.flushDuration.Observe(time.Since(start).Seconds())
	if events > 0 {
		w.p.m.batchEvents.Observe(float64(events))
	}
	w.log.Debug("batch written", "events", events, "rows", b.Rows(), "took", time.Since(start))
	b.reset()
	w.hook("written")
	return nil
}

// retry runs fn until it succeeds, ctx is done or leaving is closed,
// backing off from 100ms to 30s with jitter; while it fails, the processor
// reports not ready. Retries run on the partition's goroutine and on its
// batch writers' at once: each counts itself in Processor.failing, from its
// first failure until it returns.
func (w *worker) retry(ctx context.Context, leaving <-chan struct{}, what string, fn func() error) error {
	backoff := 100 * time.Millisecond
	failing := false
	defer func() {
		if failing {
			w.p.failing.Add(-1)
		}
	}()
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot %s of partition %d: %w", what, w.partition, err)
		case <-leaving:
			return fmt.Errorf("cannot %s of partition %d before leaving it: %w", what, w.partition, err)
		default:
		}
		if !failing {
			failing = true
			w.p.failing.Add(1)
		}
		w.p.m.sinkRetries.Inc()
		if attempt&(attempt-1) == 0 { // 1, 2, 4, 8, ...: a throttled log
			w.log.Warn("cannot "+what+", retrying", "attempt", attempt, "err", err)
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot %s of partition %d: %w", what, w.partition, err)
		case <-leaving:
			return fmt.Errorf("cannot %s of partition %d before leaving it: %w", what, w.partition, err)
		case <-time.After(sleep):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// writeFacts writes the customer facts of the partition's known
// customers to the customers topic, retrying as writes of batches are.
func (w *worker) writeFacts(ctx context.Context, leaving <-chan struct{}) error {
	if err := w.produceFacts(ctx, leaving, w.cart.facts); err != nil {
		return err
	}
	clear(w.cart.facts)
	w.cart.facts = w.cart.facts[:0]
	return nil
}

func (w *worker) produceFacts(ctx context.Context, leaving <-chan struct{}, facts []repart.Fact) error {
	if len(facts) == 0 {
		return nil
	}
	err := w.produce(ctx, leaving, "write customer facts", func(ctx context.Context) error { return w.p.facts.write(ctx, facts) })
	if err != nil {
		return err
	}
	w.p.custm.written.Add(float64(len(facts)))
	return nil
}

// produce writes to Kafka with write, retrying as writes of batches are;
// each attempt is bounded by signalWriteTimeout, so that a write stuck on
// a broker that went away is tried afresh rather than waited for.
func (w *worker) produce(ctx context.Context, leaving <-chan struct{}, what string, write func(context.Context) error) error {
	return w.retry(ctx, leaving, what, func() error {
		actx, cancel := context.WithTimeout(ctx, signalWriteTimeout)
		defer cancel()
		return write(actx)
	})
}

func (w *worker) gauges() {
	st := w.sess.Stats()
	w.p.m.openSessions.WithLabelValues(w.label).Set(float64(st.OpenSessions))
	w.p.cm.openCarts.WithLabelValues(w.label).Set(float64(w.cart.t.OpenCarts()))
	w.p.m.visitors.WithLabelValues(w.label).Set(float64(st.Visitors))
	w.p.m.pending.WithLabelValues(w.label).Set(float64(st.PendingEvents))
	w.p.m.stateBytes.WithLabelValues(w.label).Set(float64(w.sess.StateBytes()))
	if st.VisitorsEvicted != w.evicted {
		open := st.SessionsEvicted - w.sessEvicted
		w.p.m.evicted.WithLabelValues("open").Add(float64(open))
		w.p.m.evicted.WithLabelValues("retained").Add(float64(st.VisitorsEvicted - w.evicted - open))
		w.evicted, w.sessEvicted = st.VisitorsEvicted, st.SessionsEvicted
	}
	if !st.Watermark.IsZero() {
		w.p.m.watermark.WithLabelValues(w.label).Set(float64(st.Watermark.UnixMilli()) / 1000)
	}
}

func (w *worker) hook(point string) {
	if w.cfg.TestHook != nil {
		w.cfg.TestHook(point, w.partition)
	}
}
