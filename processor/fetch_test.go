package processor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shoptrail/shoptrail/internal/devstack"
)

// fetchTestTopic starts a broker (in process: the package's tests cannot
// use testenv, which imports this package) with a one-partition topic
// holding n messages (testValue(i) at testTime(i)), written in compressed
// record batches of 300.
func fetchTestTopic(t *testing.T, n int) (*devstack.Broker, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the in-process broker (run without -short)")
	}
	topic := "fetch"
	b, err := devstack.StartBroker(devstack.BrokerConfig{Partitions: 1, Topics: []string{topic}})
	if err != nil {
		t.Fatalf("cannot start the test Kafka broker: %v", err)
	}
	t.Cleanup(b.Close)
	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs...), Topic: topic, BatchSize: 300, BatchTimeout: time.Millisecond, Compression: kafka.Lz4}
	defer w.Close()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i].Value, msgs[i].Time = testValue(int64(i)), testTime(int64(i))
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	return b, topic
}

// testValue is the value of the test topic's message at offset: "m" and
// the offset, and for offset 1500 more than the reader's first room for
// values.
func testValue(offset int64) []byte {
	v := fmt.Appendf(nil, "m%d", offset)
	if offset == 1500 {
		v = append(v, bytes.Repeat([]byte{'x'}, 3*initialValueBuffer)...)
	}
	return v
}

// testTime is the time of the test topic's message at offset.
func testTime(offset int64) time.Time {
	return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(offset) * time.Second)
}

// readN reads n messages from r (each must come within 10s, however busy
// the machine), then checks that nothing more comes within 300ms.
func readN(t *testing.T, r *partitionReader, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := r.FetchMessage(ctx)
		cancel()
		if err != nil {
			t.Fatalf("FetchMessage after %d messages: %v", len(got), err)
		}
		if want := testValue(m.Offset); !bytes.Equal(m.Value, want) {
			t.Fatalf("message at offset %d is %.20q (%d bytes), want %.20q (%d bytes)", m.Offset, m.Value, len(m.Value), want, len(want))
		}
		got = append(got, string(m.Value[:min(len(m.Value), 8)]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if m, err := r.FetchMessage(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after %d messages: %q, %v; want context.DeadlineExceeded", n, m.Value, err)
	}
	return got
}

// The reader returns every message from its offset in order, over as many
// fetches as that takes, and with nothing left returns the context's
// error at its deadline.
func TestPartitionReaderReadsInOrder(t *testing.T) {
	b, topic := fetchTestTopic(t, 3000)
	r := newPartitionReader(b.Addrs, topic, 0, 1000, slog.New(slog.DiscardHandler))
	defer r.Close()
	// Offset 1000 is inside a record batch (900-1199), and 1500's value
	// needs more room than the reader started with.
	got := readN(t, r, 2000)
	if got[0] != "m1000" || got[1999] != "m2999" {
		t.Fatalf("read %q .. %q, want m1000 .. m2999", got[0], got[1999])
	}
	// The time of a message, and of the next ones from what that read.
	for _, offset := range []int64{1234, 1235, 2999, 17} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tm, err := r.Time(ctx, offset)
		cancel()
		if err != nil || !tm.Equal(testTime(offset)) {
			t.Errorf("Time(%d) = %v, %v; want %v", offset, tm, err, testTime(offset))
		}
	}
	// A cancelled context ends a wait for data at once, not at the broker's
	// wait.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := r.FetchMessage(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("FetchMessage after cancel: %v, want context.Canceled", err)
	}
	if took := time.Since(start); took >= fetchMaxWait {
		t.Errorf("cancelled fetch took %v, want less than the broker's wait %v", took, fetchMaxWait)
	}
	// And the reader goes on where it was.
	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs...), Topic: topic, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Value: testValue(3000)}); err != nil {
		t.Fatal(err)
	}
	readN(t, r, 1)
}

// An offset that retention removed moves to the partition's first, as
// kafka-go's Reader does.
func TestPartitionReaderSkipsRemovedOffsets(t *testing.T) {
	b, topic := fetchTestTopic(t, 100)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 60
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("delete records: error code %d", code)
	}
	r := newPartitionReader(b.Addrs, topic, 0, 10, slog.New(slog.DiscardHandler))
	defer r.Close()
	if got := readN(t, r, 40); got[0] != "m60" {
		t.Fatalf("read %q .. %q, want m60 .. m99", got[0], got[39])
	}
}

// countingHandler counts the records logged at Warn or above.
type countingHandler struct{ warnings *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h countingHandler) WithGroup(string) slog.Handler            { return h }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.warnings.Add(1)
	}
	return nil
}

// A fetch the broker ends at its wait with nothing to read is an empty
// fetch, not a failure: the reader asks again on the same connection, at
// once and without a warning, as kafka-go's Reader does.
func TestPartitionReaderWaitsOnIdlePartition(t *testing.T) {
	b, topic := fetchTestTopic(t, 10)
	var warnings atomic.Int64
	r := newPartitionReader(b.Addrs, topic, 0, 10, slog.New(countingHandler{&warnings}))
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*fetchMaxWait+fetchMaxWait/2)
	defer cancel()
	if m, err := r.FetchMessage(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FetchMessage on an idle partition: %q, %v; want context.DeadlineExceeded", m.Value, err)
	}
	conn := r.conn
	if n := warnings.Load(); n != 0 {
		t.Errorf("%d warnings while waiting on an idle partition, want none", n)
	}
	if conn == nil {
		t.Fatal("the reader dropped its connection while waiting on an idle partition")
	}
	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs...), Topic: topic, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Value: testValue(10)}); err != nil {
		t.Fatal(err)
	}
	readN(t, r, 1)
	if r.conn != conn {
		t.Error("the reader reconnected to read after waiting on an idle partition")
	}
}
