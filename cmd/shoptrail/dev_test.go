package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/internal/devstack"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// TestDevParts runs `shoptrail dev -only=broker,clickhouse` and, against it,
// the collector and the processor as separate components, as the README
// shows. The processor is stopped and started again mid-stream; every
// accepted event still arrives once.
func TestDevParts(t *testing.T) {
	testenv.Integration(t)
	ports := make([]int, 4)
	for i := range ports {
		p, err := devstack.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	brokers := fmt.Sprintf("127.0.0.1:%d", ports[0])
	chAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	chHTTP := fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	colAddr := fmt.Sprintf("127.0.0.1:%d", ports[3])

	devCtx, stopDev := context.WithCancel(context.Background())
	devDone := make(chan error, 1)
	go func() {
		devDone <- runDev(devCtx, []string{"-only=broker,clickhouse", "-dir=" + t.TempDir(), "-kafka.brokers=" + brokers,
			"-clickhouse.addr=" + chAddr, fmt.Sprintf("-clickhouse.http-port=%d", ports[2]), "-log.level=warn"})
	}()
	defer func() {
		stopDev()
		if err := <-devDone; err != nil {
			t.Errorf("dev: %v", err)
		}
	}()
	waitFor(t, 2*time.Minute, "dev ClickHouse", func() bool {
		resp, err := http.Get(chHTTP + "/ping")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	if err := runMigrate(context.Background(), []string{"-clickhouse.addr=" + chAddr, "-log.level=warn"}); err != nil {
		t.Fatal(err)
	}

	start := func(name string, f func(context.Context, []string) error, args ...string) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f(ctx, args) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	stopCol := start("collector", runCollector, "-http.addr="+colAddr, "-kafka.brokers="+brokers, "-log.level=warn")
	defer stopCol()
	procArgs := []string{"-http.addr=127.0.0.1:0", "-kafka.brokers=" + brokers, "-clickhouse.addr=" + chAddr, "-batch.interval=100ms", "-log.level=warn"}
	stopProc := start("processor", runProcessor, procArgs...)

	count := func() string {
		resp, err := http.Get(chHTTP + "/?query=" + url.QueryEscape("SELECT uniqExact(message_id), count() FROM shoptrail.events"))
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	send := func(id string) {
		t.Helper()
		waitFor(t, 2*time.Minute, "collector accepts "+id, func() bool {
			body := `{"writeKey":"dev","event":"Product Viewed","anonymousId":"a","messageId":"` + id + `"}`
			resp, err := http.Post("http://"+colAddr+"/v1/track", "text/plain", strings.NewReader(body))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}
	send("dev-1")
	waitFor(t, 2*time.Minute, "first event in ClickHouse", func() bool { return count() == "1\t1" })

	stopProc()
	send("dev-2")
	send("dev-3")
	stopProc = start("processor", runProcessor, procArgs...)
	defer stopProc()
	waitFor(t, 2*time.Minute, "events sent while the processor was down", func() bool { return count() == "3\t3" })
}

// TestDevPortInUse: a port another program holds stops shoptrail dev
// before anything starts (no banner), with the port, its part and the make
// variable that moves it.
func TestDevPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	free, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	err = runDev(context.Background(), []string{"-only=broker,collector", "-dir=" + dir, "-log.level=warn",
		fmt.Sprintf("-kafka.brokers=127.0.0.1:%d", free), "-http.addr=" + ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "port "+port+" (collector, -http.addr=") || !strings.Contains(err.Error(), "make run COLLECTOR_PORT=") {
		t.Fatalf("dev with the collector's port taken: %v, want an error naming port %s", err, port)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("dev started something before failing: %v in its directory", entries)
	}
}
