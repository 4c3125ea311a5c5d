// Package testenv gives integration tests real servers: one ClickHouse server
// per test binary (a fresh database per test) and a fresh in-process Kafka
// broker per test. A server that cannot start fails the test with the reason;
// nothing is silently skipped (only -short skips, and CI never passes it).
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

var (
	chOnce   sync.Once
	chServer *devstack.ClickHouse
	chDir    string
	chErr    error
)

// Main runs the tests of a package and then stops the shared servers. Call
// it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if chServer != nil {
		chServer.Stop()
	}
	if chDir != "" {
		os.RemoveAll(chDir)
	}
	os.Exit(code)
}

// Integration skips the test under -short and marks it as one that needs
// real servers.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs real servers (run without -short)")
	}
}

// ClickHouse returns the package's ClickHouse server, starting it on first
// use. The server lives until Main stops it.
func ClickHouse(t testing.TB) *devstack.ClickHouse {
	t.Helper()
	Integration(t)
	chOnce.Do(func() {
		chDir, chErr = newClickHouseDir()
		if chErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// BENCH_CH_LOG: the pipeline benchmark reports each table's share
		// of the server's work from system.query_log and part_log.
		chServer, chErr = devstack.StartClickHouse(ctx, devstack.ClickHouseConfig{Dir: chDir, LogQueries: os.Getenv("BENCH_CH_LOG") != ""})
	})
	if chErr != nil {
		t.Fatalf("cannot start the test ClickHouse server: %v", chErr)
	}
	return chServer
}

// Database creates a database with a random name on the package's ClickHouse
// server, applies every migration to it, and drops it when the test ends.
func Database(t testing.TB) (clickhouse.Config, driver.Conn) {
	t.Helper()
	srv := ClickHouse(t)
	cfg := clickhouse.Config{Addr: srv.Addr, Database: "test_" + RandomSuffix()}
	ctx := context.Background()
	conn, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("cannot open test database: %v", err)
	}
	if _, err := clickhouse.MigrateEmbedded(ctx, conn); err != nil {
		t.Fatalf("cannot migrate test database: %v", err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database)
		conn.Close()
	})
	return cfg, conn
}

// Broker starts an in-process Kafka broker for the test and closes it when
// the test ends.
func Broker(t testing.TB, cfg devstack.BrokerConfig) *devstack.Broker {
	t.Helper()
	Integration(t)
	b, err := devstack.StartBroker(cfg)
	if err != nil {
		t.Fatalf("cannot start the test Kafka broker: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// RandomSuffix returns 8 random hex characters for names of databases,
// topics and groups.
func RandomSuffix() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// Grafana starts the shared relocatable Grafana build (see
// devstack.FindGrafanaDist) for the test, unpacked into the module's
// .cache/grafana, with the provisioning folder prov (empty: none), and stops
// it when the test ends. Where the build is absent the test is skipped with
// the reason, except in CI (CI=true), where its absence fails the test.
func Grafana(t testing.TB, prov string, env ...string) *devstack.Grafana {
	t.Helper()
	Integration(t)
	home, err := GrafanaHome()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the real-Grafana tests need the Grafana build (CI=true): %v", err)
		}
		t.Skipf("real-Grafana test did not run: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	g, err := devstack.StartGrafana(ctx, devstack.GrafanaConfig{Home: home, Dir: t.TempDir(), Provisioning: prov, Env: env})
	if err != nil && strings.Contains(err.Error(), "server exited") {
		// This Grafana build sometimes exits at its first start on a
		// loaded machine, creating its default organization twice
		// ("UNIQUE constraint failed: org.id"). A second start in a
		// fresh directory is a new server, not a retried request.
		t.Logf("the test Grafana exited while starting; starting it again in a fresh directory: %v", err)
		g, err = devstack.StartGrafana(ctx, devstack.GrafanaConfig{Home: home, Dir: t.TempDir(), Provisioning: prov, Env: env})
	}
	if err != nil {
		t.Fatalf("cannot start the test Grafana: %v", err)
	}
	t.Cleanup(g.Stop)
	return g
}

var (
	grafanaOnce sync.Once
	grafanaHome string
	grafanaErr  error
)

// GrafanaHome finds the Grafana build and unpacks it once into the
// module's .cache/grafana.
func GrafanaHome() (string, error) {
	grafanaOnce.Do(func() {
		var dist, root string
		if dist, grafanaErr = devstack.FindGrafanaDist(); grafanaErr != nil {
			return
		}
		if root, grafanaErr = devstack.ModuleRoot(); grafanaErr != nil {
			return
		}
		grafanaHome, grafanaErr = devstack.UnpackGrafana(dist, filepath.Join(root, ".cache", "grafana"))
	})
	return grafanaHome, grafanaErr
}
