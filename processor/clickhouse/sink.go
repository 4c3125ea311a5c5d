package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoptrail/shoptrail/processor"
)

// Sink writes the processor's batches to ClickHouse: one insert per table
// and batch, every table keyed so that a batch written twice collapses.
//
// Rows ClickHouse refuses for their data (a client-side conversion error,
// or a server exception with a poison code) are isolated by splitting the
// insert in halves and kept in dead_letters with the error; the good rows
// of the batch are stored. Any other error is returned, and the processor
// retries the batch (tables already written are skipped).
//
// A Sink is safe for concurrent use: each Write takes a connection from the
// driver's pool.
type Sink struct {
	conn driver.Conn
	log  *slog.Logger
	// InsertTimeout bounds one insert; a slow server then counts as a
	// transient failure. The default is one minute.
	InsertTimeout time.Duration

	duration   *prometheus.HistogramVec
	rows       *prometheus.HistogramVec
	failures   *prometheus.CounterVec
	deadLetter *prometheus.CounterVec
}

var _ processor.Sink = (*Sink)(nil)

// NewSink returns a sink on conn. Its metrics (insert latency and size per
// table, failures, dead letters) are registered with reg unless it is nil;
// log nil discards.
func NewSink(conn driver.Conn, log *slog.Logger, reg prometheus.Registerer) *Sink {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		conn:          conn,
		log:           log.With("component", "clickhouse-sink"),
		InsertTimeout: time.Minute,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoptrail_processor_insert_duration_seconds",
			Help:    "Latency of successful ClickHouse inserts, per table.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}, []string{"table"}),
		rows: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoptrail_processor_insert_rows",
			Help:    "Rows per successful ClickHouse insert (batch size), per table.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}, []string{"table"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_processor_insert_failures_total",
			Help: "Failed ClickHouse inserts, per table and kind (transient: retried; poison: the batch is split).",
		}, []string{"table", "kind"}),
		deadLetter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_processor_dead_letters_total",
			Help: "Rows kept in dead_letters instead of their table, per table (\"\" for undecodable messages).",
		}, []string{"table"}),
	}
	if reg != nil {
		reg.MustRegister(s.duration, s.rows, s.failures, s.deadLetter)
	}
	return s
}

// Bits of processor.Batch.Written.
const (
	wroteEvents uint32 = 1 << iota
	wroteAssignments
	wroteSessions
	wroteLinks
	wroteLoss
	wroteDeadLetters
)

// Write stores the batch: events, event_sessions, sessions,
// identity_links, delivery_loss, then dead_letters (which include the rows
// refused on the way).
func (s *Sink) Write(ctx context.Context, b *processor.Batch) error {
	steps := []struct {
		bit uint32
		fn  func(context.Context, *processor.Batch) error
	}{
		{wroteEvents, func(ctx context.Context, b *processor.Batch) error {
			return insertRows(ctx, s, &eventsTable, b.Events, b)
		}},
		{wroteAssignments, func(ctx context.Context, b *processor.Batch) error {
			return insertRows(ctx, s, &assignmentsTable, b.Assignments, b)
		}},
		{wroteSessions, func(ctx context.Context, b *processor.Batch) error {
			return insertRows(ctx, s, &sessionsTable, b.Sessions, b)
		}},
		{wroteLinks, func(ctx context.Context, b *processor.Batch) error {
			return insertRows(ctx, s, &linksTable, b.Links, b)
		}},
		{wroteLoss, func(ctx context.Context, b *processor.Batch) error {
			return insertRows(ctx, s, &lossTable, b.Loss, b)
		}},
		{wroteDeadLetters, func(ctx context.Context, b *processor.Batch) error {
			// Dead letters are the last resort: a refused dead letter is
			// not split further but retried like a transient error.
			return insertRows(ctx, s, &deadLettersTable, b.DeadLetters, nil)
		}},
	}
	for _, st := range steps {
		if b.Written&st.bit != 0 {
			continue
		}
		if err := st.fn(ctx, b); err != nil {
			return err
		}
		b.Written |= st.bit
	}
	return nil
}

