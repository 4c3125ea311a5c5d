package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail/processor/session"
)

// The state changelog: a compacted Kafka topic with the events topic's
// partition count, where the state of events partition p lives in partition
// p. Each checkpoint writes one record per visitor changed since the last
// (its session.Snapshot bytes, or a tombstone for a visitor forgotten), then
// the partition's meta record, which carries the processor's own state
// (the open loss bucket) in a header so that both change atomically.

// lossHeader is the header of the meta record holding the open loss bucket.
const lossHeader = "shoptrail-loss"

// changelog reads and writes the state topic.
type changelog struct {
	topic   string
	brokers []string
	client  *kafka.Client
	writer  *kafka.Writer
}

func newChangelog(brokers []string, topic string) *changelog {
	addr := kafka.TCP(brokers...)
	return &changelog{
		topic:   topic,
		brokers: brokers,
		client:  &kafka.Client{Addr: addr, Timeout: 10 * time.Second},
		writer: &kafka.Writer{
			Addr:  addr,
			Topic: topic,
			// Records go to the partition of the events partition whose
			// state they hold.
			Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition }),
			// A checkpoint is acknowledged by every in-sync replica before
			// the offset is committed.
			RequiredAcks: kafka.RequireAll,
			BatchSize:    5000,
			BatchBytes:   1 << 20,
			BatchTimeout: 2 * time.Millisecond,
			MaxAttempts:  5,
			// Records are written per checkpoint, in bulk: compressing
			// them costs little next to their repetitive contents.
			Compression: kafka.Lz4,
		},
	}
}

func (c *changelog) Close() error { return c.writer.Close() }

// ensure creates the changelog topic, compacted, with the events topic's
// partition count, unless it exists; an existing one must have that count.
func (c *changelog) ensure(ctx context.Context, eventsTopic string) error {
	md, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{eventsTopic, c.topic}})
	if err != nil {
		return fmt.Errorf("cannot read metadata of %q: %w", eventsTopic, err)
	}
	counts := map[string]int{}
	for _, t := range md.Topics {
		if t.Error == nil {
			counts[t.Name] = len(t.Partitions)
		}
	}
	n := counts[eventsTopic]
	if n == 0 {
		return fmt.Errorf("events topic %q does not exist", eventsTopic)
	}
	if have, ok := counts[c.topic]; ok {
		if have != n {
			return fmt.Errorf("state topic %q has %d partitions, the events topic %q %d: they must match", c.topic, have, eventsTopic, n)
		}
		return nil
	}
	resp, err := c.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic:             c.topic,
		NumPartitions:     n,
		ReplicationFactor: -1, // the broker's default
		ConfigEntries: []kafka.ConfigEntry{
			{ConfigName: "cleanup.policy", ConfigValue: "compact"},
		},
	}}})
	if err == nil {
		err = resp.Errors[c.topic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("cannot create state topic %q: %w", c.topic, err)
	}
	return nil
}

// read returns partition p's changelog up to its current end, later records
// of a key replacing earlier ones, and the loss header of the last meta
// record.
func (c *changelog) read(ctx context.Context, p int) ([]session.StateRecord, []byte, error) {
	resp, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		c.topic: {kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p)},
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("cannot list offsets of %s/%d: %w", c.topic, p, err)
	}
	var first, last int64 = -1, -1
	for _, po := range resp.Topics[c.topic] {
		if po.Partition == p {
			if po.Error != nil {
				return nil, nil, fmt.Errorf("cannot list offsets of %s/%d: %w", c.topic, p, po.Error)
			}
			first, last = po.FirstOffset, po.LastOffset
		}
	}
	if first < 0 || last < 0 {
		return nil, nil, fmt.Errorf("cannot list offsets of %s/%d: partition missing", c.topic, p)
	}
	if last <= first {
		return nil, nil, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       c.brokers,
		Topic:         c.topic,
		Partition:     p,
		MinBytes:      1,
		MaxBytes:      16 << 20,
		MaxWait:       100 * time.Millisecond,
		QueueCapacity: 1000,
	})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return nil, nil, err
	}
	var recs []session.StateRecord
	at := map[string]int{}
	var loss []byte
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read %s/%d at %d of %d: %w", c.topic, p, r.Offset(), last, err)
		}
		k := string(m.Key)
		rec := session.StateRecord{Key: k, Value: m.Value}
		if i, ok := at[k]; ok {
			recs[i] = rec
		} else {
			at[k] = len(recs)
			recs = append(recs, rec)
		}
		if k == session.MetaKey {
			loss = nil
			for _, h := range m.Headers {
				if h.Key == lossHeader {
					loss = h.Value
				}
			}
		}
		if m.Offset+1 >= last {
			break
		}
	}
	return recs, loss, nil
}

// write stores a checkpoint of partition p: the visitor records, and once
// they are acknowledged the meta record (the last of recs) with the loss
// header. A failed write leaves the previous checkpoint in force: visitor
// records written without their meta record are harmless, because each
// says which offsets it has applied.
func (c *changelog) write(ctx context.Context, p int, recs []session.StateRecord, loss []byte) error {
	if len(recs) == 0 || recs[len(recs)-1].Key != session.MetaKey {
		return errors.New("checkpoint does not end with the meta record")
	}
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		msgs[i] = kafka.Message{Partition: p, Key: []byte(r.Key), Value: r.Value}
	}
	meta := msgs[len(msgs)-1]
	meta.Headers = []kafka.Header{{Key: lossHeader, Value: loss}}
	if n := len(msgs) - 1; n > 0 {
		if err := c.writer.WriteMessages(ctx, msgs[:n]...); err != nil {
			return fmt.Errorf("cannot write %d state records to %s/%d: %w", n, c.topic, p, err)
		}
	}
	if err := c.writer.WriteMessages(ctx, meta); err != nil {
		return fmt.Errorf("cannot write the meta record to %s/%d: %w", c.topic, p, err)
	}
	return nil
}

func partitionLabel(p int) string { return strconv.Itoa(p) }
