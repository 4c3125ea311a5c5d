// Package analytics holds the operators' questions as named ClickHouse
// queries and expands them exactly as Grafana's ClickHouse data source
// (grafana-clickhouse-datasource 4.x) does, so that `shoptrail report`, the
// Grafana dashboards and the tests read the same SQL.
//
// # Queries
//
// Each query is one file sql/queries/NAME.sql, embedded in the binary
// (shoptrail.Queries). Its leading comment lines are its documentation; the
// first one is its title. Load returns them all, Get one by name.
//
// # Macros
//
// The data source plugin expands these in its backend; Expand writes the
// same text (seconds since the epoch, UTC):
//
//	$__timeFilter(col)      col >= toDateTime(FROM) AND col <= toDateTime(TO)
//	$__dateFilter(col)      col >= toDate('YYYY-MM-DD') AND col <= toDate('YYYY-MM-DD')
//	$__dateTimeFilter(d, t) (d >= toDate(..) AND d <= toDate(..)) AND (t >= toDateTime(FROM) AND t <= toDateTime(TO)); $__dt is the same
//	$__fromTime             toDateTime(FROM)
//	$__toTime               toDateTime(TO)
//	$__interval_s           the panel's interval in whole seconds, at least 1
//	$__timeInterval(col)    toStartOfInterval(toDateTime(col), INTERVAL N second)
//	$__timeFilter_ms(col), $__fromTime_ms, $__toTime_ms, $__timeInterval_ms(col)
//	                        the millisecond forms (fromUnixTimestamp64Milli, toDateTime64)
//
// ClickHouse 18.16 (the server Debian ships) has neither toStartOfInterval
// nor the DateTime64 functions: the queries here use only $__timeFilter,
// $__dateFilter, $__fromTime, $__toTime and $__interval_s, which run on
// 18.16 and on current ClickHouse alike. To bucket by the panel's interval
// write toDateTime(intDiv(toUInt32(col), $__interval_s) * $__interval_s).
//
// # Template variables
//
// Grafana replaces dashboard variables before the plugin sees the query:
// $name, ${name} and [[name]]. A single-value variable is written as it is
// (so quote it in the SQL: site = '${site}'); a multi-value variable as a
// list of quoted values, 'a','b' (so write channel IN (${channel})). The
// formats ${name:csv} (a,b), ${name:singlequote} ('a','b') and
// ${name:raw} are honoured too. Names starting with "__" are left to the
// macros. Unlike Grafana, Expand refuses a variable that is not set and a
// value holding a quote or a backslash, so no value can change the SQL
// around it.
//
// The queries of this package use these variables:
//
//	${site}       the site id (single)
//	${grain}      the period: toDate (day), toMonday (week), toStartOfMonth,
//	              toStartOfQuarter, toStartOfYear (single; see Grains)
//	${breakdown}  the column rows are grouped by (single; see Breakdowns);
//	              "site" gives one row per period
//	${steps}      for funnel_steps: the chosen event names in order (multi)
//	${window_s}   for funnel_steps: the conversion window in seconds (single)
//	${segment}    for the customer-stage queries: customer_type, tier,
//	              first_channel or site (single)
//	${channel}, ${device}, ${customer_type}, ${tier}
//	              filters (multi; see Filters): the session's channel and
//	              device class, the customer's type and value tier
//
// A filter's value All is the single value '__all' (AllValue): the
// dashboards set it as the variables' custom "all value", which Grafana
// writes as it is, and the queries read it as "no filter":
// ('__all' IN (${channel}) OR channel IN (${channel})). The All function
// gives the Value that expands to the same text.
package analytics

import (
	"fmt"
	"io/fs"
	"math"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail"
)

// Query is one named query.
type Query struct {
	Name  string
	Title string
	// Doc is the query's leading comment, without the comment markers.
	Doc string
	// SQL is the query text with its macros and variables unexpanded.
	SQL string
	// Vars lists the template variables the query uses, sorted.
	Vars []string
}

var queryFile = regexp.MustCompile(`^([a-z0-9_]+)\.sql$`)

// Load returns the embedded queries, sorted by name.
func Load() ([]Query, error) { return LoadFS(shoptrail.Queries, shoptrail.QueriesDir) }

