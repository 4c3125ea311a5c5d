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
