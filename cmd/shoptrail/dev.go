package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoptrail/shoptrail/collector"
	"github.com/shoptrail/shoptrail/collector/beacon"
	"github.com/shoptrail/shoptrail/dashboards"
	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/alert"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
	"github.com/shoptrail/shoptrail/processor/customer"
	"github.com/shoptrail/shoptrail/processor/rejects"
)

var devParts = []string{"broker", "clickhouse", "collector", "processor", "alerter", "demo", "prometheus", "grafana"}

// devConfig is the configuration of `shoptrail dev`.
type devConfig struct {
	dir      string
	only     []string
	chHTTP   int
	demoAddr string
	demoKey  string
	procHTTP string
	col      collector.Config
	ch       clickhouse.Config
	proc     processor.Config
	alerts   alert.Config
	alertsRx string

	grafanaPort    int
	grafanaPromURL string
	promPort       int
	alerterHTTP    string
}

func (c *devConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.dir, "dir", "var", "directory for the broker's log and ClickHouse's data (kept across restarts)")
	c.only = devParts
	fs.Func("only", "comma-separated parts to start: "+strings.Join(devParts, ",")+" (default all)", func(s string) error {
		c.only = nil
		for _, p := range strings.Split(s, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains(devParts, p) {
				return fmt.Errorf("unknown part %q (want some of %s)", p, strings.Join(devParts, ","))
			}
			c.only = append(c.only, p)
		}
		return nil
	})
	fs.IntVar(&c.chHTTP, "clickhouse.http-port", 18123, "HTTP port of the dev ClickHouse server (its native port is that of -clickhouse.addr)")
	fs.StringVar(&c.demoAddr, "demo.addr", "127.0.0.1:8081", "listen address of the demo shop")
	fs.IntVar(&c.grafanaPort, "grafana.port", 13000, "port of the dev Grafana on 127.0.0.1 (started when the shared Grafana build is found: ../shared/grafana or SHOPTRAIL_GRAFANA_DIST)")
	fs.StringVar(&c.grafanaPromURL, "grafana.prometheus-url", "http://127.0.0.1:9090", "Prometheus the dev Grafana's Pipeline health dashboard reads when dev starts none (part prometheus, with Debian's prometheus installed)")
	fs.StringVar(&c.alerterHTTP, "alerter.http-addr", "127.0.0.1:8084", "alerter: listen address of /metrics, /healthz and /readyz")
	fs.IntVar(&c.promPort, "prometheus.port", 19090, "port of the dev Prometheus on 127.0.0.1 (started when Debian's prometheus is installed; scrapes the collector and the processor every 5 s)")
	fs.StringVar(&c.demoKey, "demo.write-key", "dev", "write key the demo shop's beacon sends with (one of -sites)")
	fs.StringVar(&c.procHTTP, "processor.http-addr", "127.0.0.1:8082", "processor: listen address of /metrics, /healthz and /readyz")
	fs.IntVar(&c.proc.BatchSize, "batch.size", processor.DefaultBatchSize, "processor: events per partition per batch, at most")
	fs.DurationVar(&c.proc.BatchInterval, "batch.interval", time.Second, "processor: longest wait before a partial batch is inserted")
	fs.StringVar(&c.alerts.RulesFile, "alerts.file", "", "alerter: the rules file (default: <dir>/alerts.yaml, written to send every alert to the dev receiver)")
	fs.StringVar(&c.alertsRx, "alerts.receiver-addr", "127.0.0.1:8083", "alerter: listen address of the dev alert receiver (logs verified alerts) when -alerts.file is not given")
	c.col.RegisterFlags(fs) // http.addr, kafka.*, sites: the broker listens on the port of -kafka.brokers
	c.ch.RegisterFlags(fs)  // clickhouse.*: the server listens on the port of -clickhouse.addr
}

func (c *devConfig) has(part string) bool { return slices.Contains(c.only, part) }

