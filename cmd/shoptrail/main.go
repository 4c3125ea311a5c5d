// Command shoptrail is the one binary of the pipeline. It parses flags and
// wires packages; the packages do the work.
//
//	shoptrail dev        everything on one machine (broker, ClickHouse, collector, processor, demo shop)
//	shoptrail collector  the HTTP ingest service
//	shoptrail processor  the Kafka consumer that writes ClickHouse
//	shoptrail migrate    apply the ClickHouse migrations
//	shoptrail report     the operators' report from ClickHouse
//	shoptrail simulate   realistic shop traffic through a collector
//	shoptrail dashboards push / pull / fmt the Grafana dashboards
//	shoptrail alerter    the alerter: signals -> rules -> webhooks and chat robots
//	shoptrail alerts     check a rules file, send a rule's sample alert
//	shoptrail dlq        show rejected events (tail), send them again (replay)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/shoptrail/shoptrail/internal/envflag"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"dev":        {"run the whole pipeline locally: broker, ClickHouse, migrations, collector, processor, demo shop", runDev},
	"collector":  {"run the HTTP collector", runCollector},
	"processor":  {"run the processor (Kafka -> ClickHouse)", runProcessor},
	"migrate":    {"apply the ClickHouse migrations", runMigrate},
	"dashboards": {"push the Grafana dashboards and data sources to a Grafana, pull edits back, fmt the files", runDashboards},
	"alerter":    {"run the alerter (signals -> rules -> webhooks and chat robots)", runAlerter},
	"alerts":     {"check a rules file (alerts check) or send a rule's sample alert (alerts test --rule NAME)", runAlerts},
	"dlq":        {"rejected events: dlq tail shows them (-follow), dlq replay sends them again after a fix", runDLQ},
	"report":     {"the operators' report (stages, funnel, sources, banners, pages) as tables, JSON or CSV", runReport},
	"simulate":   {"send realistic simulated shop traffic (weeks of history, or live) through a collector", runSimulate},
	"probe":      {"health check for containers without a shell: GET -url, fail unless 2xx", runProbe},
	"version":    {"print the version", func(context.Context, []string) error { fmt.Println(version); return nil }},
}

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		usage(os.Stdout)
		return
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "shoptrail: unknown command %q\n\n", name)
		usage(os.Stderr)
		os.Exit(2)
	}
	// Only main handles signals: the first SIGINT/SIGTERM cancels ctx and
	// every component shuts down gracefully; then the signals are given
	// back to the runtime, so a second one kills the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "shoptrail %s: %v\n", name, err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: shoptrail <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set as an environment variable: -kafka.brokers is SHOPTRAIL_KAFKA_BROKERS.\nRun 'shoptrail <command> -h' for its flags.")
}

// logConfig holds the logging flags every command has.
type logConfig struct {
	format string
	level  slog.Level
}

func (l *logConfig) RegisterFlags(fs *flag.FlagSet, defaultFormat string) {
	fs.StringVar(&l.format, "log.format", defaultFormat, "log format: text or json")
	fs.TextVar(&l.level, "log.level", slog.LevelInfo, "log level: debug, info, warn or error")
}

func (l *logConfig) logger() (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: l.level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("unknown log.format %q (want text or json)", l.format)
}

// inspectFlags, when a test sets it, receives a command's flag set in
// parse, and the command stops there: the deploy files are checked against
// the flags the binary really defines.
var inspectFlags func(*flag.FlagSet)

// parse parses args into fs (environment first, flags win) and builds the
// logger.
func parse(fs *flag.FlagSet, lc *logConfig, args []string) (*slog.Logger, error) {
	if inspectFlags != nil {
		inspectFlags(fs)
		return nil, flag.ErrHelp
	}
	if err := envflag.Parse(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return lc.logger()
}
