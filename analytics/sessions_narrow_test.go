package analytics_test

import (
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/analytics"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

// TestSessionsNarrow: sources reads sessions_narrow (migration 0045) with
// FINAL, and exit_pages the closed sessions of whole days before the
// range's last two from exit_days (migration 0046) and the rest from
// sessions_narrow FINAL; both count the same as sessions_by_start FINAL:
// sessions written before the migrations are copied and rolled up by them,
// a final row written twice (a redelivered batch) counts once, a
// provisional row replaced by its final row counts as the final one (its
// exit page too), and an open session counts as its latest row.
//
// Site s7, range 11-01 .. 11-06 (exit_days for 11-01 .. 11-04, the raw
// table for 11-05 and 11-06). Before the migrations:
//
//	n1 a 11-02 09:00 Direct         desktop exit /cart      2 pages, engaged, order 30   final (written twice)
//	n2 b 11-02 09:30 Organic Search desktop exit /p/1       1 page so far                provisional
//	n3 c 11-03 14:00 Direct         mobile  exit /          1 page, not engaged          final
//
// After it:
//
//	n1 final again; n2 final: exit /checkout, 3 pages, engaged, order 20;
//	n4 a 11-03 10:00 Direct desktop exit /p/1, provisional, then final exit /c/x, 2 pages (customer u1, enterprise)
//	n5 d 11-05 08:00 Referral desktop exit /, 1 page so far, still open
//	n6 x 11-04 11:00 Direct desktop exit /, a bot, final
//	n7 e 11-05 11:00 Direct mobile exit /c/x, 2 pages, engaged, final (written twice)
//
// Signed up: b on 11-02, e on 11-05, a on 10-20 (before the range).
func TestSessionsNarrow(t *testing.T) {
	ms, err := clickhouse.LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	const cols = "site, session_id, anonymous_id, customer_id, start_time, end_time, channel, device_class, landing_page, exit_page, page_views, is_engaged, orders, revenue, is_bot, is_final"
	eachBackendRaw(t, func(t *testing.T, b backend) {
		apply := func(before bool) { b.migrate(t, ms, 45, before) }
		session := func(rows ...string) {
			sql := "INSERT INTO sessions (" + cols + ") VALUES "
			for i, r := range rows {
				if i > 0 {
					sql += ", "
				}
				sql += "('s7', " + r + ")"
			}
			b.mustExec(t, sql)
		}
		const (
			n1  = `'n1','a','','2026-11-02 09:00:00','2026-11-02 09:20:00','Direct','desktop','/','/cart',2,1,1,30,0,1`
			n2p = `'n2','b','','2026-11-02 09:30:00','2026-11-02 09:31:00','Organic Search','desktop','/p/1','/p/1',1,0,0,0,0,0`
			n2  = `'n2','b','','2026-11-02 09:30:00','2026-11-02 09:50:00','Organic Search','desktop','/p/1','/checkout',3,1,1,20,0,1`
			n3  = `'n3','c','','2026-11-03 14:00:00','2026-11-03 14:00:05','Direct','mobile','/','/',1,0,0,0,0,1`
			n4p = `'n4','a','u1','2026-11-03 10:00:00','2026-11-03 10:01:00','Direct','desktop','/p/1','/p/1',1,0,0,0,0,0`
			n4  = `'n4','a','u1','2026-11-03 10:00:00','2026-11-03 10:20:00','Direct','desktop','/p/1','/c/x',2,1,0,0,0,1`
			n5p = `'n5','d','','2026-11-05 08:00:00','2026-11-05 08:00:00','Referral','desktop','/','/',1,0,0,0,0,0`
			n6  = `'n6','x','','2026-11-04 11:00:00','2026-11-04 11:00:00','Direct','desktop','/','/',1,0,0,0,1,1`
			n7  = `'n7','e','','2026-11-05 11:00:00','2026-11-05 11:05:00','Direct','mobile','/','/c/x',2,1,0,0,0,1`
		)
		apply(true)
		session(n1, n1, n2p)
		session(n3)
		apply(false)
		session(n1, n2) // a redelivered batch, and n2 closing
		session(n4p)
		session(n4, n5p, n6)
		session(n7)
		session(n7)
		b.mustExec(t, "INSERT INTO customers (site, customer_id, first_seen, customer_type, tier, version) VALUES ('s7', 'u1', '2026-11-03 10:00:00', 'enterprise', 'A', 1)")
		b.mustExec(t, `INSERT INTO events (site, message_id, event, anonymous_id, event_time, is_bot) VALUES
			('s7','g1','Signed Up','b','2026-11-02 09:40:00',0), ('s7','g2','Signed Up','e','2026-11-05 11:02:00',0), ('s7','g3','Signed Up','a','2026-10-20 09:00:00',0)`)

		check(t, "sessions_narrow", b.rowsSQL(t, `SELECT count() AS sessions, uniqExact(visitor) AS visitors, countIf(pages = 0) AS bounces
			FROM sessions_narrow FINAL WHERE site = 's7' AND is_bot = 0`), [][]string{{"6", "5", "2"}}, "sessions", "visitors", "bounces")

		check(t, "exit_days", b.rowsSQL(t, `SELECT uniqExactMerge(sessions) AS n, uniqExactMerge(visitors) AS v, uniqExactMergeIf(sessions, bounce = 1) AS b
			FROM exit_days WHERE site = 's7'`), [][]string{{"5", "4", "1"}}, "n", "v", "b") // closed: n1 n2 n3 n4 n7 (not n5, open, nor n6, a bot)

		sixDays := params(day(1), day(7).Add(-time.Second), "site", "s7", "grain", "toStartOfMonth", "breakdown", "channel")
		exits := [][]string{
			{"/", "2", "0.3333", "2", "2"},     // n3, n5 (open, one page so far): both bounces
			{"/c/x", "2", "0.3333", "0", "2"},  // n4 final (not /p/1), n7 once
			{"/cart", "1", "0.1667", "0", "1"}, // n1 once
			{"/checkout", "1", "0.1667", "0", "1"},
		}
		check(t, "exit pages", b.rows(t, "exit_pages", sixDays), exits, "exit_page", "exits", "exit_share", "bounces", "visitors")
		check(t, "direct count", b.rowsSQL(t, `SELECT exit_page, exits, round(exits / 6, 4) AS exit_share, bounces, visitors FROM (
			SELECT exit_page, count() AS exits, countIf(page_views <= 1 AND is_engaged = 0) AS bounces, uniqExact(anonymous_id) AS visitors
			FROM sessions_by_start FINAL WHERE site = 's7' AND is_bot = 0 GROUP BY exit_page) ORDER BY exits DESC, exit_page`),
			exits, "exit_page", "exits", "exit_share", "bounces", "visitors")

		check(t, "sources", b.rows(t, "sources", sixDays), [][]string{
			{"Direct", "3", "4", "1", "1", "30", "7.5"},        // a c e; n1 n3 n4 n7; e signed up (a before the range)
			{"Organic Search", "1", "1", "1", "1", "20", "20"}, // b, n2 final with its order
			{"Referral", "1", "1", "0", "0", "0", "0"},         // d, n5 open
		}, "key", "visitors", "sessions", "registrations", "orders", "revenue", "revenue_per_session")

		mobile := params(day(1), day(7).Add(-time.Second), "site", "s7", "grain", "toStartOfMonth", "breakdown", "channel")
		mobile.Vars["device"] = analytics.Multi("mobile")
		check(t, "exit pages, mobile", b.rows(t, "exit_pages", mobile), [][]string{
			{"/", "1", "0.5", "1", "1"},    // n3
			{"/c/x", "1", "0.5", "0", "1"}, // n7
		}, "exit_page", "exits", "exit_share", "bounces", "visitors")
		enterprise := params(day(1), day(7).Add(-time.Second), "site", "s7", "grain", "toStartOfMonth", "breakdown", "channel")
		enterprise.Vars["customer_type"] = analytics.Multi("enterprise")
		check(t, "exit pages, enterprise", b.rows(t, "exit_pages", enterprise), [][]string{{"/c/x", "1", "1", "0", "1"}}, "exit_page", "exits", "exit_share", "bounces", "visitors") // n4
		check(t, "sources, enterprise", b.rows(t, "sources", enterprise), [][]string{{"Direct", "1", "1", "0", "0"}}, "key", "visitors", "sessions", "registrations", "orders")

		// A range starting within a day: 11-02 09:15 .. 11-05 09:00 by day
		// leaves out n1 (09:00) and n7 (11:00).
		midDay := params(time.Date(2026, 11, 2, 9, 15, 0, 0, time.UTC), time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC),
			"site", "s7", "grain", "toDate", "breakdown", "site")
		check(t, "exit pages from 09:15", b.rows(t, "exit_pages", midDay), [][]string{
			{"/", "2", "0.5", "2", "2"},          // n3 (exit_days), n5 (open)
			{"/c/x", "1", "0.25", "0", "1"},      // n4 (exit_days)
			{"/checkout", "1", "0.25", "0", "1"}, // n2 (11-02 from 09:15, raw)
		}, "exit_page", "exits", "exit_share", "bounces", "visitors")
		check(t, "sources from 09:15", b.rows(t, "sources", midDay), [][]string{
			{"2026-11-02", "1", "1", "1"}, // n2
			{"2026-11-03", "2", "2", "0"}, // n3, n4
			{"2026-11-05", "1", "1", "0"}, // n5
		}, "period", "sessions", "visitors", "registrations")
	})
}
