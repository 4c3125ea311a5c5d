package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/analytics"
	"github.com/shoptrail/shoptrail/analytics/report"
	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
	"github.com/shoptrail/shoptrail/simulate"
)

// TestSimulatedMonthReport sends a simulated month through `shoptrail dev`
// (broker, ClickHouse 18.16, collector, processor) with `shoptrail
// simulate`, and checks that every message arrived once and that the
// report's numbers equal a direct count over the raw tables.
func TestSimulatedMonthReport(t *testing.T) {
	testenv.Integration(t)
	ports := make([]int, 5)
	for i := range ports {
		p, err := devstack.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	brokers := fmt.Sprintf("127.0.0.1:%d", ports[0])
	chAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	chHTTP := fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	colURL := fmt.Sprintf("http://127.0.0.1:%d", ports[3])
	devCtx, stopDev := context.WithCancel(context.Background())
	devDone := make(chan error, 1)
	go func() {
		devDone <- runDev(devCtx, []string{"-only=broker,clickhouse,collector,processor", "-dir=" + t.TempDir(),
			"-kafka.brokers=" + brokers, "-clickhouse.addr=" + chAddr, fmt.Sprintf("-clickhouse.http-port=%d", ports[2]),
			"-http.addr=" + strings.TrimPrefix(colURL, "http://"), fmt.Sprintf("-processor.http-addr=127.0.0.1:%d", ports[4]),
			"-sites=shop=shop@*", "-events.max-age=2000h", "-log.level=warn"})
	}()
	defer func() {
		stopDev()
		if err := <-devDone; err != nil {
			t.Errorf("dev: %v", err)
		}
	}()
	waitFor(t, 3*time.Minute, "the dev collector", func() bool {
		resp, err := http.Get(colURL + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	// Thirty days ending a week ago, sent as `shoptrail simulate` would.
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -37)
	const days, visitors, seed = 30, 40, 5
	args := []string{"-collector=" + colURL, "-write-key=shop", "-quiet", fmt.Sprint("-seed=", seed),
		fmt.Sprint("-visitors=", visitors), fmt.Sprint("-days=", days), "-start=" + start.Format(time.DateOnly)}
	if err := runSimulate(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	// The same seed makes the same messages: count them here.
	shop, err := simulate.NewShop(simulate.Config{Seed: seed, DailyVisitors: visitors, Products: 500, BotShare: 0.05}, "shop.example", start)
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for range days {
		sent += len(shop.NextDay())
	}
	q := func(sql string) string {
		resp, err := http.Get(chHTTP + "/?database=shoptrail&query=" + url.QueryEscape(sql))
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	waitFor(t, 3*time.Minute, fmt.Sprintf("%d events in ClickHouse", sent), func() bool {
		return q("SELECT uniqExact(message_id) FROM events WHERE site = 'shop'") == fmt.Sprint(sent)
	})

	ctx := context.Background()
	conn, err := clickhouse.Open(ctx, clickhouse.Config{Addr: chAddr, Database: "shoptrail"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	end := start.AddDate(0, 0, days-1)
	o := report.Options{Site: "shop", From: start, To: end, Grain: "month", Breakdown: "none",
		Steps: []string{"Product Viewed"}, Window: time.Hour, Page: "/", Bounds: []float64{0, 100, 1000}}
	p, err := o.Params()
	if err != nil {
		t.Fatal(err)
	}
	total := func(name, col string) string {
		qq, err := analytics.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := report.Run(ctx, conn, qq, p)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range r.Columns {
			if c == col {
				var sum float64
				for _, row := range r.Rows {
					switch v := row[i].(type) {
					case uint64:
						sum += float64(v)
					case float64:
						sum += v
					}
				}
				return fmt.Sprintf("%.2f", sum)
			}
		}
		t.Fatalf("%s has no column %s", name, col)
		return ""
	}
	rng := fmt.Sprintf("BETWEEN toDateTime('%s 00:00:00') AND toDateTime('%s 23:59:59')", start.Format(time.DateOnly), end.Format(time.DateOnly))
	direct := func(sql string) string {
		v := q(sql)
		var f float64
		if _, err := fmt.Sscan(v, &f); err != nil {
			t.Fatalf("%s: %q", sql, v)
		}
		return fmt.Sprintf("%.2f", f)
	}
	// The processor may still be writing open sessions: compare until equal.
	waitFor(t, time.Minute, "report and direct counts of sessions to agree", func() bool {
		want := direct("SELECT count() FROM sessions FINAL WHERE site = 'shop' AND is_bot = 0 AND start_time " + rng)
		return total("sessions", "sessions") == want && total("funnel", "orders") ==
			direct("SELECT countIf(funnel_step = 'order') FROM sessions FINAL WHERE site = 'shop' AND is_bot = 0 AND start_time "+rng)
	})
	for _, c := range []struct{ name, col, sql string }{
		// Visitors are counted per period (month): thirty days span two
		// months on most days of the year.
		{"sessions", "visitors", "SELECT sum(v) FROM (SELECT toStartOfMonth(start_time) AS m, uniqExact(anonymous_id) AS v FROM sessions FINAL " +
			"WHERE site = 'shop' AND is_bot = 0 AND start_time " + rng + " GROUP BY m)"},
		{"order_amounts", "orders", "SELECT uniqExact(order_id) FROM events WHERE site = 'shop' AND is_bot = 0 AND event = 'Order Completed' AND event_time " + rng},
		{"order_amounts", "revenue", "SELECT sum(r) FROM (SELECT order_id, any(revenue) AS r FROM events WHERE site = 'shop' AND is_bot = 0 AND event = 'Order Completed' AND event_time " + rng + " GROUP BY order_id)"},
		{"repeat_purchases", "customers", "SELECT uniqExact(if(user_id != '', user_id, anonymous_id)) FROM events WHERE site = 'shop' AND is_bot = 0 AND event = 'Order Completed' AND event_time " + rng},
	} {
		if got, want := total(c.name, c.col), direct(c.sql); got != want {
			t.Errorf("%s %s = %s, direct count %s", c.name, c.col, got, want)
		}
	}
	if got := total("order_amounts", "orders"); got == "0.00" {
		t.Error("the simulated month has no orders")
	}
}
