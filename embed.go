package shoptrail

import "embed"

// Migrations holds the ClickHouse schema as ordered, forward-only migration
// files named NNNN_name.sql. Each file may hold several statements separated
// by semicolons at the end of a line. The migration runner in
// processor/clickhouse applies them and records each in schema_migrations.
//
//go:embed sql/migrations/*.sql
var Migrations embed.FS

// MigrationsDir is the directory of Migrations that holds the files.
const MigrationsDir = "sql/migrations"

// Queries holds the named analytical queries, one per file NAME.sql, that
// `shoptrail report`, the Grafana dashboards and the tests share. Package
// analytics loads them and expands the Grafana ClickHouse plugin's macros
// and template variables in them.
//
//go:embed sql/queries/*.sql
var Queries embed.FS

// QueriesDir is the directory of Queries that holds the files.
const QueriesDir = "sql/queries"
