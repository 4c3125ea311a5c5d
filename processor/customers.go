package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/customer"
	"github.com/shoptrail/shoptrail/processor/repart"
	"github.com/shoptrail/shoptrail/processor/session"
)

// The customer stage. A customer's devices are visitors of different
// events partitions, so customers are repartitioned (the Kafka Streams
// way): every events partition's worker writes the facts of its known
// customers to the customers topic (CustomersTopic, as many partitions as
// the events topic, keyed by site and customer id), and the worker of
// events partition p also runs customer partition p: it reads partition p
// of the customers topic, orders the facts of all sources under their
// watermarks (repart.Merger) and feeds them to a customer.Tracker. Its
// state goes into partition p's changelog checkpoint, next to the
// sessionizer's and the carts', and its rows and signals are written
// before that checkpoint. See repart for the contract between sources and
// the merger, and the README ("Cross-device customers").

// customerStateKey prefixes the customer stage's changelog records (the
// tracker's customer records, and its meta record with the merger's
// state).
const customerStateKey = "\x00k"

// customerPoll bounds the facts taken from the customers topic per round
// of the worker's loop.
const customerPoll = 8192

// maxHeldFacts: past this many facts waiting to be written, they are
// written before the next checkpoint (a backfill makes many). Writing
// facts early is safe: the merger releases none of them before this
// partition's next watermark, sent after its next checkpoint.
const maxHeldFacts = 4096

type customerStage struct {
	merger   *repart.Merger
	t        *customer.Tracker
	window   time.Duration // cart recovery window
	released []repart.Fact
	out      customer.Output
	recs     []customer.Record
	m        *customerMetrics
	label    string

	// in brings the customers topic's messages from the reader goroutine;
	// readErr its error, when it gives up.
	in      chan kafka.Message
	readErr chan error
}

type customerMeta struct {
	Tracker json.RawMessage `json:"tracker"`
	Merger  json.RawMessage `json:"merger"`
	// Sent is the watermark this partition, as a source, sends the
	// customer partitions after the checkpoint (for monitoring and tests:
	// a customer partition whose merged watermark reached the least Sent
	// of all partitions has processed everything they sent).
	Sent time.Time `json:"sent,omitzero"`
}

func newCustomerStage(cfg *Config, sources int, m *customerMetrics, label string) (*customerStage, error) {
	t, err := customer.New(cfg.Customer)
	if err != nil {
		return nil, err
	}
	window := cfg.Cart.RecoveryWindow
	if window == 0 {
		window = cart.DefaultRecoveryWindow
	}
	return &customerStage{merger: repart.New(sources), t: t, window: window, m: m, label: label,
		in: make(chan kafka.Message, customerPoll), readErr: make(chan error, 1)}, nil
}

// restore takes the stage's records out of a partition's changelog records
// and returns the others.
func (c *customerStage) restore(recs []session.StateRecord) ([]session.StateRecord, error) {
	rest := recs[:0:0]
	var mine []customer.Record
	for _, r := range recs {
		key, ok := strings.CutPrefix(r.Key, customerStateKey)
		if !ok {
			rest = append(rest, r)
			continue
		}
		if key != customer.MetaKey {
			mine = append(mine, customer.Record{Key: key, Value: r.Value})
			continue
		}
		var meta customerMeta
		if err := json.Unmarshal(r.Value, &meta); err != nil {
			return nil, fmt.Errorf("customer stage: meta record: %w", err)
		}
		if err := c.merger.Restore(meta.Merger); err != nil {
			return nil, fmt.Errorf("customer stage: %w", err)
		}
		mine = append(mine, customer.Record{Key: key, Value: meta.Tracker})
	}
	if err := c.t.Restore(mine); err != nil {
		return nil, fmt.Errorf("customer stage: %w", err)
	}
	return rest, nil
}

// read feeds c.in from the customers topic's partition, from offset from
// (the merger's Resume, taken before the worker goes on), until ctx is
// done. It runs on its own goroutine and touches nothing else of c.
func (c *customerStage) read(ctx context.Context, cfg *Config, partition int, from int64, logger kafka.Logger) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       cfg.Brokers,
		Topic:         cfg.CustomersTopic,
		Partition:     partition,
		MinBytes:      1,
		MaxBytes:      fetchMaxBytes,
		MaxWait:       fetchMaxWait,
		QueueCapacity: 1024,
		ErrorLogger:   logger,
	})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		c.readErr <- fmt.Errorf("cannot seek %s/%d to %d: %w", cfg.CustomersTopic, partition, from, err)
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.readErr <- fmt.Errorf("cannot read %s/%d: %w", cfg.CustomersTopic, partition, err)
			}
			return
		}
		select {
		case c.in <- m:
		case <-ctx.Done():
			return
		}
	}
}

