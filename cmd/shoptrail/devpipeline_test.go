package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/dashboards"
	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// needs skips the test (fails it in CI) when a real-Grafana prerequisite
// is missing.
func needs(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (CI=true): %v", what, err)
	}
	t.Skipf("real-Grafana test did not run: %s: %v", what, err)
}

// TestDevPipelineHealth runs `shoptrail dev` with the broker, ClickHouse,
// the collector, the processor, the alerter, Prometheus (Debian's) and the shared
// Grafana, sends events (valid and invalid) through the collector, and
// runs every Pipeline health panel's query through Grafana's /api/ds/query
// on the Prometheus that scrapes them: each returns data. With
// SHOPTRAIL_SCREENSHOTS=DIR it also renders the dashboard into
// DIR/pipeline.png.
func TestDevPipelineHealth(t *testing.T) {
	testenv.Integration(t)
	_, err := testenv.GrafanaHome()
	needs(t, "the shared Grafana build", err)
	_, err = devstack.PrometheusBinary()
	needs(t, "Debian's prometheus", err)
	ports := make([]int, 9)
	for i := range ports {
		if ports[i], err = devstack.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	grafana := "http://" + addr(6)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runDev(ctx, []string{"-only=broker,clickhouse,collector,processor,alerter,prometheus,grafana", "-dir=" + t.TempDir(),
			"-kafka.brokers=" + addr(0), "-clickhouse.addr=" + addr(1), fmt.Sprintf("-clickhouse.http-port=%d", ports[2]),
			"-http.addr=" + addr(3), "-processor.http-addr=" + addr(4), fmt.Sprintf("-prometheus.port=%d", ports[5]),
			fmt.Sprintf("-grafana.port=%d", ports[6]), "-alerter.http-addr=" + addr(7), "-alerts.receiver-addr=" + addr(8), "-log.level=error"})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("dev: %v", err)
		}
	}()
	waitFor(t, 3*time.Minute, "the dev stack's Grafana", func() bool {
		resp, err := http.Get(grafana + "/api/dashboards/uid/shoptrail-pipeline")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	// Traffic: a valid batch and an invalid event every 200 ms until the end.
	trafficStart := time.Now()
	var wg sync.WaitGroup
	traffic, stopTraffic := context.WithCancel(context.Background())
	defer func() { stopTraffic(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; traffic.Err() == nil; i++ {
			var evs []string
			for k := 0; k < 10; k++ {
				evs = append(evs, fmt.Sprintf(`{"type":"track","event":"Product Viewed","anonymousId":"v%d","messageId":"m%d-%d","properties":{"product_id":"p1","price":9.5}}`, k, i, k))
			}
			for _, body := range []string{`{"batch":[` + strings.Join(evs, ",") + `]}`, `{"batch":[{"type":"track","event":""}]}`} {
				req, _ := http.NewRequestWithContext(traffic, "POST", "http://"+addr(3)+"/v1/batch", strings.NewReader(body))
				req.SetBasicAuth("dev", "")
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
			select {
			case <-traffic.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	ds, err := dashboards.Load(dashboards.Embedded)
	if err != nil {
		t.Fatal(err)
	}
	var pipeline dashboards.Dashboard
	for _, d := range ds {
		if d.UID() == "shoptrail-pipeline" {
			pipeline = d
		}
	}
	c, err := dashboards.NewClient(grafana, dashboards.Auth{User: "admin", Password: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	// Poll until every panel has data (Prometheus needs a few scrapes for a
	// rate), then report what still has none.
	deadline := time.Now().Add(3 * time.Minute)
	var problems []string
	for {
		problems = problems[:0]
		now := time.Now()
		for _, p := range pipeline.Panels() {
			if p.Type() == "row" {
				continue
			}
			var all []dashboards.Frame
			for _, tg := range p.Targets() {
				frames, err := c.Query(context.Background(), tg, now.Add(-10*time.Minute), now, 15*time.Second)
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s/%v: %v", p.Title(), tg["refId"], err))
				}
				all = append(all, frames...)
			}
			if err := dashboards.CheckFrames(p.Type(), all); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", p.Title(), err))
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	for _, p := range problems {
		t.Errorf("Pipeline health panel through Grafana and Prometheus: %s", p)
	}
	if out := os.Getenv("SHOPTRAIL_SCREENSHOTS"); out != "" && len(problems) == 0 {
		// Let three minutes of traffic fill the graphs before rendering.
		for time.Since(trafficStart) < 3*time.Minute {
			time.Sleep(time.Second)
		}
		var bottom int64
		for _, p := range pipeline.Panels() {
			g, _ := p.Model["gridPos"].(map[string]any)
			if y := jsonInt(g["y"]) + jsonInt(g["h"]); y > bottom {
				bottom = y
			}
		}
		png, _ := filepath.Abs(filepath.Join(out, "pipeline.png"))
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := devstack.Screenshot(sctx, grafana+"/d/shoptrail-pipeline?orgId=1&kiosk&theme=light&from=now-3m&to=now", png, 1600, int(bottom*38+60), 30000); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", png)
	}
}

func jsonInt(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case interface{ Int64() (int64, error) }:
		i, _ := n.Int64()
		return i
	}
	return 0
}
