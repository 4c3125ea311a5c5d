package processor_test

import (
	"context"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// reportStorage reports what the run's rows take on disk, per table, from
// ClickHouse's own accounting (system.columns over the active parts,
// system.parts for the rows): bytes per row compressed, and the
// compression ratio. The README's disk-per-month plan uses them.
func reportStorage(b *testing.B, conn driver.Conn, database string) {
	ctx := context.Background()
	for _, table := range []string{"events", "sessions", "event_sessions"} {
		var rows uint64
		if err := conn.QueryRow(ctx, "SELECT sum(rows) FROM system.parts WHERE database = ? AND table = ? AND active", database, table).Scan(&rows); err != nil {
			b.Fatalf("system.parts: %v", err)
		}
		var compressed, uncompressed uint64
		if err := conn.QueryRow(ctx, "SELECT sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.columns WHERE database = ? AND table = ?", database, table).Scan(&compressed, &uncompressed); err != nil {
			b.Fatalf("system.columns: %v", err)
		}
		if rows == 0 || compressed == 0 {
			b.Fatalf("%s: no rows or bytes in system tables (%d rows, %d bytes)", table, rows, compressed)
		}
		b.ReportMetric(float64(compressed)/float64(rows), table+"-disk-B/row")
		b.ReportMetric(float64(uncompressed)/float64(compressed), table+"-compression-ratio")
		b.Logf("%s: %d rows, %d bytes compressed, %d uncompressed (%.1fx, %.0f B/row on disk)", table, rows, compressed, uncompressed,
			float64(uncompressed)/float64(compressed), float64(compressed)/float64(rows))
	}
}
