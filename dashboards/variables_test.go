package dashboards_test

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/analytics"
	"github.com/shoptrail/shoptrail/dashboards"
)

// chCount runs a query returning one number on the seeded ClickHouse
// directly (its HTTP interface), macros already expanded.
func chCount(t *testing.T, db seeded, sql string) float64 {
	t.Helper()
	u := "http://" + db.httpAddr + "/?" + url.Values{"database": {db.database}}.Encode()
	resp, err := http.Post(u, "text/plain", strings.NewReader(sql))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("ClickHouse: %d %s\n%s", resp.StatusCode, b, sql)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		t.Fatalf("ClickHouse answered %q to\n%s", b, sql)
	}
	return f
}

// column returns the values of the named field over the frames.
func column(t *testing.T, frames []dashboards.Frame, name string) []any {
	t.Helper()
	var out []any
	found := false
	for _, f := range frames {
		for i, fl := range f.Fields {
			if fl.Name == name && i < len(f.Values) {
				out = append(out, f.Values[i]...)
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("no field %q in the result", name)
	}
	return out
}

func sum(t *testing.T, frames []dashboards.Frame, name string) float64 {
	t.Helper()
	s := 0.0
	for _, v := range column(t, frames, name) {
		if f, ok := v.(float64); ok {
			s += f
		}
	}
	return s
}

// panelTarget returns the first query of the panel titled title.
func panelTarget(t *testing.T, file, title string) (dashboards.Dashboard, map[string]any) {
	t.Helper()
	for _, d := range embedded(t) {
		if d.File != file {
			continue
		}
		for _, p := range d.Panels() {
			if p.Title() == title && len(p.Targets()) > 0 {
				return d, p.Targets()[0]
			}
		}
	}
	t.Fatalf("%s has no panel %q", file, title)
	return dashboards.Dashboard{}, nil
}

// The filter variables (channel, device, customer type, tier) set to
// specific values and to All: each panel query, its variables written as
// Grafana's front end writes them (the custom all value '__all' for All)
// and run through Grafana's /api/ds/query on ClickHouse 18.16, gives the
// numbers a direct count on ClickHouse gives.
func TestFilterVariablesThroughGrafana(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	db := seedClickHouse(t, now)
	grafana := pushAll(t, db)
	all := analytics.All()
	m := analytics.Multi

	type filters struct{ channel, device, ctype, tier analytics.Value }
	cases := []struct {
		name string
		f    filters
		// where is the condition on sessions_by_start / cart_abandonments
		// / customers the filters stand for.
		sessions, carts, customers string
	}{
		{"all", filters{all, all, all, all}, "1", "1", "1"},
		{"one channel", filters{m("Email"), all, all, all}, "channel = 'Email'", "channel = 'Email'", "1"},
		{"two channels and a device", filters{m("Direct", "Organic Search"), m("mobile"), all, all},
			"channel IN ('Direct', 'Organic Search') AND device_class = 'mobile'", "channel IN ('Direct', 'Organic Search')", "1"},
		{"tier A", filters{all, all, all, m("A")},
			"customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = 'shop' AND tier = 'A')", "tier = 'A'", "tier = 'A'"},
		{"enterprise in tiers B and C", filters{all, m("desktop"), m("enterprise"), m("B", "C")},
			"device_class = 'desktop' AND customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = 'shop' AND customer_type = 'enterprise' AND tier IN ('B', 'C'))",
			"tier IN ('B', 'C') AND customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = 'shop' AND customer_type = 'enterprise')",
			"customer_type = 'enterprise' AND tier IN ('B', 'C')"},
	}
	funnelD, funnelT := panelTarget(t, "funnel.json", "Funnel per period and ${breakdown}")
	cartsD, cartsT := panelTarget(t, "carts.json", "Abandoned carts to act on")
	custD, custT := panelTarget(t, "customers.json", "Dormant and lost customers to win back")
	run := func(d dashboards.Dashboard, target map[string]any, vars map[string]analytics.Value, from, to time.Time) []dashboards.Frame {
		t.Helper()
		raw, _ := target["rawSql"].(string)
		sql, err := analytics.ExpandVars(raw, vars)
		if err != nil {
			t.Fatalf("%s: %v", d.File, err)
		}
		frames, err := dsQuery(t, grafana, target, sql, from, to, time.Hour)
		if err != nil {
			t.Fatalf("%s through Grafana: %v\n%s", d.File, err, sql)
		}
		return frames
	}
	span := func(from, to time.Time) string {
		return fmt.Sprintf("toDateTime(%d) AND toDateTime(%d)", from.Unix(), to.Unix())
	}
	nonEmpty := map[string]int{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := func(d dashboards.Dashboard) map[string]analytics.Value {
				vars := varsOf(t, d)
				for n, v := range map[string]analytics.Value{"channel": c.f.channel, "device": c.f.device, "customer_type": c.f.ctype, "tier": c.f.tier} {
					if _, ok := vars[n]; ok {
						vars[n] = v
					}
				}
				return vars
			}

			// Funnel: sessions per day, one row per day (breakdown none).
			vars := set(funnelD)
			vars["breakdown"], vars["grain"] = analytics.Single("site"), analytics.Single("toDate")
			from, to := timeRange(t, funnelD, now)
			got := sum(t, run(funnelD, funnelT, vars, from, to), "sessions")
			want := chCount(t, db, "SELECT count() FROM sessions_by_start FINAL WHERE site = 'shop' AND is_bot = 0 AND start_time BETWEEN "+span(from, to)+" AND "+c.sessions)
			if got != want {
				t.Errorf("funnel sessions: %v through Grafana, %v counted on ClickHouse", got, want)
			}
			nonEmpty["funnel"] += int(want)

			// Carts: the abandoned carts not recovered, their value, and the
			// companies of their customers.
			vars = set(cartsD)
			from, to = timeRange(t, cartsD, now)
			frames := run(cartsD, cartsT, vars, from, to)
			cond := "site = 'shop' AND recovered = 0 AND abandoned_at BETWEEN " + span(from, to) + " AND " + c.carts
			n := chCount(t, db, "SELECT count() FROM cart_abandonments FINAL WHERE "+cond)
			if n > 100 {
				n = 100 // the list's limit
			} else {
				if got, want := sum(t, frames, "value"), chCount(t, db, "SELECT sum(value) FROM cart_abandonments FINAL WHERE "+cond); math.Abs(got-want) > 0.01 {
					t.Errorf("abandoned carts' value: %v through Grafana, %v on ClickHouse", got, want)
				}
				companies := 0
				for _, v := range column(t, frames, "company") {
					if v != "" && v != nil {
						companies++
					}
				}
				want := chCount(t, db, "SELECT count() FROM cart_abandonments FINAL WHERE "+cond+
					" AND customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = 'shop' AND company != '')")
				if float64(companies) != want {
					t.Errorf("abandoned carts with a company: %d through Grafana, %v on ClickHouse", companies, want)
				}
				nonEmpty["company"] += companies
			}
			if rows := len(column(t, frames, "customer")); float64(rows) != n {
				t.Errorf("abandoned carts: %d rows through Grafana, %v on ClickHouse", rows, n)
			}
			nonEmpty["carts"] += int(n)
			carts := n

			// Dormant and lost customers.
			vars = set(custD)
			from, to = timeRange(t, custD, now)
			frames = run(custD, custT, vars, from, to)
			cond = "site = 'shop' AND stage IN ('dormant', 'lost') AND " + c.customers
			n = math.Min(chCount(t, db, "SELECT count() FROM customers FINAL WHERE "+cond), 500)
			if rows := len(column(t, frames, "customer")); float64(rows) != n {
				t.Errorf("dormant and lost customers: %d rows through Grafana, %v on ClickHouse", rows, n)
			}
			if n < 500 {
				if got, want := sum(t, frames, "net_revenue"), chCount(t, db, "SELECT sum(round(net_revenue, 2)) FROM customers FINAL WHERE "+cond); math.Abs(got-want) > 0.01 {
					t.Errorf("dormant and lost customers' net revenue: %v through Grafana, %v on ClickHouse", got, want)
				}
			}
			nonEmpty["customers"] += int(n)

			// The customer stage's flows and the customers by tier.
			ofCustomers := "customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = 'shop' AND " + c.customers + ")"
			_, flowsT := panelTarget(t, "customers.json", "Stage flows per ${grain}")
			got = sum(t, run(custD, flowsT, vars, from, to), "changes")
			want = chCount(t, db, "SELECT uniqExact(transition_id) FROM customer_transitions WHERE site = 'shop' AND kind = 'stage' AND at BETWEEN "+span(from, to)+" AND "+ofCustomers)
			if got != want || want == 0 {
				t.Errorf("stage flows: %v changes through Grafana, %v on ClickHouse", got, want)
			}
			_, tiersT := panelTarget(t, "customers.json", "Dormant and lost by tier: the range's changes")
			got = sum(t, run(custD, tiersT, vars, from, to), "customers")
			want = chCount(t, db, fmt.Sprintf("SELECT count() FROM customers FINAL WHERE site = 'shop' AND first_seen <= toDateTime(%d) AND %s", to.Unix(), c.customers))
			if got != want || want == 0 {
				t.Errorf("customers by tier: %v through Grafana, %v on ClickHouse", got, want)
			}
			t.Logf("sessions %v, abandoned carts listed %v, dormant or lost customers listed %v", want, carts, n)
		})
	}
	// The funnel broken down by the customers' tier and type: each key's
	// sessions are those of the customers of that tier or type.
	for _, bd := range []struct{ breakdown, key string }{{"tier", "A"}, {"tier", ""}, {"customer_type", "enterprise"}} {
		vars := varsOf(t, funnelD)
		vars["breakdown"], vars["grain"] = analytics.Single(bd.breakdown), analytics.Single("toStartOfYear")
		from, to := timeRange(t, funnelD, now)
		frames := run(funnelD, funnelT, vars, from, to)
		keys, sessions := column(t, frames, "key"), column(t, frames, "sessions")
		got := 0.0
		for i, k := range keys {
			if k == bd.key {
				got += sessions[i].(float64)
			}
		}
		cond := fmt.Sprintf("customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = 'shop' AND customer_id != '' AND %s = '%s')", bd.breakdown, bd.key)
		if bd.key == "" { // no customer, or one without a value
			cond = fmt.Sprintf("NOT customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = 'shop' AND customer_id != '' AND %s != '')", bd.breakdown)
		}
		want := chCount(t, db, "SELECT count() FROM sessions_by_start FINAL WHERE site = 'shop' AND is_bot = 0 AND start_time BETWEEN "+span(from, to)+" AND "+cond)
		if got != want || want == 0 {
			t.Errorf("funnel by %s, %q: %v sessions through Grafana, %v on ClickHouse", bd.breakdown, bd.key, got, want)
		}
	}
	for _, k := range []string{"funnel", "carts", "company", "customers"} {
		if nonEmpty[k] == 0 {
			t.Errorf("%s: every case found nothing: the seed does not exercise it", k)
		}
	}
}
