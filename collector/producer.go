package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"
)

// Producer writes messages to Kafka.
type Producer interface {
	// Produce returns nil once Kafka acknowledged every message (acks=all),
	// or an error. Each message names its Topic. When ctx ends first,
	// Produce returns ctx's error at once, but the messages may still be
	// read, and even written, afterwards: the caller must not reuse their
	// buffers then.
	Produce(ctx context.Context, msgs []kafka.Message) error
	// Close waits for messages already given to Produce, then releases the
	// connections.
	Close() error
}

var errProducerClosed = errors.New("producer closed")

// groupProducer is a group-commit producer on kafka-go's protocol client.
// Every topic has a queue and one flusher: the flusher sends everything
// queued in one produce request per leader broker (all partitions of that
// broker at once, acks=all), then hands the outcome to every waiting
// caller. While a request is in flight the next batch gathers, so batches
// grow with load and no timer adds latency (kafka-go's Writer waits
// BatchTimeout to fill a batch, and sends one request per partition). One
// flush in flight per topic keeps each partition's order.
type groupProducer struct {
	transport *kafka.Transport
	addr      net.Addr
	attrs     int16 // record batch attributes: the compression codec
	timeout   time.Duration
	maxBytes  int // most bytes in one flush
	linger    time.Duration
	log       *slog.Logger
	m         *metrics

	mu     sync.Mutex
	topics map[string]*topicQueue
	closed bool
	wg     sync.WaitGroup
	stop   chan struct{}
	rr     atomic.Uint32 // round robin for messages without a key

	// healthy is the outcome of the last produce attempt; everOK is set by
	// the first acknowledged one.
	healthy  atomic.Bool
	everOK   atomic.Bool
	lastOKNs atomic.Int64
}

type topicQueue struct {
	name       string
	partitions []int32 // sorted partition ids
	wake       chan struct{}

	mu      sync.Mutex
	leaders map[int32]int32 // partition -> leader broker id
	pending []*entry
	spare   []*entry // the previous batch's slice, reused
}

// entry is one caller's messages for one partition.
type entry struct {
	partition int32
	msgs      []kafka.Message
	w         *waiter
}

// waiter collects the outcome of one Produce call's entries.
type waiter struct {
	left      atomic.Int32
	abandoned atomic.Bool // the caller stopped waiting: skip what is not yet sent
	mu        sync.Mutex
	err       error
	done      chan struct{}
	first     entry // the call's first entry, allocated with the waiter
}

func (w *waiter) finish(err error) {
	if err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
	}
	if w.left.Add(-1) == 0 {
		close(w.done)
	}
}

