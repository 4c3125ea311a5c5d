package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shoptrail/shoptrail/analytics"
	"github.com/shoptrail/shoptrail/dashboards"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

const dashboardsUsage = `usage: shoptrail dashboards <push|pull|fmt> [flags]

  push  create or update, in the Grafana at -grafana-url, the data sources, the
        folder "shoptrail" and every dashboard of -dir (by uid; a dashboard
        equal to Grafana's copy is left alone; one changed in Grafana since the
        last push is refused with a version conflict unless -overwrite)
  pull  write Grafana's copy of the dashboards back into -dir, normalised
  fmt   rewrite the files of -dir in normalised form, each ClickHouse panel's
        SQL refreshed from its named query in sql/queries (matched by the
        query's first line, its title)

Credentials come from the environment: SHOPTRAIL_GRAFANA_TOKEN (a service
account token), or SHOPTRAIL_GRAFANA_USER and SHOPTRAIL_GRAFANA_PASSWORD.
Run 'shoptrail dashboards push -h' for the flags.`

func runDashboards(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(os.Stderr, dashboardsUsage)
		if len(args) == 0 {
			return errors.New("a subcommand is required: push, pull or fmt")
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("dashboards "+sub, flag.ContinueOnError)
	dir := fs.String("dir", "dashboards", "folder of the dashboard JSON files")
	var lc logConfig
	lc.RegisterFlags(fs, "text")
	var url, token, user, password string
	if sub == "push" || sub == "pull" {
		fs.StringVar(&url, "grafana-url", "http://127.0.0.1:3000", "Grafana's URL")
		fs.StringVar(&token, "grafana-token", "", "Grafana service account token (prefer the SHOPTRAIL_GRAFANA_TOKEN environment variable)")
		fs.StringVar(&user, "grafana-user", "", "Grafana user for basic auth, instead of a token")
		fs.StringVar(&password, "grafana-password", "", "Grafana password for basic auth (prefer the SHOPTRAIL_GRAFANA_PASSWORD environment variable)")
	}
	var chc clickhouse.Config
	var promURL string
	var overwrite, skipDS bool
	if sub == "push" {
		chc.RegisterFlags(fs)
		fs.StringVar(&promURL, "prometheus-url", "http://127.0.0.1:9090", "Prometheus's URL as Grafana's server reaches it (the Pipeline health data source; empty: none)")
		fs.BoolVar(&overwrite, "overwrite", false, "replace dashboards changed in Grafana since the last push (Grafana keeps the replaced versions in its history); without it they are refused with a version conflict")
		fs.BoolVar(&skipDS, "skip-datasources", false, "leave the data sources alone (e.g. they are provisioned from files)")
	}
	switch sub {
	case "push", "pull", "fmt":
	default:
		fmt.Fprintln(os.Stderr, dashboardsUsage)
		return fmt.Errorf("unknown subcommand %q (want push, pull or fmt)", sub)
	}
	log, err := parse(fs, &lc, args)
	if err != nil {
		return err
	}
	ds, err := dashboards.LoadDir(*dir)
	if err != nil {
		return err
	}
	if sub == "fmt" {
		qs, err := analytics.Load()
		if err != nil {
			return err
		}
		for _, d := range ds {
			dashboards.RefreshQueries(d, qs)
			b, err := dashboards.Normalize(d.Model)
			if err != nil {
				return err
			}
			p := filepath.Join(*dir, d.File)
			old, _ := os.ReadFile(p)
			if string(old) == string(b) {
				continue
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return err
			}
			fmt.Println("normalised", p)
		}
		return nil
	}
	if sub == "push" {
		// Serve every panel its named query as sql/queries holds it now.
		qs, err := analytics.Load()
		if err != nil {
			return err
		}
		stale := 0
		for _, d := range ds {
			stale += dashboards.RefreshQueries(d, qs)
		}
		if stale > 0 {
			log.Warn("panel SQL taken from sql/queries: the files lag the named queries (run shoptrail dashboards fmt)", "panels", stale)
		}
	}
	c, err := dashboards.NewClient(url, dashboards.Auth{Token: token, User: user, Password: password})
	if err != nil {
		return err
	}
	var res []dashboards.Result
	if sub == "push" {
		res, err = c.Push(ctx, ds, dashboards.PushOptions{
			DataSources: dashboards.DataSources{
				ClickHouseAddr: chc.Addr, ClickHouseDatabase: chc.Database,
				ClickHouseUser: chc.Username, ClickHousePassword: chc.Password,
				PrometheusURL: promURL,
			},
			SkipDataSources: skipDS,
			Overwrite:       overwrite,
		})
	} else {
		res, err = c.Pull(ctx, *dir, ds)
	}
	for _, r := range res {
		fmt.Println(r)
	}
	if err != nil {
		return err
	}
	log.Info("dashboards "+sub+" done", "grafana", url, "dashboards", len(ds))
	return nil
}