// table describes how rows of type T go into one ClickHouse table.
type table[T any] struct {
	name  string
	query string
	// row returns the values of a row in the order of the query's columns.
	row func(*T) []any
	// dead describes a row that cannot be stored.
	dead func(*T, *processor.Batch, int) processor.DeadLetter
}

// insertRows inserts rows into tb. Rows that fail on their own data are
// appended to b.DeadLetters (with b nil, any failure is returned).
func insertRows[T any](ctx context.Context, s *Sink, tb *table[T], rows []T, b *processor.Batch) error {
	if len(rows) == 0 {
		return nil
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	return insertIdx(ctx, s, tb, rows, idx, b)
}

func insertIdx[T any](ctx context.Context, s *Sink, tb *table[T], rows []T, idx []int, b *processor.Batch) error {
	for len(idx) > 0 {
		start := time.Now()
		ictx, cancel := context.WithTimeout(ctx, s.InsertTimeout)
		bad, err := sendRows(ictx, s, tb, rows, idx)
		cancel()
		switch {
		case err == nil:
			s.duration.WithLabelValues(tb.name).Observe(time.Since(start).Seconds())
			s.rows.WithLabelValues(tb.name).Observe(float64(len(idx)))
			return nil
		case bad >= 0 && b != nil:
			// The client refused row idx[bad]: it spoiled the batch, so
			// keep it aside and send the others again.
			s.failures.WithLabelValues(tb.name, "poison").Inc()
			addDeadLetter(s, b, tb, rows, idx[bad], 0, err)
			idx = append(idx[:bad:bad], idx[bad+1:]...)
			continue
		case IsPoison(err) && b != nil:
			s.failures.WithLabelValues(tb.name, "poison").Inc()
			if len(idx) == 1 {
				code, _ := exceptionCode(err)
				addDeadLetter(s, b, tb, rows, idx[0], code, err)
				return nil
			}
			mid := len(idx) / 2
			if err := insertIdx(ctx, s, tb, rows, idx[:mid:mid], b); err != nil {
				return err
			}
			return insertIdx(ctx, s, tb, rows, idx[mid:], b)
		default:
			s.failures.WithLabelValues(tb.name, "transient").Inc()
			return fmt.Errorf("cannot insert %d rows into %s: %w", len(idx), tb.name, err)
		}
	}
	return nil
}

// sendRows inserts the rows at idx in one insert. When the client refuses
// a row it returns that row's position in idx, else -1.
func sendRows[T any](ctx context.Context, s *Sink, tb *table[T], rows []T, idx []int) (int, error) {
	batch, err := s.conn.PrepareBatch(ctx, tb.query)
	if err != nil {
		return -1, err
	}
	defer batch.Abort()
	for j, i := range idx {
		if err := batch.Append(tb.row(&rows[i])...); err != nil {
			return j, err
		}
	}
	return -1, batch.Send()
}

// addDeadLetter keeps row i of tb in the batch's dead letters.
func addDeadLetter[T any](s *Sink, b *processor.Batch, tb *table[T], rows []T, i int, code int32, err error) {
	d := tb.dead(&rows[i], b, i)
	d.Table, d.Code, d.Error = tb.name, code, err.Error()
	if d.Topic == "" {
		d.Topic, d.Partition = b.Topic, b.Partition
	}
	b.DeadLetters = append(b.DeadLetters, d)
	s.deadLetter.WithLabelValues(tb.name).Inc()
	s.log.Warn("row refused, kept in dead_letters", "table", tb.name, "key", d.RowKey, "code", code, "err", err)
}

// payload is the JSON text of a refused row.
func payload(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return strconv.Quote(fmt.Sprintf("%+v", v))
	}
	return string(b)
}
