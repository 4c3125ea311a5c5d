// Package report runs the named analytical queries (package analytics) on
// ClickHouse and writes their results as tables, JSON or CSV: the work of
// `shoptrail report`.
package report

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"

	"github.com/shoptrail/shoptrail/analytics"
)

// Grains maps the report's grain names to the ${grain} values.
var Grains = map[string]string{
	"day":     "toDate",
	"week":    "toMonday",
	"month":   "toStartOfMonth",
	"quarter": "toStartOfQuarter",
	"year":    "toStartOfYear",
}

// Breakdowns maps the report's breakdown names to the ${breakdown} values.
var Breakdowns = map[string]string{
	"none":         "site",
	"channel":      "channel",
	"source":       "source",
	"medium":       "medium",
	"campaign":     "campaign",
	"device":       "device_class",
	"landing_page": "landing_page",
}

// Segments maps the report's customer segment names to the ${segment}
// values of the customer-stage queries.
var Segments = map[string]string{
	"none":          "site",
	"customer_type": "customer_type",
	"tier":          "tier",
	"first_channel": "first_channel",
}

// Areas maps each area of the report to its queries, in order.
var Areas = map[string][]string{
	"stranger":     {"sessions", "landing_pages"},
	"registration": {"registrations"},
	"potential":    {"potential"},
	"funnel":       {"funnel", "funnel_steps"},
	"sources":      {"sources"},
	"banners":      {"banners"},
	"pages":        {"page_flow", "exit_pages"},
	"customers":    {"stage_pyramid", "customer_stages", "stage_flows", "dormant_by_tier", "potential_dormant_trend", "customer_segments", "repeat_purchases", "retention", "first_order_cohorts"},
	"orders":       {"order_amounts"},
	"carts":        {"carts"},
}

// AreaOrder is the order areas are reported in.
var AreaOrder = []string{"stranger", "registration", "potential", "funnel", "sources", "banners", "pages", "customers", "orders", "carts"}

// Options selects what a report shows.
type Options struct {
	Site      string
	From, To  time.Time // days: From's start to To's end
	Grain     string    // a key of Grains
	Breakdown string    // a key of Breakdowns
	// Segment is a key of Segments (the customer-stage queries' rows);
	// empty means none.
	Segment string
	Steps   []string // funnel_steps: the chosen events
	Window  time.Duration
	Page    string // page_flow: the page to start from
	// Bounds are order_amounts' bucket lower bounds, ascending.
	Bounds []float64
	// Filters holds the values of the filter variables (analytics.Filters:
	// channel, device, customer_type, tier) by name; a filter missing or
	// empty is All.
	Filters map[string][]string
}