// poll takes the facts that have arrived, feeds the tracker what the
// merged watermark releases and advances it. It reports whether it took
// anything (the stage's state changed).
func (c *customerStage) poll() (bool, error) {
	took := false
read:
	for range customerPoll {
		select {
		case err := <-c.readErr:
			return took, err
		case m := <-c.in:
			took = true
			var f repart.Fact
			if err := repart.DecodeFact(m.Value, &f); err != nil {
				c.m.facts.WithLabelValues("invalid").Inc()
				continue
			}
			c.m.facts.WithLabelValues(outcomeNames[c.merger.Add(f, m.Offset)]).Inc()
		default:
			break read // nothing more has arrived
		}
	}
	if !took {
		return false, nil
	}
	var wm time.Time
	c.released, wm = c.merger.Release(c.released[:0])
	for i := range c.released {
		f := &c.released[i]
		switch {
		case f.Event != nil:
			c.t.Add(f.Event)
		case f.Abandonment != nil:
			c.t.AddAbandonment(f.Abandonment, f.New, c.window, f.Time())
		}
	}
	clear(c.released)
	c.t.Advance(wm)
	if !wm.IsZero() {
		c.m.watermark.WithLabelValues(c.label).Set(float64(wm.UnixMilli()) / 1000)
	}
	c.m.waiting.WithLabelValues(c.label).Set(float64(c.merger.Len()))
	return true, nil
}

var outcomeNames = [...]string{repart.Kept: "kept", repart.Replayed: "replayed", repart.Late: "late", repart.Invalid: "invalid"}

// drain puts the tracker's rows into held and its signals into signals.
func (c *customerStage) drain(held *Batch, signals *[]shoptrail.Signal) {
	c.t.Drain(&c.out)
	o := &c.out
	held.Customers = append(held.Customers, o.Customers...)
	held.Transitions = append(held.Transitions, o.Transitions...)
	held.CustomerOrders = append(held.CustomerOrders, o.Orders...)
	for _, a := range o.Abandonments {
		held.Abandonments = append(held.Abandonments, AbandonmentRow{Abandonment: a.Abandonment, Stage: a.Stage, Tier: a.Tier})
	}
	*signals = append(*signals, o.Signals...)
	for _, tr := range o.Transitions {
		c.m.transitions.WithLabelValues(tr.Kind, tr.To).Inc()
	}
	for kind, n := range o.Problems {
		if n > 0 {
			c.m.problems.WithLabelValues(kind).Add(float64(n))
		}
	}
	c.m.customers.WithLabelValues(c.label).Set(float64(c.t.Len()))
	o.Reset()
}

// checkpoint appends the stage's changelog records: the customers changed
// since the last checkpoint, then its meta record (the tracker's meta and
// the merger's state, in one record so that they change together).
func (c *customerStage) checkpoint(dst []session.StateRecord, sent time.Time) ([]session.StateRecord, error) {
	c.recs = c.t.Checkpoint(c.recs[:0])
	n := len(c.recs) - 1 // the last is the tracker's meta record
	for _, r := range c.recs[:n] {
		dst = append(dst, session.StateRecord{Key: customerStateKey + r.Key, Value: r.Value})
	}
	mb, err := c.merger.Checkpoint()
	if err != nil {
		return dst, fmt.Errorf("customer stage: %w", err)
	}
	v, err := json.Marshal(customerMeta{Tracker: c.recs[n].Value, Merger: mb, Sent: sent})
	if err != nil {
		return dst, fmt.Errorf("customer stage: %w", err)
	}
	dst = append(dst, session.StateRecord{Key: customerStateKey + customer.MetaKey, Value: v})
	clear(c.recs)
	return dst, nil
}

// factWriter writes facts to the customers topic: keyed facts to the
// partition of their key (kafka-go's Hash balancer, the same in every
// processor), watermarks to the partition they name.
type factWriter struct {
	topic     string
	client    *kafka.Client
	transport *kafka.Transport
	w         *kafka.Writer
}

