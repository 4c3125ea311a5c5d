package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/dashboards"
	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// TestDevGrafana runs `shoptrail dev -only=clickhouse,grafana`: the shared
// Grafana comes up with every dashboard in the folder "shoptrail" and a
// ClickHouse data source that reaches the dev ClickHouse.
func TestDevGrafana(t *testing.T) {
	testenv.Integration(t)
	if _, err := testenv.GrafanaHome(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the real-Grafana tests need the Grafana build (CI=true): %v", err)
		}
		t.Skipf("real-Grafana test did not run: %v", err)
	}
	ports := make([]int, 3)
	for i := range ports {
		p, err := devstack.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	grafana := fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runDev(ctx, []string{"-only=clickhouse,grafana", "-dir=" + t.TempDir(),
			fmt.Sprintf("-clickhouse.addr=127.0.0.1:%d", ports[0]), fmt.Sprintf("-clickhouse.http-port=%d", ports[1]),
			fmt.Sprintf("-grafana.port=%d", ports[2]), "-log.level=warn"})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("dev: %v", err)
		}
	}()
	get := func(path string, out any) int {
		resp, err := http.Get(grafana + path)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(out)
		return resp.StatusCode
	}
	var hits []struct {
		UID       string `json:"uid"`
		FolderUID string `json:"folderUid"`
	}
	ds, err := dashboards.Load(dashboards.Embedded)
	if err != nil {
		t.Fatal(err)
	}
	// The processor part would apply the migrations (creating the
	// database the data source names); here migrate does.
	waitFor(t, 60*time.Second, "dev ClickHouse", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ping", ports[1]))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	if err := runMigrate(context.Background(), []string{fmt.Sprintf("-clickhouse.addr=127.0.0.1:%d", ports[0]), "-log.level=warn"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "dev Grafana with the dashboards", func() bool {
		hits = nil
		return get("/api/search?type=dash-db", &hits) == 200 && len(hits) >= len(ds)
	})
	for _, h := range hits {
		if h.FolderUID != dashboards.FolderUID {
			t.Errorf("dashboard %s in folder %q", h.UID, h.FolderUID)
		}
	}
	var health struct {
		Status, Message string
	}
	if st := get("/api/datasources/uid/"+dashboards.ClickHouseUID+"/health", &health); st != 200 || health.Status != "OK" {
		t.Errorf("ClickHouse data source health: %d %+v", st, health)
	}
}