// Params returns the query parameters of o, or an error naming what is
// wrong.
func (o Options) Params() (analytics.Params, error) {
	grain, ok := Grains[o.Grain]
	if !ok {
		return analytics.Params{}, fmt.Errorf("unknown grain %q (day, week, month, quarter, year)", o.Grain)
	}
	bd, ok := Breakdowns[o.Breakdown]
	if !ok {
		return analytics.Params{}, fmt.Errorf("unknown breakdown %q (none, channel, source, medium, campaign, device, landing_page)", o.Breakdown)
	}
	seg := "none"
	if o.Segment != "" {
		seg = o.Segment
	}
	segment, ok := Segments[seg]
	if !ok {
		return analytics.Params{}, fmt.Errorf("unknown segment %q (none, customer_type, tier, first_channel)", o.Segment)
	}
	if o.Site == "" {
		return analytics.Params{}, fmt.Errorf("no site given")
	}
	if o.To.Before(o.From) {
		return analytics.Params{}, fmt.Errorf("the range ends (%s) before it starts (%s)", o.To.Format(time.DateOnly), o.From.Format(time.DateOnly))
	}
	if len(o.Steps) < 1 || len(o.Steps) > 8 {
		return analytics.Params{}, fmt.Errorf("give 1 to 8 funnel steps, not %d", len(o.Steps))
	}
	if o.Window < time.Second {
		return analytics.Params{}, fmt.Errorf("the funnel window must be at least a second, not %s", o.Window)
	}
	if len(o.Bounds) == 0 {
		return analytics.Params{}, fmt.Errorf("give at least one amount bound")
	}
	bounds := make([]string, len(o.Bounds))
	for i, b := range o.Bounds {
		if i > 0 && b <= o.Bounds[i-1] || math.IsNaN(b) || math.IsInf(b, 0) {
			return analytics.Params{}, fmt.Errorf("amount bounds must be finite and ascending: %v", o.Bounds)
		}
		bounds[i] = strconv.FormatFloat(b, 'f', -1, 64)
	}
	for name := range o.Filters {
		if !slices.Contains(analytics.Filters, name) {
			return analytics.Params{}, fmt.Errorf("unknown filter %q (%s)", name, strings.Join(analytics.Filters, ", "))
		}
	}
	from := time.Date(o.From.Year(), o.From.Month(), o.From.Day(), 0, 0, 0, 0, time.UTC)
	to := time.Date(o.To.Year(), o.To.Month(), o.To.Day(), 23, 59, 59, 0, time.UTC)
	p := analytics.Params{From: from, To: to, Interval: 24 * time.Hour, Vars: map[string]analytics.Value{
		"site":      analytics.Single(o.Site),
		"grain":     analytics.Single(grain),
		"breakdown": analytics.Single(bd),
		"segment":   analytics.Single(segment),
		"steps":     analytics.Multi(o.Steps...),
		"window_s":  analytics.Single(strconv.FormatInt(int64(o.Window/time.Second), 10)),
		"page":      analytics.Single(o.Page),
		"bounds":    analytics.Single(strings.Join(bounds, ",")),
	}}
	for _, name := range analytics.Filters {
		if vs := o.Filters[name]; len(vs) > 0 {
			p.Vars[name] = analytics.Multi(vs...)
		} else {
			p.Vars[name] = analytics.All()
		}
	}
	return p, nil
}

// Result is one query's result.
type Result struct {
	Query   string   `json:"query"`
	Title   string   `json:"title"`
	Columns []string `json:"columns"`
	Rows    [][]any  `json:"rows"`
}

// Querier runs a query; a clickhouse-go connection is one.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Run runs the named query with p.
func Run(ctx context.Context, db Querier, q analytics.Query, p analytics.Params) (Result, error) {
	sql, err := q.Expand(p)
	if err != nil {
		return Result{}, fmt.Errorf("query %s: %w", q.Name, err)
	}
	rows, err := db.Query(ctx, sql)
	if err != nil {
		return Result{}, fmt.Errorf("query %s: %w", q.Name, err)
	}
	defer rows.Close()
	res := Result{Query: q.Name, Title: q.Title, Columns: rows.Columns(), Rows: [][]any{}}
	types := rows.ColumnTypes()
	for rows.Next() {
		ptrs := make([]any, len(types))
		for i, ct := range types {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return Result{}, fmt.Errorf("query %s: %w", q.Name, err)
		}
		row := make([]any, len(ptrs))
		for i, p := range ptrs {
			row[i] = value(reflect.ValueOf(p).Elem(), types[i].DatabaseTypeName())
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return Result{}, fmt.Errorf("query %s: %w", q.Name, err)
	}
	return res, nil
}

// value turns a scanned value into a plain one: nil for NULL, a date as
// YYYY-MM-DD, a time in UTC.
func value(v reflect.Value, dbType string) any {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	x := v.Interface()
	if t, ok := x.(time.Time); ok {
		if strings.Contains(dbType, "Date") && !strings.Contains(dbType, "DateTime") {
			return t.Format(time.DateOnly)
		}
		return t.UTC().Format(time.DateTime)
	}
	if f, ok := x.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return nil
	}
	return x
}

// Text formats a value for a table or CSV cell.
func Text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// Formats are the output formats Write knows.
var Formats = []string{"table", "json", "csv"}

