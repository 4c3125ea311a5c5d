package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoptrail/shoptrail/processor/alert"
	"github.com/shoptrail/shoptrail/processor/alert/notify"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// devAlertRules is the rules file dev writes when -alerts.file is not given:
// every abandoned cart of 100 or more, every customer turning at-risk,
// dormant or lost, moving up into tier A or down from A/B, to the dev
// receiver, which verifies and logs them.
const devAlertRules = `# Written by shoptrail dev: alerts go to the dev receiver, which logs them.
destinations:
  dev-receiver:
    type: webhook
    url: http://%s/alerts
    secret_file: %s
sites:
  "*":
    rules:
      - name: dev-carts
        type: cart_abandoned
        min_value: 100
        tiers: [A, B]
        follow_up: {personal_email: 1000, phone_call: 5000, phone_call_tiers: [A]}
        cooldown: 1h
        hold_out: 0.1
        route: {to: [dev-receiver]}
      - name: dev-stages
        type: customer_stage
        stages: [at_risk, dormant, lost]
        route: {to: [dev-receiver]}
      - name: dev-tiers
        type: customer_tier
        tiers: [A]
        route: {to: [dev-receiver]}
      - name: dev-tiers-down
        type: customer_tier
        from_tiers: [A, B]
        tiers: [C, D, E]
        route: {to: [dev-receiver]}
`

// startDevAlerter writes the dev rules (unless a file is given), starts the
// dev receiver on receiverAddr and returns the alerter to run.
func startDevAlerter(dir, file, receiverAddr string, cfg alert.Config, conn driver.Conn, reg prometheus.Registerer, log *slog.Logger) (*alert.Alerter, func(), error) {
	stop := func() {}
	if file == "" {
		secretFile := filepath.Join(dir, "alerts.secret")
		if _, err := os.Stat(secretFile); errors.Is(err, os.ErrNotExist) {
			key := make([]byte, 32)
			rand.Read(key)
			if err := os.WriteFile(secretFile, []byte("whsec_"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
				return nil, nil, fmt.Errorf("cannot write the dev webhook secret: %w", err)
			}
		}
		file = filepath.Join(dir, "alerts.yaml")
		abs, _ := filepath.Abs(secretFile)
		if err := os.WriteFile(file, []byte(fmt.Sprintf(devAlertRules, receiverAddr, abs)), 0o600); err != nil {
			return nil, nil, fmt.Errorf("cannot write the dev rules: %w", err)
		}
		secret, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, nil, err
		}
		key, err := rules.WebhookKey(strings.TrimSpace(string(secret)))
		if err != nil {
			return nil, nil, err
		}
		srv, err := devReceiver(receiverAddr, key, log)
		if err != nil {
			return nil, nil, err
		}
		stop = srv
		cfg.AllowLoopback = true
	}
	cfg.RulesFile = file
	a, err := alert.New(cfg, conn, alert.Options{Logger: log, Registerer: reg})
	if err != nil {
		stop()
		return nil, nil, err
	}
	return a, stop, nil
}

// devReceiver verifies each alert's Standard Webhooks signature, the way a
// receiver should, and logs it.
func devReceiver(addr string, key []byte, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dev alert receiver: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		sec, _ := strconv.ParseInt(ts, 10, 64)
		want := "v1," + notify.SignWebhook(key, id, ts, body)
		if r.Header.Get("webhook-signature") != want || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var msg struct {
			Data notify.Alert `json:"data"`
		}
		json.Unmarshal(body, &msg)
		log.Info("alert received", "id", id, "title", msg.Data.Title(), "followUp", msg.Data.FollowUp)
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}
