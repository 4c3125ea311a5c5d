package dashboards_test

import (
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/shoptrail/shoptrail/analytics"
	"github.com/shoptrail/shoptrail/dashboards"
)

// embedded returns the committed dashboards as push serves them: each
// ClickHouse panel with its named query's current SQL.
func embedded(t *testing.T) []dashboards.Dashboard {
	t.Helper()
	ds, _, err := dashboards.Current(dashboards.Embedded)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// committed returns the dashboards exactly as the files hold them.
func committed(t *testing.T) []dashboards.Dashboard {
	t.Helper()
	ds, err := dashboards.Load(dashboards.Embedded)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestDashboardsAreValid(t *testing.T) {
	for _, d := range embedded(t) {
		if err := dashboards.Validate(d); err != nil {
			t.Errorf("%v", err)
		}
		if tags, _ := d.Model["tags"].([]any); len(tags) == 0 || tags[0] != "shoptrail" {
			t.Errorf("%s: tags %v, want shoptrail first", d.File, d.Model["tags"])
		}
		if !strings.HasPrefix(d.UID(), "shoptrail-") {
			t.Errorf("%s: uid %q, want shoptrail-…", d.File, d.UID())
		}
	}
}

// The validator finds what it promises to find.
func TestValidateFindsProblems(t *testing.T) {
	base := committed(t)[0]
	cases := map[string]func(m map[string]any){
		"has the id of panel": func(m map[string]any) {
			ps := m["panels"].([]any)
			ps[2].(map[string]any)["id"] = ps[1].(map[string]any)["id"]
		},
		"overlaps panel": func(m map[string]any) {
			ps := m["panels"].([]any)
			ps[2].(map[string]any)["gridPos"] = ps[1].(map[string]any)["gridPos"]
		},
		"x + w <= 24": func(m map[string]any) {
			ps := m["panels"].([]any)
			ps[1].(map[string]any)["gridPos"] = map[string]any{"x": 20.0, "y": 0.0, "w": 8.0, "h": 4.0}
		},
		"neither push nor the provisioning files create": func(m map[string]any) {
			ps := m["panels"].([]any)
			ps[1].(map[string]any)["datasource"] = map[string]any{"type": "prometheus", "uid": "elsewhere"}
		},
		"does not define": func(m map[string]any) {
			ps := m["panels"].([]any)
			ps[1].(map[string]any)["title"] = "Sessions on $nosuchvar"
		},
		"has no description": func(m map[string]any) {
			ps := m["panels"].([]any)
			delete(ps[1].(map[string]any), "description")
		},
	}
	for want, mutate := range cases {
		d, err := dashboards.Load(dashboards.Embedded)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range d {
			if x.UID() == base.UID() {
				mutate(x.Model)
				err := dashboards.Validate(x)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("mutation %q: Validate = %v", want, err)
				}
			}
		}
	}
}

// The committed files are normalised, so push and pull round-trip them.
func TestFilesAreNormalised(t *testing.T) {
	for _, d := range committed(t) {
		b, _ := fs.ReadFile(dashboards.Embedded, d.File)
		n, err := dashboards.Normalize(d.Model)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != string(n) {
			t.Errorf("%s is not normalised: run `go run ./cmd/shoptrail dashboards fmt`", d.File)
		}
	}
}

// Every ClickHouse panel reads one of the named queries of sql/queries,
// word for word, as push and dev serve it, so dashboards, `shoptrail report`
// and the tests read the same SQL. A file may lag a query edited since it
// was formatted (logged; `shoptrail dashboards fmt` writes the query in),
// but each panel must come from a named query.
func TestPanelsUseNamedQueries(t *testing.T) {
	qs, err := analytics.Load()
	if err != nil {
		t.Fatal(err)
	}
	bySQL := map[string]string{}
	for _, q := range qs {
		bySQL[q.SQL] = q.Name
	}
	n := 0
	for _, d := range embedded(t) {
		for _, p := range d.Panels() {
			for _, tg := range p.Targets() {
				uid, _ := dsRefOf(tg, p)
				if uid != dashboards.ClickHouseUID {
					continue
				}
				n++
				sql, _ := tg["rawSql"].(string)
				if _, ok := bySQL[sql]; !ok {
					t.Errorf("%s panel %q: its SQL comes from none of the named queries in sql/queries (move SQL edited in Grafana into its sql/queries file):\n%s", d.File, p.Title(), firstLine(sql))
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no ClickHouse panel found")
	}
	if _, stale, err := dashboards.Current(dashboards.Embedded); err != nil {
		t.Fatal(err)
	} else if stale > 0 {
		t.Logf("%d panels' SQL in the files lags its named query: run `go run ./cmd/shoptrail dashboards fmt`", stale)
	}
}

func dsRefOf(target map[string]any, p dashboards.Panel) (string, string) {
	if m, ok := target["datasource"].(map[string]any); ok {
		u, _ := m["uid"].(string)
		ty, _ := m["type"].(string)
		if u != "" {
			return u, ty
		}
	}
	return p.DataSource()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

var _ = os.Getenv

// fmt refreshes a panel's SQL from its named query when the query changed.
func TestRefreshQueries(t *testing.T) {
	qs, err := analytics.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range embedded(t) {
		changed := 0
		for _, p := range d.Panels() {
			for _, tg := range p.Targets() {
				if sql, ok := tg["rawSql"].(string); ok {
					if changed%2 == 0 {
						tg["rawSql"] = firstLine(sql) + "\nSELECT 1 -- an older version of the query"
					} else { // the title line changed, the body did not
						tg["rawSql"] = "-- an older title" + strings.TrimPrefix(sql, firstLine(sql))
					}
					changed++
				}
			}
		}
		if n := dashboards.RefreshQueries(d, qs); n != changed {
			t.Errorf("%s: refreshed %d of %d queries", d.File, n, changed)
		}
		if n := dashboards.RefreshQueries(d, qs); n != 0 {
			t.Errorf("%s: a second refresh changed %d", d.File, n)
		}
	}
}