// Write writes results in format: "table" (one titled table each), "json"
// (an array of results) or "csv" (each result as a header line naming the
// query, its column names, its rows, and an empty line).
func Write(w io.Writer, format string, results []Result) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	case "csv":
		cw := csv.NewWriter(w)
		for i, r := range results {
			if i > 0 {
				cw.Write(nil)
			}
			cw.Write([]string{"# " + r.Query})
			cw.Write(r.Columns)
			for _, row := range r.Rows {
				rec := make([]string, len(row))
				for j, v := range row {
					rec[j] = Text(v)
				}
				cw.Write(rec)
			}
		}
		cw.Flush()
		return cw.Error()
	case "table":
		for _, r := range results {
			t := table.NewWriter()
			t.SetTitle(r.Title + " (" + r.Query + ")")
			style := table.StyleLight
			style.Format.Header = text.FormatDefault // column names as the SQL has them
			t.SetStyle(style)
			hdr := make(table.Row, len(r.Columns))
			for i, c := range r.Columns {
				hdr[i] = c
			}
			t.AppendHeader(hdr)
			for _, row := range r.Rows {
				tr := make(table.Row, len(row))
				for j, v := range row {
					tr[j] = Text(v)
				}
				t.AppendRow(tr)
			}
			if len(r.Rows) == 0 {
				t.AppendFooter(table.Row{"no rows"})
			}
			if _, err := fmt.Fprintf(w, "%s\n\n", t.Render()); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown format %q (table, json, csv)", format)
}

// Timing is how one query performed over several runs.
type Timing struct {
	Query string `json:"query"`
	Runs  int    `json:"runs"`
	// MedianMS, MinMS and MaxMS are the server's durations
	// (system.query_log query_duration_ms).
	MedianMS, MinMS, MaxMS uint64
	// ReadRows and ReadBytes are what the server read for one run.
	ReadRows, ReadBytes uint64
	ResultRows          int
}

// Execer is a Querier that can also run statements and read one row.
type Execer interface {
	Querier
	Exec(ctx context.Context, query string, args ...any) error
	QueryRow(ctx context.Context, query string, args ...any) driver.Row
}

// Bench runs the named query runs times with p and reads each run's
// duration and rows read from system.query_log (each run is logged with
// log_queries = 1 under its own query id).
func Bench(ctx context.Context, db Execer, q analytics.Query, p analytics.Params, runs int) (Timing, error) {
	t := Timing{Query: q.Name, Runs: runs}
	var durs []uint64
	for i := range runs {
		id := fmt.Sprintf("shoptrail-bench-%s-%d-%d", q.Name, time.Now().UnixNano(), i)
		qctx := clickhouse.Context(ctx, clickhouse.WithQueryID(id), clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1}))
		r, err := Run(qctx, db, q, p)
		if err != nil {
			return t, err
		}
		t.ResultRows = len(r.Rows)
		// The server logs a query's end just after answering it: flush and
		// look until its row is there.
		var dur, rows, bytes uint64
		deadline := time.Now().Add(30 * time.Second)
		for {
			if err := db.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
				return t, fmt.Errorf("cannot flush the query log: %w", err)
			}
			err := db.QueryRow(ctx, "SELECT toUInt64(query_duration_ms), toUInt64(read_rows), toUInt64(read_bytes) FROM system.query_log WHERE query_id = ? AND type = 2", id).
				Scan(&dur, &rows, &bytes)
			if err == nil {
				break
			}
			if !errors.Is(err, sql.ErrNoRows) || time.Now().After(deadline) {
				return t, fmt.Errorf("query %s: no query_log row: %w", q.Name, err)
			}
			select {
			case <-ctx.Done():
				return t, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		durs = append(durs, dur)
		t.ReadRows, t.ReadBytes = rows, bytes
	}
	slices.Sort(durs)
	t.MedianMS, t.MinMS, t.MaxMS = durs[len(durs)/2], durs[0], durs[len(durs)-1]
	return t, nil
}

// TimingResult turns timings into a Result to write like any other.
func TimingResult(ts []Timing) Result {
	r := Result{Query: "bench", Title: "Query timings: server time over runs (median, min, max) and what one run read",
		Columns: []string{"query", "runs", "median_ms", "min_ms", "max_ms", "read_rows", "read_bytes", "result_rows"}, Rows: [][]any{}}
	for _, t := range ts {
		r.Rows = append(r.Rows, []any{t.Query, t.Runs, t.MedianMS, t.MinMS, t.MaxMS, t.ReadRows, t.ReadBytes, t.ResultRows})
	}
	return r
}