// portsFree checks that every address the selected parts will listen on
// is free, and names the first that is not: its part, its flag and the
// make variable that moves it.
func (c *devConfig) portsFree() error {
	type use struct{ part, addr, flag, makeVar string }
	var uses []use
	if c.has("broker") && len(c.col.Brokers) > 0 {
		uses = append(uses, use{"Kafka broker", c.col.Brokers[0], "-kafka.brokers", "KAFKA_PORT"})
	}
	if c.has("clickhouse") {
		uses = append(uses, use{"ClickHouse (native)", c.ch.Addr, "-clickhouse.addr", "CLICKHOUSE_PORT"},
			use{"ClickHouse (HTTP)", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.chHTTP)), "-clickhouse.http-port", "CLICKHOUSE_HTTP_PORT"})
	}
	if c.has("processor") {
		uses = append(uses, use{"processor metrics", c.procHTTP, "-processor.http-addr", "PROCESSOR_PORT"})
	}
	if c.has("alerter") && c.alerts.RulesFile == "" {
		uses = append(uses, use{"alert receiver", c.alertsRx, "-alerts.receiver-addr", "ALERTS_PORT"})
	}
	if c.has("collector") {
		uses = append(uses, use{"collector", c.col.Addr, "-http.addr", "COLLECTOR_PORT"})
	}
	if c.has("demo") {
		uses = append(uses, use{"demo shop", c.demoAddr, "-demo.addr", "DEMO_PORT"})
	}
	if _, err := devstack.FindGrafanaDist(); c.has("grafana") && err == nil { // started only when found
		uses = append(uses, use{"Grafana", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.grafanaPort)), "-grafana.port", "GRAFANA_PORT"})
	}
	for _, u := range uses {
		ln, err := net.Listen("tcp", u.addr)
		if err != nil {
			_, port, _ := net.SplitHostPort(u.addr)
			val := u.addr
			if strings.HasSuffix(u.flag, "-port") { // the flag takes the port alone
				val = port
			}
			return fmt.Errorf("port %s (%s, %s=%s) is in use, perhaps by another shoptrail dev: stop that program, or choose another port: make run %s=<port> (shoptrail dev %s=...): %w",
				port, u.part, u.flag, val, u.makeVar, u.flag, err)
		}
		ln.Close()
	}
	return nil
}

func portOf(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("address %q: %w", addr, err)
	}
	return strconv.Atoi(p)
}

