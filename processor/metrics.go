package processor

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the processor's Prometheus metrics. Per-partition series are
// deleted when the partition is revoked, so a scaled-out group does not
// report stale gauges.
type metrics struct {
	messages      prometheus.Counter
	events        *prometheus.CounterVec
	sessions      prometheus.Counter
	provisional   prometheus.Counter
	evicted       *prometheus.CounterVec
	stateBytes    *prometheus.GaugeVec
	links         prometheus.Counter
	beaconLost    prometheus.Counter
	lag           *prometheus.GaugeVec
	openSessions  *prometheus.GaugeVec
	visitors      *prometheus.GaugeVec
	pending       *prometheus.GaugeVec
	watermark     *prometheus.GaugeVec
	partitions    prometheus.Gauge
	batchEvents   prometheus.Histogram
	flushDuration prometheus.Histogram
	sinkRetries   prometheus.Counter
	checkpoint    prometheus.Histogram
	stateRecords  prometheus.Counter
	restore       prometheus.Histogram
	commitErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_messages_total",
			Help: "Kafka messages consumed (events processed), including replays after a restore.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_processor_events_total",
			Help: "Events by what became of them: assigned (counted in a session), duplicate (dropped: message id already counted), late (beyond the allowed lateness: kept, in no session), invalid, undecodable.",
		}, []string{"status"}),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_sessions_closed_total",
			Help: "Sessions closed and written.",
		}),
		provisional: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_provisional_sessions_total",
			Help: "Provisional rows of open sessions written at checkpoints (is_final = 0), replaced by the final row when the session closes.",
		}),
		links: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_identity_links_total",
			Help: "Anonymous visitors linked to a customer id.",
		}),
		beaconLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_beacon_lost_events_total",
			Help: "Beacon events that never arrived, from gaps in per-tab sequence numbers (may go down by late arrivals: a counter of net losses found).",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoptrail_processor_consumer_lag",
			Help: "Messages in the partition after the last one consumed.",
		}, []string{"partition"}),
		openSessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoptrail_processor_open_sessions",
			Help: "Sessions not yet closed, per partition.",
		}, []string{"partition"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_processor_visitors_evicted_total",
			Help: "Visitors dropped from memory at -session.max-visitors or -session.max-state-bytes: state=retained (a record between sessions), open (an open session closed early).",
		}, []string{"state"}),
		stateBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoptrail_processor_state_bytes",
			Help: "Estimated heap of the session state (visitors, open sessions, waiting events, their strings), per partition: what -session.max-state-bytes caps.",
		}, []string{"partition"}),
		visitors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoptrail_processor_visitors",
			Help: "Visitor records in memory (open session or retained), per partition.",
		}, []string{"partition"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoptrail_processor_pending_events",
			Help: "Events waiting for the watermark before their session is final, per partition.",
		}, []string{"partition"}),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoptrail_processor_watermark_seconds",
			Help: "Event-time watermark of the partition (unix seconds): events before it are late.",
		}, []string{"partition"}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoptrail_processor_assigned_partitions",
			Help: "Partitions this processor owns in the current consumer group generation.",
		}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoptrail_processor_batch_events",
			Help:    "Events per batch written to ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoptrail_processor_flush_duration_seconds",
			Help:    "Time to write one batch to ClickHouse, all tables and retries included.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 16),
		}),
		sinkRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_sink_retries_total",
			Help: "Batches retried after a transient ClickHouse failure.",
		}),
		checkpoint: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoptrail_processor_checkpoint_duration_seconds",
			Help:    "Time to write a checkpoint (changelog records, then the offset commit).",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}),
		stateRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_state_records_total",
			Help: "Records written to the state changelog topic.",
		}),
		restore: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoptrail_processor_restore_duration_seconds",
			Help:    "Time to restore a partition's state from the changelog when it is assigned.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_commit_errors_total",
			Help: "Offset commits the group coordinator refused (harmless: the changelog holds the position).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.events, m.sessions, m.provisional, m.evicted, m.stateBytes, m.links, m.beaconLost, m.lag, m.openSessions,
			m.visitors, m.pending, m.watermark, m.partitions, m.batchEvents, m.flushDuration, m.sinkRetries,
			m.checkpoint, m.stateRecords, m.restore, m.commitErrors)
	}
	return m
}

// forget deletes the series of a partition that is no longer ours.
func (m *metrics) forget(partition int) {
	p := strconv.Itoa(partition)
	for _, v := range []*prometheus.GaugeVec{m.lag, m.openSessions, m.visitors, m.pending, m.watermark, m.stateBytes} {
		v.DeleteLabelValues(p)
	}
}
