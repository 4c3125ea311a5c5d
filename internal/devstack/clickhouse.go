// Package devstack runs the real servers the pipeline needs on one machine,
// for `shoptrail dev` and for integration tests alike: a ClickHouse server
// from Debian's package as a child process, and an in-process
// Kafka-protocol broker (kfake).
package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNoClickHouse is returned when the clickhouse-server binary is missing.
var ErrNoClickHouse = errors.New("clickhouse-server not found in PATH or /usr/sbin (install it with `make deps`, which runs apt-get install clickhouse-server clickhouse-client)")

// ClickHouseConfig configures a ClickHouse server child process.
type ClickHouseConfig struct {
	// Dir holds the generated config, the data and the logs. Required.
	Dir string
	// TCPPort is the native protocol port on 127.0.0.1; 0 picks a free one.
	TCPPort int
	// HTTPPort is the HTTP interface port on 127.0.0.1; 0 picks a free one.
	HTTPPort int
	// StartTimeout bounds the wait until the server answers /ping.
	// The default is 30 seconds.
	StartTimeout time.Duration
	// Logger receives start and stop messages; nil discards them.
	Logger *slog.Logger
	// Extra is XML inserted into the server config as it is: a cluster's
	// remote_servers, macros and zookeeper sections (see ClusterXML).
	Extra string
	// LogQueries logs every query in system.query_log and every part
	// written or merged in system.part_log (benchmarks read what each
	// table costs the server from them).
	LogQueries bool
}

// ClickHouse is a running ClickHouse server child process.
type ClickHouse struct {
	// Addr is the native protocol address (host:port).
	Addr string
	// HTTPAddr is the HTTP interface address (host:port).
	HTTPAddr string

	*child
}

// StartClickHouse writes a config into cfg.Dir, starts clickhouse-server
// with it and waits until the server answers. The server is killed if this
// process dies (Pdeathsig), so tests never leave one behind.
func StartClickHouse(ctx context.Context, cfg ClickHouseConfig) (*ClickHouse, error) {
	bin, err := clickHouseBinary()
	if err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("clickhouse: Dir is required")
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve ClickHouse dir: %w", err)
	}
	tcp, httpPort := cfg.TCPPort, cfg.HTTPPort
	if tcp == 0 {
		if tcp, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if httpPort == 0 {
		if httpPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	extra, logQueries := cfg.Extra, "0"
	if cfg.LogQueries {
		extra += partLogXML
		logQueries = "1"
	}
	if err := writeClickHouseConfig(dir, tcp, httpPort, extra, logQueries); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config-file="+filepath.Join(dir, "config.xml"))
	cmd.Dir = dir
	c, err := startChild(bin, cmd, filepath.Join(dir, "log", "stdout.log"), log)
	if err != nil {
		return nil, err
	}
	ch := &ClickHouse{
		Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp)),
		HTTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		child:    c,
	}
	if err := ch.waitReady(ctx, cfg.StartTimeout); err != nil {
		ch.Stop()
		return nil, fmt.Errorf("ClickHouse in %s did not start: %w (see %s)", dir, err, filepath.Join(dir, "log"))
	}
	log.Info("clickhouse started", "addr", ch.Addr, "http", ch.HTTPAddr, "dir", dir)
	return ch, nil
}

func (c *ClickHouse) waitReady(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	return c.waitUntil(ctx, timeout, 50*time.Millisecond, "no answer on "+c.HTTPAddr, func() bool {
		return answersOK(client, "http://"+c.HTTPAddr+"/ping")
	})
}

// Stop terminates the server (SIGTERM, then SIGKILL after 10 seconds) and
// waits for it to exit. It is safe to call more than once.
func (c *ClickHouse) Stop() error {
	if c.stop() {
		c.log.Info("clickhouse stopped", "addr", c.Addr)
	}
	return nil
}

func clickHouseBinary() (string, error) {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNoClickHouse
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeClickHouseConfig(dir string, tcp, httpPort int, extra, logQueries string) error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("cannot create ClickHouse dir: %w", err)
		}
	}
	r := strings.NewReplacer("{dir}", dir, "{tcp}", strconv.Itoa(tcp), "{http}", strconv.Itoa(httpPort), "{extra}", extra)
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(r.Replace(clickHouseConfig)), 0o644); err != nil {
		return fmt.Errorf("cannot write ClickHouse config: %w", err)
	}
	users := strings.Replace(clickHouseUsers, "{log_queries}", logQueries, 1)
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644); err != nil {
		return fmt.Errorf("cannot write ClickHouse users: %w", err)
	}
	return nil
}

// clickHouseConfig is a minimal server config for ClickHouse 18.16: loopback
// only, UTC, small caches (tests run several servers at once).
const clickHouseConfig = `<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{dir}/log/server.log</log>
    <errorlog>{dir}/log/error.log</errorlog>
    <size>50M</size>
    <count>2</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{tcp}</tcp_port>
  <http_port>{http}</http_port>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/user_files/</user_files_path>
  <format_schema_path>{dir}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <max_concurrent_queries>100</max_concurrent_queries>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <mlock_executable>false</mlock_executable>
{extra}
</yandex>
`

// partLogXML enables system.part_log, flushed every second.
const partLogXML = `
  <part_log><database>system</database><table>part_log</table><flush_interval_milliseconds>1000</flush_interval_milliseconds></part_log>
`

// clickHouseUsers has the default user (loopback only, no password) and a
// readonly profile for dashboards.
const clickHouseUsers = `<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>4000000000</max_memory_usage>
      <log_queries>{log_queries}</log_queries>
    </default>
    <readonly>
      <readonly>1</readonly>
    </readonly>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries>
        <errors>0</errors>
        <result_rows>0</result_rows>
        <read_rows>0</read_rows>
        <execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
`
