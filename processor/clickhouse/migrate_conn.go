package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/shoptrail/shoptrail"
)

// connQuerier adapts a clickhouse-go connection to Querier.
type connQuerier struct{ driver.Conn }

var (
	_ Querier       = connQuerier{}
	_ ColumnChecker = connQuerier{}
)

func (c connQuerier) HasColumn(ctx context.Context, database, table, column string) (bool, error) {
	rows, err := c.Query(ctx, "SELECT count() FROM system.columns WHERE database = if(? = '', currentDatabase(), ?) AND table = ? AND name = ?",
		database, database, table, column)
	if err != nil {
		return false, fmt.Errorf("cannot read system.columns: %w", err)
	}
	defer rows.Close()
	var n uint64
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return false, fmt.Errorf("cannot read system.columns: %w", err)
		}
	}
	return n > 0, rows.Err()
}

func (c connQuerier) AppliedVersions(ctx context.Context) (map[int]bool, error) {
	rows, err := c.Query(ctx, "SELECT DISTINCT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("cannot read schema_migrations: %w", err)
	}
	defer rows.Close()
	done := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("cannot read schema_migrations: %w", err)
		}
		done[int(v)] = true
	}
	return done, rows.Err()
}

func (c connQuerier) RecordMigration(ctx context.Context, version int, name string, at time.Time) error {
	// An INSERT with inline VALUES through Exec hangs on 18.16's native
	// protocol; a prepared batch works on every version.
	b, err := c.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, applied_at)")
	if err != nil {
		return err
	}
	defer b.Abort()
	if err := b.Append(uint32(version), name, at.UTC()); err != nil {
		return err
	}
	return b.Send()
}

// ConnQuerier returns conn as the Querier (and ColumnChecker) Migrate
// takes.
func ConnQuerier(conn driver.Conn) Querier { return connQuerier{conn} }

// MigrateEmbedded applies the migrations embedded in the binary to the
// connection's database.
func MigrateEmbedded(ctx context.Context, conn driver.Conn) ([]int, error) {
	ms, err := LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	if err != nil {
		return nil, err
	}
	return Migrate(ctx, connQuerier{conn}, ms)
}

// MigrateEmbeddedCluster applies the embedded migrations to the cluster c
// through conn, a connection to one of its nodes (see MigrateCluster).
func MigrateEmbeddedCluster(ctx context.Context, conn driver.Conn, c Cluster) ([]int, error) {
	ms, err := LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	if err != nil {
		return nil, err
	}
	return MigrateCluster(ctx, connQuerier{conn}, ms, c)
}