func newFactWriter(brokers []string, topic string) *factWriter {
	addr := kafka.TCP(brokers...)
	tr := &kafka.Transport{}
	hash := &kafka.Hash{}
	return &factWriter{
		topic:     topic,
		transport: tr,
		client:    &kafka.Client{Addr: addr, Timeout: 10 * time.Second, Transport: tr},
		w: &kafka.Writer{Addr: addr, Transport: tr, Topic: topic,
			Balancer: kafka.BalancerFunc(func(m kafka.Message, partitions ...int) int {
				if len(m.Key) == 0 {
					return m.Partition
				}
				return hash.Balance(m, partitions...)
			}),
			RequiredAcks: kafka.RequireAll, BatchSize: 5000, BatchBytes: 1 << 20, BatchTimeout: 2 * time.Millisecond,
			// Uncompressed, as Kafka Streams writes its repartition
			// topics by default: the facts live until the next
			// checkpoint, and lz4 both ways cost 7 % of the processor's
			// CPU in the pipeline benchmark (three alternating pairs,
			// 0.65 µs an event).
			MaxAttempts: 5},
	}
}

// ensure creates the customers topic with the events topic's partition
// count unless it exists; an existing one must have that count (customer
// partition p is run by the owner of events partition p).
func (f *factWriter) ensure(ctx context.Context, eventsTopic string) (int, error) {
	return ensureTopic(ctx, f.client, eventsTopic, f.topic, true, nil)
}

// write writes facts (events and hand-offs, keyed by site and customer).
func (f *factWriter) write(ctx context.Context, facts []repart.Fact) error {
	msgs := make([]kafka.Message, len(facts))
	// The keys and values share one buffer (a few hundred bytes a fact):
	// two allocations per fact were a tenth of the cost of writing them.
	buf := make([]byte, 0, 256*len(facts))
	for i := range facts {
		site, id := factKey(&facts[i])
		start := len(buf)
		buf = append(append(append(buf, site...), 0), id...)
		key := len(buf)
		buf = repart.AppendFact(buf, &facts[i])
		msgs[i] = kafka.Message{Key: buf[start:key:key], Value: buf[key:len(buf):len(buf)]}
	}
	if err := f.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot write %d customer facts to %s: %w", len(msgs), f.topic, err)
	}
	return nil
}

func factKey(f *repart.Fact) (site, id string) {
	if f.Event != nil {
		return f.Event.Site, f.Event.CustomerID
	}
	return f.Abandonment.Site, f.Abandonment.CustomerID
}

// broadcast writes source's watermark to every partition of the topic.
func (f *factWriter) broadcast(ctx context.Context, source, partitions int, wm time.Time) error {
	v := repart.AppendFact(nil, &repart.Fact{Source: source, Watermark: wm})
	msgs := make([]kafka.Message, partitions)
	for p := range msgs {
		msgs[p] = kafka.Message{Partition: p, Value: v}
	}
	if err := f.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot write the watermark of partition %d to %s: %w", source, f.topic, err)
	}
	return nil
}

func (f *factWriter) Close() error {
	err := f.w.Close()
	f.transport.CloseIdleConnections()
	return err
}

// customerMetrics are the customer stage's metrics.
type customerMetrics struct {
	facts       *prometheus.CounterVec
	written     prometheus.Counter
	transitions *prometheus.CounterVec
	problems    *prometheus.CounterVec
	customers   *prometheus.GaugeVec
	waiting     *prometheus.GaugeVec
	watermark   *prometheus.GaugeVec
}

func newCustomerMetrics(reg prometheus.Registerer) *customerMetrics {
	m := &customerMetrics{
		facts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_processor_customer_facts_total",
			Help: "Facts read from the customers topic, by outcome: kept, replayed (seen before, or read again after a restore), late (behind the merged watermark: dropped), invalid.",
		}, []string{"outcome"}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_customer_facts_written_total",
			Help: "Facts of known customers written to the customers topic (replays count again).",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_processor_customer_transitions_total",
			Help: "Stage and tier changes of customers, by kind and new value (replays count again).",
		}, []string{"kind", "to"}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_processor_customer_bad_input_total",
			Help: "Customer events with bad input, by kind (see README: customers); the event is otherwise kept.",
		}, []string{"kind"}),
		customers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoptrail_processor_customers",
			Help: "Customers tracked, per customer partition.",
		}, []string{"partition"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoptrail_processor_customer_facts_waiting",
			Help: "Facts waiting for every source partition's watermark to pass them, per customer partition.",
		}, []string{"partition"}),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoptrail_processor_customer_watermark_seconds",
			Help: "Merged watermark of a customer partition (the least of the source partitions'), unix seconds.",
		}, []string{"partition"}),
	}
	if reg != nil {
		reg.MustRegister(m.facts, m.written, m.transitions, m.problems, m.customers, m.waiting, m.watermark)
	}
	return m
}

// forget drops the gauges of a customer partition this processor no
// longer runs.
func (m *customerMetrics) forget(label string) {
	m.customers.DeleteLabelValues(label)
	m.waiting.DeleteLabelValues(label)
	m.watermark.DeleteLabelValues(label)
}
