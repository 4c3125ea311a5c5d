package alert_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/shoptrail/shoptrail/internal/testenv"
	"github.com/shoptrail/shoptrail/processor/alert"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Rules reload on SIGHUP (the Reload channel) and when the file changes;
// an invalid file is refused with the reason and the rules in force stay.
func TestRulesReload(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	file := e.rules(basicRules(rc.srv.URL, "")) // min_value 500
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	cfg := e.config(file, "a")
	cfg.ReloadInterval = 50 * time.Millisecond
	reload := make(chan struct{}, 1)
	a, err := alert.New(cfg, e.conn, alert.Options{Registerer: reg, Reload: reload,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

	// An invalid file is refused; the old rules still alert at 500.
	os.WriteFile(file, []byte(strings.Replace(basicRules(rc.srv.URL, ""), "type: cart_abandoned", "type: cart_abandonned", 1)), 0o600)
	waitFor(t, "the invalid file refused", 10*time.Second, func() bool {
		return metricValue(t, reg, "shoptrail_alerter_rules_reloads_total", map[string]string{"result": "invalid"}) >= 1
	})
	if !strings.Contains(logs.String(), `type \"cart_abandonned\" is not cart_abandoned, customer_stage, customer_tier, conversion_drop or hot_lead`) {
		t.Errorf("the log does not say why: %s", logs.String())
	}
	e.produce(cart("r1", "c1", 600, "C", at))
	waitFor(t, "alert under the old rules", 30*time.Second, func() bool { return len(rc.requests()) == 1 })

	// A valid change (min_value 700) is picked up from the file.
	os.WriteFile(file, []byte(strings.Replace(basicRules(rc.srv.URL, ""), "min_value: 500", "min_value: 700", 1)), 0o600)
	waitFor(t, "the new rules", 10*time.Second, func() bool { return a.Rules().Sites["shop-1"].Rules[0].MinValue == 700 })
	e.produce(cart("r2", "c2", 600, "C", at), cart("r3", "c3", 800, "C", at))
	waitFor(t, "r3 alerted", 30*time.Second, func() bool { return len(rc.requests()) == 2 })
	requestsStay(t, rc, 2, "r2 is below the new min_value")

	// SIGHUP reloads even when the content did not change (e.g. a secret
	// file it names did).
	before := metricValue(t, reg, "shoptrail_alerter_rules_reloads_total", map[string]string{"result": "ok"})
	reload <- struct{}{}
	waitFor(t, "the forced reload", 10*time.Second, func() bool {
		return metricValue(t, reg, "shoptrail_alerter_rules_reloads_total", map[string]string{"result": "ok"}) == before+1
	})
}

// Secrets (a robot's token in its URL, the signing secret) appear in no
// log line, metric or alert body, even when the destination fails.
func TestSecretsStayOut(t *testing.T) {
	testenv.Integration(t)
	e := newEnv(t)
	rc := newReceiver(t)
	rc.setAnswer(func(*http.Request, int) (int, http.Header) { return http.StatusInternalServerError, nil })
	const token = "TOKEN-7f3a9c"
	os.Setenv("TEST_DINGTALK_SECRET", "SEC-dd81e2")
	file := e.rules(fmt.Sprintf(`destinations:
  robot: {type: dingtalk, url: "%s/robot/send?access_token=%s", secret_env: TEST_DINGTALK_SECRET}
  hook: {type: webhook, url: "%s/hook?key=%s", secret_env: TEST_ALERT_SECRET}
  nowhere: {type: webhook, url: "http://10.0.0.1/x?key=%s", secret_env: TEST_ALERT_SECRET}
sites:
  shop-1:
    rules:
      - {name: carts, type: cart_abandoned, min_value: 1, route: {to: [robot, hook, nowhere]}}
`, rc.srv.URL, token, rc.srv.URL, token, token))
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	cfg := e.config(file, "a")
	a, err := alert.New(cfg, e.conn, alert.Options{Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	e.produce(cart("s1", "c1", 100, "C", time.Now()))
	waitFor(t, "attempts at both live destinations and the internal address refused", 30*time.Second, func() bool {
		return len(rc.requests()) >= 2 && finals(e.deliveries())["rejected"] == 1
	})
	cancel()
	<-done
	var metrics bytes.Buffer
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(&metrics, mf)
	}
	var bodies, answers strings.Builder
	for _, r := range rc.requests() {
		bodies.Write(r.Body)
	}
	rows, _ := e.conn.Query(context.Background(), "SELECT answer, payload FROM alert_deliveries")
	for rows.Next() {
		var x, y string
		rows.Scan(&x, &y)
		answers.WriteString(x + y)
	}
	rows.Close()
	for _, secret := range []string{token, "SEC-dd81e2", webhookSecret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		for where, text := range map[string]string{"logs": logs.String(), "metrics": metrics.String(), "bodies": bodies.String(), "alert_deliveries": answers.String()} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain the secret %q", where, secret)
			}
		}
	}
}
