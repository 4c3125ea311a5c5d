package clickhouse_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

// TestInsertIsOnePart checks that an insert sent in several blocks still
// makes one part (the server squashes them; merged-away parts would still be
// listed, inactive), so sending in blocks does not
// multiply the parts to merge.
func TestInsertIsOnePart(t *testing.T) {
	_, conn := testenv.Database(t)
	sink := clickhouse.NewSink(conn, nil, nil)
	batch := &processor.Batch{Topic: "t"}
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	for i := range 20000 {
		batch.Events = append(batch.Events, shoptrail.Event{V: 1, Site: "shop", MessageID: fmt.Sprint(i), Type: "page", Timestamp: t0, ReceivedAt: t0})
	}
	if err := sink.Write(context.Background(), []*processor.Batch{batch}); err != nil {
		t.Fatal(err)
	}
	var parts, rows uint64
	if err := conn.QueryRow(context.Background(), "SELECT count(), sum(rows) FROM system.parts WHERE database = currentDatabase() AND table = 'events'").Scan(&parts, &rows); err != nil {
		t.Fatal(err)
	}
	if parts != 1 || rows != 20000 {
		t.Errorf("%d parts with %d rows, want 1 part of 20000", parts, rows)
	}
}
