package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/chdb"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

// ChDB opens a chDB session (current ClickHouse, 26.x) in a temporary
// directory with database shoptrail selected and every migration applied,
// and closes it when the test ends. chDB allows one session per process at
// a time: tests that use it must not run in parallel.
func ChDB(t testing.TB) *chdb.Session {
	t.Helper()
	Integration(t)
	s, err := chdb.Open(t.TempDir())
	if err != nil {
		t.Fatalf("cannot open chDB: %v", err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS shoptrail", "USE shoptrail"} {
		if err := s.Exec(ctx, q); err != nil {
			t.Fatalf("chDB: %s: %v", q, err)
		}
	}
	ms, err := clickhouse.LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clickhouse.Migrate(ctx, chdbQuerier{s}, ms); err != nil {
		t.Fatalf("cannot migrate chDB: %v", err)
	}
	return s
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
		if _, err := fmt.Sscan(l, &v); err != nil {
			return nil, fmt.Errorf("schema_migrations version %q: %w", l, err)
		}
		done[v] = true
	}
	return done, nil
}

func (q chdbQuerier) RecordMigration(_ context.Context, version int, name string, at time.Time) error {
	return q.Exec(context.Background(), fmt.Sprintf(
		"INSERT INTO schema_migrations (version, name, applied_at) VALUES (%d, '%s', %d)", version, name, at.Unix()))
}
