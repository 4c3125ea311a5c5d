// Package clickhouse is the processor's ClickHouse side: the connection, the
// migration runner for the embedded sql/migrations, and the sink that
// inserts rows in batches.
package clickhouse

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Config is how to reach ClickHouse.
type Config struct {
	// Addr is the native protocol address. The default is 127.0.0.1:19000,
	// the dev stack's ClickHouse. Several comma-separated addresses (the
	// nodes of a cluster) are tried in order: the first that answers is
	// used.
	Addr string
	// Database is created if missing. The default is "shoptrail".
	Database string
	// Username and Password; the default user is "default" without a
	// password. Set the password through SHOPTRAIL_CLICKHOUSE_PASSWORD.
	Username string
	Password string
	// DialTimeout bounds connecting; the default is 5 seconds.
	DialTimeout time.Duration
}

// RegisterFlags registers the config's flags with the prefix "clickhouse.".
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "clickhouse.addr", "127.0.0.1:19000", "ClickHouse native protocol address (host:port); several comma-separated nodes of a cluster are tried in order")
	fs.StringVar(&c.Database, "clickhouse.database", "shoptrail", "ClickHouse database, created if missing")
	fs.StringVar(&c.Username, "clickhouse.user", "default", "ClickHouse user")
	fs.StringVar(&c.Password, "clickhouse.password", "", "ClickHouse password (prefer the SHOPTRAIL_CLICKHOUSE_PASSWORD environment variable)")
	fs.DurationVar(&c.DialTimeout, "clickhouse.dial-timeout", 5*time.Second, "ClickHouse connect timeout")
}

var dbName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports what is wrong with the config.
func (c *Config) Validate() error {
	if c.Addr == "" {
		return errors.New("clickhouse.addr is required")
	}
	if !dbName.MatchString(c.Database) {
		return fmt.Errorf("clickhouse.database %q is not a plain identifier", c.Database)
	}
	return nil
}

// Open connects to ClickHouse, creating the database if it does not exist,
// and returns a connection whose default database is cfg.Database.
func Open(ctx context.Context, cfg Config) (driver.Conn, error) {
	if cfg.Database == "" {
		cfg.Database = "shoptrail"
	}
	if cfg.Username == "" {
		cfg.Username = "default"
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	boot, err := open(ctx, cfg, "default")
	if err != nil {
		return nil, err
	}
	err = boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+cfg.Database)
	boot.Close()
	if err != nil {
		return nil, fmt.Errorf("cannot create database %q: %w", cfg.Database, err)
	}
	return open(ctx, cfg, cfg.Database)
}

func open(ctx context.Context, cfg Config, db string) (driver.Conn, error) {
	var addrs []string
	for a := range strings.SplitSeq(cfg.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	conn, err := ch.Open(&ch.Options{
		Addr:        addrs,
		Auth:        ch.Auth{Database: db, Username: cfg.Username, Password: cfg.Password},
		DialTimeout: cfg.DialTimeout,
		// An insert into a Distributed table (a cluster's schema, see
		// Cluster) returns only when every shard has its rows, so a
		// checkpoint after it never covers rows still queued on one node.
		// Plain tables ignore the setting.
		Settings: ch.Settings{"insert_distributed_sync": 1},
	})
	if err != nil {
		return nil, fmt.Errorf("cannot open ClickHouse at %s: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot reach ClickHouse at %s: %w", cfg.Addr, err)
	}
	return conn, nil
}
