package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shoptrail/shoptrail/internal/envflag"
	"github.com/shoptrail/shoptrail/internal/gctune"
	"github.com/shoptrail/shoptrail/processor/alert"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
	"github.com/shoptrail/shoptrail/processor/alert/safehttp"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

func runAlerter(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("alerter", flag.ContinueOnError)
	var cfg alert.Config
	var chc clickhouse.Config
	var lc logConfig
	cfg.RegisterFlags(fs)
	chc.RegisterFlags(fs)
	httpAddr := fs.String("http.addr", "127.0.0.1:8084", "listen address of /metrics, /healthz and /readyz (empty: none)")
	lc.RegisterFlags(fs, "json")
	log, err := parse(fs, &lc, args)
	if err != nil {
		return err
	}
	// Unless GOMEMLIMIT is set, a soft limit of 80 % of the container's.
	gctune.Policy{}.Apply(log)
	conn, err := clickhouse.Open(ctx, chc)
	if err != nil {
		return err
	}
	defer conn.Close()
	// SIGHUP reloads the rules; only main handles signals.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a, err := alert.New(cfg, conn, alert.Options{Logger: log, Registerer: reg, Reload: reload})
	if err != nil {
		return err
	}
	// Shutdown order: the alerter stops reading, records what it delivered,
	// commits and leaves the group; then /metrics goes.
	if *httpAddr != "" {
		stop, err := serveHTTP(*httpAddr, a.Handler(reg), log)
		if err != nil {
			return err
		}
		defer stop()
	}
	return a.Run(ctx)
}

// runAlerts is `shoptrail alerts check|test`.
func runAlerts(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "check" && args[0] != "test") {
		return fmt.Errorf("usage: shoptrail alerts check -alerts.file F | shoptrail alerts test -alerts.file F --rule NAME")
	}
	sub := args[0]
	fs := flag.NewFlagSet("alerts "+sub, flag.ContinueOnError)
	file := fs.String("alerts.file", "", "the YAML alert rules file")
	rule := fs.String("rule", "", "test: the rule whose sample alert is sent to its destinations")
	loopback := fs.Bool("alerts.allow-loopback", false, "test: allow destinations on 127.0.0.1/::1")
	timeout := fs.Duration("deliver.timeout", 10*time.Second, "test: time limit of the request")
	if err := envflag.Parse(fs, args[1:]); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("-alerts.file is required")
	}
	set, err := rules.Load(*file, nil)
	if err != nil {
		return err
	}
	if sub == "check" {
		nr := 0
		var sites []string
		for id, s := range set.Sites {
			nr += len(s.Rules)
			sites = append(sites, id)
		}
		sort.Strings(sites)
		fmt.Printf("%s: ok: %d rules for sites %v, %d destinations\n", *file, nr, sites, len(set.Destinations))
		return nil
	}
	if *rule == "" {
		return fmt.Errorf("--rule is required")
	}
	client := safehttp.New(safehttp.Options{AllowLoopback: *loopback, Timeout: *timeout})
	res, err := alert.SendSample(ctx, set, *rule, client, time.Now())
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range res {
		if r.Err != nil {
			failed++
			fmt.Printf("%s: %s: not sent: %v\n", r.Destination, r.AlertID, r.Err)
			continue
		}
		if r.Verdict != 0 {
			failed++
		}
		fmt.Printf("%s: %s: %s (HTTP %d) %s\n", r.Destination, r.AlertID, r.Verdict, r.Status, r.Answer)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d destinations did not accept the sample", failed, len(res))
	}
	return nil
}
