package processor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// partitionReader reads one partition of the events topic on the calling
// goroutine, one fetch at a time, from a connection to the partition's
// leader that it keeps between fetches.
//
// It reads each message's value into one buffer, reused from message to
// message, and not its key, headers or time: kafka-go's Batch.ReadMessage
// allocates every value (some 550 MB in a pipeline benchmark run, the
// processor's largest source of garbage), and the worker only decodes the
// value. The time of the rare message that is no event (its dead letter
// keeps it) comes from Time.
//
// kafka-go's Reader does the same on a goroutine of its own and hands each
// message over a channel; with the per-message deadline it sets and its
// statistics, that hand-over cost about 5 % of the processor's CPU in the
// pipeline benchmark (the worker is busy anyway: a fetch ahead gains it
// nothing). Like the Reader, it retries what a broker outage or a leader
// change throws at it (reconnecting, with backoff) for as long as the
// caller's context lets it, skips to the partition's first offset when its
// offset is gone (retention), and returns only errors the broker says will
// not go away.
type partitionReader struct {
	brokers   []string
	topic     string
	partition int
	log       *slog.Logger

	conn   *kafka.Conn
	batch  *kafka.Batch // the fetch being read, if any
	offset int64        // the next offset to read
	// value holds the value of the message FetchMessage returned last.
	value []byte
	// times are the times of the messages Time fetched last, by offset.
	times []messageTime
	// failures counts the fetches in a row that failed (the backoff).
	failures int
}

// Bounds of a partitionReader's waits: a fetch response must begin within
// its wait plus responseSlack, and be read to its end within batchReadTime
// (the worker reads it as it processes the messages, flushing batches
// meanwhile); past that the connection is dropped and the fetch asked
// again.
const (
	responseSlack = 5 * time.Second
	batchReadTime = time.Minute
	maxFetchDelay = time.Second
)

type messageTime struct {
	offset int64
	time   time.Time
}

// initialValueBuffer is the room for values a reader starts with; a
// longer value doubles it (and is fetched again).
const initialValueBuffer = 64 << 10

func newPartitionReader(brokers []string, topic string, partition int, offset int64, log *slog.Logger) *partitionReader {
	return &partitionReader{brokers: brokers, topic: topic, partition: partition, offset: offset, log: log,
		value: make([]byte, 0, initialValueBuffer)}
}

// FetchMessage returns the partition's next message: its offset, the
// partition's high-water mark and its value, which is only valid until
// the next call (its Key, Headers and Time are not read). With nothing to
// read it waits, at most fetchMaxWait at a time, until ctx is done (and
// then returns ctx's error).
func (r *partitionReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	for {
		var err error
		if r.batch == nil {
			err = r.fetch(ctx)
		} else {
			n, rerr := r.batch.Read(r.value[:0])
			if rerr == nil {
				// A fetch begins with the whole record batch its offset is
				// in: skip what comes before (Batch.ReadMessage does too).
				offset := r.batch.Offset() - 1
				if offset < r.offset {
					continue
				}
				r.offset = offset + 1
				return kafka.Message{Topic: r.topic, Partition: r.partition, Offset: offset,
					HighWaterMark: r.batch.HighWaterMark(), Value: r.value[:n]}, nil
			}
			if errors.Is(rerr, io.ErrShortBuffer) {
				// The batch is spent (kafka-go discards the rest of the
				// response and keeps the connection): fetch again from the
				// same offset with room for the value.
				r.value = make([]byte, 0, 2*cap(r.value))
				r.batch.Close()
				r.batch = nil
				continue
			}
			closeErr := r.batch.Close()
			r.batch = nil
			// The end of this fetch's messages (kafka-go reports a message
			// cut short as io.ErrUnexpectedEOF): ask for more.
			if err = rerr; errors.Is(rerr, io.EOF) {
				err = closeErr
			}
			// A fetch the broker ended at its wait with nothing to read:
			// kafka-go reports it as RequestTimedOut and keeps the
			// connection (its Reader, too, just asks again).
			if errors.Is(err, kafka.RequestTimedOut) {
				err = nil
			}
		}
		switch {
		case ctx.Err() != nil:
			return kafka.Message{}, ctx.Err()
		case err == nil:
		case !r.retryable(err):
			return kafka.Message{}, err
		default:
			if err := r.backoff(ctx, err); err != nil {
				return kafka.Message{}, err
			}
		}
	}
}

