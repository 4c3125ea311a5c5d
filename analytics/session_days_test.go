package analytics_test

import (
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/analytics"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

// TestSessionDays: sessions and landing_pages read the closed sessions of
// whole days before the range's last two from session_days (migration
// 0044) and the rest from sessions_by_start FINAL, and count the same as a
// direct count over sessions_by_start FINAL: sessions written before the
// migration are rolled up by it, a final row written twice (a redelivered
// batch) counts once, a provisional row replaced by its final row counts
// as the final one, and an open session on the range's last days counts.
//
// Site s6, range 11-01 .. 11-06 (session_days for 11-01 .. 11-04, the raw
// table for 11-05 and 11-06). Before the migration:
//
//	q1 a 11-02 09:00 Direct         /     2 pages, engaged, order 30.5   final (written twice)
//	q2 b 11-02 09:30 Organic Search /p/1  1 page so far                  provisional
//	q3 c 11-03 14:00 Direct         /     1 page, not engaged, returning final
//
// After it:
//
//	q1 final again; q2 final: 3 pages, engaged, order 20;
//	q4 a 11-03 10:00 Direct /p/1 1 page, provisional, then final engaged (customer u1, enterprise)
//	q5 d 11-05 08:00 Referral /  1 page so far, still open
//	q6 x 11-04 11:00 Direct /    a bot, final
//	q7 e 11-05 11:00 Direct /c/x 2 pages, engaged, final (written twice)
func TestSessionDays(t *testing.T) {
	ms, err := clickhouse.LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	const cols = "site, session_id, anonymous_id, customer_id, start_time, channel, landing_page, page_views, is_engaged, is_returning, orders, revenue, is_bot, is_final"
	eachBackendRaw(t, func(t *testing.T, b backend) {
		apply := func(before bool) { b.migrate(t, ms, 44, before) }
		session := func(rows ...string) {
			sql := "INSERT INTO sessions (" + cols + ") VALUES "
			for i, r := range rows {
				if i > 0 {
					sql += ", "
				}
				sql += "('s6', " + r + ")"
			}
			b.mustExec(t, sql)
		}
		const (
			q1  = `'q1','a','','2026-11-02 09:00:00','Direct','/',2,1,0,1,30.5,0,1`
			q2p = `'q2','b','','2026-11-02 09:30:00','Organic Search','/p/1',1,0,0,0,0,0,0`
			q2  = `'q2','b','','2026-11-02 09:30:00','Organic Search','/p/1',3,1,0,1,20,0,1`
			q3  = `'q3','c','','2026-11-03 14:00:00','Direct','/',1,0,1,0,0,0,1`
			q4p = `'q4','a','u1','2026-11-03 10:00:00','Direct','/p/1',1,0,0,0,0,0,0`
			q4  = `'q4','a','u1','2026-11-03 10:00:00','Direct','/p/1',1,1,0,0,0,0,1`
			q5p = `'q5','d','','2026-11-05 08:00:00','Referral','/',1,0,0,0,0,0,0`
			q6  = `'q6','x','','2026-11-04 11:00:00','Direct','/',1,0,0,0,0,1,1`
			q7  = `'q7','e','','2026-11-05 11:00:00','Direct','/c/x',2,1,0,0,0,0,1`
		)
		apply(true)
		session(q1, q1, q2p)
		session(q3)
		apply(false)
		session(q1, q2) // a redelivered batch, and q2 closing
		session(q4p)
		session(q4, q5p, q6)
		session(q7)
		session(q7)
		b.mustExec(t, "INSERT INTO customers (site, customer_id, first_seen, customer_type, tier, version) VALUES ('s6', 'u1', '2026-11-03 10:00:00', 'enterprise', 'A', 1)")

		sixDays := params(day(1), day(7).Add(-time.Second), "site", "s6", "grain", "toStartOfMonth", "breakdown", "site")
		// q1 q2 q3 q4 q5 q7 by a b c a d e; bounces q3 and q5 (open, one
		// page so far); second clicks q1 q2 q7; orders q1 q2; c returning.
		want := [][]string{{"5", "4", "1", "6", "2", "3", "2"}}
		check(t, "sessions", b.rows(t, "sessions", sixDays), want, "visitors", "new_visitors", "returning_visitors", "sessions", "bounces", "second_clicks", "order_sessions")
		check(t, "direct count", b.rowsSQL(t, `SELECT uniqExact(anonymous_id) AS visitors, uniqExactIf(anonymous_id, is_returning = 0) AS new_visitors,
			uniqExactIf(anonymous_id, is_returning = 1) AS returning_visitors, count() AS sessions, countIf(page_views <= 1 AND is_engaged = 0) AS bounces,
			countIf(page_views >= 2) AS second_clicks, countIf(orders > 0) AS order_sessions
			FROM sessions_by_start FINAL WHERE site = 's6' AND is_bot = 0`), want, "visitors", "new_visitors", "returning_visitors", "sessions", "bounces", "second_clicks", "order_sessions")
		check(t, "session_days", b.rowsSQL(t, `SELECT uniqExactMerge(sessions) AS sessions, uniqExactMerge(visitors) AS visitors
			FROM session_days WHERE site = 's6'`), [][]string{{"5", "4"}}, "sessions", "visitors") // closed: q1 q2 q3 q4 q7 (not q5, open, nor q6, a bot)

		check(t, "landing pages", b.rows(t, "landing_pages", sixDays), [][]string{
			{"/", "3", "3", "0.6667", "1", "30.5"}, // q1 (its order once), q3, q5
			{"/p/1", "2", "2", "0", "1", "20"},     // q2 final, q4 final
			{"/c/x", "1", "1", "0", "0", "0"},      // q7 once
		}, "landing_page", "sessions", "visitors", "bounce_rate", "order_sessions", "revenue")

		// Grafana's range starting within a day: 11-02 09:15 .. 11-06 12:00
		// by day. q1 (09:00) is before it but counts for 11-02 as a whole,
		// the previous period of 11-03.
		midDay := params(time.Date(2026, 11, 2, 9, 15, 0, 0, time.UTC), time.Date(2026, 11, 6, 12, 0, 0, 0, time.UTC),
			"site", "s6", "grain", "toDate", "breakdown", "site")
		check(t, "sessions from 09:15", b.rows(t, "sessions", midDay), [][]string{
			{"2026-11-02", "1", "1", "0", "0", "NULL"}, // q2
			{"2026-11-03", "2", "2", "1", "2", "0"},    // q3, q4 (a bounce: q3); 11-02 held q1 and q2
			{"2026-11-05", "2", "2", "1", "0", "NULL"}, // q5, q7
		}, "period", "sessions", "visitors", "bounces", "prev_sessions", "sessions_growth")
		check(t, "landing pages from 09:15", b.rows(t, "landing_pages", midDay), [][]string{
			{"/", "2", "2", "1", "0", "0"},     // q3, q5
			{"/p/1", "2", "2", "0", "1", "20"}, // q2, q4
			{"/c/x", "1", "1", "0", "0", "0"},  // q7
		}, "landing_page", "sessions", "visitors", "bounce_rate", "order_sessions", "revenue")

		// A customer filter reads every day from the raw table: q4 only.
		enterprise := params(day(1), day(7).Add(-time.Second), "site", "s6", "grain", "toStartOfMonth", "breakdown", "channel")
		enterprise.Vars["customer_type"] = analytics.Multi("enterprise")
		check(t, "enterprise", b.rows(t, "sessions", enterprise), [][]string{{"Direct", "1", "1", "0"}}, "key", "sessions", "visitors", "bounces")
		// funnel joins customers only for a breakdown by their type or tier.
		byType := params(day(1), day(7).Add(-time.Second), "site", "s6", "grain", "toStartOfMonth", "breakdown", "customer_type")
		check(t, "funnel by customer type", b.rows(t, "funnel", byType), [][]string{{"", "5"}, {"enterprise", "1"}}, "key", "sessions")
		byChannel := params(day(1), day(7).Add(-time.Second), "site", "s6", "grain", "toStartOfMonth", "breakdown", "channel")
		check(t, "funnel by channel", b.rows(t, "funnel", byChannel), [][]string{{"Direct", "4"}, {"Organic Search", "1"}, {"Referral", "1"}}, "key", "sessions")
	})
}