// LoadFS reads the NAME.sql files of dir in fsys.
func LoadFS(fsys fs.FS, dir string) ([]Query, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read queries: %w", err)
	}
	var qs []Query
	for _, e := range entries {
		m := queryFile.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("query file %q is not named name.sql", e.Name())
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("cannot read query %q: %w", e.Name(), err)
		}
		qs = append(qs, parse(m[1], string(body)))
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].Name < qs[j].Name })
	return qs, nil
}

func parse(name, body string) Query {
	q := Query{Name: name}
	var doc []string
	lines := strings.Split(body, "\n")
	i := 0
	for ; i < len(lines); i++ {
		t := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(t, "--") {
			break
		}
		doc = append(doc, strings.TrimSpace(strings.TrimPrefix(t, "--")))
	}
	q.Doc = strings.TrimSpace(strings.Join(doc, "\n"))
	if len(doc) > 0 {
		q.Title = strings.TrimSuffix(doc[0], ".")
	}
	q.SQL = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(body), ";"))
	seen := map[string]bool{}
	for _, m := range varRef.FindAllStringSubmatch(q.SQL, -1) {
		n := firstNonEmpty(m[1], m[2], m[4])
		if n != "" && !strings.HasPrefix(n, "__") && !seen[n] {
			seen[n] = true
			q.Vars = append(q.Vars, n)
		}
	}
	sort.Strings(q.Vars)
	return q
}

// Get returns the embedded query called name.
func Get(name string) (Query, error) {
	qs, err := Load()
	if err != nil {
		return Query{}, err
	}
	for _, q := range qs {
		if q.Name == name {
			return q, nil
		}
	}
	return Query{}, fmt.Errorf("no query called %q", name)
}

// Value is the value of a template variable: Multi tells whether it is a
// multi-value variable (written as a list of quoted values) or a single one
// (written as it is).
type Value struct {
	Values []string
	Multi  bool
}

// Single is the value of a single-value variable.
func Single(v string) Value { return Value{Values: []string{v}} }

// Multi is the value of a multi-value variable.
func Multi(vs ...string) Value { return Value{Values: vs, Multi: true} }

// AllValue is the value the filter variables (Filters) hold when All is
// chosen; the dashboards' variables have "'" + AllValue + "'" as their
// custom all value.
const AllValue = "__all"

// Filters are the multi-value filter variables some queries honour; a
// query that uses one uses them all, except the carts queries (no device).
var Filters = []string{"channel", "device", "customer_type", "tier"}

// All is a filter variable's value for All: it expands to '__all', as
// Grafana writes the custom all value.
func All() Value { return Multi(AllValue) }

// Params is what Grafana hands a panel's query: the time range, the
// interval, and the dashboard's variables.
type Params struct {
	From, To time.Time
	// Interval is the panel's interval ($__interval_s); zero means 1 s.
	Interval time.Duration
	Vars     map[string]Value
}

// Expand replaces the template variables and then the macros of sql, as
// Grafana's front end and the plugin's back end do in turn.
func (q Query) Expand(p Params) (string, error) { return Expand(q.SQL, p) }

// Expand replaces the template variables and then the macros of sql.
func Expand(sql string, p Params) (string, error) {
	s, err := expandVars(sql, p.Vars)
	if err != nil {
		return "", err
	}
	return expandMacros(s, p)
}

