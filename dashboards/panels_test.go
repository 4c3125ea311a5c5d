package dashboards_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/analytics"
	"github.com/shoptrail/shoptrail/dashboards"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// seeded is a ClickHouse 18.16 database loaded with the simulated shop.
type seeded struct {
	addr, httpAddr, database string
}

func seedClickHouse(t *testing.T, now time.Time) seeded {
	t.Helper()
	cfg, _ := testenv.Database(t)
	srv := testenv.ClickHouse(t)
	for _, q := range seedSQL(now) {
		u := "http://" + srv.HTTPAddr + "/?" + url.Values{"database": {cfg.Database}}.Encode()
		resp, err := http.Post(u, "text/plain", strings.NewReader(q))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("seeding ClickHouse: %d %s", resp.StatusCode, b)
		}
	}
	return seeded{addr: srv.Addr, httpAddr: srv.HTTPAddr, database: cfg.Database}
}

// pushAll starts a Grafana, pushes every dashboard with the ClickHouse
// data source pointing at db, and returns the Grafana's URL.
func pushAll(t *testing.T, db seeded) string {
	t.Helper()
	g := testenv.Grafana(t, "")
	c := admin(t, g.URL)
	ds, err := dashboards.Load(dashboards.Embedded)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(context.Background(), ds, dashboards.PushOptions{DataSources: dashboards.DataSources{
		ClickHouseAddr: db.addr, ClickHouseDatabase: db.database, ClickHouseUser: "default", PrometheusURL: "http://127.0.0.1:9",
	}}); err != nil {
		t.Fatalf("push: %v", err)
	}
	return g.URL
}

// varsOf returns the dashboard's variables at their saved current values,
// as Grafana's front end would substitute them.
func varsOf(t *testing.T, d dashboards.Dashboard) map[string]analytics.Value {
	out := map[string]analytics.Value{}
	for n, v := range d.Variables() {
		cur, _ := v["current"].(map[string]any)
		multi, _ := v["multi"].(bool)
		if isAll(cur["value"]) {
			out[n] = allOf(t, d, n, v)
			continue
		}
		switch x := cur["value"].(type) {
		case string:
			if multi {
				out[n] = analytics.Multi(x)
			} else {
				out[n] = analytics.Single(x)
			}
		case []any:
			var vs []string
			for _, s := range x {
				vs = append(vs, fmt.Sprint(s))
			}
			out[n] = analytics.Multi(vs...)
		default:
			t.Fatalf("%s: variable %s has no current value", d.File, n)
		}
	}
	return out
}

// isAll reports whether a variable's value is Grafana's All ($__all).
func isAll(v any) bool {
	switch x := v.(type) {
	case string:
		return x == "$__all"
	case []any:
		return len(x) == 1 && x[0] == "$__all"
	}
	return false
}

// allOf returns what Grafana writes for variable n set to All: its custom
// all value as it is (the dashboards' filters have '__all', which
// analytics.All expands to), else every option's value.
func allOf(t *testing.T, d dashboards.Dashboard, n string, v map[string]any) analytics.Value {
	t.Helper()
	allValue, _ := v["allValue"].(string)
	if allValue == "'"+analytics.AllValue+"'" {
		return analytics.All()
	}
	if allValue != "" {
		t.Fatalf("%s: variable %s has the all value %q: the tests know only '%s'", d.File, n, allValue, analytics.AllValue)
	}
	q, _ := v["query"].(string)
	if v["type"] != "custom" || q == "" {
		t.Fatalf("%s: variable %s is All without an all value: its options are known only to Grafana", d.File, n)
	}
	var vs []string
	for _, o := range strings.Split(q, ",") {
		if i := strings.Index(o, " : "); i >= 0 {
			o = o[i+3:]
		}
		vs = append(vs, strings.TrimSpace(o))
	}
	return analytics.Multi(vs...)
}

var relTime = regexp.MustCompile(`^now-(\d+)([mhdwMy])$`)

