package processor_test

import (
	"context"
	"os"
	"strings"
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

// reportServerCosts writes to the file named by BENCH_CH_LOG, if set, what
// each table cost the ClickHouse server during the run: the inserts into it
// (their count, rows, and user and system CPU seconds from
// system.query_log; a materialized view's work counts in the insert into
// its source table) and the parts written and merged (system.part_log:
// count, rows, seconds). The test server logs them only when the variable
// is set (internal/testenv).
func reportServerCosts(b *testing.B, conn driver.Conn, database string) {
	file := os.Getenv("BENCH_CH_LOG")
	if file == "" {
		return
	}
	ctx := context.Background()
	if err := conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		b.Fatalf("flush logs: %v", err)
	}
	out := []string{"inserts: table, inserts, rows, user s, system s (materialized views count in their source table)"}
	out = append(out, serverRows(b, conn, `SELECT extract(query, 'INSERT INTO ([A-Za-z_0-9.]+)') AS t, toString(count()), toString(sum(written_rows)),
		toString(round(sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')]) / 1e6, 2)) AS user_s,
		toString(round(sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'SystemTimeMicroseconds')]) / 1e6, 2))
		FROM system.query_log WHERE type = 2 AND query LIKE 'INSERT INTO%'
		GROUP BY t ORDER BY toFloat64(user_s) DESC`)...)
	out = append(out, "parts: table, event, parts, rows, seconds")
	out = append(out, serverRows(b, conn, `SELECT table, toString(event_type), toString(count()), toString(sum(rows)), toString(round(sum(duration_ms) / 1e3, 2)) AS s
		FROM system.part_log WHERE database = ? GROUP BY table, event_type ORDER BY toFloat64(s) DESC`, database)...)
	if err := os.WriteFile(file, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
}

// serverRows returns the rows of a query of string columns, tab-separated.
func serverRows(b *testing.B, conn driver.Conn, query string, args ...any) []string {
	rows, err := conn.Query(context.Background(), query, args...)
	if err != nil {
		b.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals := make([]string, len(rows.Columns()))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			b.Fatal(err)
		}
		out = append(out, strings.Join(vals, "\t"))
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}