// varRef is Grafana's variable syntax: $name, [[name]] or [[name:fmt]],
// ${name} or ${name:fmt}.
var varRef = regexp.MustCompile(`\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}`)

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func expandVars(sql string, vars map[string]Value) (string, error) {
	var err error
	out := varRef.ReplaceAllStringFunc(sql, func(ref string) string {
		m := varRef.FindStringSubmatch(ref)
		name := firstNonEmpty(m[1], m[2], m[4])
		if strings.HasPrefix(name, "__") {
			return ref // a macro or a Grafana global: the plugin's back end expands it
		}
		format := firstNonEmpty(m[3], m[5])
		v, ok := vars[name]
		if !ok {
			if err == nil {
				err = fmt.Errorf("template variable %q is not set", name)
			}
			return ref
		}
		for _, s := range v.Values {
			if strings.ContainsAny(s, `'\`) {
				if err == nil {
					err = fmt.Errorf("template variable %q: value %q holds a quote or a backslash", name, s)
				}
				return ref
			}
		}
		switch format {
		case "":
			if v.Multi {
				return "'" + strings.Join(v.Values, "','") + "'"
			}
			return strings.Join(v.Values, ",")
		case "singlequote", "sqlstring":
			return "'" + strings.Join(v.Values, "','") + "'"
		case "csv", "raw":
			return strings.Join(v.Values, ",")
		}
		if err == nil {
			err = fmt.Errorf("template variable %q: format %q is not supported (use csv, singlequote, sqlstring or raw)", name, format)
		}
		return ref
	})
	return out, err
}

func dateTime(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
func dateTime64(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli())
}
func date(t time.Time) string { return fmt.Sprintf("toDate('%s')", t.UTC().Format("2006-01-02")) }

// macros are the plugin's, by name, with the number of arguments each takes
// (-1: none, and no parentheses needed).
var macros = map[string]struct {
	args int
	fn   func(p Params, args []string) string
}{
	"fromTime":    {-1, func(p Params, _ []string) string { return dateTime(p.From) }},
	"toTime":      {-1, func(p Params, _ []string) string { return dateTime(p.To) }},
	"fromTime_ms": {-1, func(p Params, _ []string) string { return dateTime64(p.From) }},
	"toTime_ms":   {-1, func(p Params, _ []string) string { return dateTime64(p.To) }},
	"interval_s":  {-1, func(p Params, _ []string) string { return fmt.Sprintf("%d", intervalSeconds(p)) }},
	"timeFilter": {1, func(p Params, a []string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", a[0], dateTime(p.From), a[0], dateTime(p.To))
	}},
	"timeFilter_ms": {1, func(p Params, a []string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", a[0], dateTime64(p.From), a[0], dateTime64(p.To))
	}},
	"dateFilter": {1, func(p Params, a []string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", a[0], date(p.From), a[0], date(p.To))
	}},
	"dateTimeFilter": {2, dateTimeFilter},
	"dt":             {2, dateTimeFilter},
	"timeInterval": {1, func(p Params, a []string) string {
		return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", a[0], intervalSeconds(p))
	}},
	"timeInterval_ms": {1, func(p Params, a []string) string {
		ms := int64(math.Max(float64(p.Interval.Milliseconds()), 1))
		return fmt.Sprintf("toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)", a[0], ms)
	}},
}

func dateTimeFilter(p Params, a []string) string {
	return fmt.Sprintf("(%s >= %s AND %s <= %s) AND (%s >= %s AND %s <= %s)",
		a[0], date(p.From), a[0], date(p.To), a[1], dateTime(p.From), a[1], dateTime(p.To))
}

func intervalSeconds(p Params) int64 {
	return int64(math.Max(p.Interval.Seconds(), 1))
}

// expandMacros replaces every $__name or $__name(args) the plugin knows.
func expandMacros(sql string, p Params) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(sql, "$__")
		if i < 0 {
			b.WriteString(sql)
			return b.String(), nil
		}
		b.WriteString(sql[:i])
		rest := sql[i+3:]
		n := 0
		for n < len(rest) && (rest[n] == '_' || rest[n] >= 'a' && rest[n] <= 'z' || rest[n] >= 'A' && rest[n] <= 'Z' || rest[n] >= '0' && rest[n] <= '9') {
			n++
		}
		name := rest[:n]
		m, ok := macros[name]
		if !ok {
			return "", fmt.Errorf("unknown macro $__%s", name)
		}
		rest = rest[n:]
		var args []string
		if strings.HasPrefix(rest, "(") {
			depth, start, end := 0, 1, -1
			for j := 0; j < len(rest) && end < 0; j++ {
				switch rest[j] {
				case '(':
					depth++
				case ')':
					depth--
					if depth == 0 {
						args = append(args, strings.TrimSpace(rest[start:j]))
						end = j
					}
				case ',':
					if depth == 1 {
						args = append(args, strings.TrimSpace(rest[start:j]))
						start = j + 1
					}
				}
			}
			if end < 0 {
				return "", fmt.Errorf("macro $__%s: unbalanced parentheses", name)
			}
			rest = rest[end+1:]
			if len(args) == 1 && args[0] == "" {
				args = nil
			}
		}
		if m.args >= 0 && len(args) != m.args {
			return "", fmt.Errorf("macro $__%s: expected %d argument(s), received %d", name, m.args, len(args))
		}
		b.WriteString(m.fn(p, args))
		sql = rest
	}
}

// ExpandVars replaces only the template variables of sql, as Grafana's
// front end does before it hands a panel's query to the data source: the
// result still holds the macros, for the plugin's back end (or Expand).
func ExpandVars(sql string, vars map[string]Value) (string, error) { return expandVars(sql, vars) }
