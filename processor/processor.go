// Package processor consumes the events topic with a Kafka consumer group,
// sessionizes each partition's events (processor/session) and writes the
// events and everything derived from them to a Sink (ClickHouse) in batches.
//
// Exactly-once results rest on three rules:
//
//   - Every row has a deterministic key (message id, session id derived from
//     the session's first event, identity link, loss bucket), and every
//     table collapses rows written twice. So replaying events is harmless.
//   - A partition's state (open sessions, pending events, visitor records,
//     the open loss bucket) is checkpointed to a compacted changelog topic
//     only after the rows derived so far are in ClickHouse, and the Kafka
//     offset is committed only after the checkpoint. So a restart or a new
//     owner of the partition restores the state of the last checkpoint and
//     replays the events after it, producing the same rows again.
//   - Partitions are owned through kafka-go's ConsumerGroup generations, one
//     reader per assigned partition: a processor that loses a partition in a
//     rebalance flushes and checkpoints it before it rejoins the group, and
//     the new owner restores it only after that.
package processor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/customer"
	"github.com/shoptrail/shoptrail/processor/session"
)

// Config configures the processor.
type Config struct {
	// Brokers are the Kafka bootstrap addresses.
	Brokers []string
	// Topic is the events topic; GroupID the consumer group.
	Topic   string
	GroupID string
	// StateTopic is the compacted changelog topic of the partitions' state.
	// It is created with the events topic's partition count if missing. The
	// default is "<topic>.<group>.state": each consumer group needs its own.
	StateTopic string
	// BatchSize and BatchInterval bound a partition's batch: it is handed
	// to the writer when it has BatchSize events or BatchInterval passed
	// since it began. The writer inserts the batches of all partitions that
	// are waiting together, one insert per table. The defaults are 25,000
	// events (DefaultBatchSize) and 1 second.
	BatchSize     int
	BatchInterval time.Duration
	// Writes is how many such inserts (of other partitions' batches) may
	// be in progress at once; a partition's batches are written one insert
	// after the other. The default is DefaultWrites.
	Writes int
	// CheckpointInterval is how often a partition's state is written to the
	// changelog and its offset committed (after a batch is written). Longer
	// intervals write fewer state records; a crash replays up to this much
	// of the stream. The default is 5 seconds.
	CheckpointInterval time.Duration
	// IdleAdvance: when a partition has been at its end without new events
	// for this long, its watermark follows the wall clock, so that the
	// sessions of a quiet partition still close. The default is 1 minute;
	// negative turns it off (event time alone moves the watermark).
	IdleAdvance time.Duration
	// GroupSessionTimeout is how long the group coordinator waits without a
	// heartbeat before it gives a processor's partitions to the others:
	// the failover time of a processor that dies without leaving (kafka-go's
	// default is 30 seconds; ours 10). Heartbeats go every second (a third
	// of the session timeout if that is shorter), so the others also learn
	// of a rebalance within a second. RebalanceTimeout bounds how long
	// members may take to flush and checkpoint before rejoining (they give
	// up writing after two thirds of it), and how long a rebalance waits
	// for a member that died during it: failover takes up to the longer of
	// the two. The default is 10 seconds.
	GroupSessionTimeout time.Duration
	RebalanceTimeout    time.Duration
	// Session configures sessionization.
	Session session.Config
	// Cart configures the cart stage (abandonment and recovery).
	Cart cart.Config
	// CustomersTopic is the repartition topic of the customer stage (facts
	// of known customers, keyed by customer), created with the events
	// topic's partition count if missing. The default is
	// "<topic>.<group>.customers": each consumer group needs its own.
	CustomersTopic string
	// Customer configures the customer stage (lifecycle, dormancy, tiers).
	Customer customer.Config
	// SignalsTopic is the topic of signals (abandoned and recovered carts)
	// for the alerter; created with the events topic's partition count if
	// missing. The default is shoptrail.TopicSignals.
	SignalsTopic string

	// TestHook, when set, is called at named points of a checkpoint
	// ("written": the batch is in ClickHouse; "state": the changelog has
	// the checkpoint; "committed": the offset is committed) so tests can
	// crash the process there. Nil in production.
	TestHook func(point string, partition int) `json:"-"`
}

