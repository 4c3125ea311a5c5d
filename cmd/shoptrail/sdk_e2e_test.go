package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/internal/testenv"
)

// sdkRun is what test/sdk/run.js prints.
type sdkRun struct {
	Scenarios []struct {
		Name        string `json:"name"`
		AnonymousID string `json:"anonymousId"`
		Calls       []struct {
			N      int    `json:"n"`
			Type   string `json:"type"`
			Event  string `json:"event"`
			UserID string `json:"userId"`
		} `json:"calls"`
	} `json:"scenarios"`
}

// TestSDKs drives the real SDKs from npm — analytics.js (analytics-next,
// single and batching, a 429 and 503 retried, page hide) and RudderStack's
// browser SDK (XHR with retries, beacon mode) and a page's own sendBeacon
// and Jitsu-style fetch in headless Chromium, and
// @segment/analytics-node and @rudderstack/rudder-sdk-node — against the
// real collector, broker, processor and ClickHouse (test/sdk/run.js), and
// finds every call in ClickHouse exactly once, with its type, event name,
// user id and properties.
func TestSDKs(t *testing.T) {
	testenv.Integration(t)
	sdkDir, err := filepath.Abs("../../test/sdk")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(sdkDir, "node_modules", "@segment", "analytics-next"),
		filepath.Join(sdkDir, "..", "..", "collector", "beacon", "node_modules", "playwright-core")} {
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("the SDKs' npm packages are missing (make test installs them: test/sdk/install.sh, collector/beacon/ci.sh): %v", err)
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil && os.Getenv("SHOPTRAIL_CHROMIUM") == "" {
		t.Fatalf("Chromium is missing (make deps-test installs Debian's chromium): %v", err)
	}
	collectorURL, query := startStack(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(sdkDir, "run.js"))
	cmd.Env = append(os.Environ(), "SHOPTRAIL_SDK_COLLECTOR="+collectorURL, "SHOPTRAIL_SDK_WRITE_KEY=key1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("test/sdk/run.js: %v\n%s", err, stderr.String())
	}
	fmt.Fprint(os.Stderr, stderr.String())
	var run sdkRun
	if err := json.Unmarshal(stdout.Bytes(), &run); err != nil {
		t.Fatalf("run.js output is not JSON: %v\n%s", err, stdout.String())
	}
	if len(run.Scenarios) != 7 {
		t.Fatalf("run.js ran %d scenarios, want 7", len(run.Scenarios))
	}
	for _, sc := range run.Scenarios {
		if sc.AnonymousID == "" || len(sc.Calls) == 0 || strings.ContainsAny(sc.AnonymousID, `'\`) {
			t.Errorf("%s: anonymous id %q, %d calls", sc.Name, sc.AnonymousID, len(sc.Calls))
			continue
		}
		want := make([]string, len(sc.Calls))
		for i, c := range sc.Calls {
			want[i] = fmt.Sprintf("%d|%s|%s|%s", c.N, c.Type, c.Event, c.UserID)
		}
		sort.Strings(want)
		where := "site = 'shop' AND anonymous_id = '" + sc.AnonymousID + "'"
		waitFor(t, 60*time.Second, sc.Name+": every call in ClickHouse", func() bool {
			var n uint64
			return query("SELECT count() FROM events FINAL WHERE "+where, &n) == nil && int(n) >= len(want)
		})
		// One row per call (a retry carries the same messageId and
		// collapses; a call sent twice under two ids would be two rows).
		var rows string
		var count, ids uint64
		err := query(`SELECT count(), uniqExact(message_id), arrayStringConcat(arraySort(groupArray(concat(
			  if(type = 'identify', visitParamExtractRaw(traits, 'n'), visitParamExtractRaw(properties, 'n')),
			  '|', type, '|', event, '|', user_id))), ';')
			FROM events FINAL WHERE `+where, &count, &ids, &rows)
		if err != nil {
			t.Fatalf("%s: %v", sc.Name, err)
		}
		if got := strings.Split(rows, ";"); int(count) != len(want) || int(ids) != len(want) || strings.Join(got, ";") != strings.Join(want, ";") {
			t.Errorf("%s: ClickHouse has %d rows (%d message ids):\n  %s\nwant exactly once each:\n  %s", sc.Name, count, ids,
				strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
	// Properties arrive as sent: the order of analytics.js, the quantities
	// of the batches, RudderStack's SKU.
	for _, c := range []struct{ q, want string }{
		{"SELECT properties FROM events FINAL WHERE site = 'shop' AND event = 'Order Completed' AND user_id = 'u-next-1'", `"order_id":"o-next-1"`},
		{"SELECT properties FROM events FINAL WHERE site = 'shop' AND event = 'Order Completed' AND user_id = 'u-next-1'", `"currency":"USD"`},
		{"SELECT properties FROM events FINAL WHERE site = 'shop' AND event = 'Product Added' AND visitParamExtractRaw(properties, 'n') = '5' AND library LIKE 'analytics.js%'", `"quantity":5`},
		{"SELECT properties FROM events FINAL WHERE site = 'shop' AND user_id = 'u-rnode-1' AND event = 'Product Added'", `"sku":"sku-1"`},
	} {
		var props string
		if err := query(c.q, &props); err != nil || !strings.Contains(props, c.want) {
			t.Errorf("%s: %q (%v), want it to contain %s", c.q, props, err, c.want)
		}
	}
}
