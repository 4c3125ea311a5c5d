package clickhouse

import (
	"strings"
	"testing"

	"github.com/shoptrail/shoptrail"
)

// TestEveryMigrationRunsOnACluster transforms every embedded migration, so
// a migration added later that cannot be placed on a cluster fails here.
func TestEveryMigrationRunsOnACluster(t *testing.T) {
	ms, err := LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	cms, err := ForCluster(ms, Cluster{Name: "c1", Database: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range cms {
		if len(m.Statements) < len(ms[i].Statements) {
			t.Errorf("migration %04d lost statements", m.Version)
		}
		for _, s := range m.Statements {
			if !strings.Contains(s, " ON CLUSTER c1") && !strings.HasPrefix(strings.ToUpper(s), "INSERT") {
				t.Errorf("migration %04d: statement runs on one node only:\n%s", m.Version, s)
			}
			if strings.Contains(s, "ENGINE = ") && strings.Contains(s, "MergeTree") && !strings.Contains(s, "ENGINE = Replicated") {
				t.Errorf("migration %04d: MergeTree table not replicated:\n%s", m.Version, s)
			}
		}
	}
	// The processor's tables are Distributed ones by the same names.
	all := ""
	for _, m := range cms {
		all += strings.Join(m.Statements, "\n;\n")
	}
	for _, tbl := range []string{"events", "sessions", "event_sessions", "identity_links", "delivery_loss", "dead_letters"} {
		if !strings.Contains(all, "CREATE TABLE IF NOT EXISTS shop."+tbl+" ON CLUSTER c1 AS shop."+tbl+"_local\nENGINE = Distributed(c1, shop, "+tbl+"_local, ") {
			t.Errorf("no Distributed table %s over %s_local", tbl, tbl)
		}
	}
}

func TestClusterTransform(t *testing.T) {
	ms := []Migration{{Version: 1, Name: "x", Statements: []string{
		"CREATE TABLE IF NOT EXISTS events (site String, message_id String, anonymous_id String, t DateTime) ENGINE = ReplacingMergeTree(t) PARTITION BY toYYYYMM(t) ORDER BY (site, message_id)",
		"CREATE TABLE IF NOT EXISTS carts (site String, cart_id String, anonymous_id String, v UInt64) ENGINE = ReplacingMergeTree(v) ORDER BY (site, cart_id)",
		"CREATE TABLE daily (`site` String, day Date, n UInt64, INDEX i n TYPE minmax GRANULARITY 1) ENGINE = SummingMergeTree ORDER BY (site, day) SETTINGS index_granularity = 8192",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS daily_mv TO daily AS SELECT site, toDate(t) AS day, count() AS n FROM events GROUP BY site, day",
		"CREATE MATERIALIZED VIEW m2 ENGINE = AggregatingMergeTree ORDER BY (site) AS SELECT site, uniqState(anonymous_id) AS u FROM shop.events AS e LEFT JOIN carts USING (site) GROUP BY site",
		"CREATE VIEW IF NOT EXISTS v AS SELECT * FROM events",
		"ALTER TABLE events ADD COLUMN x String",
		"ALTER TABLE events DELETE WHERE site = 'a;b'",
		"OPTIMIZE TABLE daily FINAL",
		"DROP TABLE IF EXISTS carts",
		"CREATE TABLE IF NOT EXISTS mem (a String) ENGINE = Memory",
		"INSERT INTO daily SELECT site, today(), 1 FROM events",
		"CREATE TABLE IF NOT EXISTS events_v2 (site String, message_id String, anonymous_id String, t DateTime) ENGINE = ReplacingMergeTree(t) ORDER BY (site, toDate(t), message_id)",
		"RENAME TABLE events TO events_0001, events_v2 TO events",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS after TO daily AS SELECT site, toDate(t) AS day, count() AS n FROM events GROUP BY site, day",
		"CREATE TABLE IF NOT EXISTS sessions_daily (site String, day Date, n UInt64) ENGINE = SummingMergeTree ORDER BY (site, day)",
	}}}
	cms, err := ForCluster(ms, Cluster{Name: "c1", Database: "shop", ReplicaPath: "/ch/{layer}/{shard}/{database}/{table}", ReplicaName: "{host}"})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(cms[0].Statements, "\n;\n")
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS shop.events_local ON CLUSTER c1 (site String, message_id String, anonymous_id String, t DateTime)\nENGINE = ReplicatedReplacingMergeTree('/ch/{layer}/{shard}/shop/events_local', '{host}', t) PARTITION BY toYYYYMM(t) ORDER BY (site, message_id)",
		"CREATE TABLE IF NOT EXISTS shop.events ON CLUSTER c1 AS shop.events_local\nENGINE = Distributed(c1, shop, events_local, cityHash64(site, anonymous_id))",
		// carts: its key does not fix the visitor, so it is sharded by its key.
		"ENGINE = Distributed(c1, shop, carts_local, cityHash64(site, cart_id))",
		"ENGINE = ReplicatedSummingMergeTree('/ch/{layer}/{shard}/shop/daily_local', '{host}') ORDER BY (site, day) SETTINGS index_granularity = 8192",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS shop.daily_mv ON CLUSTER c1 TO shop.daily_local AS SELECT site, toDate(t) AS day, count() AS n FROM shop.events_local GROUP BY site, day",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS shop.m2_local ON CLUSTER c1\nENGINE = ReplicatedAggregatingMergeTree('/ch/{layer}/{shard}/shop/m2_local', '{host}') ORDER BY (site)",
		"FROM shop.events_local AS e LEFT JOIN shop.carts_local USING (site)",
		"ENGINE = Distributed(c1, shop, m2_local, cityHash64(site))",
		"CREATE VIEW IF NOT EXISTS shop.v ON CLUSTER c1 AS SELECT * FROM events",
		"ALTER TABLE shop.events_local ON CLUSTER c1 ADD COLUMN x String",
		"ALTER TABLE shop.events_local ON CLUSTER c1 ADD COLUMN x String\n;\nDROP TABLE IF EXISTS shop.events ON CLUSTER c1\n;\nCREATE TABLE IF NOT EXISTS shop.events ON CLUSTER c1 AS shop.events_local",
		"ALTER TABLE shop.events_local ON CLUSTER c1 DELETE WHERE site = 'a;b'",
		"OPTIMIZE TABLE shop.daily_local ON CLUSTER c1 FINAL",
		"DROP TABLE IF EXISTS shop.carts ON CLUSTER c1",
		"DROP TABLE IF EXISTS shop.carts_local ON CLUSTER c1",
		"CREATE TABLE IF NOT EXISTS shop.mem ON CLUSTER c1 (a String)\nENGINE = Memory",
		"INSERT INTO daily SELECT site, today(), 1 FROM events",
		// A swap: locals renamed at once, Distributed tables made again
		// over them with their own sharding keys.
		"RENAME TABLE shop.events_local TO shop.events_0001_local, shop.events_v2_local TO shop.events_local ON CLUSTER c1",
		"DROP TABLE IF EXISTS shop.events ON CLUSTER c1\n;\nDROP TABLE IF EXISTS shop.events_v2 ON CLUSTER c1",
		"CREATE TABLE IF NOT EXISTS shop.events_0001 ON CLUSTER c1 AS shop.events_0001_local\nENGINE = Distributed(c1, shop, events_0001_local, cityHash64(site, anonymous_id))",
		"CREATE TABLE IF NOT EXISTS shop.events ON CLUSTER c1 AS shop.events_local\nENGINE = Distributed(c1, shop, events_local, cityHash64(site, anonymous_id))",
		"FROM shop.events_local GROUP BY site, day",
		"ENGINE = Distributed(c1, shop, events_v2_local, cityHash64(site, anonymous_id))",
		"ENGINE = Distributed(c1, shop, sessions_daily_local, cityHash64(site, day))",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing:\n%s\n\nin:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ALTER TABLE shop.events ON CLUSTER c1 DELETE") {
		t.Error("a mutation ran on the Distributed table")
	}
}

func TestClusterTransformRefuses(t *testing.T) {
	for _, s := range []string{
		"CREATE TABLE t (a String) ENGINE = ReplicatedMergeTree('/x', 'r') ORDER BY a",
		"CREATE TABLE t ON CLUSTER other (a String) ENGINE = MergeTree ORDER BY a",
		"CREATE TABLE t ENGINE = MergeTree ORDER BY a AS SELECT 1 AS a",
		"CREATE TABLE t (a String) ENGINE = MergeTree",
		"RENAME TABLE a TO b ON CLUSTER x",
		"SET allow_experimental_x = 1",
	} {
		if _, err := ForCluster([]Migration{{Version: 7, Name: "bad", Statements: []string{s}}}, Cluster{Name: "c", Database: "d"}); err == nil {
			t.Errorf("%q was transformed; want an error", s)
		} else if !strings.Contains(err.Error(), "0007_bad") {
			t.Errorf("error %q does not name the migration", err)
		}
	}
	if _, err := ForCluster(nil, Cluster{Name: "bad name", Database: "d"}); err == nil {
		t.Error("a cluster name with a space was accepted")
	}
}
