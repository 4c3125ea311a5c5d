// Package rejects makes the collector's rejected events easy to find. A
// Consumer reads the dead-letter topic (each message: the event as sent,
// scrubbed, with reason, field, site and received_at headers) with its own
// consumer group and writes one rejected_events row per message; Tail reads
// them back and Replay sends them to a collector again.
//
// Exactly once, the processor's way: a batch of messages is inserted, then
// its offsets are committed. A crash between the two reads the batch again,
// and the rows, keyed by (kafka_partition, kafka_offset), collapse in the
// ReplacingMergeTree: read with FINAL.
package rejects

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
)

// Config is where the consumer reads.
type Config struct {
	// Brokers are the Kafka bootstrap addresses.
	Brokers []string
	// Topic is the dead-letter topic; the default is shoptrail.events.dlq.
	Topic string
	// Group is the consumer group; the default is shoptrail-rejects.
	Group string
	// BatchSize and BatchInterval bound a batch: the default is 1,000
	// messages or 1 second, whichever comes first.
	BatchSize     int
	BatchInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.Topic == "" {
		c.Topic = shoptrail.TopicDeadLetter
	}
	if c.Group == "" {
		c.Group = "shoptrail-rejects"
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.BatchInterval <= 0 {
		c.BatchInterval = time.Second
	}
	return c
}

// Consumer writes the dead-letter topic into rejected_events.
type Consumer struct {
	cfg  Config
	conn driver.Conn
	log  *slog.Logger
	rows prometheus.Counter
	errs prometheus.Counter
}

// New returns a consumer writing through conn; reg receives its metrics
// (nil: none), log nil discards.
func New(cfg Config, conn driver.Conn, log *slog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("rejects: no Kafka brokers")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	return &Consumer{
		cfg:  cfg.withDefaults(),
		conn: conn,
		log:  log.With("component", "rejects"),
		rows: f.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_rejects_rows_total",
			Help: "Rejected events written to rejected_events (a replayed message counts again).",
		}),
		errs: f.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_rejects_insert_errors_total",
			Help: "Failed inserts into rejected_events (each retry counts).",
		}),
	}, nil
}

// Row is one rejected event.
type Row struct {
	ReceivedAt  time.Time `json:"receivedAt"`
	Site        string    `json:"site"`
	Reason      string    `json:"reason"`
	Field       string    `json:"field"`
	Type        string    `json:"type"`
	EventName   string    `json:"event"`
	MessageID   string    `json:"messageId"`
	AnonymousID string    `json:"anonymousId"`
	// Event is the message as sent (scrubbed), JSON.
	Event     json.RawMessage `json:"message"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
}

// rowOf reads a dead-letter message.
func rowOf(m kafka.Message) Row {
	r := Row{Partition: int32(m.Partition), Offset: m.Offset, Event: m.Value}
	for _, h := range m.Headers {
		switch h.Key {
		case "reason":
			r.Reason = string(h.Value)
		case "field":
			r.Field = string(h.Value)
		case "site":
			r.Site = string(h.Value)
		case "received_at":
			r.ReceivedAt, _ = time.Parse(time.RFC3339Nano, string(h.Value))
		}
	}
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = m.Time
	}
	// What can be read of the event names it in listings; a message that
	// is not a JSON object keeps empty names.
	var head struct {
		Type        any `json:"type"`
		Event       any `json:"event"`
		Name        any `json:"name"`
		MessageID   any `json:"messageId"`
		AnonymousID any `json:"anonymousId"`
	}
	if json.Unmarshal(m.Value, &head) == nil {
		r.Type, r.MessageID, r.AnonymousID = scalar(head.Type), scalar(head.MessageID), scalar(head.AnonymousID)
		r.EventName = scalar(head.Event)
		if r.EventName == "" {
			r.EventName = scalar(head.Name)
		}
	}
	if !json.Valid(r.Event) {
		b, _ := json.Marshal(string(m.Value))
		r.Event = b
	}
	return r
}

func scalar(v any) string {
	switch v := v.(type) {
	case string:
		return truncate(v, 256)
	case float64, bool:
		return fmt.Sprint(v)
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Run consumes until ctx is done. Inserts that fail are retried with
// backoff; nothing is committed past them.
func (c *Consumer) Run(ctx context.Context) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        c.cfg.Brokers,
		Topic:          c.cfg.Topic,
		GroupID:        c.cfg.Group,
		MinBytes:       1,
		MaxBytes:       8 << 20,
		MaxWait:        500 * time.Millisecond,
		StartOffset:    kafka.FirstOffset,
		CommitInterval: 0, // synchronous commits, after the insert
	})
	defer r.Close()
	c.log.Info("rejects consumer started", "topic", c.cfg.Topic, "group", c.cfg.Group)
	batch := make([]kafka.Message, 0, c.cfg.BatchSize)
	for {
		batch = batch[:0]
		deadline := time.Now().Add(c.cfg.BatchInterval)
		for len(batch) < c.cfg.BatchSize {
			fctx, cancel := context.WithDeadline(ctx, deadline)
			m, err := r.FetchMessage(fctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if errors.Is(err, context.DeadlineExceeded) {
					break
				}
				c.log.Warn("cannot fetch dead letters", "err", err)
				if !sleep(ctx, time.Second) {
					return nil
				}
				break
			}
			batch = append(batch, m)
		}
		if len(batch) == 0 {
			continue
		}
		for attempt := 0; ; attempt++ {
			err := c.insert(ctx, batch)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			c.errs.Inc()
			c.log.Warn("cannot write rejected events", "rows", len(batch), "attempt", attempt+1, "err", err)
			if !sleep(ctx, min(time.Duration(attempt+1)*500*time.Millisecond, 10*time.Second)) {
				return nil
			}
		}
		c.rows.Add(float64(len(batch)))
		if err := r.CommitMessages(ctx, batch...); err != nil && ctx.Err() == nil {
			// The rows are in: the next owner writes them again, and they collapse.
			c.log.Warn("cannot commit dead-letter offsets", "err", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

const insertQuery = `INSERT INTO rejected_events (received_at, site, reason, field, type, event_name, message_id, anonymous_id, event, kafka_partition, kafka_offset)`

// insert writes the rows of msgs.
func (c *Consumer) insert(ctx context.Context, msgs []kafka.Message) error {
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := c.conn.PrepareBatch(ictx, insertQuery)
	if err != nil {
		return fmt.Errorf("cannot prepare the rejected_events insert: %w", err)
	}
	defer b.Abort()
	for _, m := range msgs {
		r := rowOf(m)
		at := r.ReceivedAt.UTC()
		if at.Before(time.Unix(0, 0)) {
			at = time.Unix(0, 0).UTC()
		}
		if err := b.Append(at, r.Site, r.Reason, r.Field, r.Type, r.EventName, r.MessageID, r.AnonymousID, string(r.Event), r.Partition, r.Offset); err != nil {
			return fmt.Errorf("cannot add a rejected_events row: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot insert %d rejected_events rows: %w", len(msgs), err)
	}
	return nil
}
