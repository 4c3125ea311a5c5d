// Package clustertest runs the schema and the processor on a real
// ClickHouse cluster: two ClickHouse 18.16 servers and Debian's ZooKeeper
// on loopback, configured as two clusters at once, "two_shards" (2 shards
// of 1 replica) and "two_replicas" (1 shard of 2 replicas).
package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

const (
	partitions = 4
	site       = "shop"
	visitors   = 300
	perVisitor = 5
)

// node is one ClickHouse server of the cluster.
type node struct {
	srv  *devstack.ClickHouse
	conn map[string]driver.Conn // per database
}

// clusterXML is the config both servers share, apart from their macros:
// ZooKeeper, the distributed DDL queue, and the two clusters.
func clusterXML(zk string, tcp, interserver [2]int, i int) string {
	host := func(p int) string {
		return fmt.Sprintf("<replica><host>127.0.0.1</host><port>%d</port></replica>", p)
	}
	zkHost, zkPort, _ := strings.Cut(zk, ":")
	return fmt.Sprintf(`
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>%d</interserver_http_port>
  <zookeeper><node><host>%s</host><port>%s</port></node><session_timeout_ms>30000</session_timeout_ms></zookeeper>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <macros><shard>0%d</shard><replica>node%d</replica><pair>01</pair></macros>
  <remote_servers>
    <two_shards>
      <shard><internal_replication>true</internal_replication>%s</shard>
      <shard><internal_replication>true</internal_replication>%s</shard>
    </two_shards>
    <two_replicas>
      <shard><internal_replication>true</internal_replication>%s%s</shard>
    </two_replicas>
  </remote_servers>`, interserver[i], zkHost, zkPort, i+1, i+1, host(tcp[0]), host(tcp[1]), host(tcp[0]), host(tcp[1]))
}

// startCluster starts ZooKeeper and the two servers; everything stops
// when the test ends.
func startCluster(t *testing.T) [2]*node {
	t.Helper()
	testenv.Integration(t)
	dir := t.TempDir()
	// Generous start deadlines: the JVM and two servers start slowly when
	// the whole test suite shares the machine.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	zk, err := devstack.StartZooKeeper(ctx, devstack.ZooKeeperConfig{Dir: filepath.Join(dir, "zk"), StartTimeout: 90 * time.Second})
	if err != nil {
		t.Fatalf("cannot start ZooKeeper: %v", err)
	}
	t.Cleanup(func() { zk.Stop() })
	// Ports are chosen before the servers start (each config names both);
	// on a busy machine another process may take one meanwhile, so a
	// failed start is tried again with fresh ports, twice at most.
	var nodes [2]*node
	var lastErr error
	for attempt := range 3 {
		var tcp, inter [2]int
		for i := range 2 {
			if tcp[i], err = devstack.FreePort(); err != nil {
				t.Fatal(err)
			}
			if inter[i], err = devstack.FreePort(); err != nil {
				t.Fatal(err)
			}
		}
		var started []*devstack.ClickHouse
		lastErr = nil
		for i := range 2 {
			srv, err := devstack.StartClickHouse(ctx, devstack.ClickHouseConfig{
				Dir: filepath.Join(dir, fmt.Sprintf("ch%d-%d", i+1, attempt)), TCPPort: tcp[i], StartTimeout: time.Minute,
				Extra: clusterXML(zk.Addr, tcp, inter, i),
			})
			if err != nil {
				lastErr = fmt.Errorf("node %d: %w", i+1, err)
				break
			}
			started = append(started, srv)
			nodes[i] = &node{srv: srv, conn: map[string]driver.Conn{}}
		}
		for _, srv := range started {
			t.Cleanup(func() { srv.Stop() })
		}
		if lastErr == nil {
			break
		}
		for _, srv := range started {
			srv.Stop()
		}
		t.Logf("attempt %d: %v", attempt+1, lastErr)
	}
	if lastErr != nil {
		t.Fatalf("cannot start the ClickHouse cluster: %v", lastErr)
	}
	return nodes
}

