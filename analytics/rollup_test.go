package analytics_test

import (
	"testing"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

// TestRollupsMoveForward: events written before the rollups' migrations
// (0041, 0042, 0043) are rolled up by them, events written after go through the
// materialized views, and events written twice across both (a redelivery)
// count once, as in a direct count over the raw tables; the session
// queries beside them count provisional rows replaced by final ones and
// sessions still open once.
//
// Site s5 on 11-02. Before the migrations:
//
//	session r1 a 10:00 Direct         / -> /p/1  2 pages, engaged, order 50   final (written twice)
//	session r2 b 10:30 Organic Search /p/1       1 page, not engaged          final
//	session r3 c 11:00 Direct         /          1 page so far                provisional
//	events: a views / (e1), /p/1 by a link from / (e2), signs up as u1 and
//	orders o1 (a linked to u1); c views / (e5); a sees banner spring/hero
//	(v1) and clicks it (k1) before ordering.
//
// After them:
//
//	session r1 final again; r3 final: 3 pages, engaged, exits on /c/x;
//	session r4 d 12:00 Direct / 1 page so far, still open;
//	events: e2 and o1 again; b views / (e3), /c/x by a link from it (e4),
//	carts (b2); k1 again; b sees spring/hero twice (v2, v3) and
//	spring/side (v4), a bot sees spring/hero (v5).
func TestRollupsMoveForward(t *testing.T) {
	ms, err := clickhouse.LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	const cols = "site, session_id, anonymous_id, start_time, channel, landing_page, exit_page, page_views, is_engaged, orders, revenue, is_final"
	const evCols = "site, message_id, type, event, anonymous_id, user_id, event_time, page_path, page_url, page_referrer, order_id"
	eachBackendRaw(t, func(t *testing.T, b backend) {
		apply := func(before bool) { b.migrate(t, ms, 41, before) }
		session := func(r string) { b.mustExec(t, "INSERT INTO sessions ("+cols+") VALUES ('s5', "+r+")") }
		event := func(r string) { b.mustExec(t, "INSERT INTO events ("+evCols+") VALUES ('s5', "+r+")") }
		promo := func(r string) {
			b.mustExec(t, "INSERT INTO events (site, message_id, type, event, anonymous_id, event_time, promotion_id, creative, is_bot) VALUES ('s5', "+r+")")
		}
		apply(true)
		session(`'r1','a','2026-11-02 10:00:00','Direct','/','/p/1',2,1,1,50,1`)
		session(`'r1','a','2026-11-02 10:00:00','Direct','/','/p/1',2,1,1,50,1`)
		session(`'r2','b','2026-11-02 10:30:00','Organic Search','/p/1','/p/1',1,0,0,0,1`)
		session(`'r3','c','2026-11-02 11:00:00','Direct','/','/',1,0,0,0,0`)
		event(`'e1','page','','a','','2026-11-02 10:00:00','/','https://shop.example/','',''`)
		event(`'e2','page','','a','','2026-11-02 10:01:00','/p/1','https://shop.example/p/1','https://shop.example/',''`)
		event(`'s1','track','Signed Up','a','u1','2026-11-02 10:02:00','/p/1','https://shop.example/p/1','',''`)
		event(`'o1','track','Order Completed','a','u1','2026-11-02 10:05:00','/checkout','https://shop.example/checkout','','o1'`)
		event(`'e5','page','','c','','2026-11-02 11:00:00','/','https://shop.example/','',''`)
		promo(`'v1','track','Promotion Viewed','a','2026-11-02 10:00:30','spring','hero',0`)
		promo(`'k1','track','Promotion Clicked','a','2026-11-02 10:00:40','spring','hero',0`)
		b.mustExec(t, "INSERT INTO identity_links (site, anonymous_id, customer_id, first_seen) VALUES ('s5', 'a', 'u1', '2026-11-02 10:02:00')")
		apply(false)
		session(`'r1','a','2026-11-02 10:00:00','Direct','/','/p/1',2,1,1,50,1`)
		session(`'r3','c','2026-11-02 11:00:00','Direct','/','/c/x',3,1,0,0,1`)
		session(`'r4','d','2026-11-02 12:00:00','Direct','/','/',1,0,0,0,0`)
		event(`'e2','page','','a','','2026-11-02 10:01:00','/p/1','https://shop.example/p/1','https://shop.example/',''`)
		event(`'o1','track','Order Completed','a','u1','2026-11-02 10:05:00','/checkout','https://shop.example/checkout','','o1'`)
		event(`'e3','page','','b','','2026-11-02 10:30:00','/','https://shop.example/','',''`)
		event(`'e4','page','','b','','2026-11-02 10:31:00','/c/x','https://shop.example/c/x','https://shop.example/',''`)
		event(`'b2','track','Product Added','b','','2026-11-02 10:32:00','/c/x','https://shop.example/c/x','',''`)
		promo(`'k1','track','Promotion Clicked','a','2026-11-02 10:00:40','spring','hero',0`)
		promo(`'v2','track','Promotion Viewed','b','2026-11-02 10:30:10','spring','hero',0`)
		promo(`'v3','track','Promotion Viewed','b','2026-11-02 11:30:10','spring','hero',0`)
		promo(`'v4','track','Promotion Viewed','b','2026-11-02 11:30:10','spring','side',0`)
		promo(`'v5','track','Promotion Viewed','x','2026-11-02 11:40:00','spring','hero',1`)

		nov2 := params(day(2), day(3).Add(-1), "site", "s5", "grain", "toDate", "breakdown", "site", "page", "/")
		// r1 r2 r3 r4 once each; bounces r2 and r4 (open, one page so far);
		// second clicks r1 r3 (r3's final row, not its provisional one).
		check(t, "sessions", b.rows(t, "sessions", nov2), [][]string{{"4", "4", "2", "2", "1"}},
			"visitors", "sessions", "bounces", "second_clicks", "order_sessions")
		check(t, "direct count", b.rowsSQL(t, `SELECT uniqExact(anonymous_id) AS v, count() AS s,
			countIf(page_views <= 1 AND is_engaged = 0) AS b, countIf(page_views >= 2) AS sc, countIf(orders > 0) AS os
			FROM sessions_by_start FINAL WHERE site = 's5'`), [][]string{{"4", "4", "2", "2", "1"}}, "v", "s", "b", "sc", "os")
		check(t, "by channel", b.rows(t, "sessions", params(day(2), day(3).Add(-1), "site", "s5", "grain", "toDate", "breakdown", "channel")), [][]string{
			{"Direct", "3"}, {"Organic Search", "1"},
		}, "key", "sessions")
		check(t, "landing pages", b.rows(t, "landing_pages", nov2), [][]string{
			{"/", "3", "3", "0.3333", "1", "50"}, // r1 (its order once), r3, r4
			{"/p/1", "1", "1", "1", "0", "0"},    // r2
		}, "landing_page", "sessions", "visitors", "bounce_rate", "order_sessions", "revenue")
		check(t, "exit pages", b.rows(t, "exit_pages", nov2), [][]string{
			{"/p/1", "2", "0.5", "1", "2"},  // r1, r2 (a bounce)
			{"/", "1", "0.25", "1", "1"},    // r4 so far
			{"/c/x", "1", "0.25", "0", "1"}, // r3 once closed
		}, "exit_page", "exits", "exit_share", "bounces", "visitors")
		check(t, "page flow", b.rows(t, "page_flow", nov2), [][]string{
			{"(exit)", "1", "NULL"}, // three views of / (e1 e3 e5) less two links from it
			{"/c/x", "1", "1"},      // e4
			{"/p/1", "1", "1"},      // e2, written twice
		}, "next_page", "views", "visitors")
		// Views of / counted directly: e1 e3 e5; links from it: e2 e4.
		check(t, "page flow direct", b.rowsSQL(t, `SELECT uniqExactIf(message_id, page_path = '/') AS views,
			uniqExactIf(message_id, page_referrer = 'https://shop.example/') AS links FROM events WHERE site = 's5' AND type = 'page'`),
			[][]string{{"3", "2"}}, "views", "links")
		// spring/hero: v1 v2 v3 by a and b (v5 a bot's), k1 by a (written
		// twice), who then ordered o1 (written twice) for 0; spring/side: v4.
		check(t, "banners", b.rows(t, "banners", nov2), [][]string{
			{"spring", "hero", "3", "2", "1", "1", "0.3333", "1"},
			{"spring", "side", "1", "1", "0", "0", "0", "0"},
		}, "promotion_id", "creative", "impressions", "viewers", "clicks", "clickers", "ctr", "orders")
		check(t, "banners direct", b.rowsSQL(t, `SELECT creative, uniqExactIf(message_id, event = 'Promotion Viewed') AS i,
			uniqExactIf(message_id, event = 'Promotion Clicked') AS c FROM events WHERE site = 's5' AND is_bot = 0 AND promotion_id != ''
			GROUP BY creative ORDER BY creative`), [][]string{{"hero", "3", "1"}, {"side", "1", "0"}}, "creative", "i", "c")
		check(t, "stage pyramid", b.rows(t, "stage_pyramid", nov2), [][]string{
			{"stranger", "1"},   // c
			{"potential", "1"},  // b carted
			{"first-time", "1"}, // a as u1: o1 once
		}, "stage", "persons")
	})
}