// runDev starts the parts in data-flow order and stops them in reverse:
// the demo and the collector first (no new events), then the processor
// (flushes and commits), then ClickHouse and the broker.
func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	var cfg devConfig
	var lc logConfig
	cfg.registerFlags(fs)
	// In development the rejects summary comes sooner than in production.
	if f := fs.Lookup("log.rejects-every"); f != nil {
		f.Value.Set("10s")
		f.DefValue = "10s"
	}
	lc.RegisterFlags(fs, "text")
	log, err := parse(fs, &lc, args)
	if err != nil {
		return err
	}
	if err := cfg.col.Validate(); err != nil {
		return err
	}
	cfg.proc.Brokers, cfg.proc.Topic = cfg.col.Brokers, cfg.col.Topic
	cfg.proc.Session.OwnDomains = cfg.col.Sites.OwnDomains()
	cfg.proc.Cart.SiteAbandonAfter = cfg.col.Sites.CartAbandonAfter()
	cfg.proc.Customer.SiteRFM = customer.SiteTiers(cfg.col.Sites.ValueTiers())
	// A port another program holds fails here, before anything starts,
	// naming the port and how to choose another.
	if err := cfg.portsFree(); err != nil {
		return err
	}
	var stops []func()
	defer func() {
		for _, stop := range slices.Backward(stops) {
			stop()
		}
	}()
	var urls []string

	if cfg.has("broker") {
		port, err := portOf(cfg.col.Brokers[0])
		if err != nil {
			return err
		}
		b, err := devstack.StartBroker(devstack.BrokerConfig{Port: port, DataDir: filepath.Join(cfg.dir, "kafka")})
		if err != nil {
			return err
		}
		stops = append(stops, func() { b.Close(); log.Info("broker stopped") })
		urls = append(urls, "Kafka broker        "+strings.Join(b.Addrs, ","))
	}
	if cfg.has("clickhouse") {
		port, err := portOf(cfg.ch.Addr)
		if err != nil {
			return err
		}
		chs, err := devstack.StartClickHouse(ctx, devstack.ClickHouseConfig{
			Dir: filepath.Join(cfg.dir, "clickhouse"), TCPPort: port, HTTPPort: cfg.chHTTP, Logger: log,
		})
		if err != nil {
			return err
		}
		stops = append(stops, func() { chs.Stop() })
		urls = append(urls, "ClickHouse native   "+chs.Addr, "ClickHouse HTTP     http://"+chs.HTTPAddr+"  (database "+cfg.ch.Database+")")
	}
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	runCtx, cancel := context.WithCancel(ctx)
	stops = append(stops, func() { cancel(); wg.Wait() })
	start := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	if cfg.has("processor") {
		conn, err := clickhouse.Open(ctx, cfg.ch)
		if err != nil {
			return err
		}
		stops = append(stops, func() { conn.Close() })
		applied, err := clickhouse.MigrateEmbedded(ctx, conn)
		if err != nil {
			return err
		}
		log.Info("migrations applied", "applied", fmt.Sprint(applied))
		reg := prometheus.NewRegistry()
		p, err := processor.New(cfg.proc, clickhouse.NewSink(conn, log, reg), log, reg)
		if err != nil {
			return err
		}
		stopHTTP, err := serveHTTP(cfg.procHTTP, p.Handler(reg), log)
		if err != nil {
			return fmt.Errorf("processor: %w", err)
		}
		stops = append(stops, stopHTTP)
		stopRejects, err := startRejects(ctx, rejects.Config{Brokers: cfg.col.Brokers, Topic: cfg.col.DeadLetterTopic}, conn, log, reg)
		if err != nil {
			return err
		}
		stops = append(stops, stopRejects)
		start("processor", p.Run)
		urls = append(urls, "processor metrics   http://"+cfg.procHTTP+"/metrics")
	}
	if cfg.has("alerter") {
		conn, err := clickhouse.Open(ctx, cfg.ch)
		if err != nil {
			return err
		}
		stops = append(stops, func() { conn.Close() })
		if _, err := clickhouse.MigrateEmbedded(ctx, conn); err != nil {
			return err
		}
		cfg.alerts.Brokers, cfg.alerts.ID = cfg.col.Brokers, "dev"
		reg := prometheus.NewRegistry()
		a, stopRx, err := startDevAlerter(cfg.dir, cfg.alerts.RulesFile, cfg.alertsRx, cfg.alerts, conn, reg, log)
		if err != nil {
			return fmt.Errorf("alerter: %w", err)
		}
		stops = append(stops, stopRx)
		stopHTTP, err := serveHTTP(cfg.alerterHTTP, a.Handler(reg), log)
		if err != nil {
			return fmt.Errorf("alerter: %w", err)
		}
		stops = append(stops, stopHTTP)
		start("alerter", a.Run)
		urls = append(urls, "alerter metrics     http://"+cfg.alerterHTTP+"/metrics")
		if cfg.alerts.RulesFile == "" {
			urls = append(urls, "alert receiver      http://"+cfg.alertsRx+"/alerts  (logs verified alerts; rules in "+filepath.Join(cfg.dir, "alerts.yaml")+")")
		}
	}
	if cfg.has("collector") {
		c, err := collector.New(cfg.col, log)
		if err != nil {
			return err
		}
		start("collector", c.Run)
		urls = append(urls, "collector           http://"+cfg.col.Addr+"  (write key: dev; metrics at /metrics)")
	}
	if cfg.has("demo") {
		srv := &http.Server{Addr: cfg.demoAddr, Handler: beacon.DemoHandler("http://"+cfg.col.Addr, cfg.demoKey), ReadHeaderTimeout: 5 * time.Second}
		ln, err := net.Listen("tcp", cfg.demoAddr)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		start("demo", func(ctx context.Context) error {
			go func() { <-ctx.Done(); srv.Close() }()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		urls = append(urls, "demo shop           http://"+cfg.demoAddr)
	}
	if cfg.has("prometheus") {
		targets := map[string][]string{}
		if cfg.has("collector") {
			targets["shoptrail-collector"] = []string{cfg.col.Addr}
		}
		if cfg.has("processor") {
			targets["shoptrail-processor"] = []string{cfg.procHTTP}
		}
		if cfg.has("alerter") {
			targets["shoptrail-alerter"] = []string{cfg.alerterHTTP}
		}
		if _, err := devstack.PrometheusBinary(); err != nil {
			urls = append(urls, "Prometheus          not started: "+err.Error())
		} else if len(targets) > 0 {
			prom, err := devstack.StartPrometheus(ctx, devstack.PrometheusConfig{
				Dir: filepath.Join(cfg.dir, "prometheus"), Port: cfg.promPort, Targets: targets, Logger: log,
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("prometheus: %w", err)
			}
			stops = append(stops, prom.Stop)
			cfg.grafanaPromURL = prom.URL
			urls = append(urls, "Prometheus          "+prom.URL+"  (scrapes the collector, processor and alerter)")
		}
	}
	if cfg.has("grafana") {
		g, found, err := startDevGrafana(ctx, &cfg, log)
		if err != nil {
			if ctx.Err() != nil { // stopped while Grafana was starting
				return nil
			}
			return fmt.Errorf("grafana: %w", err)
		}
		if found {
			stops = append(stops, g.Stop)
			urls = append(urls, "Grafana             "+g.URL+"/dashboards/f/"+dashboards.FolderUID+"  (dashboards and data sources provisioned; no login)")
		} else {
			urls = append(urls, "Grafana             not started: no Grafana build (../shared/grafana or SHOPTRAIL_GRAFANA_DIST)")
		}
	}
	printURLs(log, urls)
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-errc:
		return err
	}
}

func printURLs(log *slog.Logger, urls []string) {
	fmt.Fprintln(os.Stderr, "\nshoptrail dev is running:")
	for _, u := range urls {
		fmt.Fprintln(os.Stderr, "  "+u)
	}
	fmt.Fprintln(os.Stderr, "Press Ctrl-C to stop.")
	log.Debug("dev stack ready")
}
