package dashboards

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Panel is one panel of a dashboard (rows' nested panels included).
type Panel struct {
	Dashboard string
	Model     map[string]any
}

// ID returns the panel's id.
func (p Panel) ID() int64 { return intOf(p.Model["id"]) }

// Title returns the panel's title.
func (p Panel) Title() string { s, _ := p.Model["title"].(string); return s }

// Type returns the panel's type (timeseries, table, row...).
func (p Panel) Type() string { s, _ := p.Model["type"].(string); return s }

// Targets returns the panel's queries.
func (p Panel) Targets() []map[string]any { return maps(p.Model["targets"]) }

// DataSource returns the panel's data source uid and type.
func (p Panel) DataSource() (uid, typ string) { return dsRef(p.Model["datasource"]) }

func maps(v any) []map[string]any {
	a, _ := v.([]any)
	var out []map[string]any
	for _, x := range a {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func dsRef(v any) (uid, typ string) {
	switch d := v.(type) {
	case map[string]any:
		uid, _ = d["uid"].(string)
		typ, _ = d["type"].(string)
	case string:
		uid = d
	}
	return uid, typ
}

// Panels returns the dashboard's panels, those inside rows included, in
// order.
func (d Dashboard) Panels() []Panel {
	var out []Panel
	for _, p := range maps(d.Model["panels"]) {
		out = append(out, Panel{Dashboard: d.UID(), Model: p})
		for _, c := range maps(p["panels"]) {
			out = append(out, Panel{Dashboard: d.UID(), Model: c})
		}
	}
	return out
}

// Variables returns the dashboard's template variables by name.
func (d Dashboard) Variables() map[string]map[string]any {
	t, _ := d.Model["templating"].(map[string]any)
	out := map[string]map[string]any{}
	for _, v := range maps(t["list"]) {
		if n, _ := v["name"].(string); n != "" {
			out[n] = v
		}
	}
	return out
}

// knownDataSources are the data sources a dashboard may refer to: push and
// the provisioning files create them.
var knownDataSources = map[string]string{ClickHouseUID: ClickHouseType, PrometheusUID: PrometheusType}

// varRef is Grafana's variable syntax ($name, ${name}, ${name:fmt},
// [[name]]).
var varRef = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)`)

// builtinVars are Grafana's own variables and the plugin's macros.
func builtinVar(name string) bool { return strings.HasPrefix(name, "__") }

// Validate checks a dashboard's structure: panel ids unique, grid
// positions inside the 24 columns and not overlapping, every data source
// reference resolvable (one of the data sources push creates, or a
// variable), every variable used defined, every panel with a title and a
// description, every query with a unique refId. It returns every problem
// found, joined.
func Validate(d Dashboard) error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{d.File}, a...)...))
	}
	if v := intOf(d.Model["schemaVersion"]); v < 30 || v > 38 {
		bad("schemaVersion %d: want 30..38 (classic JSON dashboards Grafana 10 reads)", v)
	}
	vars := d.Variables()
	used := map[string]bool{}
	checkVars := func(where, s string) {
		for _, m := range varRef.FindAllStringSubmatch(s, -1) {
			n := m[1] + m[2] + m[3]
			if builtinVar(n) {
				continue
			}
			used[n] = true
			if _, ok := vars[n]; !ok {
				bad("%s uses variable $%s, which the dashboard does not define", where, n)
			}
		}
	}
	checkDS := func(where string, v any) {
		uid, typ := dsRef(v)
		if uid == "" {
			return
		}
		if strings.HasPrefix(uid, "$") || strings.HasPrefix(uid, "${") {
			checkVars(where+" data source", uid)
			return
		}
		want, ok := knownDataSources[uid]
		if !ok {
			bad("%s refers to data source %q, which neither push nor the provisioning files create", where, uid)
		} else if typ != "" && typ != want {
			bad("%s refers to data source %q as type %q, want %q", where, uid, typ, want)
		}
	}
	for n, v := range vars {
		checkDS("variable "+n, v["datasource"])
		if q, ok := v["query"].(string); ok && v["type"] == "query" {
			checkVars("variable "+n, q)
		}
	}
	ids := map[int64]string{}
	type rect struct {
		x, y, w, h int64
		title      string
	}
	var rects []rect
	for _, p := range d.Panels() {
		where := fmt.Sprintf("panel %d %q", p.ID(), p.Title())
		if p.ID() <= 0 {
			bad("%s has no id", where)
		} else if prev, dup := ids[p.ID()]; dup {
			bad("%s has the id of panel %q", where, prev)
		}
		ids[p.ID()] = p.Title()
		if p.Title() == "" {
			bad("%s has no title", where)
		}
		checkVars(where+" title", p.Title())
		if p.Type() != "row" {
			if desc, _ := p.Model["description"].(string); strings.TrimSpace(desc) == "" {
				bad("%s has no description", where)
			}
			if len(p.Targets()) == 0 {
				bad("%s has no query", where)
			}
		}
		g, _ := p.Model["gridPos"].(map[string]any)
		r := rect{intOf(g["x"]), intOf(g["y"]), intOf(g["w"]), intOf(g["h"]), p.Title()}
		if g == nil || r.w <= 0 || r.h <= 0 || r.x < 0 || r.y < 0 || r.x+r.w > 24 {
			bad("%s has grid position %v: want x >= 0, y >= 0, w, h > 0 and x + w <= 24", where, g)
		}
		for _, o := range rects {
			if r.x < o.x+o.w && o.x < r.x+r.w && r.y < o.y+o.h && o.y < r.y+r.h {
				bad("%s overlaps panel %q", where, o.title)
			}
		}
		rects = append(rects, r)
		checkDS(where, p.Model["datasource"])
		refs := map[string]bool{}
		for _, t := range p.Targets() {
			ref, _ := t["refId"].(string)
			if ref == "" || refs[ref] {
				bad("%s has a query without a unique refId", where)
			}
			refs[ref] = true
			checkDS(where+" query "+ref, t["datasource"])
			for _, k := range []string{"rawSql", "expr", "legendFormat"} {
				if s, ok := t[k].(string); ok {
					checkVars(where+" query "+ref, s)
				}
			}
		}
		for _, tr := range maps(p.Model["transformations"]) {
			b := fmt.Sprint(tr["options"])
			checkVars(where+" transformation", b)
		}
	}
	for n := range vars {
		if !used[n] {
			bad("variable $%s is defined but no panel uses it", n)
		}
	}
	return errors.Join(errs...)
}
