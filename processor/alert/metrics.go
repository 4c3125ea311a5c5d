package alert

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Suppression and deferral reasons (metric labels).
const (
	reasonCooldown   = "cooldown"
	reasonHoldOut    = "hold_out"
	reasonQuietHours = "quiet_hours"
	reasonRateLimit  = "rate_limit"
	reasonDuplicate  = "duplicate"
)

type metrics struct {
	signals     *prometheus.CounterVec
	decided     *prometheus.CounterVec
	sent        *prometheus.CounterVec
	failed      *prometheus.CounterVec
	suppressed  *prometheus.CounterVec
	deferred    *prometheus.CounterVec
	attempts    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	pending     prometheus.Gauge
	reloads     *prometheus.CounterVec
	recordFails prometheus.Counter
	cooldowns   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		signals: f.NewCounterVec(prometheus.CounterOpts{Name: "shoptrail_alerter_signals_total",
			Help: "Signals read, by result: matched, unmatched, invalid, newer_version, recovery."}, []string{"result"}),
		decided: f.NewCounterVec(prometheus.CounterOpts{Name: "shoptrail_alerter_alerts_decided_total",
			Help: "Alerts decided (a rule matched a signal, per destination), by rule."}, []string{"rule"}),
		sent: f.NewCounterVec(prometheus.CounterOpts{Name: "shoptrail_alerter_alerts_sent_total",
			Help: "Alerts a destination accepted, by destination."}, []string{"destination"}),
		failed: f.NewCounterVec(prometheus.CounterOpts{Name: "shoptrail_alerter_alerts_failed_total",
			Help: "Alerts given up, by destination and reason: rejected (4xx or robot error) or gave_up (retries past deliver.max-age)."}, []string{"destination", "reason"}),
		suppressed: f.NewCounterVec(prometheus.CounterOpts{Name: "shoptrail_alerter_alerts_suppressed_total",
			Help: "Alerts not sent, by reason: cooldown, hold_out, duplicate (already delivered, a replay)."}, []string{"reason"}),
		deferred: f.NewCounterVec(prometheus.CounterOpts{Name: "shoptrail_alerter_alerts_deferred_total",
			Help: "Alerts held back and sent later, by reason: quiet_hours, rate_limit."}, []string{"reason"}),
		attempts: f.NewCounterVec(prometheus.CounterOpts{Name: "shoptrail_alerter_delivery_attempts_total",
			Help: "Delivery attempts, by destination and result: delivered, retry, rejected, error (no answer)."}, []string{"destination", "result"}),
		latency: f.NewHistogramVec(prometheus.HistogramOpts{Name: "shoptrail_alerter_delivery_latency_seconds",
			Help:    "Time from an alert's decision to its delivery (quiet hours and retries included).",
			Buckets: []float64{.005, .01, .05, .1, .5, 1, 5, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600}}, []string{"destination"}),
		pending: f.NewGauge(prometheus.GaugeOpts{Name: "shoptrail_alerter_alerts_pending",
			Help: "Alerts decided but not yet recorded as done (queued, retrying, deferred)."}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{Name: "shoptrail_alerter_rules_reloads_total",
			Help: "Rules file reloads, by result: ok, invalid (the previous rules stay)."}, []string{"result"}),
		recordFails: f.NewCounter(prometheus.CounterOpts{Name: "shoptrail_alerter_record_errors_total",
			Help: "Failed inserts into alert_deliveries (retried; offsets wait)."}),
		cooldowns: f.NewGauge(prometheus.GaugeOpts{Name: "shoptrail_alerter_cooldown_entries",
			Help: "Cooldown entries held in memory."}),
	}
}