// open connects to a node's database (created by the migration).
func (n *node) open(t *testing.T, db string) driver.Conn {
	t.Helper()
	if c, ok := n.conn[db]; ok {
		return c
	}
	c, err := clickhouse.Open(context.Background(), clickhouse.Config{Addr: n.srv.Addr, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	n.conn[db] = c
	return c
}

func count(t *testing.T, c driver.Conn, q string) uint64 {
	t.Helper()
	var n uint64
	if err := c.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// workload is visitors x perVisitor page views, one session each, and an
// event per partition far later that closes them.
func workload() []*shoptrail.Event {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var evs []*shoptrail.Event
	for v := range visitors {
		anon := fmt.Sprintf("anon-%04d", v)
		for i := range perVisitor {
			at := t0.Add(time.Duration(v)*time.Second + time.Duration(i)*time.Minute)
			e := &shoptrail.Event{V: shoptrail.EventVersion, Site: site, MessageID: fmt.Sprintf("m-%04d-%d", v, i),
				Type: shoptrail.TypePage, AnonymousID: anon, Timestamp: at, ReceivedAt: at.Add(time.Second)}
			e.Context.Page.Path = fmt.Sprintf("/p/%d", i)
			e.Context.Page.URL = "https://www.shop.example" + e.Context.Page.Path
			evs = append(evs, e)
		}
	}
	// One far later event per partition moves every watermark past them.
	h := &kafka.Hash{}
	seen := map[int]bool{}
	tail := t0.Add(24 * time.Hour)
	for i := 0; len(seen) < partitions; i++ {
		k := fmt.Sprintf("tail-%d", i)
		p := h.Balance(kafka.Message{Key: []byte(k)}, 0, 1, 2, 3)
		if seen[p] {
			continue
		}
		seen[p] = true
		evs = append(evs, &shoptrail.Event{V: shoptrail.EventVersion, Site: site, MessageID: "msg-" + k,
			Type: shoptrail.TypeTrack, Event: "Tail", AnonymousID: k, Timestamp: tail, ReceivedAt: tail})
	}
	return evs
}

func produce(t *testing.T, brokers []string, topic string, evs []*shoptrail.Event) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000}
	defer w.Close()
	msgs := make([]kafka.Message, 0, len(evs))
	for _, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(ev.Key()), Value: b})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatalf("cannot produce: %v", err)
	}
}

// runProcessor runs a processor of a fresh group over the whole topic into
// db through addr until the group has committed every partition's end.
func runProcessor(t *testing.T, brokers []string, topic, group, addr, db string) {
	t.Helper()
	conn, err := clickhouse.Open(context.Background(), clickhouse.Config{Addr: addr, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	p, err := processor.New(processor.Config{
		Brokers: brokers, Topic: topic, GroupID: group, StateTopic: topic + "." + group + ".state",
		BatchSize: 500, BatchInterval: 100 * time.Millisecond, CheckpointInterval: 300 * time.Millisecond,
		IdleAdvance: -1, GroupSessionTimeout: time.Second, RebalanceTimeout: 10 * time.Second,
	}, clickhouse.NewSink(conn, log, reg), log, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	ends, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "group "+group+" to commit every partition's end", func() bool {
		resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2, 3}}})
		if err != nil || resp.Error != nil {
			return false
		}
		got := map[int]int64{}
		for _, p := range resp.Topics[topic] {
			got[p.Partition] = p.CommittedOffset
		}
		for _, po := range ends.Topics[topic] {
			if got[po.Partition] != po.LastOffset {
				return false
			}
		}
		return true
	})
}

