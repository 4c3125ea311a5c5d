// Package processor consumes the events topic with a Kafka consumer group
// and writes what it derives to ClickHouse in batches, committing offsets
// only after ClickHouse has the rows.
package processor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
)

// Config configures the processor.
type Config struct {
	// Brokers are the Kafka bootstrap addresses.
	Brokers []string
	// Topic is the events topic; GroupID the consumer group.
	Topic   string
	GroupID string
	// BatchSize and BatchInterval bound a batch: it is written when it has
	// BatchSize events or BatchInterval passed since its first event.
	// The defaults are 10,000 events and 1 second.
	BatchSize     int
	BatchInterval time.Duration
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
	fs.IntVar(&c.BatchSize, "batch.size", 10000, "events per ClickHouse insert, at most")
	fs.DurationVar(&c.BatchInterval, "batch.interval", time.Second, "longest wait before a partial batch is inserted")
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
	if c.BatchSize == 0 {
		c.BatchSize = 10000
	}
	if c.BatchInterval == 0 {
		c.BatchInterval = time.Second
	}
}

// Validate reports what is wrong with the config.
func (c *Config) Validate() error {
	c.setDefaults()
	if c.BatchSize < 1 {
		return errors.New("batch.size must be at least 1")
	}
	if c.BatchInterval <= 0 {
		return errors.New("batch.interval must be positive")
	}
	return nil
}

// Sink stores decoded events. Insert must be idempotent: after a crash the
// same events are inserted again.
type Sink interface {
	Insert(ctx context.Context, events []shoptrail.Event) error
}

// Processor is the consumer loop.
type Processor struct {
	cfg  Config
	sink Sink
	log  *slog.Logger
}

// New returns a processor writing to sink.
func New(cfg Config, sink Sink, log *slog.Logger) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Processor{cfg: cfg, sink: sink, log: log.With("component", "processor")}, nil
}

// Run consumes until ctx is done: fetch a batch, insert it, commit its
// offsets. On shutdown the batch in progress is inserted and committed.
func (p *Processor) Run(ctx context.Context) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        p.cfg.Brokers,
		GroupID:        p.cfg.GroupID,
		Topic:          p.cfg.Topic,
		MinBytes:       1,
		MaxBytes:       16 << 20,
		MaxWait:        250 * time.Millisecond,
		CommitInterval: 0, // synchronous commits, after the insert
		StartOffset:    kafka.FirstOffset,
	})
	defer r.Close()
	p.log.Info("processor started", "topic", p.cfg.Topic, "group", p.cfg.GroupID)
	for {
		msgs, err := p.fetchBatch(ctx, r)
		if len(msgs) > 0 {
			if ierr := p.flush(context.WithoutCancel(ctx), r, msgs); ierr != nil {
				return ierr
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				p.log.Info("processor stopped")
				return nil
			}
			return fmt.Errorf("cannot fetch from %q: %w", p.cfg.Topic, err)
		}
	}
}

// fetchBatch gathers messages until the batch is full, the interval since
// its first message passed, or ctx is done.
func (p *Processor) fetchBatch(ctx context.Context, r *kafka.Reader) ([]kafka.Message, error) {
	first, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	msgs := []kafka.Message{first}
	fctx, cancel := context.WithTimeout(ctx, p.cfg.BatchInterval)
	defer cancel()
	for len(msgs) < p.cfg.BatchSize {
		m, err := r.FetchMessage(fctx)
		if err != nil {
			if ctx.Err() == nil && fctx.Err() != nil {
				return msgs, nil // interval elapsed
			}
			return msgs, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func (p *Processor) flush(ctx context.Context, r *kafka.Reader, msgs []kafka.Message) error {
	events := make([]shoptrail.Event, 0, len(msgs))
	for _, m := range msgs {
		var e shoptrail.Event
		if err := json.Unmarshal(m.Value, &e); err != nil || e.V > shoptrail.EventVersion {
			p.log.Warn("skipping undecodable event", "partition", m.Partition, "offset", m.Offset, "err", err, "version", e.V)
			continue
		}
		events = append(events, e)
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := p.sink.Insert(ctx, events)
		if err == nil {
			break
		}
		if attempt == 5 {
			return fmt.Errorf("cannot insert %d events: %w", len(events), err)
		}
		p.log.Warn("insert failed, retrying", "events", len(events), "attempt", attempt, "err", err)
		time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
	}
	if err := r.CommitMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot commit %d offsets: %w", len(msgs), err)
	}
	p.log.Debug("batch written", "events", len(events), "took", time.Since(start))
	return nil
}
