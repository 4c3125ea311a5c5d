package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/dashboards"
	"github.com/shoptrail/shoptrail/internal/devstack"
)

// startDevGrafana starts the shared Grafana build, when one is found, with
// the provisioning of deploy/grafana/provisioning and the dashboards
// written under dir: the data sources point at the dev ClickHouse and
// promURL. found is false (and err nil) when there is no Grafana build.
func startDevGrafana(ctx context.Context, cfg *devConfig, log *slog.Logger) (g *devstack.Grafana, found bool, err error) {
	dist, err := devstack.FindGrafanaDist()
	if err != nil {
		log.Info("Grafana not started: no Grafana build", "reason", err)
		return nil, false, nil
	}
	cache := filepath.Join(cfg.dir, "grafana", "dist")
	if root, err := devstack.ModuleRoot(); err == nil {
		cache = filepath.Join(root, ".cache", "grafana")
	}
	home, err := devstack.UnpackGrafana(dist, cache)
	if err != nil {
		return nil, true, err
	}
	base, err := filepath.Abs(filepath.Join(cfg.dir, "grafana"))
	if err != nil {
		return nil, true, err
	}
	prov := filepath.Join(base, "provisioning")
	dash := filepath.Join(base, "dashboards")
	os.RemoveAll(prov)
	os.RemoveAll(dash)
	sub, err := fs.Sub(shoptrail.GrafanaProvisioning, shoptrail.GrafanaProvisioningDir)
	if err != nil {
		return nil, true, err
	}
	if err := os.CopyFS(prov, sub); err != nil {
		return nil, true, fmt.Errorf("grafana provisioning: %w", err)
	}
	ds, _, err := dashboards.Current(dashboards.Embedded)
	if err != nil {
		return nil, true, err
	}
	if err := dashboards.WriteDir(dash, ds); err != nil {
		return nil, true, fmt.Errorf("grafana dashboards: %w", err)
	}
	host, port, err := net.SplitHostPort(cfg.ch.Addr)
	if err != nil {
		return nil, true, fmt.Errorf("clickhouse.addr: %w", err)
	}
	g, err = devstack.StartGrafana(ctx, devstack.GrafanaConfig{
		Home: home, Dir: filepath.Join(base, "data"), Port: cfg.grafanaPort, Provisioning: prov, Logger: log,
		Env: []string{
			"SHOPTRAIL_GRAFANA_CLICKHOUSE_HOST=" + host, "SHOPTRAIL_GRAFANA_CLICKHOUSE_PORT=" + port,
			"SHOPTRAIL_GRAFANA_CLICKHOUSE_DATABASE=" + cfg.ch.Database, "SHOPTRAIL_GRAFANA_CLICKHOUSE_USER=" + cfg.ch.Username,
			"SHOPTRAIL_GRAFANA_CLICKHOUSE_PASSWORD=" + cfg.ch.Password, "SHOPTRAIL_GRAFANA_PROMETHEUS_URL=" + cfg.grafanaPromURL,
			"SHOPTRAIL_GRAFANA_DASHBOARDS=" + dash,
		},
	})
	return g, true, err
}
