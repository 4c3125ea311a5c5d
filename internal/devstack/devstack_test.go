package devstack_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// TestBrokerKeepsDataAcrossRestart: what the broker acknowledged is still
// there after it is closed and started again on the same data directory and
// port, as `shoptrail dev` relies on.
func TestBrokerKeepsDataAcrossRestart(t *testing.T) {
	testenv.Integration(t)
	dir := t.TempDir()
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := devstack.BrokerConfig{Port: port, DataDir: dir, Partitions: 2, Topics: []string{"t"}}
	b, err := devstack.StartBroker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs...), Topic: "t", RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Balancer: &kafka.Hash{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for i := range 50 {
		msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b.Close()

	b, err = devstack.StartBroker(cfg)
	if err != nil {
		t.Fatalf("restart on the same data dir: %v", err)
	}
	defer b.Close()
	if want := fmt.Sprintf("127.0.0.1:%d", port); b.Addrs[0] != want {
		t.Errorf("restarted broker at %v, want %s", b.Addrs, want)
	}
	got := map[string]bool{}
	for p := range 2 {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs, Topic: "t", Partition: p, MaxWait: 100 * time.Millisecond})
		conn, err := kafka.DialLeader(ctx, "tcp", b.Addrs[0], "t", p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i := int64(0); i < last; i++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", p, i, err)
			}
			got[string(m.Value)] = true
		}
		r.Close()
	}
	for _, m := range msgs {
		if !got[string(m.Value)] {
			t.Errorf("message %s lost across the restart", m.Value)
		}
	}
	if len(got) != len(msgs) {
		t.Errorf("read %d distinct messages, want %d", len(got), len(msgs))
	}
}

// TestClickHouseStartStop starts a server on fixed ports in its own
// directory, finds it answering, stops it and finds the ports free again.
func TestClickHouseStartStop(t *testing.T) {
	testenv.Integration(t)
	dir := t.TempDir()
	tcp, _ := devstack.FreePort()
	httpPort, _ := devstack.FreePort()
	ch, err := devstack.StartClickHouse(context.Background(), devstack.ClickHouseConfig{Dir: dir, TCPPort: tcp, HTTPPort: httpPort})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/?query=SELECT%%201", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("query status %d", resp.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.xml")); err != nil {
		t.Errorf("no generated config: %v", err)
	}
	if err := ch.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch.Exited():
	default:
		t.Fatal("Stop returned before the server exited")
	}
	if _, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ping", httpPort)); err == nil {
		t.Error("server still answers after Stop")
	}
	// A second server on the same directory starts again (dev restarts).
	ch, err = devstack.StartClickHouse(context.Background(), devstack.ClickHouseConfig{Dir: dir, TCPPort: tcp, HTTPPort: httpPort})
	if err != nil {
		t.Fatalf("restart on the same dir: %v", err)
	}
	ch.Stop()
}
