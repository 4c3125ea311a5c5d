package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/alert"
	"github.com/shoptrail/shoptrail/processor/clickhouse"
)

// The crash test runs the alerter as its own OS process so it can be
// SIGKILLed: the test binary runs itself with this variable set to a
// childSpec in JSON.
const childEnv = "SHOPTRAIL_ALERTER_CHILD"

type childSpec struct {
	Alerter    alert.Config
	ClickHouse clickhouse.Config
	// KillAt makes the process SIGKILL itself at the first call of the test
	// hook at this point ("decided": alerts queued, none delivered).
	KillAt string
}

func childMain() bool {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return false
	}
	var c childSpec
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, "bad child spec:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	conn, err := clickhouse.Open(ctx, c.ClickHouse)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	opts := alert.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if c.KillAt != "" {
		opts.TestHook = func(point string) {
			if point == c.KillAt {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}
	a, err := alert.New(c.Alerter, conn, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

func startChild(t *testing.T, spec childSpec) *exec.Cmd {
	t.Helper()
	b, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// An alerter SIGKILLed after deciding and before delivering, and again in
// the middle of delivering, loses nothing: every alert arrives. Alerts
// delivered but not yet recorded when it died arrive twice, with the same
// webhook-id; the test reports how many.
func TestSIGKILLLosesNothing(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	var slow atomic.Bool
	slow.Store(true)
	rc.setAnswer(func(*http.Request, int) (int, http.Header) {
		if slow.Load() {
			time.Sleep(5 * time.Millisecond) // deliveries in flight when the kill comes
		}
		return http.StatusOK, nil
	})
	file := e.rules(basicRules(rc.srv.URL, ""))
	const n = 300
	at := time.Now().UTC().Truncate(time.Second)
	var sigs []*shoptrail.Signal
	for i := range n {
		sigs = append(sigs, cart(fmt.Sprintf("k%03d", i), fmt.Sprintf("c%03d", i), 1000, "C", at))
	}
	e.produce(sigs...)
	cfg := e.config(file, "crash")
	cfg.Concurrency = 2
	spec := childSpec{Alerter: cfg, ClickHouse: e.ch}

	// 1: killed right after deciding its first batch.
	spec.KillAt = "decided"
	c1 := startChild(t, spec)
	err := c1.Wait()
	if ws, ok := c1.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child 1 did not die by SIGKILL: %v", err)
	}
	afterDecided := len(rc.requests())

	// 2: killed from outside in the middle of delivering.
	spec.KillAt = ""
	c2 := startChild(t, spec)
	waitFor(t, "a third of the alerts delivered", 60*time.Second, func() bool { return len(rc.requests()) >= n/3 })
	c2.Process.Signal(syscall.SIGKILL)
	c2.Wait()
	afterKill := len(rc.requests())

	// 3: runs to the end.
	slow.Store(false)
	c3 := startChild(t, spec)
	defer func() {
		c3.Process.Signal(syscall.SIGTERM)
		c3.Wait()
	}()
	waitFor(t, "every alert delivered and recorded", 120*time.Second, func() bool {
		ids, _ := rc.ids()
		return len(ids) == n && finals(e.deliveries())["sent"] >= n
	})
	ids, repeats := rc.ids()
	if len(ids) != n {
		t.Fatalf("%d distinct alerts arrived, want %d", len(ids), n)
	}
	// Every request of one alert carried the alert's own id as webhook-id.
	for _, r := range rc.requests() {
		var body struct {
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		json.Unmarshal(r.Body, &body)
		if body.Data.ID != r.ID {
			t.Errorf("webhook-id %q carries alert %q", r.ID, body.Data.ID)
		}
	}
	// One final "sent" row per alert: a replay found the earlier outcome
	// and did not send again.
	sent := map[string]int{}
	for _, d := range e.deliveries() {
		if d.Final == 1 && d.Status == "sent" {
			sent[d.AlertID]++
		}
	}
	for id, k := range sent {
		if k != 1 {
			t.Errorf("alert %s recorded sent %d times", id, k)
		}
	}
	t.Logf("SIGKILL test: %d alerts; %d requests before kill 1 (after deciding), %d before kill 2; %d arrived twice (same webhook-id), 0 lost",
		n, afterDecided, afterKill, repeats)
}
