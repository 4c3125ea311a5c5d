package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/analytics"
	"github.com/shoptrail/shoptrail/analytics/report"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestReport seeds three sessions on ClickHouse 18.16, runs the funnel and
// stranger-stage queries through the native client and writes them in
// every format.
func TestReport(t *testing.T) {
	_, conn := testenv.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Day 11-02: s1 viewed a product, s2 ordered (revenue 80), s3 a bounce; day 11-03: s4 carted.
	// (The native protocol takes no VALUES in Exec: insert with SELECT.)
	if err := conn.Exec(ctx, `INSERT INTO sessions (site, session_id, anonymous_id, start_time, page_views, is_engaged, channel, funnel_step, orders, revenue)
		SELECT 'shop','s1','a',toDateTime('2026-11-02 10:00:00'),2,1,'Direct','product',0,0
		UNION ALL SELECT 'shop','s2','b',toDateTime('2026-11-02 11:00:00'),5,1,'Direct','order',1,80
		UNION ALL SELECT 'shop','s3','c',toDateTime('2026-11-02 12:00:00'),1,0,'Organic Search','view',0,0
		UNION ALL SELECT 'shop','s4','a',toDateTime('2026-11-03 09:00:00'),3,1,'Direct','cart',0,0`); err != nil {
		t.Fatal(err)
	}
	o := report.Options{Site: "shop", From: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC),
		Grain: "day", Breakdown: "none", Steps: []string{"Product Viewed"}, Window: time.Hour, Page: "/", Bounds: []float64{0, 50}}
	p, err := o.Params()
	if err != nil {
		t.Fatal(err)
	}
	var results []report.Result
	for _, name := range []string{"funnel", "sessions"} {
		q, err := analytics.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := report.Run(ctx, conn, q, p)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	f := results[0]
	col := func(r report.Result, row int, name string) string {
		for i, c := range r.Columns {
			if c == name {
				return report.Text(r.Rows[row][i])
			}
		}
		t.Fatalf("%s has no column %s", r.Query, name)
		return ""
	}
	if len(f.Rows) != 2 {
		t.Fatalf("funnel rows = %v, want 2 days", f.Rows)
	}
	// 11-02: 3 sessions, 2 reached a product (s1 s2), 1 a cart, checkout and order (s2).
	for c, want := range map[string]string{"period": "2026-11-02", "sessions": "3", "product_views": "2", "carts": "1", "orders": "1", "cart_rate": "0.5", "conversion": "0.3333"} {
		if got := col(f, 0, c); got != want {
			t.Errorf("funnel 11-02 %s = %s, want %s", c, got, want)
		}
	}
	// 11-03 against 11-02: 1 session against 3; no order, so NULL growth of orders.
	s := results[1]
	for c, want := range map[string]string{"period": "2026-11-03", "sessions": "1", "prev_sessions": "3", "sessions_growth": "-0.6667", "order_sessions_growth": "-1", "bounces": "0"} {
		if got := col(s, 1, c); got != want {
			t.Errorf("sessions 11-03 %s = %s, want %s", c, got, want)
		}
	}
	if got := col(s, 0, "visitors_growth"); got != "" {
		t.Errorf("visitors_growth with no previous day = %q, want NULL (empty)", got)
	}

	// Bench reads each run's time and rows read from the query log: the
	// funnel reads the four sessions (and nothing of the events table).
	q, _ := analytics.Get("funnel")
	tm, err := report.Bench(ctx, conn, q, p, 3)
	if err != nil {
		t.Fatal(err)
	}
	if tm.Runs != 3 || tm.ReadRows != 4 || tm.ResultRows != 2 || tm.MinMS > tm.MedianMS || tm.MedianMS > tm.MaxMS {
		t.Errorf("bench = %+v, want 3 runs reading 4 rows, 2 result rows, min <= median <= max", tm)
	}

	var buf bytes.Buffer
	if err := report.Write(&buf, "table", results); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "product_views") || !strings.Contains(out, "2026-11-03") || !strings.Contains(out, "(funnel)") {
		t.Errorf("table output lacks the header, a period or the title:\n%s", out)
	}
	buf.Reset()
	if err := report.Write(&buf, "json", results); err != nil {
		t.Fatal(err)
	}
	var back []report.Result
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back) != 2 || back[0].Query != "funnel" || len(back[0].Rows) != 2 {
		t.Errorf("json output does not read back (%v): %s", err, buf.String())
	}
	buf.Reset()
	if err := report.Write(&buf, "csv", results[:1]); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || lines[0] != "# funnel" || !strings.HasPrefix(lines[1], "period,key,sessions") || !strings.HasPrefix(lines[2], "2026-11-02,shop,3,2,1,1,1,") {
		t.Errorf("csv output:\n%s", buf.String())
	}
	if err := report.Write(&buf, "xml", results); err == nil {
		t.Error("an unknown format was accepted")
	}
}

func TestOptionsRefused(t *testing.T) {
	ok := report.Options{Site: "s", From: time.Now(), To: time.Now(), Grain: "day", Breakdown: "none", Steps: []string{"a"}, Window: time.Hour, Bounds: []float64{0, 50}}
	if _, err := ok.Params(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*report.Options){
		"grain":     func(o *report.Options) { o.Grain = "hour" },
		"breakdown": func(o *report.Options) { o.Breakdown = "os; DROP" },
		"segment":   func(o *report.Options) { o.Segment = "stage" },
		"site":      func(o *report.Options) { o.Site = "" },
		"range":     func(o *report.Options) { o.From = o.To.AddDate(0, 0, 1) },
		"steps":     func(o *report.Options) { o.Steps = make([]string, 9) },
		"window":    func(o *report.Options) { o.Window = 0 },
		"bounds":    func(o *report.Options) { o.Bounds = []float64{50, 10} },
		"filter":    func(o *report.Options) { o.Filters = map[string][]string{"stage": {"lost"}} },
	} {
		o := ok
		mod(&o)
		if _, err := o.Params(); err == nil {
			t.Errorf("bad %s accepted", name)
		}
	}
}

// The filters are All unless given; given values are a multi-value
// variable's, as the dashboards' filter variables.
func TestOptionsFilters(t *testing.T) {
	o := report.Options{Site: "s", From: time.Now(), To: time.Now(), Grain: "day", Breakdown: "none", Steps: []string{"a"}, Window: time.Hour, Bounds: []float64{0},
		Filters: map[string][]string{"tier": {"A", "B"}, "channel": nil}}
	p, err := o.Params()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range analytics.Filters {
		want := analytics.All()
		if f == "tier" {
			want = analytics.Multi("A", "B")
		}
		if got := p.Vars[f]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", f, got, want)
		}
	}
	sql, err := analytics.Expand("('__all' IN (${tier}) OR tier IN (${tier})) AND ('__all' IN (${device}) OR device_class IN (${device}))", p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "('__all' IN ('A','B') OR tier IN ('A','B')) AND ('__all' IN ('__all') OR device_class IN ('__all'))"; sql != want {
		t.Errorf("expanded to\n%s\nwant\n%s", sql, want)
	}
}
