package collector

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Event results, the "result" label of shoptrail_collector_events_total.
const (
	resultAccepted = "accepted" // acknowledged by Kafka in the events (or bot) topic
	resultRejected = "rejected" // invalid; in the dead-letter topic (reason label)
	resultShed     = "shed"     // not taken: overload, rate limit or Kafka failure (reason label)
	resultRefused  = "refused"  // in a whole request refused (401, 403, 413, not JSON, ...): its refusal reason
)

// Reasons, the "reason" label: typed so that dashboards can rely on them.
const (
	reasonNone         = ""
	reasonInvalid      = "invalid"        // a field failed validation
	reasonNotJSON      = "not_json"       // the event is not a JSON object
	reasonTooLarge     = "too_large"      // the event exceeds http.max-event-bytes
	reasonInflight     = "inflight_bytes" // shed: memory budget exhausted
	reasonRateIP       = "rate_ip"        // shed: per-IP rate limit
	reasonRateKey      = "rate_key"       // shed: per-write-key rate limit
	reasonKafka        = "kafka"          // shed: Kafka did not acknowledge in time
	reasonShuttingDown = "shutting_down"
)

type metrics struct {
	// observers caches requestSeconds' children for the usual routes and
	// codes: WithLabelValues hashes its labels on every call.
	observers map[string]map[int]prometheus.Observer

	events           *prometheus.CounterVec
	refused          *prometheus.CounterVec
	refusedBy        map[string]prometheus.Counter
	refusedEvents    map[string]prometheus.Counter // events_total{result="refused"} by reason
	sdkMetrics       prometheus.Counter
	accepted         prometheus.Counter
	bots             prometheus.Counter
	requestSeconds   *prometheus.HistogramVec
	produceSeconds   *prometheus.HistogramVec
	produceErrors    *prometheus.CounterVec
	inflightBytes    prometheus.Gauge
	inflightRequests prometheus.Gauge
	ready            prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		events: f.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_collector_events_total",
			Help: "Events by result (accepted, rejected, shed, refused) and reason.",
		}, []string{"result", "reason"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_collector_requests_refused_total",
			Help: "Whole requests refused, by reason (not_json, empty, bad_request, encoding, no_write_key, unknown_key, origin, too_large, rate_limited, unavailable, not_found).",
		}, []string{"reason"}),
		sdkMetrics: f.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_collector_sdk_metrics_total",
			Help: "Telemetry posts of analytics.js (/v1/m), taken and dropped.",
		}),
		bots: f.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_collector_bot_events_total",
			Help: "Accepted events flagged as coming from a crawler or automated browser.",
		}),
		requestSeconds: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoptrail_collector_request_duration_seconds",
			Help:    "Time from receiving an ingest request to answering it, by route and status code.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10},
		}, []string{"route", "code"}),
		produceSeconds: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoptrail_collector_kafka_produce_duration_seconds",
			Help:    "Time of one produce request (one partition's batch) until Kafka acknowledged or failed.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
		}, []string{"topic"}),
		produceErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_collector_kafka_produce_errors_total",
			Help: "Failed produce attempts (each retry counts).",
		}, []string{"topic"}),
		inflightBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "shoptrail_collector_inflight_bytes",
			Help: "Memory reserved by requests in progress (see http.max-inflight-bytes).",
		}),
		inflightRequests: f.NewGauge(prometheus.GaugeOpts{
			Name: "shoptrail_collector_inflight_requests",
			Help: "Ingest requests in progress.",
		}),
		ready: f.NewGauge(prometheus.GaugeOpts{
			Name: "shoptrail_collector_ready",
			Help: "1 while the collector can deliver to Kafka (as /readyz).",
		}),
	}
	m.accepted = m.events.WithLabelValues(resultAccepted, reasonNone)
	m.refusedBy = map[string]prometheus.Counter{}
	m.refusedEvents = map[string]prometheus.Counter{}
	for _, r := range refusedReasons {
		m.refusedBy[r] = m.refused.WithLabelValues(r)
		m.refusedEvents[r] = m.events.WithLabelValues(resultRefused, r)
	}
	m.observers = map[string]map[int]prometheus.Observer{}
	for _, route := range []string{"batch", "track", "page", "screen", "identify", "group", "alias", "pixel"} {
		m.observers[route] = map[int]prometheus.Observer{}
		for _, code := range []int{200, 400, 401, 403, 413, 429, 503} {
			m.observers[route][code] = m.requestSeconds.WithLabelValues(route, strconv.Itoa(code))
		}
	}
	return m
}

// refusal counts a whole request refused for reason; the counters of the
// known reasons are looked up once (WithLabelValues hashes every call).
func (m *metrics) refusal(reason string) {
	if c, ok := m.refusedBy[reason]; ok {
		c.Inc()
		return
	}
	m.refused.WithLabelValues(reason).Inc()
}

// refusedRequest counts the events of a whole ingest request refused for
// reason: n, the events it held, or 1 when they could not be counted (a
// body not read, not JSON, or not a batch); none for an empty body or
// batch. A refusal that sheds load (429, 503) is not counted here: those
// events are counted as shed where the request is refused.
func (m *metrics) refusedRequest(reason string, n int) {
	switch reason {
	case refusedRateLimit, refusedUnavailable, refusedEmpty:
		return
	}
	n = max(n, 1)
	if c, ok := m.refusedEvents[reason]; ok {
		c.Add(float64(n))
		return
	}
	m.events.WithLabelValues(resultRefused, reason).Add(float64(n))
}

func (m *metrics) observer(route string, code int) prometheus.Observer {
	if o, ok := m.observers[route][code]; ok {
		return o
	}
	return m.requestSeconds.WithLabelValues(route, strconv.Itoa(code))
}
