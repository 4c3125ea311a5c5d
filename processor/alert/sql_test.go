package alert

import (
	"context"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/internal/testenv"
)

// Every statement the alerter sends runs on ClickHouse 18.16 (the test
// server) and on current ClickHouse (chDB), over the migrated schema.
func TestSQLRunsOnBothClickHouses(t *testing.T) {
	testenv.Integration(t)
	now := time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)
	funnel, products, sources := windowsSQL("shop-'1", now, 4, 24*time.Hour)
	visitors, views, returning := hotLeadSQL("shop-1", now.Add(-24*time.Hour), now)
	stmts := map[string]string{
		"lookup":    lookupSQL([]string{"msg_a", `msg_'b\`}, []string{"c1"}, now.Add(-48*time.Hour)),
		"done":      doneSQL([]string{"msg_a"}),
		"cooldowns": cooldownsSQL(now),
		"digest":    digestEntriesSQL("dormant", now),
		"sites":     activeSitesSQL(now),
		"funnel":    funnel,
		"products":  products,
		"sources":   sources,
		"visitors":  visitors,
		"views":     views,
		"returning": returning,
		"insert": `INSERT INTO alert_deliveries (recorded_at, alert_id, signal_id, signal_type, site, rule, subject,
abandonment_id, destination, attempt, status, final, http_status, answer, latency_ms, held_out, follow_up, signal_at,
cooldown_until, payload, alerter) VALUES (toDateTime(1773150000), 'a', 's', 't', 'x', 'r', 'c', '', 'd', 1, 'sent', 1, 200, '', 5, 0, '', toDateTime(1773150000), toDateTime(0), '', 'al')`,
	}
	_, conn := testenv.Database(t)
	ch26 := testenv.ChDB(t)
	for name, q := range stmts {
		// On 18.16 the native protocol takes inserts as data blocks
		// (PrepareBatch, which every integration test here uses).
		if name == "insert" {
			if _, err := ch26.Query(q, "TSV"); err != nil {
				t.Errorf("%s on chDB 26: %v\n%s", name, err, q)
			}
			continue
		}
		if err := conn.Exec(context.Background(), q); err != nil {
			t.Errorf("%s on ClickHouse 18.16: %v\n%s", name, err, q)
		}
		if _, err := ch26.Query(q, "TSV"); err != nil {
			t.Errorf("%s on chDB 26: %v\n%s", name, err, q)
		}
	}
}