// RegisterFlags registers the processor's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Func("kafka.brokers", "comma-separated Kafka bootstrap addresses (default 127.0.0.1:19092)", func(s string) error {
		c.Brokers = nil
		for _, b := range strings.Split(s, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.Brokers = append(c.Brokers, b)
			}
		}
		return nil
	})
	fs.StringVar(&c.Topic, "kafka.topic", shoptrail.TopicEvents, "Kafka topic of events")
	fs.StringVar(&c.GroupID, "kafka.group", "shoptrail-processor", "Kafka consumer group")
	fs.StringVar(&c.StateTopic, "kafka.state-topic", "", "compacted Kafka topic of the partitions' state, one per group (default: <kafka.topic>.<kafka.group>.state)")
	fs.DurationVar(&c.GroupSessionTimeout, "kafka.session-timeout", 10*time.Second, "how long the group waits for a silent processor before moving its partitions (the failover time of a crashed processor)")
	fs.DurationVar(&c.RebalanceTimeout, "kafka.rebalance-timeout", 10*time.Second, "how long a rebalance waits for processors to checkpoint and rejoin (and for one that died during it)")
	fs.IntVar(&c.BatchSize, "batch.size", DefaultBatchSize, "events per partition per batch, at most (the batches of all partitions are inserted together)")
	fs.DurationVar(&c.BatchInterval, "batch.interval", time.Second, "longest wait before a partial batch is inserted")
	fs.IntVar(&c.Writes, "batch.writes", DefaultWrites, "inserts in progress at once, each with the batches of other partitions")
	fs.DurationVar(&c.CheckpointInterval, "checkpoint.interval", 5*time.Second, "how often partition state is written to the state topic and offsets committed")
	fs.DurationVar(&c.IdleAdvance, "session.idle-advance", time.Minute, "after a partition is idle at its end this long, its watermark follows the wall clock (negative: never)")
	c.Session.RegisterFlags(fs)
	c.Cart.RegisterFlags(fs)
	c.Customer.RegisterFlags(fs)
	fs.StringVar(&c.CustomersTopic, "kafka.customers-topic", "", "Kafka topic of the customer stage's facts, one per group (default: <kafka.topic>.<kafka.group>.customers)")
	fs.StringVar(&c.SignalsTopic, "kafka.signals-topic", shoptrail.TopicSignals, "Kafka topic of signals (abandoned and recovered carts) for the alerter")
}

func (c *Config) setDefaults() {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{"127.0.0.1:19092"}
	}
	if c.Topic == "" {
		c.Topic = shoptrail.TopicEvents
	}
	if c.GroupID == "" {
		c.GroupID = "shoptrail-processor"
	}
	if c.StateTopic == "" {
		c.StateTopic = c.Topic + "." + c.GroupID + ".state"
	}
	if c.SignalsTopic == "" {
		c.SignalsTopic = shoptrail.TopicSignals
	}
	if c.CustomersTopic == "" {
		c.CustomersTopic = c.Topic + "." + c.GroupID + ".customers"
	}
	// Carts of known customers are recovered by the customer stage, on
	// any of their devices.
	c.Cart.HandOff = true
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchInterval == 0 {
		c.BatchInterval = time.Second
	}
	if c.Writes == 0 {
		c.Writes = DefaultWrites
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 5 * time.Second
	}
	if c.IdleAdvance == 0 {
		c.IdleAdvance = time.Minute
	}
	if c.GroupSessionTimeout == 0 {
		c.GroupSessionTimeout = 10 * time.Second
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 10 * time.Second
	}
}

// Validate reports what is wrong with the config, after filling in the
// defaults.
func (c *Config) Validate() error {
	c.setDefaults()
	switch {
	case c.BatchSize < 1:
		return errors.New("batch.size must be at least 1")
	case c.BatchInterval <= 0:
		return errors.New("batch.interval must be positive")
	case c.Writes < 1:
		return errors.New("batch.writes must be at least 1")
	case c.CheckpointInterval <= 0:
		return errors.New("checkpoint.interval must be positive")
	case c.StateTopic == c.Topic:
		return errors.New("kafka.state-topic must differ from kafka.topic")
	case c.SignalsTopic == c.Topic || c.SignalsTopic == c.StateTopic:
		return errors.New("kafka.signals-topic must differ from kafka.topic and kafka.state-topic")
	case c.CustomersTopic == c.Topic || c.CustomersTopic == c.StateTopic || c.CustomersTopic == c.SignalsTopic:
		return errors.New("kafka.customers-topic must differ from kafka.topic, kafka.state-topic and kafka.signals-topic")
	}
	if err := c.Cart.Validate(); err != nil {
		return err
	}
	if err := c.Customer.Validate(); err != nil {
		return err
	}
	return c.Session.Validate()
}

