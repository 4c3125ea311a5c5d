package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/collector"
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
	"github.com/shoptrail/shoptrail/processor/customer"
	"github.com/shoptrail/shoptrail/processor/rejects"
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
	collector.TuneGC(log)
	// One registry per process: the collector's metrics plus the process
	// and Go runtime ones (CPU seconds for the load generator's µs/event).
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	c, err := collector.NewWithOptions(cfg, collector.Options{Logger: log, Registerer: reg, Gatherer: reg})
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
	httpAddr := fs.String("http.addr", "127.0.0.1:8082", "listen address of /metrics, /healthz and /readyz (empty: none)")
	sitesFile := fs.String("sites.file", "", "the collector's JSON sites file: referrers from a site's ownDomains (and their subdomains) are internal, not traffic sources")
	rejectsTopic := fs.String("rejects.topic", shoptrail.TopicDeadLetter, "the collector's dead-letter topic, written into rejected_events by a consumer of its own (group shoptrail-rejects); empty: not read")
	lc.RegisterFlags(fs, "json")
	log, err := parse(fs, &lc, args)
	if err != nil {
		return err
	}
	processor.TuneGC(log)
	if *sitesFile != "" {
		sites, err := shoptrail.LoadSitesFile(*sitesFile)
		if err != nil {
			return err
		}
		cfg.Session.OwnDomains = sites.OwnDomains()
		cfg.Cart.SiteAbandonAfter = sites.CartAbandonAfter()
		cfg.Customer.SiteRFM = customer.SiteTiers(sites.ValueTiers())
	}
	conn, err := clickhouse.Open(ctx, chc)
	if err != nil {
		return err
	}
	defer conn.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p, err := processor.New(cfg, clickhouse.NewSink(conn, log, reg), log, reg)
	if err != nil {
		return err
	}
	if *rejectsTopic != "" {
		stop, err := startRejects(ctx, rejects.Config{Brokers: cfg.Brokers, Topic: *rejectsTopic}, conn, log, reg)
		if err != nil {
			return err
		}
		defer stop()
	}
	// Shutdown order: the processor stops fetching, writes its last
	// batches, checkpoints and leaves the group; then the rejects consumer
	// and /metrics go.
	if *httpAddr != "" {
		stop, err := serveHTTP(*httpAddr, p.Handler(reg), log)
		if err != nil {
			return err
		}
		defer stop()
	}
	return p.Run(ctx)
}

// startRejects runs the consumer that writes the dead-letter topic into
// rejected_events until stop is called.
func startRejects(ctx context.Context, cfg rejects.Config, conn driver.Conn, log *slog.Logger, reg prometheus.Registerer) (stop func(), err error) {
	rc, err := rejects.New(cfg, conn, log, reg)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := rc.Run(rctx); err != nil {
			log.Error("rejects consumer stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// serveHTTP serves h on addr until stop is called.
func serveHTTP(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("serving metrics and health", "addr", ln.Addr().String())
	return func() {
		srv.Close()
		<-done
	}, nil
}

func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var chc clickhouse.Config
	var lc logConfig
	chc.RegisterFlags(fs)
	var cl clickhouse.Cluster
	fs.StringVar(&cl.Name, "cluster", "", "write the schema for this ClickHouse cluster (a remote_servers name): ON CLUSTER, Replicated engines, Distributed tables sharded by visitor; empty: one server")
	fs.StringVar(&cl.ReplicaPath, "cluster.replica-path", clickhouse.DefaultReplicaPath, "ZooKeeper path of a replicated table; {database} and {table} are filled in, other macros by each server")
	fs.StringVar(&cl.ReplicaName, "cluster.replica-name", "{replica}", "replica name of a replicated table, usually a server macro")
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
	var applied []int
	if cl.Name == "" {
		applied, err = clickhouse.MigrateEmbedded(ctx, conn)
	} else {
		cl.Database = chc.Database
		applied, err = clickhouse.MigrateEmbeddedCluster(ctx, conn, cl)
	}
	if err != nil {
		return err
	}
	log.Info("migrations applied", "database", chc.Database, "cluster", cl.Name, "applied", fmt.Sprint(applied))
	return nil
}