func newGroupProducer(brokers []string, codec kafka.Compression, timeout, linger time.Duration, log *slog.Logger, m *metrics) *groupProducer {
	return &groupProducer{
		transport: &kafka.Transport{
			Dial:        (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			IdleTimeout: 60 * time.Second,
			MetadataTTL: 10 * time.Second,
			ClientID:    "shoptrail-collector",
		},
		addr:    kafka.TCP(brokers...),
		attrs:   int16(protocol.Attributes(codec) & 0x7),
		timeout: timeout,
		// Kafka refuses record batches over message.max.bytes (1 MiB by
		// default); a flush never exceeds that, whatever its partitions.
		maxBytes: 1000000 - 64<<10,
		linger:   linger,
		log:      log,
		m:        m,
		topics:   map[string]*topicQueue{},
		stop:     make(chan struct{}),
	}
}

// metadata reads a topic's partitions and their leaders; the broker may
// create the topic if it allows.
func (p *groupProducer) metadata(ctx context.Context, topic string) (ids []int32, leaders map[int32]int32, err error) {
	res, err := p.transport.RoundTrip(ctx, p.addr, &metadataAPI.Request{
		TopicNames: []string{topic}, AllowAutoTopicCreation: true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the partitions of %q: %w", topic, err)
	}
	leaders = map[int32]int32{}
	for _, t := range res.(*metadataAPI.Response).Topics {
		if t.Name != topic {
			continue
		}
		if t.ErrorCode != 0 {
			return nil, nil, fmt.Errorf("cannot read the partitions of %q: %w", topic, kafka.Error(t.ErrorCode))
		}
		for _, pt := range t.Partitions {
			ids = append(ids, pt.PartitionIndex)
			leaders[pt.PartitionIndex] = pt.LeaderID
		}
	}
	if len(ids) == 0 {
		return nil, nil, fmt.Errorf("topic %q has no partitions", topic)
	}
	slices.Sort(ids)
	return ids, leaders, nil
}

// queue returns topic's queue, asking Kafka for its partitions the first
// time (the count never changes: events are partitioned by visitor).
func (p *groupProducer) queue(ctx context.Context, topic string) (*topicQueue, error) {
	p.mu.Lock()
	q, ok := p.topics[topic]
	closed := p.closed
	p.mu.Unlock()
	switch {
	case closed:
		return nil, errProducerClosed
	case ok:
		return q, nil
	}
	ids, leaders, err := p.metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errProducerClosed
	}
	if q, ok := p.topics[topic]; ok {
		return q, nil
	}
	q = &topicQueue{name: topic, partitions: ids, leaders: leaders, wake: make(chan struct{}, 1)}
	p.topics[topic] = q
	p.wg.Add(1)
	go p.run(q)
	return q, nil
}

// partitionIndex is kafka-go's Hash balancer (FNV-1a, as Sarama), the one
// partitioner of the pipeline, without its pool and interface.
func partitionIndex(key []byte, n int) int {
	i := int32(fnv1a(key)) % int32(n)
	if i < 0 {
		i = -i
	}
	return int(i)
}

func (p *groupProducer) Produce(ctx context.Context, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	w := &waiter{done: make(chan struct{})}
	// Group the messages by topic and partition; most requests have one
	// topic and few partitions. First which slot each message goes to,
	// then every slot's messages in one array (a single message is its
	// own slot's slice: the caller keeps msgs until Produce returns).
	type slot struct {
		q    *topicQueue
		part int32
		n    int
		e    *entry
	}
	var slotsBuf [8]slot
	slots := slotsBuf[:0]
	var slotOfBuf [64]uint16
	slotOf := slotOfBuf[:0]
	if len(msgs) > len(slotOfBuf) {
		slotOf = make([]uint16, 0, len(msgs))
	}
	var q *topicQueue
	for i := range msgs {
		m := &msgs[i]
		if q == nil || m.Topic != q.name {
			var err error
			if q, err = p.queue(ctx, m.Topic); err != nil {
				p.setHealthy(false)
				return err
			}
		}
		var part int32
		if len(m.Key) == 0 {
			part = q.partitions[p.rr.Add(1)%uint32(len(q.partitions))]
		} else {
			part = q.partitions[partitionIndex(m.Key, len(q.partitions))]
		}
		k := len(slots)
		for j, s := range slots {
			if s.q == q && s.part == part {
				k = j
				break
			}
		}
		if k == len(slots) {
			slots = append(slots, slot{q: q, part: part})
		}
		slots[k].n++
		slotOf = append(slotOf, uint16(k))
	}
	more := make([]entry, len(slots)-1)
	var all []kafka.Message
	if len(msgs) > 1 {
		all = make([]kafka.Message, len(msgs))
	}
	off := 0
	for k := range slots {
		e := &w.first
		if k > 0 {
			e = &more[k-1]
		}
		e.partition, e.w = slots[k].part, w
		if len(msgs) == 1 {
			e.msgs = msgs
		} else {
			e.msgs = all[off : off : off+slots[k].n]
			off += slots[k].n
		}
		slots[k].e = e
	}
	if len(msgs) > 1 {
		for i, k := range slotOf {
			e := slots[k].e
			e.msgs = append(e.msgs, msgs[i])
		}
	}
	w.left.Store(int32(len(slots)))
	for i, s := range slots {
		s.q.mu.Lock()
		s.q.pending = append(s.q.pending, s.e)
		s.q.mu.Unlock()
		if i == len(slots)-1 || slots[i+1].q != s.q {
			select {
			case s.q.wake <- struct{}{}:
			default:
			}
		}
	}
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		w.abandoned.Store(true)
		return ctx.Err()
	}
}