// Processor is the consumer: it joins the group, and for each partition it
// is assigned restores the partition's state, consumes, writes batches and
// checkpoints.
type Processor struct {
	cfg       Config
	sink      Sink
	log       *slog.Logger
	m         *metrics
	changelog *changelog
	writer    *groupWriter
	signals   *signalWriter
	cm        *cartMetrics
	facts     *factWriter
	custm     *customerMetrics
	// customerPartitions is the customers topic's partition count (the
	// events topic's), known once Run has prepared the topics.
	customerPartitions int

	ready   atomic.Bool // joined a generation and restored its partitions
	failing atomic.Int32
	// workerIDs numbers the partition workers (worker.id).
	workerIDs atomic.Uint64
}

// New returns a processor writing to sink. Its metrics are registered with
// reg (nil: not registered); log nil discards.
func New(cfg Config, sink Sink, log *slog.Logger, reg prometheus.Registerer) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Processor{
		cfg:       cfg,
		sink:      sink,
		log:       log.With("component", "processor"),
		m:         newMetrics(reg),
		changelog: newChangelog(cfg.Brokers, cfg.StateTopic),
		writer:    newGroupWriter(sink, 20*time.Millisecond, cfg.Writes),
		signals:   newSignalWriter(cfg.Brokers, cfg.SignalsTopic),
		cm:        newCartMetrics(reg),
		facts:     newFactWriter(cfg.Brokers, cfg.CustomersTopic),
		custm:     newCustomerMetrics(reg),
	}
	return p, nil
}

// Handler serves /metrics from g, /healthz (200 while the process runs) and
// /readyz (200 once the processor has joined its group and restored its
// partitions, and while ClickHouse takes its batches; 503 otherwise).
func (p *Processor) Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	if g != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case !p.ready.Load():
			http.Error(w, "not ready: joining the consumer group", http.StatusServiceUnavailable)
		case p.failing.Load() > 0:
			http.Error(w, "not ready: ClickHouse or Kafka refuses writes", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	return mux
}

// Run consumes until ctx is done. On shutdown each partition stops
// fetching, writes its last batch, checkpoints and commits, and the
// processor leaves the group.
func (p *Processor) Run(ctx context.Context) error {
	defer p.changelog.Close()
	defer p.signals.Close()
	defer p.facts.Close()
	// The writer outlives the partitions' last batches, written on the
	// way out.
	wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		p.writer.run(wctx)
	}()
	defer func() {
		stopWriter()
		<-writerDone
	}()
	for {
		err := p.changelog.ensure(ctx, p.cfg.Topic)
		if err == nil {
			err = p.signals.ensure(ctx, p.cfg.Topic)
		}
		if err == nil {
			p.customerPartitions, err = p.facts.ensure(ctx, p.cfg.Topic)
		}
		if err == nil {
			break
		}
		if errors.Is(err, errPartitionMismatch) {
			return err
		}
		p.log.Warn("cannot prepare the state and signals topics, retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                p.cfg.GroupID,
		Brokers:           p.cfg.Brokers,
		Topics:            []string{p.cfg.Topic},
		StartOffset:       kafka.FirstOffset,
		SessionTimeout:    p.cfg.GroupSessionTimeout,
		RebalanceTimeout:  p.cfg.RebalanceTimeout,
		HeartbeatInterval: min(time.Second, p.cfg.GroupSessionTimeout/3),
		JoinGroupBackoff:  time.Second,
		// Sticky partitions would help, but kafka-go offers range and
		// round robin; a partition that moves is restored from the
		// changelog, which is what makes moving it safe.
		GroupBalancers: []kafka.GroupBalancer{kafka.RangeGroupBalancer{}},
		ErrorLogger:    kafka.LoggerFunc(p.kafkaLog),
	})
	if err != nil {
		return fmt.Errorf("cannot join consumer group %q: %w", p.cfg.GroupID, err)
	}
	defer cg.Close() // leaves the group
	p.log.Info("processor started", "topic", p.cfg.Topic, "group", p.cfg.GroupID, "state_topic", p.cfg.StateTopic,
		"customers_topic", p.cfg.CustomersTopic)
	var wg sync.WaitGroup
	defer wg.Wait()
	member := "" // of the last generation
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				p.log.Info("processor stopped")
				return nil
			}
			p.log.Warn("consumer group error, rejoining", "err", err)
			if member != "" && !errors.Is(err, kafka.RebalanceInProgress) {
				// kafka-go forgets the member id after such an error and
				// joins as a new member, after trying to leave with the
				// old one; with the broker unreachable that failed, and
				// the coordinator would wait for the old member to rejoin
				// (RebalanceTimeout) or time out (GroupSessionTimeout)
				// before the new one gets partitions. Leave for it, as
				// soon as the broker answers.
				wg.Add(1)
				go func(member string) {
					defer wg.Done()
					p.leaveStale(ctx, member)
				}(member)
				member = ""
			}
			continue
		}
		member = gen.MemberID
		p.runGeneration(ctx, gen)
	}
}