// fetch asks the leader for the messages from r.offset, connecting first if
// need be, and waits for the response to begin.
func (r *partitionReader) fetch(ctx context.Context) error {
	wait := fetchMaxWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	if wait < time.Millisecond {
		<-ctx.Done()
		return ctx.Err()
	}
	if r.conn == nil {
		if err := r.connect(ctx); err != nil {
			return err
		}
	}
	// Give up the wait when ctx is cancelled (not at its deadline, which the
	// broker's wait ends at anyway): the connection is then in the middle
	// of a response, so it is dropped.
	c := r.conn
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			c.SetReadDeadline(time.Now())
		}
	})
	c.SetReadDeadline(time.Now().Add(wait + responseSlack))
	b := c.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: fetchMaxBytes, MaxWait: wait})
	stop()
	if errors.Is(ctx.Err(), context.Canceled) {
		b.Close()
		r.drop()
		return ctx.Err()
	}
	if err := b.Err(); err != nil {
		b.Close()
		return err
	}
	c.SetReadDeadline(time.Now().Add(batchReadTime))
	r.batch, r.failures = b, 0
	return nil
}

// connect dials the partition's leader, through the first broker that
// answers, and seeks to r.offset; an offset before the partition's first
// (removed by retention) moves to the first, as kafka-go's Reader does.
func (r *partitionReader) connect(ctx context.Context) error {
	c, err := r.dial(ctx)
	if err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(responseSlack))
	first, last, err := c.ReadOffsets()
	if err != nil {
		c.Close()
		return fmt.Errorf("cannot read the offsets of partition %d: %w", r.partition, err)
	}
	if r.offset < first {
		r.log.Warn("partition's offset is gone (retention); skipping to its first", "offset", r.offset, "first", first, "skipped", first-r.offset)
		r.offset = first
	}
	if r.offset > last {
		c.Close()
		return fmt.Errorf("offset %d of partition %d is past its end %d: %w", r.offset, r.partition, last, kafka.OffsetOutOfRange)
	}
	if _, err = c.Seek(r.offset, kafka.SeekAbsolute); err != nil {
		c.Close()
		return err
	}
	c.SetDeadline(time.Time{})
	r.conn = c
	return nil
}

// dial connects to the partition's leader through the first broker that
// answers.
func (r *partitionReader) dial(ctx context.Context) (*kafka.Conn, error) {
	var err error
	for _, broker := range r.brokers {
		var c *kafka.Conn
		if c, err = kafka.DefaultDialer.DialLeader(ctx, "tcp", broker, r.topic, r.partition); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("cannot reach the leader of partition %d: %w", r.partition, err)
}

// Time returns the time of the message at offset, read on a connection of
// its own with the times of the messages after it (up to a fetch's worth),
// which answer the next calls: it is for messages that are no event, rare
// but possibly many in a row.
func (r *partitionReader) Time(ctx context.Context, offset int64) (time.Time, error) {
	find := func() (time.Time, bool) {
		i, ok := slices.BinarySearchFunc(r.times, offset, func(m messageTime, o int64) int { return cmp.Compare(m.offset, o) })
		if !ok {
			return time.Time{}, false
		}
		return r.times[i].time, true
	}
	if t, ok := find(); ok {
		return t, nil
	}
	ctx, cancel := context.WithTimeout(ctx, responseSlack)
	defer cancel()
	c, err := r.dial(ctx)
	if err != nil {
		return time.Time{}, err
	}
	defer c.Close()
	d, _ := ctx.Deadline() // set just above
	c.SetDeadline(d)
	if _, err := c.Seek(offset, kafka.SeekAbsolute); err != nil {
		return time.Time{}, fmt.Errorf("cannot seek to offset %d of partition %d: %w", offset, r.partition, err)
	}
	b := c.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: fetchMaxBytes, MaxWait: 100 * time.Millisecond})
	r.times = r.times[:0]
	for {
		m, err := b.ReadMessage()
		if err != nil {
			break
		}
		if m.Offset >= offset {
			r.times = append(r.times, messageTime{m.Offset, m.Time})
		}
	}
	if err := b.Close(); err != nil && !errors.Is(err, kafka.RequestTimedOut) {
		return time.Time{}, fmt.Errorf("cannot read offset %d of partition %d: %w", offset, r.partition, err)
	}
	if t, ok := find(); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("offset %d of partition %d is not there", offset, r.partition)
}

// retryable tells whether a failed fetch is worth asking again: all but
// the broker's errors that say they will not go away.
func (r *partitionReader) retryable(err error) bool {
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary() || kerr == kafka.OffsetOutOfRange
	}
	return true
}

// backoff drops the connection after a failed fetch and waits before the
// next: 100ms, doubling up to a second.
func (r *partitionReader) backoff(ctx context.Context, err error) error {
	r.drop()
	r.failures++
	if r.failures&(r.failures-1) == 0 { // 1, 2, 4, 8, ...: a throttled log
		r.log.Warn("cannot read partition, retrying", "offset", r.offset, "attempt", r.failures, "err", err)
	}
	t := time.NewTimer(min(100*time.Millisecond<<min(r.failures-1, 4), maxFetchDelay))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// drop closes the connection and any fetch on it.
func (r *partitionReader) drop() {
	if r.batch != nil {
		r.batch.Close()
		r.batch = nil
	}
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
}

// Close releases the connection.
func (r *partitionReader) Close() error {
	r.drop()
	return nil
}
