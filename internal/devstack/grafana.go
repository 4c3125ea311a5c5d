package devstack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
)

// EnvGrafanaDist names the environment variable that points at the
// relocatable Grafana build: its .tar.zst, a folder holding one, or an
// unpacked Grafana (a folder with bin/grafana).
const EnvGrafanaDist = "SHOPTRAIL_GRAFANA_DIST"

// ErrNoGrafana is returned when no Grafana build can be found.
var ErrNoGrafana = errors.New("no Grafana build found: neither $" + EnvGrafanaDist + " nor shared/grafana beside the repository or a folder above it holds a grafana-*.tar.zst or an unpacked Grafana")

// FindGrafanaDist returns where the Grafana build is: $SHOPTRAIL_GRAFANA_DIST,
// else the first of grafanaCandidates (../shared/grafana beside the module
// root, the folder with go.mod above the working directory, first). The result is a .tar.zst file or an
// unpacked Grafana folder.
func FindGrafanaDist() (string, error) {
	if p := os.Getenv(EnvGrafanaDist); p != "" {
		d, err := resolveGrafanaDist(p)
		if err != nil {
			return "", fmt.Errorf("$%s=%s: %w", EnvGrafanaDist, p, err)
		}
		return d, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	var errs []string
	for _, c := range grafanaCandidates(root) {
		d, err := resolveGrafanaDist(c)
		if err == nil {
			return d, nil
		}
		errs = append(errs, err.Error())
	}
	return "", fmt.Errorf("%w (%s)", ErrNoGrafana, strings.Join(errs, "; "))
}

// grafanaCandidates lists where a shared Grafana build may be: shared/grafana
// beside the repository or beside any folder above it (a clone may sit
// deeper than its shared folder), then the workplace's /work/shared/grafana.
// scripts/grafana-check.sh looks in the same places.
func grafanaCandidates(root string) []string {
	var cs []string
	for dir := filepath.Dir(root); ; dir = filepath.Dir(dir) {
		cs = append(cs, filepath.Join(dir, "shared", "grafana"))
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return append(cs, "/work/shared/grafana")
}

func resolveGrafanaDist(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		if !strings.HasSuffix(p, ".tar.zst") {
			return "", fmt.Errorf("%s is not a .tar.zst", p)
		}
		return filepath.Abs(p)
	}
	if isGrafanaHome(p) {
		return filepath.Abs(p)
	}
	m, _ := filepath.Glob(filepath.Join(p, "grafana-*.tar.zst"))
	if len(m) == 0 {
		return "", fmt.Errorf("%s holds neither bin/grafana nor a grafana-*.tar.zst", p)
	}
	return filepath.Abs(m[len(m)-1])
}

func isGrafanaHome(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "bin", "grafana"))
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// ModuleRoot returns the folder holding go.mod above the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from inside the repository")
		}
		dir = parent
	}
}

// UnpackGrafana makes the Grafana build dist usable and returns its home
// folder (with bin/grafana). An unpacked dist is used in place; a .tar.zst
// is unpacked once into cacheDir/NAME (NAME is the archive's name without
// .tar.zst). It is idempotent and safe when several processes do it at
// once (a lock file, then an atomic rename of a complete copy).
func UnpackGrafana(dist, cacheDir string) (string, error) {
	if isGrafanaHome(dist) {
		return dist, nil
	}
	name := strings.TrimSuffix(filepath.Base(dist), ".tar.zst")
	home := filepath.Join(cacheDir, name)
	if isGrafanaHome(home) {
		return home, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("grafana: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("grafana: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("grafana: lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isGrafanaHome(home) { // another process finished while we waited
		return home, nil
	}
	tmp, err := os.MkdirTemp(cacheDir, ".unpack-")
	if err != nil {
		return "", fmt.Errorf("grafana: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := untarZstd(dist, tmp); err != nil {
		return "", fmt.Errorf("grafana: unpack %s: %w", dist, err)
	}
	src := filepath.Join(tmp, name)
	if !isGrafanaHome(src) {
		return "", fmt.Errorf("grafana: %s does not hold %s/bin/grafana", dist, name)
	}
	os.RemoveAll(home) // a partial copy from an older, interrupted layout
	if err := os.Rename(src, home); err != nil {
		return "", fmt.Errorf("grafana: %w", err)
	}
	return home, nil
}

// untarZstd extracts the regular files and folders of a .tar.zst into dir,
// refusing names that would leave it.
func untarZstd(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		return err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("unsafe path %q in archive", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode&0o777)|0o200)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, tr)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if filepath.IsAbs(h.Linkname) || !filepath.IsLocal(filepath.Join(filepath.Dir(name), h.Linkname)) {
				return fmt.Errorf("unsafe link %q -> %q in archive", h.Name, h.Linkname)
			}
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unsupported entry %q (type %c) in archive", h.Name, h.Typeflag)
		}
	}
}

