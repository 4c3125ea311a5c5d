package dashboards_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
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
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (make deps-test installs Debian's chromium): %v", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	grafana := pushAll(t, seedClickHouse(t, now))
	for _, d := range embedded(t) {
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
		cmd := exec.CommandContext(ctx, chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
			"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
			fmt.Sprintf("--window-size=1600,%d", height), "--virtual-time-budget=30000",
			"--user-data-dir="+t.TempDir(), "--screenshot="+png,
			grafana+"/d/"+d.UID()+"?orgId=1&kiosk&theme=light")
		b, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("chromium for %s: %v\n%s", d.UID(), err, b)
		}
		st, err := os.Stat(png)
		if err != nil || st.Size() < 10000 {
			t.Fatalf("%s: no screenshot (%v)", png, err)
		}
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