// TestCluster migrates a database for each cluster, runs the processor
// into both, then checks that the 2-shard cluster spreads visitors over
// both shards and a Distributed query sees them all, that the replicated
// cluster's two nodes hold the same rows, and that a redelivered topic
// (a second group writing everything again) still collapses.
func TestCluster(t *testing.T) {
	nodes := startCluster(t)
	ctx := context.Background()
	clusters := []struct {
		db string
		cl clickhouse.Cluster
	}{
		{"sharded", clickhouse.Cluster{Name: "two_shards"}},
		// Both nodes are one shard here: the path names the "pair" macro,
		// the same on both, instead of "shard".
		{"replicated", clickhouse.Cluster{Name: "two_replicas", ReplicaPath: "/clickhouse/tables/{pair}/{database}/{table}"}},
	}
	for _, c := range clusters {
		c.cl.Database = c.db
		conn := nodes[0].open(t, c.db)
		applied, err := clickhouse.MigrateEmbeddedCluster(ctx, conn, c.cl)
		if err != nil {
			t.Fatalf("migrate %s: %v", c.cl.Name, err)
		}
		if len(applied) == 0 {
			t.Fatalf("migrate %s applied nothing", c.cl.Name)
		}
		// Again through the other node: schema_migrations is replicated
		// to it, so nothing is applied twice.
		again, err := clickhouse.MigrateEmbeddedCluster(ctx, nodes[1].open(t, c.db), c.cl)
		if err != nil {
			t.Fatalf("second migrate %s: %v", c.cl.Name, err)
		}
		if len(again) != 0 {
			t.Errorf("second migrate of %s through node 2 applied %v again", c.cl.Name, again)
		}
		for i, n := range nodes {
			if got := count(t, n.open(t, c.db), "SELECT count() FROM system.tables WHERE database = '"+c.db+"' AND name = 'events' AND engine = 'Distributed'"); got != 1 {
				t.Fatalf("%s: node %d has no Distributed events table", c.cl.Name, i+1)
			}
		}
	}

	// Materialized views as a later migration might add them: one into a
	// table of its own, one with an inner engine. On the cluster they read
	// each shard's local events.
	views := clickhouse.Migration{Version: 9999, Name: "views", Statements: []string{
		"CREATE TABLE IF NOT EXISTS daily_events (site String, day Date, events UInt64) ENGINE = SummingMergeTree ORDER BY (site, day)",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS daily_events_mv TO daily_events AS SELECT site, toDate(event_time) AS day, count() AS events FROM events GROUP BY site, day",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS daily_visitors ENGINE = AggregatingMergeTree ORDER BY (site, day) AS SELECT site, toDate(event_time) AS day, uniqState(anonymous_id) AS visitors FROM events GROUP BY site, day",
	}}
	ms, err := clickhouse.LoadMigrations(shoptrail.Migrations, shoptrail.MigrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	cms, err := clickhouse.ForCluster(append(ms, views), clickhouse.Cluster{Name: "two_shards", Database: "sharded"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range cms[len(cms)-1].Statements {
		if err := nodes[0].open(t, "sharded").Exec(ctx, st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}

	topic := "events-" + testenv.RandomSuffix()
	b := testenv.Broker(t, devstack.BrokerConfig{Partitions: partitions, Topics: []string{topic},
		Opts: []kfake.Opt{kfake.GroupMinSessionTimeout(100 * time.Millisecond)}})
	evs := workload()
	produce(t, b.Addrs, topic, evs)
	nEvents, nVisitors := uint64(len(evs)), uint64(visitors+partitions)

	both := nodes[0].srv.Addr + "," + nodes[1].srv.Addr
	runProcessor(t, b.Addrs, topic, "g-sharded", both, "sharded")
	runProcessor(t, b.Addrs, topic, "g-replicated", nodes[1].srv.Addr, "replicated")

	t.Run("distributed query sees both shards", func(t *testing.T) {
		var local [2]uint64
		var visitorsOn [2]uint64
		for i, n := range nodes {
			c := n.open(t, "sharded")
			local[i] = count(t, c, "SELECT count() FROM events_local FINAL")
			visitorsOn[i] = count(t, c, "SELECT uniqExact(anonymous_id) FROM events_local")
			if local[i] == 0 {
				t.Errorf("shard %d holds no events: nothing was sharded", i+1)
			}
		}
		c := nodes[0].open(t, "sharded")
		if got := count(t, c, "SELECT count() FROM events FINAL"); got != nEvents || local[0]+local[1] != nEvents {
			t.Errorf("Distributed events FINAL = %d, shards %d + %d, want %d", got, local[0], local[1], nEvents)
		}
		// Sharded by visitor: no visitor is on both shards.
		if visitorsOn[0]+visitorsOn[1] != nVisitors {
			t.Errorf("visitors per shard %d + %d, want %d (each on one shard)", visitorsOn[0], visitorsOn[1], nVisitors)
		}
		if got := count(t, c, "SELECT count() FROM sessions FINAL WHERE site = 'shop' AND events = 5"); got != visitors {
			t.Errorf("Distributed sessions of 5 events = %d, want %d", got, visitors)
		}
		if got := count(t, c, "SELECT count() FROM event_sessions FINAL WHERE status = 'assigned'"); got != visitors*perVisitor {
			t.Errorf("assigned events = %d, want %d", got, visitors*perVisitor)
		}
	})

	t.Run("materialized views aggregate each shard", func(t *testing.T) {
		for i, n := range nodes {
			if got := count(t, n.open(t, "sharded"), "SELECT sum(events) FROM daily_events_local"); got == 0 {
				t.Errorf("shard %d: its view counted no events", i+1)
			}
		}
		c := nodes[0].open(t, "sharded")
		if got := count(t, c, "SELECT sum(events) FROM daily_events"); got != nEvents {
			t.Errorf("sum(events) over the Distributed daily_events = %d, want %d", got, nEvents)
		}
		if got := count(t, c, "SELECT toUInt64(uniqMerge(visitors)) FROM daily_visitors"); got != nVisitors {
			t.Errorf("uniqMerge(visitors) over the Distributed daily_visitors = %d, want %d", got, nVisitors)
		}
	})

	t.Run("replicated table replicates", func(t *testing.T) {
		// The processor wrote through node 2 only; node 1 fetches the parts.
		for i, n := range nodes {
			c := n.open(t, "replicated")
			waitFor(t, 3*time.Minute, fmt.Sprintf("node %d's events_local to hold every event", i+1), func() bool {
				return count(t, c, "SELECT count() FROM events_local FINAL") == nEvents
			})
			// Each table replicates on its own: sessions may follow events.
			waitFor(t, 3*time.Minute, fmt.Sprintf("node %d's sessions_local to hold every session", i+1), func() bool {
				return count(t, c, "SELECT count() FROM sessions_local FINAL") == uint64(visitors)
			})
		}
		if got := count(t, nodes[0].open(t, "replicated"), "SELECT count() FROM system.replicas WHERE database = 'replicated' AND total_replicas = 2 AND active_replicas = 2"); got == 0 {
			t.Error("system.replicas shows no table with 2 active replicas")
		}
	})

	t.Run("redelivered batches collapse", func(t *testing.T) {
		c := nodes[0].open(t, "sharded")
		tables := []string{"events", "sessions", "event_sessions"}
		before := map[string]uint64{}
		for _, tbl := range tables {
			before[tbl] = count(t, c, "SELECT count() FROM "+tbl+" FINAL")
		}
		// A new group reads the whole topic again and writes every row a
		// second time, through node 1 only.
		runProcessor(t, b.Addrs, topic, "g-redelivered", nodes[0].srv.Addr, "sharded")
		// Merge every part on each shard (each is its shard's only
		// replica): copies of a row must meet on one shard to collapse.
		for _, n := range nodes {
			for _, tbl := range tables {
				if err := n.open(t, "sharded").Exec(ctx, "OPTIMIZE TABLE "+tbl+"_local FINAL"); err != nil {
					t.Fatalf("OPTIMIZE %s_local: %v", tbl, err)
				}
			}
		}
		for _, tbl := range tables {
			if got := count(t, c, "SELECT count() FROM "+tbl); got != before[tbl] || got == 0 {
				t.Errorf("after redelivery and merges: %d rows in %s, want %d as before", got, tbl, before[tbl])
			}
		}
		if before["events"] != nEvents {
			t.Errorf("%d events before redelivery, want %d", before["events"], nEvents)
		}
	})
}