// run is a topic's flusher: it sends what gathered while it was busy. At
// low load every event would go alone in its own request, which costs the
// collector and the broker far more than the event; so a flush starts at
// least linger after the previous one started (under load flushes take
// longer than that, and nothing waits).
func (p *groupProducer) run(q *topicQueue) {
	defer p.wg.Done()
	var last time.Time
	for {
		select {
		case <-q.wake:
		case <-p.stop:
			// Close waited for the callers; send what may be left.
			for p.flush(q) {
			}
			return
		}
		if wait := p.linger - time.Since(last); wait > 0 {
			time.Sleep(wait)
		}
		last = time.Now()
		for p.flush(q) {
			last = time.Now()
		}
	}
}

// flush sends one batch of q's pending entries; false when there was none.
func (p *groupProducer) flush(q *topicQueue) bool {
	q.mu.Lock()
	batch := q.pending
	if len(batch) == 0 {
		q.mu.Unlock()
		return false
	}
	n, size := 0, 0
	for n < len(batch) && (n == 0 || size < p.maxBytes) {
		for _, m := range batch[n].msgs {
			size += len(m.Key) + len(m.Value) + 64
		}
		n++
	}
	taken := batch[:n:n]
	q.pending, q.spare = append(q.spare[:0], batch[n:]...), nil
	q.mu.Unlock()

	live := make([]*entry, 0, len(taken))
	for _, e := range taken {
		if e.w.abandoned.Load() {
			e.w.finish(context.DeadlineExceeded)
			continue
		}
		live = append(live, e)
	}
	if len(live) > 0 {
		p.send(q, live)
	}
	clear(taken)
	q.mu.Lock()
	if q.spare == nil {
		q.spare = taken[:0]
	}
	q.mu.Unlock()
	return true
}

// send produces the entries, one request per leader broker, retrying
// transient failures (refreshing the leaders) while time is left, and
// finishes every entry.
func (p *groupProducer) send(q *topicQueue, entries []*entry) {
	deadline := time.Now().Add(p.timeout)
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		failed, err := p.attempt(q, entries, deadline)
		if len(failed) == 0 {
			p.setHealthy(true)
			return
		}
		p.m.produceErrors.WithLabelValues(q.name).Inc()
		if time.Now().Add(backoff).After(deadline) || attempt >= 5 {
			p.setHealthy(false)
			p.log.Warn("cannot produce", "topic", q.name, "entries", len(failed), "attempts", attempt, "err", err)
			err = fmt.Errorf("cannot produce to %q: %w", q.name, err)
			for _, e := range failed {
				e.w.finish(err)
			}
			return
		}
		select {
		case <-time.After(backoff):
		case <-p.stop:
		}
		backoff *= 3
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if _, leaders, merr := p.metadata(ctx, q.name); merr == nil {
			q.mu.Lock()
			q.leaders = leaders
			q.mu.Unlock()
		}
		cancel()
		entries = failed
	}
}

// attempt sends entries once and finishes those acknowledged; it returns
// the others with an error.
func (p *groupProducer) attempt(q *topicQueue, entries []*entry, deadline time.Time) (failed []*entry, err error) {
	q.mu.Lock()
	// Most flushes go to one broker (every partition's leader): then the
	// request is sent from this goroutine, without grouping.
	one := true
	first := q.leaders[entries[0].partition]
	for _, e := range entries[1:] {
		if q.leaders[e.partition] != first {
			one = false
			break
		}
	}
	if one {
		q.mu.Unlock()
		return p.request(q.name, entries, deadline)
	}
	byLeader := map[int32][]*entry{}
	for _, e := range entries {
		l := q.leaders[e.partition]
		byLeader[l] = append(byLeader[l], e)
	}
	q.mu.Unlock()
	type outcome struct {
		failed []*entry
		err    error
	}
	results := make(chan outcome, len(byLeader))
	for _, group := range byLeader {
		go func() {
			f, err := p.request(q.name, group, deadline)
			results <- outcome{f, err}
		}()
	}
	for range byLeader {
		o := <-results
		if len(o.failed) > 0 {
			failed = append(failed, o.failed...)
			err = o.err
		}
	}
	return failed, err
}

