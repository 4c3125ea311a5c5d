package clickhouse_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
	"github.com/shoptrail/shoptrail/processor/session"
)

// BenchmarkSinkEvents measures inserting batches of 10,000 realistic events
// into the events table of the local ClickHouse 18.16 server.
//
//	go test -run '^$' -bench SinkEvents ./processor/clickhouse/
func BenchmarkSinkEvents(b *testing.B) {
	_, conn := testenv.Database(b)
	sink := clickhouse.NewSink(conn, nil, nil)
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	batch := &processor.Batch{Topic: "t"}
	for i := range benchRows {
		e := shoptrail.Event{V: 1, Site: "shop", MessageID: fmt.Sprintf("%08x-1111-4222-8333-%012x", i, i), Type: "track",
			Event: "Product Viewed", AnonymousID: fmt.Sprintf("%08x-aaaa-4222-8333-%012x", i/10, i),
			Timestamp: t0.Add(time.Duration(i) * time.Second), ReceivedAt: t0.Add(time.Duration(i) * time.Second),
			Properties: []byte(`{"product_id":"p-123","price":12.5,"quantity":2,"name":"Resistor 10k 1%"}`)}
		e.Context.Page = shoptrail.Page{URL: "https://www.shop.example/p/r-10k?utm_source=google", Path: "/p/r-10k",
			Referrer: "https://www.google.com/", Title: "Resistor 10k"}
		e.Context.UserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
		e.Context.Device = shoptrail.Device{Class: "desktop", Browser: "Chrome", OS: "Windows"}
		e.Context.Delivery = shoptrail.Delivery{Tab: "tab-1", Seq: int64(i), Transport: "fetch"}
		e.Context.IP = "203.0.113.0"
		batch.Events = append(batch.Events, e)
	}
	b.ReportAllocs()
	b.ResetTimer()
	_, ch0 := childCPU()
	for range b.N {
		batch.Written = 0
		if err := sink.Write(context.Background(), []*processor.Batch{batch}); err != nil {
			b.Fatal(err)
		}
	}
	_, ch1 := childCPU()
	n := float64(b.N * len(batch.Events))
	b.ReportMetric(n/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric((ch1-ch0).Seconds()*1e6/n, "clickhouse-cpu-µs/event")
}

var benchRows = func() int {
	n, _ := strconv.Atoi(os.Getenv("BENCH_ROWS"))
	return max(n, 10000)
}()

// childCPU returns the CPU time of this process and of its running child
// processes (the test ClickHouse server).
func childCPU() (self, children time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	ents, _ := os.ReadDir("/proc")
	me := strconv.Itoa(os.Getpid())
	for _, d := range ents {
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil || d.Name() == me {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) < 13 || f[1] != me {
			continue
		}
		ut, _ := strconv.Atoi(f[11])
		st, _ := strconv.Atoi(f[12])
		children += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return self, children
}

// BenchmarkSinkAssignments measures inserting event_sessions rows (one per
// event) in batches of 40,000.
func BenchmarkSinkAssignments(b *testing.B) {
	_, conn := testenv.Database(b)
	sink := clickhouse.NewSink(conn, nil, nil)
	batch := &processor.Batch{Topic: "t"}
	for i := range 40000 {
		batch.Assignments = append(batch.Assignments, session.Assignment{Site: "shop",
			MessageID: fmt.Sprintf("%08x-1111-4222-8333-%012x", i, i), SessionID: fmt.Sprintf("%032x", i/8), Status: session.Assigned})
	}
	benchWrite(b, sink, batch, len(batch.Assignments))
}

// BenchmarkSinkAbandonments measures inserting cart_abandonments rows (a
// table written from each row's values, with arrays of items) in batches
// of 40,000.
func BenchmarkSinkAbandonments(b *testing.B) {
	_, conn := testenv.Database(b)
	sink := clickhouse.NewSink(conn, nil, nil)
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	batch := &processor.Batch{Topic: "t"}
	for i := range 40000 {
		a := cart.Abandonment{Site: "shop", ID: fmt.Sprintf("%032x", i), CartID: fmt.Sprintf("cart-%d", i),
			AnonymousID: fmt.Sprintf("anon-%d", i), CustomerID: fmt.Sprintf("cust-%d", i%7000),
			Items: []cart.Item{{ProductID: "p-1", SKU: "sku-1", Name: "Mug", Category: "Kitchen", Price: 12.5, Quantity: 2},
				{ProductID: "p-2", SKU: "sku-2", Name: "Tea", Category: "Food", Price: 4.25, Quantity: 1}},
			ItemCount: 3, Value: 29.25, Currency: "EUR", LastActivityAt: t0.Add(time.Duration(i) * time.Second),
			AbandonedAt: t0.Add(time.Duration(i)*time.Second + time.Hour), Step: cart.StepCheckout,
			SessionID: fmt.Sprintf("%032x", i/3), Channel: "Organic Search", Source: "google"}
		batch.Abandonments = append(batch.Abandonments, processor.AbandonmentRow{Abandonment: a, Stage: "potential", Tier: "new"})
	}
	benchWrite(b, sink, batch, len(batch.Abandonments))
}

// benchWrite writes batch b.N times, timed, and reports the ClickHouse
// server's CPU per row of its rows.
func benchWrite(b *testing.B, sink *clickhouse.Sink, batch *processor.Batch, rows int) {
	b.ResetTimer()
	_, ch0 := childCPU()
	for range b.N {
		batch.Written = 0
		if err := sink.Write(context.Background(), []*processor.Batch{batch}); err != nil {
			b.Fatal(err)
		}
	}
	_, ch1 := childCPU()
	b.ReportMetric((ch1-ch0).Seconds()*1e6/float64(b.N*rows), "clickhouse-cpu-µs/row")
}
