package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNoZooKeeper is returned when Debian's zookeeper package is missing.
var ErrNoZooKeeper = errors.New("ZooKeeper not found at /usr/share/java/zookeeper.jar (install it with `make deps`, which runs apt-get install zookeeper)")

// zooKeeperJar is where Debian's zookeeper package puts the server.
const zooKeeperJar = "/usr/share/java/zookeeper.jar"

// slf4jSimple, when installed (Debian's libslf4j-java, a dependency of
// zookeeper), gives the server a log.
const slf4jSimple = "/usr/share/java/slf4j-simple.jar"

// ZooKeeperConfig configures a standalone ZooKeeper server child process.
type ZooKeeperConfig struct {
	// Dir holds the generated config and the data. Required.
	Dir string
	// Port is the client port on 127.0.0.1; 0 picks a free one.
	Port int
	// StartTimeout bounds the wait until the server serves; the
	// default is 30 seconds (the JVM starts slowly on a busy machine).
	StartTimeout time.Duration
	// Logger receives start and stop messages; nil discards them.
	Logger *slog.Logger
}

// ZooKeeper is a running standalone ZooKeeper server (Debian's package,
// run by java as a child process, loopback only, no admin server).
type ZooKeeper struct {
	// Addr is the client address (host:port).
	Addr string

	*child
}

// StartZooKeeper writes a config into cfg.Dir, starts the server and waits
// until it serves requests. Like StartClickHouse, the child dies with this
// process.
func StartZooKeeper(ctx context.Context, cfg ZooKeeperConfig) (*ZooKeeper, error) {
	if _, err := os.Stat(zooKeeperJar); err != nil {
		return nil, ErrNoZooKeeper
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, fmt.Errorf("java not found (Debian's zookeeper package depends on it): %w", err)
	}
	if cfg.Dir == "" {
		return nil, errors.New("zookeeper: Dir is required")
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
		return nil, fmt.Errorf("cannot resolve ZooKeeper dir: %w", err)
	}
	port := cfg.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create ZooKeeper dir: %w", err)
	}
	conf := strings.Join([]string{
		"tickTime=500",
		"dataDir=" + filepath.Join(dir, "data"),
		"clientPort=" + strconv.Itoa(port),
		"clientPortAddress=127.0.0.1",
		"admin.enableServer=false",
		"4lw.commands.whitelist=srvr",
		"maxSessionTimeout=60000",
		"",
	}, "\n")
	confPath := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write ZooKeeper config: %w", err)
	}
	cp := "/etc/zookeeper/conf:" + zooKeeperJar
	if _, err := os.Stat(slf4jSimple); err == nil {
		cp += ":" + slf4jSimple // log to zookeeper.log instead of nowhere
	}
	cmd := exec.Command(java, "-Xmx256m", "-cp", cp,
		"org.apache.zookeeper.server.ZooKeeperServerMain", confPath)
	cmd.Dir = dir
	c, err := startChild("ZooKeeper", cmd, filepath.Join(dir, "zookeeper.log"), log)
	if err != nil {
		return nil, err
	}
	zk := &ZooKeeper{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), child: c}
	if err := zk.waitReady(ctx, cfg.StartTimeout); err != nil {
		zk.Stop()
		return nil, fmt.Errorf("ZooKeeper in %s did not start: %w (see %s)", dir, err, filepath.Join(dir, "zookeeper.log"))
	}
	log.Info("zookeeper started", "addr", zk.Addr, "dir", dir)
	return zk, nil
}

func (z *ZooKeeper) waitReady(ctx context.Context, timeout time.Duration) error {
	return z.waitUntil(ctx, timeout, 100*time.Millisecond, "not serving on "+z.Addr, z.serving)
}

// serving asks the server with the four-letter "srvr" whether it serves
// requests ("ruok" answers before it does, and ClickHouse 18.16 crashes
// when its first ZooKeeper session is refused).
func (z *ZooKeeper) serving() bool {
	c, err := net.DialTimeout("tcp", z.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	b, _ := io.ReadAll(c)
	return strings.Contains(string(b), "Mode: standalone")
}

// Stop terminates the server and waits for it to exit; safe to call twice.
func (z *ZooKeeper) Stop() error {
	if z.stop() {
		z.log.Info("zookeeper stopped", "addr", z.Addr)
	}
	return nil
}
