package collector

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Producer writes messages to Kafka and returns once Kafka acknowledged all
// of them (acks=all).
type Producer interface {
	Produce(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// kafkaProducer is a kafka-go Writer set up for group commit: concurrent
// requests' messages are gathered into one produce request every few
// milliseconds, and each caller waits for its own acknowledgement.
type kafkaProducer struct{ w *kafka.Writer }

var _ Producer = (*kafkaProducer)(nil)

func newKafkaProducer(brokers []string) *kafkaProducer {
	return &kafkaProducer{w: &kafka.Writer{
		Addr: kafka.TCP(brokers...),
		// One partitioner everywhere: FNV-1a of the key (the visitor).
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		// kafka-go waits up to BatchTimeout (default 1 s) to fill a batch.
		BatchTimeout: 2 * time.Millisecond,
		BatchSize:    1000,
		BatchBytes:   8 << 20,
		MaxAttempts:  3,
		WriteTimeout: 10 * time.Second,
		Compression:  kafka.Lz4,
	}}
}

func (p *kafkaProducer) Produce(ctx context.Context, msgs ...kafka.Message) error {
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot produce %d messages: %w", len(msgs), err)
	}
	return nil
}

func (p *kafkaProducer) Close() error { return p.w.Close() }
