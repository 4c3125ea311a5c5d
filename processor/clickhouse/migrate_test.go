package clickhouse_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/chdb"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

func TestSplitStatements(t *testing.T) {
	f := func(in string, want ...string) {
		t.Helper()
		if got := clickhouse.SplitStatements(in); !reflect.DeepEqual(got, want) {
			t.Errorf("SplitStatements(%q) = %q, want %q", in, got, want)
		}
	}
	// one statement without a trailing semicolon
	f("SELECT 1", "SELECT 1")
	// comments dropped, two statements
	f("-- c\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\n-- d\nSELECT 2;\n",
		"CREATE TABLE a (x UInt8) ENGINE = Memory", "SELECT 2")
	// a semicolon inside a line does not split
	f("SELECT ';' AS x;\n", "SELECT ';' AS x")
}

func TestLoadMigrations(t *testing.T) {
	ms, err := clickhouse.LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 || ms[0].Name != "events" {
		t.Fatalf("first migration = %+v, want 0001_events", ms[0])
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].Version <= ms[i-1].Version {
			t.Errorf("migrations out of order: %d after %d", ms[i].Version, ms[i-1].Version)
		}
	}
}

// TestMigrateClickHouse18 applies every migration to Debian's ClickHouse
// 18.16, twice: the second run must apply nothing.
func TestMigrateClickHouse18(t *testing.T) {
	_, conn := testenv.Database(t) // applies them once
	ctx := context.Background()
	applied, err := clickhouse.MigrateEmbedded(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second run applied %v, want nothing", applied)
	}
	ms, _ := clickhouse.LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(version) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if int(n) != len(ms) {
		t.Fatalf("schema_migrations has %d versions, want %d", n, len(ms))
	}
	// A crash between the statements of 0030 and their record: they run
	// again (ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS; the runner
	// skips a column that exists).
	for _, m := range ms {
		if m.Version != 30 {
			continue
		}
		m.Version = 1 << 30 // not recorded
		applied, err := clickhouse.Migrate(ctx, clickhouse.ConnQuerier(conn), []clickhouse.Migration{m})
		if err != nil || len(applied) != 1 {
			t.Fatalf("0030 run again: %v %v", applied, err)
		}
	}
	var final uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = 'sessions' AND name = 'is_final'").Scan(&final); err != nil || final != 1 {
		t.Fatalf("sessions.is_final columns: %d %v", final, err)
	}
}

// chdbQuerier runs migrations in a chDB session.
type chdbQuerier struct{ *chdb.Session }

func (q chdbQuerier) AppliedVersions(context.Context) (map[int]bool, error) {
	out, err := q.Query("SELECT DISTINCT version FROM schema_migrations", "TSV")
	if err != nil {
		return nil, err
	}
	done := map[int]bool{}
	for _, l := range strings.Fields(out) {
		var v int
		fmt.Sscan(l, &v)
		done[v] = true
	}
	return done, nil
}

func (q chdbQuerier) RecordMigration(ctx context.Context, version int, name string, at time.Time) error {
	return q.Exec(ctx, fmt.Sprintf("INSERT INTO schema_migrations (version, name, applied_at) VALUES (%d, '%s', %d)",
		version, name, at.Unix()))
}

// TestMigrateClickHouse26 applies every migration to current ClickHouse
// (chDB), so nothing that only 18.16 accepts slips in.
func TestMigrateClickHouse26(t *testing.T) {
	testenv.Integration(t)
	s, err := chdb.Open(t.TempDir())
	if err != nil {
		t.Fatalf("cannot open chDB: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, q := range []string{"CREATE DATABASE shoptrail", "USE shoptrail"} {
		if err := s.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := clickhouse.LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := clickhouse.Migrate(ctx, chdbQuerier{s}, ms)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(ms) {
		t.Fatalf("applied %v, want all %d", applied, len(ms))
	}
	again, err := clickhouse.Migrate(ctx, chdbQuerier{s}, ms)
	if err != nil || len(again) != 0 {
		t.Fatalf("second run applied %v (%v), want nothing", again, err)
	}
	out, err := s.Query("SELECT name FROM system.tables WHERE database = 'shoptrail' ORDER BY name", "TSV")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "events\n") {
		t.Fatalf("tables = %q, want events among them", out)
	}
}

// columnDB records statements and knows some columns.
type columnDB struct {
	execs []string
	has   map[string]bool // database.table.column ("" database: the current one)
}

func (d *columnDB) Exec(_ context.Context, q string, _ ...any) error {
	d.execs = append(d.execs, q)
	return nil
}
func (d *columnDB) AppliedVersions(context.Context) (map[int]bool, error) { return nil, nil }
func (d *columnDB) RecordMigration(context.Context, int, string, time.Time) error {
	return nil
}
func (d *columnDB) HasColumn(_ context.Context, db, table, column string) (bool, error) {
	return d.has[db+"."+table+"."+column], nil
}

// TestMigrateSkipsExistingColumn: an ADD COLUMN whose column exists is
// skipped (18.16 has no ADD COLUMN IF NOT EXISTS), in the plain form and in
// ForCluster's.
func TestMigrateSkipsExistingColumn(t *testing.T) {
	db := &columnDB{has: map[string]bool{".sessions.is_final": true, "shop.sessions_local.is_final": true}}
	stmts := []string{
		"ALTER TABLE sessions ADD COLUMN is_final UInt8 DEFAULT 1",
		"ALTER TABLE shop.sessions_local ON CLUSTER c1 ADD COLUMN is_final UInt8 DEFAULT 1",
		"ALTER TABLE shop.sessions ON CLUSTER c1 ADD COLUMN is_final UInt8 DEFAULT 1",
		"ALTER TABLE sessions ADD COLUMN other UInt8",
		"ALTER TABLE sessions DELETE WHERE 1",
	}
	if _, err := clickhouse.Migrate(context.Background(), db, []clickhouse.Migration{{Version: 1, Name: "x", Statements: stmts}}); err != nil {
		t.Fatal(err)
	}
	want := stmts[2:]
	if !slices.Equal(db.execs[1:], want) { // after creating schema_migrations
		t.Errorf("ran %q, want %q", db.execs, want)
	}
}