// GrafanaConfig configures a Grafana server child process.
type GrafanaConfig struct {
	// Home is the unpacked Grafana (bin/grafana, conf/, public/, plugins/).
	Home string
	// Dir holds the generated grafana.ini, the sqlite database and logs.
	Dir string
	// Port on 127.0.0.1; 0 picks a free one.
	Port int
	// Provisioning is Grafana's provisioning folder (datasources/,
	// dashboards/, ...); empty: an empty one in Dir.
	Provisioning string
	// Env is added to Grafana's environment (GF_* settings, and the
	// variables the provisioning files expand).
	Env []string
	// StartTimeout bounds the wait for /api/health; default 3 minutes
	// (a first start migrates its database, slow on a loaded machine).
	StartTimeout time.Duration
	// Logger receives start and stop messages; nil discards them.
	Logger *slog.Logger
}

// Grafana is a running Grafana server child process. Anonymous users are
// org Admins; basic auth admin/admin is the server admin.
type Grafana struct {
	URL string

	*child
}

// StartGrafana writes a grafana.ini into cfg.Dir (loopback only, sqlite,
// no outbound calls, the unsigned ClickHouse plugin allowed), starts Grafana
// and waits until /api/health answers. Grafana is killed if this process
// dies.
func StartGrafana(ctx context.Context, cfg GrafanaConfig) (*Grafana, error) {
	if !isGrafanaHome(cfg.Home) {
		return nil, fmt.Errorf("grafana: %s/bin/grafana not found", cfg.Home)
	}
	if cfg.Dir == "" {
		return nil, errors.New("grafana: Dir is required")
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 3 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	home, err := filepath.Abs(cfg.Home)
	if err != nil {
		return nil, err
	}
	prov := cfg.Provisioning
	if prov == "" {
		prov = filepath.Join(dir, "provisioning")
		for _, d := range []string{"datasources", "dashboards", "plugins", "alerting", "notifiers"} {
			if err := os.MkdirAll(filepath.Join(prov, d), 0o755); err != nil {
				return nil, err
			}
		}
	}
	if prov, err = filepath.Abs(prov); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
		return nil, err
	}
	port := cfg.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	ini := filepath.Join(dir, "grafana.ini")
	if err := os.WriteFile(ini, []byte(grafanaINI(dir, home, prov, port)), 0o644); err != nil {
		return nil, err
	}
	// The plugin's backend must be executable (a copy may have lost the bit).
	if m, _ := filepath.Glob(filepath.Join(home, "plugins", "*", "gpx_*")); len(m) > 0 {
		for _, p := range m {
			if st, err := os.Stat(p); err == nil && st.Mode()&0o100 == 0 {
				os.Chmod(p, st.Mode()|0o111)
			}
		}
	}
	stdout := filepath.Join(dir, "log", "stdout.log")
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(filepath.Join(home, "bin", "grafana"), "server", "--homepath", home, "--config", ini)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), cfg.Env...)
		before := fileSize(stdout)
		c, err := startChild("grafana", cmd, stdout, log)
		if err != nil {
			return nil, err
		}
		g := &Grafana{URL: "http://127.0.0.1:" + strconv.Itoa(port), child: c}
		err = g.waitReady(ctx, cfg.StartTimeout)
		if err == nil {
			log.Info("grafana started", "url", g.URL, "dir", dir)
			return g, nil
		}
		g.Stop()
		// Grafana's first start on a new database can lose a race with
		// itself creating the main organization and exit (grafana/grafana
		// pull request 68644); the organization is there for the next.
		if attempt < maxGrafanaStarts && bytes.Contains(readFrom(stdout, before), []byte(grafanaOrgRace)) {
			log.Warn("grafana exited creating its main organization; starting it again", "attempt", attempt)
			continue
		}
		return nil, fmt.Errorf("grafana in %s did not start: %w (see %s); its log ends:\n%s", dir, err, filepath.Join(dir, "log"), logTail(stdout, 15))
	}
}

