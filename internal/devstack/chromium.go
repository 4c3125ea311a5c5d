package devstack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
)

// Screenshot renders url in Debian's headless Chromium at width x height
// into the PNG file png, giving the page budget of virtual time (ms) to load
// and query (Grafana needs some 30 s to show every panel's data).
func Screenshot(ctx context.Context, url, png string, width, height, budget int) error {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		return fmt.Errorf("chromium not found (make deps-test installs Debian's chromium): %w", err)
	}
	profile, err := os.MkdirTemp("", "shoptrail-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	cmd := exec.CommandContext(ctx, bin, "--headless=new", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		fmt.Sprintf("--window-size=%d,%d", width, height), fmt.Sprintf("--virtual-time-budget=%d", budget),
		"--user-data-dir="+profile, "--screenshot="+png, url)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chromium: %w\n%s", err, out)
	}
	st, err := os.Stat(png)
	if err != nil {
		return fmt.Errorf("chromium wrote no screenshot: %w", err)
	}
	if st.Size() < 10000 {
		return fmt.Errorf("chromium wrote an almost empty screenshot (%d bytes)", st.Size())
	}
	return nil
}
