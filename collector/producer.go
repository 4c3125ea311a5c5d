package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
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
// Every partition has a queue and one worker; a worker sends everything
// queued for its partition in one produce request (acks=all), then hands
// the outcome to every waiting caller. While a request is in flight the
// next batch gathers, so batches grow with load and no timer adds latency
// (kafka-go's Writer waits BatchTimeout to fill a batch). One request in
// flight per partition keeps each partition's order.
type groupProducer struct {
	client   *kafka.Client
	codec    kafka.Compression
	timeout  time.Duration
	maxBytes int // most bytes in one produce request
	log      *slog.Logger
	m        *metrics

	mu     sync.Mutex
	topics map[string]*topicQueues
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

type topicQueues struct {
	parts []*partQueue // by index into the sorted partition ids
}

type partQueue struct {
	topic     string
	partition int
	wake      chan struct{}

	mu      sync.Mutex
	pending []*entry
	spare   []*entry // the previous batch's slice, reused
}

// entry is one caller's messages for one partition.
type entry struct {
	msgs []kafka.Message
	w    *waiter
}

// waiter collects the outcome of one Produce call's entries.
type waiter struct {
	left      atomic.Int32
	abandoned atomic.Bool // the caller stopped waiting: skip what is not yet sent
	mu        sync.Mutex
	err       error
	done      chan struct{}
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

func newGroupProducer(brokers []string, codec kafka.Compression, timeout time.Duration, log *slog.Logger, m *metrics) *groupProducer {
	transport := &kafka.Transport{
		Dial:        (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		IdleTimeout: 60 * time.Second,
		MetadataTTL: 10 * time.Second,
		ClientID:    "shoptrail-collector",
	}
	return &groupProducer{
		client:   &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: timeout, Transport: transport},
		codec:    codec,
		timeout:  timeout,
		maxBytes: 4 << 20,
		log:      log,
		m:        m,
		topics:   map[string]*topicQueues{},
		stop:     make(chan struct{}),
	}
}

// queues returns the partition queues of topic, asking Kafka for its
// partitions the first time (the count never changes: events are
// partitioned by visitor). The broker may create the topic if it allows.
func (p *groupProducer) queues(ctx context.Context, topic string) (*topicQueues, error) {
	p.mu.Lock()
	tq, ok := p.topics[topic]
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, errProducerClosed
	}
	if ok {
		return tq, nil
	}
	res, err := p.client.Transport.RoundTrip(ctx, p.client.Addr, &metadataAPI.Request{
		TopicNames: []string{topic}, AllowAutoTopicCreation: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read the partitions of %q: %w", topic, err)
	}
	md := res.(*metadataAPI.Response)
	var ids []int
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.ErrorCode != 0 {
			return nil, fmt.Errorf("cannot read the partitions of %q: %w", topic, kafka.Error(t.ErrorCode))
		}
		for _, pt := range t.Partitions {
			ids = append(ids, int(pt.PartitionIndex))
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("topic %q has no partitions", topic)
	}
	sort.Ints(ids)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errProducerClosed
	}
	if tq, ok := p.topics[topic]; ok {
		return tq, nil
	}
	tq = &topicQueues{}
	for _, id := range ids {
		q := &partQueue{topic: topic, partition: id, wake: make(chan struct{}, 1)}
		tq.parts = append(tq.parts, q)
		p.wg.Add(1)
		go p.run(q)
	}
	p.topics[topic] = tq
	return tq, nil
}

// partitionIndex is kafka-go's Hash balancer (FNV-1a, as Sarama), the one
// partitioner of the pipeline, without its pool and interface.
func partitionIndex(key []byte, n int) int {
	h := uint32(2166136261)
	for _, c := range key {
		h ^= uint32(c)
		h *= 16777619
	}
	i := int32(h) % int32(n)
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
	// Group the messages by partition; most requests have one topic.
	type slot struct {
		q *partQueue
		e *entry
	}
	var slotsBuf [8]slot
	slots := slotsBuf[:0]
	var tq *topicQueues
	var tqTopic string
	for i := range msgs {
		m := &msgs[i]
		if tq == nil || m.Topic != tqTopic {
			var err error
			if tq, err = p.queues(ctx, m.Topic); err != nil {
				p.setHealthy(false)
				return err
			}
			tqTopic = m.Topic
		}
		var idx int
		if len(m.Key) == 0 {
			idx = int(p.rr.Add(1) % uint32(len(tq.parts)))
		} else {
			idx = partitionIndex(m.Key, len(tq.parts))
		}
		q := tq.parts[idx]
		var e *entry
		for _, s := range slots {
			if s.q == q {
				e = s.e
				break
			}
		}
		if e == nil {
			e = &entry{w: w}
			slots = append(slots, slot{q, e})
		}
		e.msgs = append(e.msgs, *m)
	}
	w.left.Store(int32(len(slots)))
	for _, s := range slots {
		s.q.mu.Lock()
		s.q.pending = append(s.q.pending, s.e)
		s.q.mu.Unlock()
		select {
		case s.q.wake <- struct{}{}:
		default:
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

// run is a partition's worker: it sends what gathered while it was busy.
func (p *groupProducer) run(q *partQueue) {
	defer p.wg.Done()
	var recs []kafka.Record
	for {
		select {
		case <-q.wake:
		case <-p.stop:
			// Close waited for the callers; send what may be left.
			for p.flush(q, &recs) {
			}
			return
		}
		for p.flush(q, &recs) {
		}
	}
}

// flush sends one batch of q's pending entries; false when there was none.
func (p *groupProducer) flush(q *partQueue, recs *[]kafka.Record) bool {
	q.mu.Lock()
	batch := q.pending
	if len(batch) == 0 {
		q.mu.Unlock()
		return false
	}
	// Take entries up to maxBytes (at least one).
	n, size := 0, 0
	for n < len(batch) {
		for _, m := range batch[n].msgs {
			size += len(m.Key) + len(m.Value) + 64
		}
		n++
		if size >= p.maxBytes {
			break
		}
	}
	taken := batch[:n:n]
	rest := append(q.spare[:0], batch[n:]...)
	q.pending, q.spare = rest, nil
	q.mu.Unlock()

	now := time.Now()
	rs := (*recs)[:0]
	live := taken[:0:0]
	for _, e := range taken {
		if e.w.abandoned.Load() {
			e.w.finish(context.DeadlineExceeded)
			continue
		}
		live = append(live, e)
		for _, m := range e.msgs {
			rs = append(rs, kafka.Record{Time: now, Key: bytesOrNil(m.Key), Value: kafka.NewBytes(m.Value), Headers: m.Headers})
		}
	}
	if len(rs) > 0 {
		err := p.send(q, rs)
		for _, e := range live {
			e.w.finish(err)
		}
	}
	clear(rs) // drop references to request buffers
	*recs = rs
	q.mu.Lock()
	if q.spare == nil {
		q.spare = taken[:0]
		clear(taken)
	}
	q.mu.Unlock()
	return true
}

func bytesOrNil(b []byte) kafka.Bytes {
	if len(b) == 0 {
		return nil
	}
	return kafka.NewBytes(b)
}

// send produces rs to q's partition, retrying transient failures while
// time is left.
func (p *groupProducer) send(q *partQueue, rs []kafka.Record) error {
	deadline := time.Now().Add(p.timeout)
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		start := time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		for i := range rs { // a record's Bytes are read once per attempt
			rs[i].Key, rs[i].Value = rewind(rs[i].Key), rewind(rs[i].Value)
		}
		res, err := p.client.Produce(ctx, &kafka.ProduceRequest{
			Topic:        q.topic,
			Partition:    q.partition,
			RequiredAcks: kafka.RequireAll,
			Records:      kafka.NewRecordReader(rs...),
			Compression:  p.codec,
		})
		cancel()
		if err == nil && res.Error != nil {
			err = res.Error
		}
		p.m.produceSeconds.WithLabelValues(q.topic).Observe(time.Since(start).Seconds())
		if err == nil {
			p.setHealthy(true)
			return nil
		}
		p.m.produceErrors.WithLabelValues(q.topic).Inc()
		if time.Now().Add(backoff).After(deadline) || attempt >= 5 {
			p.setHealthy(false)
			p.log.Warn("cannot produce", "topic", q.topic, "partition", q.partition, "records", len(rs), "attempts", attempt, "err", err)
			return fmt.Errorf("cannot produce %d events to %q: %w", len(rs), q.topic, err)
		}
		select {
		case <-time.After(backoff):
		case <-p.stop:
		}
		backoff *= 3
	}
}

// rewind returns a Bytes that reads from the start again.
func rewind(b kafka.Bytes) kafka.Bytes {
	if b == nil {
		return nil
	}
	if s, ok := b.(interface {
		Seek(int64, int) (int64, error)
	}); ok {
		s.Seek(0, 0)
	}
	return b
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
	if t, ok := p.client.Transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
	return nil
}