// request sends one produce request holding every partition of entries
// (one leader's) and finishes the acknowledged entries.
func (p *groupProducer) request(topic string, entries []*entry, deadline time.Time) ([]*entry, error) {
	now := time.Now()
	var parts []produceAPI.RequestPartition
	// Each partition's index in parts, by a look through parts while they
	// are few (most topics have a dozen partitions), by a map beyond.
	var index map[int32]int
	indexOf := func(part int32) (int, bool) {
		if index != nil {
			i, ok := index[part]
			return i, ok
		}
		for i := range parts {
			if parts[i].Partition == part {
				return i, true
			}
		}
		return 0, false
	}
	var counts []int
	total := 0
	for _, e := range entries {
		i, ok := indexOf(e.partition)
		if !ok {
			i = len(parts)
			parts = append(parts, produceAPI.RequestPartition{Partition: e.partition})
			counts = append(counts, 0)
			if index == nil && len(parts) > 16 {
				index = make(map[int32]int, 2*len(parts))
				for j := range parts {
					index[parts[j].Partition] = j
				}
			} else if index != nil {
				index[e.partition] = i
			}
		}
		counts[i] += len(e.msgs)
		total += len(e.msgs)
	}
	// Every partition's records in one array.
	all := make([]kafka.Record, total)
	recs := make([][]kafka.Record, len(parts))
	off := 0
	for i, n := range counts {
		recs[i] = all[off : off : off+n]
		off += n
	}
	for _, e := range entries {
		i, _ := indexOf(e.partition)
		for _, m := range e.msgs {
			recs[i] = append(recs[i], kafka.Record{Time: now, Key: bytesOrNil(m.Key), Value: kafka.NewBytes(m.Value), Headers: m.Headers})
		}
	}
	for i := range parts {
		parts[i].RecordSet = protocol.RecordSet{Attributes: protocol.Attributes(p.attrs), Records: protocol.NewRecordReader(recs[i]...)}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	timeoutMs := int32(time.Until(deadline) / time.Millisecond)
	res, err := p.transport.RoundTrip(ctx, p.addr, &produceAPI.Request{
		Acks:    int16(kafka.RequireAll),
		Timeout: max(timeoutMs, 1),
		Topics:  []produceAPI.RequestTopic{{Topic: topic, Partitions: parts}},
	})
	p.m.produceSeconds.WithLabelValues(topic).Observe(time.Since(now).Seconds())
	if err != nil {
		return entries, err
	}
	var partErr map[int32]error // nil when every partition succeeded
	for _, t := range res.(*produceAPI.Response).Topics {
		for _, pr := range t.Partitions {
			if pr.ErrorCode != 0 {
				if partErr == nil {
					partErr = map[int32]error{}
				}
				partErr[pr.Partition] = kafka.Error(pr.ErrorCode)
			}
		}
	}
	var failed []*entry
	var firstErr error
	for _, e := range entries {
		if perr, bad := partErr[e.partition]; bad {
			failed = append(failed, e)
			firstErr = perr
			continue
		}
		e.w.finish(nil)
	}
	return failed, firstErr
}

func bytesOrNil(b []byte) kafka.Bytes {
	if len(b) == 0 {
		return nil
	}
	return kafka.NewBytes(b)
}

func (p *groupProducer) setHealthy(ok bool) {
	p.healthy.Store(ok)
	if ok {
		p.everOK.Store(true)
		p.lastOKNs.Store(time.Now().UnixNano())
	}
}

// Ready tells whether the last produce succeeded and one ever did.
func (p *groupProducer) Ready() bool { return p.everOK.Load() && p.healthy.Load() }

// SinceOK is the time since Kafka last acknowledged a produce.
func (p *groupProducer) SinceOK() time.Duration {
	ns := p.lastOKNs.Load()
	if ns == 0 {
		return time.Duration(1<<63 - 1)
	}
	return time.Since(time.Unix(0, ns))
}

func (p *groupProducer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	p.transport.CloseIdleConnections()
	return nil
}
