package processor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail/processor/session"
)

// The state changelog: a compacted Kafka topic with the events topic's
// partition count, where the state of events partition p lives in partition
// p. A checkpoint writes, in this order and each acknowledged by all
// in-sync replicas before the next:
//
//  1. the pending record (pendingKey): the offset the checkpoint ends at
//     and the processor's open loss bucket;
//  2. one record per visitor changed since the last checkpoint (the
//     sessionizer's encoding), or a tombstone for a visitor forgotten;
//  3. the sessionizer's meta record (watermark, offset), with the loss
//     bucket in a header, so that both change atomically.
//
// Only then is the offset committed. A restore reads the partition to its
// end and resumes after the meta record's offset. See session.Checkpoint
// for why visitor records written without their meta record are harmless
// to the sessions, and pendingKey for the loss sums.

// lossHeader is the header of the meta record holding the open loss bucket.
const lossHeader = "shoptrail-loss"

// pendingKey is the key of the record a checkpoint writes first: the offset
// it checkpoints (in the nextHeader header) and its loss bucket (the
// value). It lets a restore tell that the last checkpoint was cut short
// (the process died after some visitor records and before the meta record)
// and recover the loss sums of that checkpoint, which the visitor records
// written already count. Visitor keys never start with a NUL byte.
const pendingKey = "\x00processor-pending"

// nextHeader holds the offset after a checkpoint, 8 bytes big-endian.
const nextHeader = "shoptrail-next"

// restoredState is what the changelog holds for a partition.
type restoredState struct {
	// records are the sessionizer's records, later ones replacing earlier
	// ones of the same key.
	records []session.StateRecord
	// loss is the open loss bucket of the last complete checkpoint.
	loss []byte
	// pendingNext is the offset the last checkpoint started was to end at,
	// and pendingLoss its loss bucket; -1 when there is none.
	pendingNext int64
	pendingLoss []byte
}

// errPartitionMismatch: the state topic's partition count differs from the
// events topic's (someone changed one of them); the state cannot be mapped.
var errPartitionMismatch = errors.New("the state topic's partitions do not match the events topic's")

// changelog reads and writes the state topic.
type changelog struct {
	topic   string
	brokers []string
	// transport is the client's and the writer's own, so that Close can
	// close its connections (kafka-go's default transport keeps them).
	transport *kafka.Transport
	client    *kafka.Client
	writer    *kafka.Writer
}

func newChangelog(brokers []string, topic string) *changelog {
	addr := kafka.TCP(brokers...)
	tr := &kafka.Transport{}
	return &changelog{
		topic:     topic,
		brokers:   brokers,
		transport: tr,
		client:    &kafka.Client{Addr: addr, Timeout: 10 * time.Second, Transport: tr},
		writer: &kafka.Writer{
			Addr:      addr,
			Transport: tr,
			Topic:     topic,
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

func (c *changelog) Close() error {
	err := c.writer.Close()
	c.transport.CloseIdleConnections()
	return err
}

// ensure creates the changelog topic, compacted, with the events topic's
// partition count, unless it exists; an existing one must have that count.
func (c *changelog) ensure(ctx context.Context, eventsTopic string) error {
	_, err := ensureTopic(ctx, c.client, eventsTopic, c.topic, true, []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}})
	return err
}

// read returns partition p's changelog up to its current end.
func (c *changelog) read(ctx context.Context, p int) (*restoredState, error) {
	st := &restoredState{pendingNext: -1}
	resp, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		c.topic: {kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p)},
	}})
	if err != nil {
		return nil, fmt.Errorf("cannot list offsets of %s/%d: %w", c.topic, p, err)
	}
	var first, last int64 = -1, -1
	for _, po := range resp.Topics[c.topic] {
		if po.Partition == p {
			if po.Error != nil {
				return nil, fmt.Errorf("cannot list offsets of %s/%d: %w", c.topic, p, po.Error)
			}
			first, last = po.FirstOffset, po.LastOffset
		}
	}
	if first < 0 || last < 0 {
		return nil, fmt.Errorf("cannot list offsets of %s/%d: partition missing", c.topic, p)
	}
	if last <= first {
		return st, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       c.brokers,
		Topic:         c.topic,
		Partition:     p,
		MinBytes:      1,
		MaxBytes:      fetchMaxBytes,
		MaxWait:       fetchMaxWait,
		QueueCapacity: 1000,
	})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return nil, err
	}
	at := map[string]int{}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s/%d at %d of %d: %w", c.topic, p, r.Offset(), last, err)
		}
		switch k := string(m.Key); k {
		case pendingKey:
			st.pendingLoss, st.pendingNext = m.Value, -1
			if h := header(m.Headers, nextHeader); len(h) == 8 {
				st.pendingNext = int64(binary.BigEndian.Uint64(h))
			}
		default:
			if k == session.MetaKey {
				st.loss = header(m.Headers, lossHeader)
			}
			rec := session.StateRecord{Key: k, Value: m.Value}
			if i, ok := at[k]; ok {
				st.records[i] = rec
			} else {
				at[k] = len(st.records)
				st.records = append(st.records, rec)
			}
		}
		if m.Offset+1 >= last {
			break
		}
	}
	return st, nil
}

func header(hs []kafka.Header, key string) []byte {
	for _, h := range hs {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// writePending starts a checkpoint of partition p that ends at offset next
// with the loss bucket loss.
func (c *changelog) writePending(ctx context.Context, p int, next int64, loss []byte) error {
	err := c.writer.WriteMessages(ctx, kafka.Message{Partition: p, Key: []byte(pendingKey), Value: loss,
		Headers: []kafka.Header{{Key: nextHeader, Value: binary.BigEndian.AppendUint64(nil, uint64(next))}}})
	if err != nil {
		return fmt.Errorf("cannot write the pending record to %s/%d: %w", c.topic, p, err)
	}
	return nil
}

// writeRecords writes the checkpoint's visitor records (all of recs but
// the last, the meta record).
func (c *changelog) writeRecords(ctx context.Context, p int, recs []session.StateRecord) error {
	if len(recs) == 0 || recs[len(recs)-1].Key != session.MetaKey {
		return errors.New("checkpoint does not end with the meta record")
	}
	n := len(recs) - 1
	if n == 0 {
		return nil
	}
	msgs := make([]kafka.Message, n)
	for i, r := range recs[:n] {
		msgs[i] = kafka.Message{Partition: p, Key: []byte(r.Key), Value: r.Value}
	}
	if err := c.writer.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot write %d state records to %s/%d: %w", n, c.topic, p, err)
	}
	return nil
}

// writeMeta completes the checkpoint: the meta record (the last of recs),
// with the loss bucket.
func (c *changelog) writeMeta(ctx context.Context, p int, recs []session.StateRecord, loss []byte) error {
	meta := recs[len(recs)-1]
	err := c.writer.WriteMessages(ctx, kafka.Message{Partition: p, Key: []byte(meta.Key), Value: meta.Value,
		Headers: []kafka.Header{{Key: lossHeader, Value: loss}}})
	if err != nil {
		return fmt.Errorf("cannot write the meta record to %s/%d: %w", c.topic, p, err)
	}
	return nil
}
