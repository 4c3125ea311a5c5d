package alert

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
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
		"done-none": doneSQL(nil),
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

// The look-up finds earlier outcomes by alert id and running cooldowns by
// subject, ids with quotes and backslashes included, and nothing else.
func TestLookupFindsOutcomesAndCooldowns(t *testing.T) {
	testenv.Integration(t)
	_, conn := testenv.Database(t)
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rec := newRecorder(conn, nil, newMetrics(prometheus.NewRegistry()), time.Second)
	rows := []Row{
		{AlertID: `msg_'q\`, Subject: "c1", Site: "s", Rule: "r", Status: StatusSent, Final: true, SignalAt: at},
		{AlertID: "msg_cool", SignalID: "sig", Subject: `c'2`, Site: "s", Rule: "r", Status: StatusSent, Final: true, SignalAt: at, CooldownUntil: at.Add(time.Hour)},
		{AlertID: "msg_retry", Subject: "c3", Site: "s", Rule: "r", Status: StatusRetrying, SignalAt: at},
		{AlertID: "msg_other", Subject: "c4", Site: "s", Rule: "r", Status: StatusSent, Final: true, SignalAt: at, CooldownUntil: at.Add(time.Hour)},
	}
	if err := rec.insertDeliveries(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	a := &Alerter{conn: conn, cd: newCooldowns()}
	done, err := a.runLookup(context.Background(), lookupSQL([]string{`msg_'q\`, "msg_retry", "msg_none"}, []string{`c'2`, "c3"}, at.Add(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	// msg_cool comes back for its subject's cooldown; msg_retry is not final.
	if len(done) != 2 || !done[`msg_'q\`] || !done["msg_cool"] {
		t.Errorf("done %v", done)
	}
	if !a.cd.active(rules.CooldownKey("s", "r", `c'2`), at.Add(30*time.Minute), 1) {
		t.Error("the cooldown of c'2 was not read")
	}
	if a.cd.active(rules.CooldownKey("s", "r", "c4"), at.Add(30*time.Minute), 1) {
		t.Error("c4's cooldown was read, though not asked for")
	}
	if done, err := a.runLookup(context.Background(), doneSQL([]string{"msg_other"})); err != nil || len(done) != 1 {
		t.Errorf("done %v, %v", done, err)
	}
}

// A batch of many decisions (1,000 signals, several rules and
// destinations each) is looked up in pieces: one query for all would
// exceed ClickHouse's max_query_size (256 KiB) and be refused every time.
func TestLookupOfALargeBatch(t *testing.T) {
	testenv.Integration(t)
	_, conn := testenv.Database(t)
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rec := newRecorder(conn, nil, newMetrics(prometheus.NewRegistry()), time.Second)
	var ids, subjects []string
	for i := range 8000 {
		ids = append(ids, rules.AlertID(fmt.Sprint("signal-", i), "rule", "dest"))
		subjects = append(subjects, fmt.Sprintf("customer-%08d-with-a-long-stitched-id", i))
	}
	if err := rec.insertDeliveries(context.Background(), []Row{
		{AlertID: ids[7999], Subject: subjects[7999], Site: "s", Rule: "r", Status: StatusSent, Final: true, SignalAt: at},
	}); err != nil {
		t.Fatal(err)
	}
	a := &Alerter{conn: conn, cd: newCooldowns(), log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done, err := a.lookup(ctx, ids, subjects, at.Add(-time.Hour))
	if err != nil || len(done) != 1 || !done[ids[7999]] {
		t.Errorf("done %v, %v", done, err)
	}
}
