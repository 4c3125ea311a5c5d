package dashboards_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/analytics"
	"github.com/shoptrail/shoptrail/dashboards"
	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// GrafanaEnv returns the environment deploy/grafana/provisioning expects.
func grafanaEnv(t *testing.T, db seeded, dashboardsDir string) []string {
	host, port, err := net.SplitHostPort(db.addr)
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		"SHOPTRAIL_GRAFANA_CLICKHOUSE_HOST=" + host, "SHOPTRAIL_GRAFANA_CLICKHOUSE_PORT=" + port,
		"SHOPTRAIL_GRAFANA_CLICKHOUSE_DATABASE=" + db.database, "SHOPTRAIL_GRAFANA_CLICKHOUSE_USER=default",
		"SHOPTRAIL_GRAFANA_CLICKHOUSE_PASSWORD=", "SHOPTRAIL_GRAFANA_PROMETHEUS_URL=http://127.0.0.1:9",
		"SHOPTRAIL_GRAFANA_DASHBOARDS=" + dashboardsDir,
	}
}

// Grafana started with deploy/grafana/provisioning has both data sources
// and every dashboard in the folder "shoptrail", and the provisioned
// ClickHouse data source answers a panel's query; push leaves the
// provisioned data sources alone and says so.
func TestFileProvisioning(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	db := seedClickHouse(t, now)
	root, err := devstack.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The dashboards as push serves them (the files may lag a named query).
	ds := embedded(t)
	dir := t.TempDir()
	if err := dashboards.WriteDir(dir, ds); err != nil {
		t.Fatal(err)
	}
	g := testenv.Grafana(t, filepath.Join(root, "deploy", "grafana", "provisioning"), grafanaEnv(t, db, dir)...)
	for _, uid := range []string{dashboards.ClickHouseUID, dashboards.PrometheusUID} {
		var out map[string]any
		if st := grafanaJSON(t, "GET", g.URL+"/api/datasources/uid/"+uid, nil, &out); st != 200 || out["readOnly"] != true {
			t.Errorf("data source %s: status %d, %v", uid, st, out)
		}
	}
	var hits []struct {
		UID       string `json:"uid"`
		FolderUID string `json:"folderUid"`
	}
	// Grafana answers /api/health before its provisioner has read every
	// file: poll until each dashboard is in a folder (or the deadline).
	found := map[string]string{}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		hits = hits[:0]
		grafanaJSON(t, "GET", g.URL+"/api/search?type=dash-db", nil, &hits)
		clear(found)
		for _, h := range hits {
			found[h.UID] = h.FolderUID
		}
		all := true
		for _, d := range ds {
			all = all && found[d.UID()] != ""
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not a wait for a guessed time
	}
	for _, d := range ds {
		if found[d.UID()] != dashboards.FolderUID {
			t.Errorf("dashboard %s: provisioned into folder %q, want %q (found %v)", d.UID(), found[d.UID()], dashboards.FolderUID, found)
		}
	}
	// The provisioned ClickHouse data source works: a panel's query runs.
	ran := false
	for _, d := range ds {
		vars := varsOf(t, d)
		from, to := timeRange(t, d, now)
		for _, p := range d.Panels() {
			for _, tg := range p.Targets() {
				if uid, _ := dsRefOf(tg, p); uid != dashboards.ClickHouseUID || ran {
					continue
				}
				raw, _ := tg["rawSql"].(string)
				sql, err := analytics.ExpandVars(raw, vars)
				if err != nil {
					t.Fatal(err)
				}
				frames, err := dsQuery(t, g.URL, tg, sql, from, to, time.Hour)
				if err != nil {
					t.Fatalf("%s through the provisioned data source: %v", p.Title(), err)
				}
				if err := checkFrames(p.Type(), frames); err != nil {
					t.Errorf("%s through the provisioned data source: %v", p.Title(), err)
				}
				ran = true
			}
		}
	}
	if !ran {
		t.Fatal("no ClickHouse panel")
	}
	res, err := admin(t, g.URL).Push(context.Background(), ds, dashboards.PushOptions{DataSources: testDataSources()})
	if err != nil {
		t.Fatalf("push onto provisioned objects: %v", err)
	}
	// Data sources provisioned from files are read-only: push leaves them.
	// The dashboards' provider allows UI updates, so Grafana lets push save
	// them too; being equal to the files, they are unchanged.
	for _, r := range res {
		want := map[string]string{"datasource": "provisioned", "folder": "unchanged", "dashboard": "unchanged"}[r.Kind]
		if r.Action != want {
			t.Errorf("push onto a provisioned Grafana: %s, want %s", r, want)
		}
	}
}
