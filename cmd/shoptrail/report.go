package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail/analytics"
	"github.com/shoptrail/shoptrail/analytics/report"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

// runReport prints the operators' report: the named queries of the chosen
// areas, for a site and a range of days.
func runReport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	var chc clickhouse.Config
	var lc logConfig
	chc.RegisterFlags(fs)
	lc.RegisterFlags(fs, "text")
	var o report.Options
	var from, to, areas, queries, steps, format string
	today := time.Now().UTC().Format(time.DateOnly)
	fs.StringVar(&o.Site, "site", "", "the site id (required)")
	fs.StringVar(&from, "from", time.Now().UTC().AddDate(0, 0, -29).Format(time.DateOnly), "first day of the range, YYYY-MM-DD (UTC)")
	fs.StringVar(&to, "to", today, "last day of the range, YYYY-MM-DD (UTC), included")
	fs.StringVar(&o.Grain, "grain", "day", "period of the rows: day, week, month, quarter or year")
	fs.StringVar(&o.Breakdown, "breakdown", "none", "rows per: none, channel, source, medium, campaign, device or landing_page")
	fs.StringVar(&o.Segment, "segment", "none", "customer-stage queries' rows per: none, customer_type, tier or first_channel")
	fs.StringVar(&format, "format", "table", "output: table, json or csv")
	fs.StringVar(&areas, "areas", strings.Join(report.AreaOrder, ","), "areas to report, comma-separated: "+strings.Join(report.AreaOrder, ", "))
	fs.StringVar(&queries, "queries", "", "named queries to run instead of areas, comma-separated (see sql/queries)")
	fs.StringVar(&steps, "steps", "Product Viewed,Product Added,Checkout Started,Order Completed", "funnel_steps: the chosen events in order, comma-separated (1 to 8)")
	fs.DurationVar(&o.Window, "window", 24*time.Hour, "funnel_steps: the conversion window")
	fs.StringVar(&o.Page, "page", "/", "page_flow: the page whose next pages are counted")
	o.Filters = map[string][]string{}
	for _, f := range []struct{ flag, name, doc string }{
		{"channel", "channel", "only sessions and carts of these channels, comma-separated (default all)"},
		{"device", "device", "only sessions of these device classes (desktop, mobile, tablet, server, other), comma-separated (default all)"},
		{"customer-type", "customer_type", "only sessions and carts of customers of these types (enterprise, individual), comma-separated (default all)"},
		{"tier", "tier", "only sessions and carts of customers of these value tiers (A to E), comma-separated (default all)"},
	} {
		fs.Func(f.flag, f.doc, func(v string) error {
			for _, x := range strings.Split(v, ",") {
				if x = strings.TrimSpace(x); x != "" {
					o.Filters[f.name] = append(o.Filters[f.name], x)
				}
			}
			return nil
		})
	}
	bounds := fs.String("bounds", "0,50,100,500,1000,5000", "order_amounts: lower bounds of the amount buckets, ascending, comma-separated")
	bench := fs.Int("bench", 0, "instead of the results, run each query this many times and report its server time (median, min, max) and the rows and bytes one run read (system.query_log)")
	if _, err := parse(fs, &lc, args); err != nil {
		return err
	}
	var err error
	if o.From, err = time.Parse(time.DateOnly, from); err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	if o.To, err = time.Parse(time.DateOnly, to); err != nil {
		return fmt.Errorf("-to: %w", err)
	}
	if !slices.Contains(report.Formats, format) {
		return fmt.Errorf("unknown -format %q (table, json, csv)", format)
	}
	for _, s := range strings.Split(steps, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.Steps = append(o.Steps, s)
		}
	}
	for _, b := range strings.Split(*bounds, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(b), 64)
		if err != nil {
			return fmt.Errorf("-bounds: %q is not a number", b)
		}
		o.Bounds = append(o.Bounds, f)
	}
	p, err := o.Params()
	if err != nil {
		return err
	}
	all, err := analytics.Load()
	if err != nil {
		return err
	}
	byName := map[string]analytics.Query{}
	for _, q := range all {
		byName[q.Name] = q
	}
	var names []string
	if queries != "" {
		names = strings.Split(queries, ",")
	} else {
		for _, a := range strings.Split(areas, ",") {
			qs, ok := report.Areas[strings.TrimSpace(a)]
			if !ok {
				return fmt.Errorf("unknown area %q (%s)", a, strings.Join(report.AreaOrder, ", "))
			}
			names = append(names, qs...)
		}
	}
	conn, err := clickhouse.Open(ctx, chc)
	if err != nil {
		return err
	}
	defer conn.Close()
	var results []report.Result
	var timings []report.Timing
	for _, n := range names {
		q, ok := byName[strings.TrimSpace(n)]
		if !ok {
			return fmt.Errorf("no query called %q", n)
		}
		if *bench > 0 {
			t, err := report.Bench(ctx, conn, q, p, *bench)
			if err != nil {
				return err
			}
			timings = append(timings, t)
			continue
		}
		r, err := report.Run(ctx, conn, q, p)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if *bench > 0 {
		results = []report.Result{report.TimingResult(timings)}
	}
	return report.Write(os.Stdout, format, results)
}
