package dashboards_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/internal/devstack"
)

// EnvScreenshots names the folder `make screenshots` asks this test to
// write a PNG of every dashboard into.
const EnvScreenshots = "SHOPTRAIL_SCREENSHOTS"

// TestScreenshots renders every dashboard from a real Grafana, loaded with
// the simulated shop, in headless Chromium. It runs only when
// SHOPTRAIL_SCREENSHOTS names the output folder (make screenshots).
func TestScreenshots(t *testing.T) {
	out := os.Getenv(EnvScreenshots)
	if out == "" {
		t.Skip("set " + EnvScreenshots + "=DIR (make screenshots) to render the dashboards")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	grafana := pushAll(t, seedClickHouse(t, now))
	for _, d := range embedded(t) {
		if d.UID() == "shoptrail-pipeline" {
			continue // its metrics come from a running pipeline: cmd/shoptrail's TestDevPipelineHealth renders it
		}
		var bottom int64
		for _, p := range d.Panels() {
			g, _ := p.Model["gridPos"].(map[string]any)
			if y := num(g["y"]) + num(g["h"]); y > bottom {
				bottom = y
			}
		}
		height := bottom*38 + 60
		png, _ := filepath.Abs(filepath.Join(out, d.UID()[len("shoptrail-"):]+".png"))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		err := devstack.Screenshot(ctx, grafana+"/d/"+d.UID()+"?orgId=1&kiosk&theme=light", png, 1600, int(height), 60000)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", d.UID(), err)
		}
		st, _ := os.Stat(png)
		t.Logf("%s (%d bytes)", png, st.Size())
	}
}

func num(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case interface{ Int64() (int64, error) }:
		i, _ := n.Int64()
		return i
	}
	return 0
}
