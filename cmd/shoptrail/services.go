package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/shoptrail/shoptrail/collector"
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

func runCollector(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	var cfg collector.Config
	var lc logConfig
	cfg.RegisterFlags(fs)
	lc.RegisterFlags(fs, "json")
	log, err := parse(fs, &lc, args)
	if err != nil {
		return err
	}
	c, err := collector.New(cfg, log)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

func runProcessor(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("processor", flag.ContinueOnError)
	var cfg processor.Config
	var chc clickhouse.Config
	var lc logConfig
	cfg.RegisterFlags(fs)
	chc.RegisterFlags(fs)
	lc.RegisterFlags(fs, "json")
	log, err := parse(fs, &lc, args)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(ctx, chc)
	if err != nil {
		return err
	}
	defer conn.Close()
	p, err := processor.New(cfg, &clickhouse.Sink{Conn: conn}, log)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var chc clickhouse.Config
	var lc logConfig
	chc.RegisterFlags(fs)
	lc.RegisterFlags(fs, "text")
	log, err := parse(fs, &lc, args)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(ctx, chc)
	if err != nil {
		return err
	}
	defer conn.Close()
	applied, err := clickhouse.MigrateEmbedded(ctx, conn)
	if err != nil {
		return err
	}
	log.Info("migrations applied", "database", chc.Database, "applied", fmt.Sprint(applied))
	return nil
}
