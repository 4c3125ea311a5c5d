// Package dashboards holds shoptrail's Grafana dashboards (the JSON files
// in this folder) and puts them into a Grafana: the data sources, the folder
// "shoptrail" and every dashboard, idempotently by uid (Push), and brings
// edits made in Grafana's UI back into the files (Pull). The files are kept
// normalised (Normalize), so a pull right after a push changes nothing.
package dashboards

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shoptrail/shoptrail/analytics"
)

// Embedded holds the dashboards as committed, for file provisioning and
// tests.
//
//go:embed *.json
var Embedded embed.FS

// Data source uids and types the dashboards refer to.
const (
	ClickHouseUID  = "shoptrail-clickhouse"
	ClickHouseType = "grafana-clickhouse-datasource"
	PrometheusUID  = "shoptrail-prometheus"
	PrometheusType = "prometheus"
	// FolderUID and FolderTitle name the folder every dashboard goes into.
	FolderUID   = "shoptrail"
	FolderTitle = "shoptrail"
)

// Dashboard is one dashboard file.
type Dashboard struct {
	// File is the file's name (e.g. overview.json).
	File string
	// Model is the dashboard's JSON, numbers as json.Number.
	Model map[string]any
}

// UID returns the dashboard's uid.
func (d Dashboard) UID() string { s, _ := d.Model["uid"].(string); return s }

// Title returns the dashboard's title.
func (d Dashboard) Title() string { s, _ := d.Model["title"].(string); return s }

// Load reads every *.json of fsys (for a folder: os.DirFS(dir)), sorted by
// name. Every dashboard needs a uid and a title, and uids are unique.
func Load(fsys fs.FS) ([]Dashboard, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Dashboard
	seen := map[string]string{}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		m, err := decode(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		d := Dashboard{File: n, Model: m}
		if d.UID() == "" || d.Title() == "" {
			return nil, fmt.Errorf("%s: a dashboard needs a uid and a title", n)
		}
		if prev, ok := seen[d.UID()]; ok {
			return nil, fmt.Errorf("%s: uid %q is also the uid of %s", n, d.UID(), prev)
		}
		seen[d.UID()] = n
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, errors.New("no dashboard (*.json) found")
	}
	return out, nil
}

// LoadDir reads the dashboards of a folder.
func LoadDir(dir string) ([]Dashboard, error) {
	ds, err := Load(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("dashboards in %s: %w", dir, err)
	}
	return ds, nil
}

func decode(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON: data after the dashboard")
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// instanceKeys are the fields a Grafana instance sets on its copy of a
// dashboard: they say nothing about the dashboard itself.
var instanceKeys = []string{"id", "version", "iteration"}

// Normalize returns a dashboard's JSON in the form the files keep: without
// the fields one Grafana instance sets (id, version), keys sorted, two-space
// indentation, no HTML escaping, a final newline.
func Normalize(model map[string]any) ([]byte, error) {
	m := make(map[string]any, len(model))
	for k, v := range model {
		m[k] = v
	}
	for _, k := range instanceKeys {
		delete(m, k)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Equal reports whether two dashboard models are the same dashboard
// (ignoring the fields Normalize drops).
func Equal(a, b map[string]any) bool {
	x, err1 := Normalize(a)
	y, err2 := Normalize(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// fileName returns the file name for a dashboard pulled from Grafana that
// has no file yet: its uid without the "shoptrail-" prefix.
func fileName(uid string) string {
	n := strings.TrimPrefix(uid, "shoptrail-")
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, n)
	return filepath.Clean(n + ".json")
}

// RefreshQueries sets the rawSql of every ClickHouse query of d that is
// not word for word one of the named queries qs to the named query it came
// from: the one with the same first line (its title), else the one sharing
// the most lines with it (at least half of them), as after a query file was
// edited. It returns how many it changed.
func RefreshQueries(d Dashboard, qs []analytics.Query) int {
	exact := map[string]bool{}
	byLine := map[string]string{}
	for _, q := range qs {
		exact[q.SQL] = true
		byLine[firstLine(q.SQL)] = q.SQL
	}
	n := 0
	for _, p := range d.Panels() {
		for _, t := range p.Targets() {
			uid, _ := dsRef(t["datasource"])
			if uid == "" {
				uid, _ = p.DataSource()
			}
			if uid != ClickHouseUID {
				continue
			}
			raw, _ := t["rawSql"].(string)
			if exact[raw] {
				continue
			}
			sql, ok := byLine[firstLine(raw)]
			if !ok {
				sql, ok = mostAlike(raw, qs)
			}
			if ok {
				t["rawSql"] = sql
				n++
			}
		}
	}
	return n
}

// mostAlike returns the SQL of the query sharing the most lines with raw,
// if it shares at least half of raw's lines.
func mostAlike(raw string, qs []analytics.Query) (string, bool) {
	lines := map[string]bool{}
	for _, l := range strings.Split(raw, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines[l] = true
		}
	}
	best, bestN := "", 0
	for _, q := range qs {
		n := 0
		for _, l := range strings.Split(q.SQL, "\n") {
			if lines[strings.TrimSpace(l)] {
				n++
			}
		}
		if n > bestN {
			best, bestN = q.SQL, n
		}
	}
	return best, bestN > 0 && bestN*2 >= len(lines)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Current returns the dashboards of fsys with every ClickHouse panel's SQL
// set to its named query as sql/queries holds it now (RefreshQueries): what
// push, `shoptrail dev` and the tests use, so a query edited since the files
// were last formatted is still served word for word. stale counts the
// panels whose file lags (`shoptrail dashboards fmt` writes them).
func Current(fsys fs.FS) (ds []Dashboard, stale int, err error) {
	ds, err = Load(fsys)
	if err != nil {
		return nil, 0, err
	}
	qs, err := analytics.Load()
	if err != nil {
		return nil, 0, err
	}
	for _, d := range ds {
		stale += RefreshQueries(d, qs)
	}
	return ds, stale, nil
}

// WriteDir writes the dashboards, normalised, into dir (created if
// missing), each under its file name.
func WriteDir(dir string, ds []Dashboard) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range ds {
		b, err := Normalize(d.Model)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, d.File), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
