package analytics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/analytics"
)

// The expected texts are what grafana-clickhouse-datasource 4.x writes for
// each macro, and what Grafana's template service writes for each variable
// with the plugin's format function.
func TestExpand(t *testing.T) {
	from := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 11, 3, 23, 59, 59, 0, time.UTC)
	p := analytics.Params{From: from, To: to, Interval: 90 * time.Second, Vars: map[string]analytics.Value{
		"site":  analytics.Single("shop1"),
		"grain": analytics.Single("toDate"),
		"ch":    analytics.Multi("Direct", "Paid Search"),
		"one":   analytics.Multi("Direct"),
	}}
	cases := []struct{ in, want string }{
		{"$__timeFilter(start_time)", "start_time >= toDateTime(1793577600) AND start_time <= toDateTime(1793750399)"},
		{"$__timeFilter( e.t )", "e.t >= toDateTime(1793577600) AND e.t <= toDateTime(1793750399)"},
		{"x BETWEEN $__fromTime AND $__toTime", "x BETWEEN toDateTime(1793577600) AND toDateTime(1793750399)"},
		{"intDiv(toUInt32(t), $__interval_s)", "intDiv(toUInt32(t), 90)"},
		{"$__dateFilter(d)", "d >= toDate('2026-11-02') AND d <= toDate('2026-11-03')"},
		{"$__dt(d, t)", "(d >= toDate('2026-11-02') AND d <= toDate('2026-11-03')) AND (t >= toDateTime(1793577600) AND t <= toDateTime(1793750399))"},
		{"$__timeInterval(t)", "toStartOfInterval(toDateTime(t), INTERVAL 90 second)"},
		{"$__fromTime_ms", "fromUnixTimestamp64Milli(1793577600000)"},
		{"$__timeFilter(toDate(t))", "toDate(t) >= toDateTime(1793577600) AND toDate(t) <= toDateTime(1793750399)"},
		{"site = '${site}' AND s = '$site' AND s = '[[site]]'", "site = 'shop1' AND s = 'shop1' AND s = 'shop1'"},
		{"${grain}(t)", "toDate(t)"},
		{"channel IN (${ch})", "channel IN ('Direct','Paid Search')"},
		{"channel IN ($one)", "channel IN ('Direct')"},
		{"${ch:csv}|${ch:singlequote}|${site:singlequote}", "Direct,Paid Search|'Direct','Paid Search'|'shop1'"},
		{"$sites", ""}, // an unknown variable: an error below
	}
	for _, c := range cases {
		got, err := analytics.Expand(c.in, p)
		if c.in == "$sites" {
			if err == nil || !strings.Contains(err.Error(), `"sites"`) {
				t.Errorf("Expand(%q) error = %v, want one naming the variable", c.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Expand(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("Expand(%q)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
	// An interval under a second is one second, as in the plugin.
	if got, _ := analytics.Expand("$__interval_s", analytics.Params{Interval: 10 * time.Millisecond}); got != "1" {
		t.Errorf("$__interval_s of 10ms = %q, want 1", got)
	}
	for _, bad := range []string{"$__timeFilter(a, b)", "$__timeFilter(a", "$__nope", "$__timeFilter"} {
		if _, err := analytics.Expand(bad, p); err == nil {
			t.Errorf("Expand(%q) gave no error", bad)
		}
	}
	// A value with a quote cannot change the SQL around it.
	p.Vars["site"] = analytics.Single("x' OR 1=1 --")
	if _, err := analytics.Expand("site = '${site}'", p); err == nil {
		t.Error("a value with a quote was accepted")
	}
}

func TestLoad(t *testing.T) {
	qs, err := analytics.Load()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, q := range qs {
		names[q.Name] = true
		if q.Title == "" || q.Doc == "" {
			t.Errorf("query %s has no leading comment", q.Name)
		}
		if strings.HasSuffix(q.SQL, ";") {
			t.Errorf("query %s keeps its semicolon", q.Name)
		}
	}
	for _, want := range []string{"sessions", "funnel", "funnel_steps", "sources", "landing_pages"} {
		if !names[want] {
			t.Errorf("query %s missing", want)
		}
	}
	q, err := analytics.Get("funnel_steps")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(q.Vars, ",") != "site,steps,window_s" {
		t.Errorf("funnel_steps vars = %v", q.Vars)
	}
}