// leaveStale removes a member id this process no longer uses from the
// group, retrying until the coordinator answers, ctx is done, or the
// coordinator would have dropped the member by itself anyway.
func (p *Processor) leaveStale(ctx context.Context, member string) {
	deadline := time.Now().Add(max(p.cfg.GroupSessionTimeout, p.cfg.RebalanceTimeout))
	c := &kafka.Client{Addr: kafka.TCP(p.cfg.Brokers...), Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		resp, err := c.LeaveGroup(ctx, &kafka.LeaveGroupRequest{
			GroupID: p.cfg.GroupID,
			Members: []kafka.LeaveGroupRequestMember{{ID: member}},
		})
		if err == nil {
			err = resp.Error
			if err == nil && len(resp.Members) > 0 {
				err = resp.Members[0].Error
			}
		}
		if err == nil || errors.Is(err, kafka.UnknownMemberId) {
			p.log.Info("left the group for a member id of before the broker failed", "member", member, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// kafkaLog passes kafka-go's error log on at debug level, every line (not
// throttled): the errors that matter reach the processor's own log and
// metrics through the calls that failed.
func (p *Processor) kafkaLog(msg string, args ...any) {
	p.log.Debug("kafka", "msg", fmt.Sprintf(msg, args...))
}

// runGeneration runs one worker per assigned partition and returns when
// the generation ends (a rebalance) or ctx is done, after every worker has
// checkpointed.
func (p *Processor) runGeneration(ctx context.Context, gen *kafka.Generation) {
	assigned := gen.Assignments[p.cfg.Topic]
	p.m.partitions.Set(float64(len(assigned)))
	ids := make([]int, len(assigned))
	for i, a := range assigned {
		ids[i] = a.ID
	}
	p.log.Info("partitions assigned", "generation", gen.ID, "partitions", fmt.Sprint(ids))
	var commitMu sync.Mutex
	commit := func(partition int, offset int64) error {
		commitMu.Lock()
		defer commitMu.Unlock()
		return gen.CommitOffsets(map[string]map[int]int64{p.cfg.Topic: {partition: offset}})
	}
	var wg sync.WaitGroup
	var restored sync.WaitGroup
	restored.Add(len(assigned))
	for _, a := range assigned {
		wg.Add(1)
		gen.Start(func(gctx context.Context) {
			defer wg.Done()
			w := newWorker(p, a.ID, a.Offset, commit)
			err := w.run(ctx, gctx, restored.Done)
			p.m.forget(a.ID)
			p.cm.openCarts.DeleteLabelValues(strconv.Itoa(a.ID))
			p.custm.forget(strconv.Itoa(a.ID))
			if err != nil && ctx.Err() == nil {
				// Ending the function ends the generation: the group
				// rebalances and the partition is restored afresh from
				// its last checkpoint.
				p.log.Warn("partition abandoned; it resumes from its last checkpoint", "partition", a.ID, "err", err)
			}
		})
	}
	// A member without partitions still has to notice the generation's end.
	wg.Add(1)
	gen.Start(func(gctx context.Context) {
		defer wg.Done()
		restored.Wait()
		p.ready.Store(true)
		select {
		case <-ctx.Done():
		case <-gctx.Done():
		}
	})
	wg.Wait()
	p.m.partitions.Set(0)
}
