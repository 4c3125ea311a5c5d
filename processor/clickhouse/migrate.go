package clickhouse

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Execer runs one SQL statement. A clickhouse-go connection is one; so is
// the chDB session the compatibility test uses.
type Execer interface {
	Exec(ctx context.Context, query string, args ...any) error
}

// Migration is one numbered file of sql/migrations.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

var migrationFile = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// LoadMigrations reads the NNNN_name.sql files of dir in fsys, ordered by
// version. Statements are separated by a semicolon at the end of a line;
// comment lines (--) are dropped.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		m := migrationFile.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %q and %q share version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("cannot read migration %q: %w", e.Name(), err)
		}
		stmts := SplitStatements(string(body))
		if len(stmts) == 0 {
			return nil, fmt.Errorf("migration %q has no statements", e.Name())
		}
		ms = append(ms, Migration{Version: v, Name: m[2], Statements: stmts})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// SplitStatements splits a migration file into statements at semicolons that
// end a line, dropping full-line comments.
func SplitStatements(sql string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			stmts = append(stmts, s)
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version`

// Querier is what Migrate needs of a database: run statements, list the
// versions already applied and record one more.
type Querier interface {
	Execer
	AppliedVersions(ctx context.Context) (map[int]bool, error)
	RecordMigration(ctx context.Context, version int, name string, at time.Time) error
}

// ColumnChecker is a Querier that can tell whether a table has a column.
// ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: with it, Migrate skips
// an ALTER TABLE t ADD COLUMN c whose column exists, so that statement is
// idempotent too.
type ColumnChecker interface {
	// HasColumn tells whether database (empty: the current one) has the
	// table with the column.
	HasColumn(ctx context.Context, database, table, column string) (bool, error)
}

// addColumn matches a statement adding one column: database (optional),
// table, column. ForCluster's form, db.table ON CLUSTER c, included (the
// column on this server stands for the cluster's).
var addColumn = regexp.MustCompile("(?is)^\\s*ALTER\\s+TABLE\\s+(?:`?(\\w+)`?\\.)?`?(\\w+)`?(?:\\s+ON\\s+CLUSTER\\s+\\S+)?\\s+ADD\\s+COLUMN\\s+`?(\\w+)`?\\s")

// Migrate applies the migrations not yet recorded in schema_migrations, in
// order, and records each. Every statement is idempotent (IF NOT EXISTS; an
// ADD COLUMN of a column that exists is skipped when db is a
// ColumnChecker), so two processes migrating at once, or a crash between a
// statement and its record, only repeat harmless work. It returns the
// versions it applied.
func Migrate(ctx context.Context, db Querier, ms []Migration) ([]int, error) {
	return migrate(ctx, db, ms, createSchemaMigrations)
}

// MigrateCluster applies the migrations transformed for the cluster c
// (see Cluster) through db, a connection to any node of it: the database
// is created on every node, and schema_migrations is replicated to every
// node, so the next run may connect to another.
func MigrateCluster(ctx context.Context, db Querier, ms []Migration, c Cluster) ([]int, error) {
	cms, err := ForCluster(ms, c)
	if err != nil {
		return nil, err
	}
	c, _ = c.withDefaults()
	if err := db.Exec(ctx, c.CreateDatabase()); err != nil {
		return nil, fmt.Errorf("cannot create database %s on cluster %s: %w", c.Database, c.Name, err)
	}
	return migrate(ctx, db, cms, c.schemaMigrations())
}

func migrate(ctx context.Context, db Querier, ms []Migration, createSchemaMigrations string) ([]int, error) {
	if err := db.Exec(ctx, createSchemaMigrations); err != nil {
		return nil, fmt.Errorf("cannot create schema_migrations: %w", err)
	}
	done, err := db.AppliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		for i, s := range m.Statements {
			if cc, ok := db.(ColumnChecker); ok {
				if a := addColumn.FindStringSubmatch(s); a != nil {
					has, err := cc.HasColumn(ctx, a[1], a[2], a[3])
					if err != nil {
						return applied, fmt.Errorf("cannot apply migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
					}
					if has {
						continue
					}
				}
			}
			if err := db.Exec(ctx, s); err != nil {
				return applied, fmt.Errorf("cannot apply migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := db.RecordMigration(ctx, m.Version, m.Name, time.Now()); err != nil {
			return applied, fmt.Errorf("cannot record migration %04d_%s: %w", m.Version, m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}