// timeRange returns the dashboard's default time range.
func timeRange(t *testing.T, d dashboards.Dashboard, now time.Time) (time.Time, time.Time) {
	tm, _ := d.Model["time"].(map[string]any)
	from, _ := tm["from"].(string)
	m := relTime.FindStringSubmatch(from)
	if m == nil || tm["to"] != "now" {
		t.Fatalf("%s: time %v: want now-N… to now", d.File, tm)
	}
	n, _ := strconv.Atoi(m[1])
	var f time.Time
	switch m[2] {
	case "m":
		f = now.Add(-time.Duration(n) * time.Minute)
	case "h":
		f = now.Add(-time.Duration(n) * time.Hour)
	case "d":
		f = now.AddDate(0, 0, -n)
	case "w":
		f = now.AddDate(0, 0, -7*n)
	case "M":
		f = now.AddDate(0, -n, 0)
	case "y":
		f = now.AddDate(-n, 0, 0)
	}
	return f, now
}

// dsQuery runs one panel query through Grafana's /api/ds/query with sql
// as its rawSql.
func dsQuery(t *testing.T, grafana string, target map[string]any, sql string, from, to time.Time, interval time.Duration) ([]dashboards.Frame, error) {
	q := map[string]any{}
	for k, v := range target {
		q[k] = v
	}
	q["rawSql"] = sql
	return admin(t, grafana).Query(context.Background(), q, from, to, interval)
}

func checkFrames(panelType string, frames []dashboards.Frame) error {
	return dashboards.CheckFrames(panelType, frames)
}

// Every ClickHouse panel's query, run through Grafana and its ClickHouse
// plugin against ClickHouse 18.16 loaded with the simulated shop, returns
// rows with the fields its panel type needs; the same SQL, macros expanded
// the same way, runs on ClickHouse 26 (chDB) loaded with the same data and
// returns rows too.
func TestEveryPanelQueryThroughGrafana(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	db := seedClickHouse(t, now)
	grafana := pushAll(t, db)
	ch26 := testenv.ChDB(t)
	for _, q := range seedSQL(now) {
		if _, err := ch26.Query(q, "TSV"); err != nil {
			t.Fatalf("seeding chDB: %v", err)
		}
	}
	n := 0
	for _, d := range embedded(t) {
		vars := varsOf(t, d)
		from, to := timeRange(t, d, now)
		for _, p := range d.Panels() {
			for _, tg := range p.Targets() {
				if uid, _ := dsRefOf(tg, p); uid != dashboards.ClickHouseUID {
					continue
				}
				n++
				name := fmt.Sprintf("%s/%s/%s", d.File, p.Title(), tg["refId"])
				raw, _ := tg["rawSql"].(string)
				sql, err := analytics.ExpandVars(raw, vars)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				interval := time.Hour
				frames, err := dsQuery(t, grafana, tg, sql, from, to, interval)
				if err != nil {
					t.Errorf("%s through Grafana on ClickHouse 18.16: %v\n%s", name, err, sql)
					continue
				}
				if err := checkFrames(p.Type(), frames); err != nil {
					t.Errorf("%s through Grafana on ClickHouse 18.16: %v", name, err)
				}
				full, err := analytics.Expand(raw, analytics.Params{From: from, To: to, Interval: interval, Vars: vars})
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				out, err := ch26.Query(full, "JSONEachRow")
				if err != nil {
					t.Errorf("%s on chDB 26: %v\n%s", name, err, full)
				} else if strings.TrimSpace(out) == "" {
					t.Errorf("%s on chDB 26: no rows", name)
				}
			}
		}
	}
	// The variables' own queries (their choices) run through Grafana too.
	nv := 0
	for _, d := range embedded(t) {
		vars := varsOf(t, d)
		from, to := timeRange(t, d, now)
		for name, v := range d.Variables() {
			if uid, _ := dsRefOf(v, dashboards.Panel{}); v["type"] != "query" || uid != dashboards.ClickHouseUID {
				continue
			}
			raw, _ := v["query"].(string)
			sql, err := analytics.ExpandVars(raw, vars)
			if err != nil {
				t.Errorf("%s: variable %s: %v", d.File, name, err)
				continue
			}
			nv++
			target := map[string]any{"refId": "A", "datasource": v["datasource"], "editorType": "sql", "format": 1, "queryType": "table", "pluginVersion": "4.4.0"}
			frames, err := dsQuery(t, grafana, target, sql, from, to, time.Hour)
			if err == nil {
				err = checkFrames("table", frames)
			}
			if err != nil {
				t.Errorf("%s: variable %s through Grafana: %v\n%s", d.File, name, err, sql)
			}
		}
	}
	if n == 0 {
		t.Fatal("no ClickHouse panel query ran")
	}
	t.Logf("%d panel queries ran through Grafana on 18.16 and on chDB 26, %d variable queries through Grafana", n, nv)
}