// maxGrafanaStarts bounds the starts of one Grafana that exited on
// grafanaOrgRace.
const maxGrafanaStarts = 3

// grafanaOrgRace is what Grafana logs when it exits on its race creating
// the main organization.
const grafanaOrgRace = "failed to create default organization: UNIQUE constraint failed"

// fileSize returns the size of the file at path, 0 if it cannot be read.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// readFrom returns what the file at path holds from offset on (nil if it
// cannot be read).
func readFrom(path string, offset int64) []byte {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return nil
	}
	return b[offset:]
}

func (g *Grafana) waitReady(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return g.waitUntil(ctx, timeout, 200*time.Millisecond, "no answer on "+g.URL+"/api/health", func() bool {
		return answersOK(client, g.URL+"/api/health")
	})
}

// Stop terminates Grafana (SIGTERM, SIGKILL after 10 seconds) and waits for
// it. It is safe to call more than once.
func (g *Grafana) Stop() {
	if g.stop() {
		g.log.Info("grafana stopped", "url", g.URL)
	}
}

// Addr returns host:port of the server.
func (g *Grafana) Addr() string { return strings.TrimPrefix(g.URL, "http://") }

func grafanaINI(dir, home, prov string, port int) string {
	return fmt.Sprintf(`# generated by shoptrail (internal/devstack)
app_mode = production
instance_name = shoptrail

[paths]
data = %[1]s
logs = %[1]s/log
plugins = %[2]s/plugins
provisioning = %[3]s

[server]
protocol = http
http_addr = 127.0.0.1
http_port = %[4]d
domain = 127.0.0.1
root_url = http://127.0.0.1:%[4]d/
router_logging = false

[database]
type = sqlite3
path = grafana.db
cache_mode = private
wal = true

[analytics]
reporting_enabled = false
check_for_updates = false
check_for_plugin_updates = false
feedback_links_enabled = false

[security]
admin_user = admin
admin_password = admin
disable_gravatar = true
cookie_secure = false
allow_embedding = true

[snapshots]
external_enabled = false

[users]
allow_sign_up = false
default_theme = dark

[auth.anonymous]
enabled = true
org_name = Main Org.
org_role = Admin

[auth.basic]
enabled = true

[plugins]
allow_loading_unsigned_plugins = grafana-clickhouse-datasource
plugin_admin_enabled = false

[news]
news_feed_enabled = false

[grafana_net]
url = http://127.0.0.1:9/grafana-com-disabled

[grafana_com]
url = http://127.0.0.1:9/grafana-com-disabled
api_url = http://127.0.0.1:9/grafana-com-disabled/api

[log]
mode = console file
level = warn

[log.file]
log_rotate = false

[help]
enabled = false
`, dir, home, prov, port)
}

// logTail returns the last n lines of the log at path (the reason a server
// did not start, which its directory, removed with the test, no longer
// shows).
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
