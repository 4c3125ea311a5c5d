package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
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
	mu   sync.Mutex // guards the batches' DeadLetters while tables are written
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
	wroteAbandonments
	wroteOrders
	wroteOrderUpdates
	wroteCustomers
	wroteTransitions
	wroteCustomerOrders
)

// Write stores the batches, one insert per table for all of them: events
// on one connection while event_sessions, sessions, identity_links and
// delivery_loss go one after the other on another (the server works on
// both at once), then dead_letters, which include the rows refused on the
// way.
func (s *Sink) Write(ctx context.Context, batches []*processor.Batch) error {
	type step struct {
		bit uint32
		fn  func(context.Context, *Sink, []*processor.Batch) error
	}
	run := func(steps ...step) (done uint32, err error) {
		for _, st := range steps {
			var todo []*processor.Batch
			for _, b := range batches {
				if b.Written&st.bit == 0 {
					todo = append(todo, b)
				}
			}
			if len(todo) > 0 {
				if err := st.fn(ctx, s, todo); err != nil {
					return done, err
				}
			}
			done |= st.bit
		}
		return done, nil
	}
	var (
		wg           sync.WaitGroup
		doneA, doneB uint32
		errA, errB   error
	)
	wg.Go(func() { doneA, errA = run(step{wroteEvents, tableWriter(&eventsTable)}) })
	doneB, errB = run(
		step{wroteAssignments, tableWriter(&assignmentsTable)},
		step{wroteSessions, tableWriter(&sessionsTable)},
		step{wroteLinks, tableWriter(&linksTable)},
		step{wroteLoss, tableWriter(&lossTable)},
		step{wroteAbandonments, tableWriter(&abandonmentsTable)},
		step{wroteOrders, tableWriter(&ordersTable)},
		step{wroteOrderUpdates, tableWriter(&orderUpdatesTable)},
		step{wroteCustomers, tableWriter(&customersTable)},
		step{wroteTransitions, tableWriter(&transitionsTable)},
		step{wroteCustomerOrders, tableWriter(&customerOrdersTable)},
	)
	wg.Wait()
	for _, b := range batches {
		b.Written |= doneA | doneB
	}
	if err := errors.Join(errA, errB); err != nil {
		return err
	}
	// Dead letters are the last resort: a refused dead letter is not split
	// further but retried like a transient error.
	done, err := run(step{wroteDeadLetters, tableWriter(&deadLettersTable)})
	for _, b := range batches {
		b.Written |= done
	}
	return err
}

// table describes how rows of type T go into one ClickHouse table.
type table[T any] struct {
	name  string
	query string
	// rows returns a batch's rows for the table.
	rows func(*processor.Batch) []T
	// row returns the values of a row in the order of the query's columns.
	row func(*T) []any
	// rowAt, if set, is used instead of row: the values of row i of a
	// batch, for tables whose rows need more of the batch than the row.
	rowAt func(b *processor.Batch, i int) []any
	// dead describes a row that cannot be stored; nil means the table's
	// rows are never split off (dead letters themselves).
	dead func(*T, *processor.Batch, int) processor.DeadLetter
	// columns, if set, returns the values of rows refs column by column
	// (the fast way to append), and a function to release them.
	columns func(batches []*processor.Batch, refs []rowRef) ([]any, func())
}

func tableWriter[T any](tb *table[T]) func(context.Context, *Sink, []*processor.Batch) error {
	return func(ctx context.Context, s *Sink, batches []*processor.Batch) error {
		return insertRows(ctx, s, tb, batches)
	}
}

// rowRef addresses row i of batch b.
type rowRef struct{ b, i int }

// insertRows inserts the table's rows of all batches in one insert. Rows
// that fail on their own data are moved to their batch's dead letters.
func insertRows[T any](ctx context.Context, s *Sink, tb *table[T], batches []*processor.Batch) error {
	n := 0
	for _, b := range batches {
		n += len(tb.rows(b))
	}
	if n == 0 {
		return nil
	}
	refs := make([]rowRef, 0, n)
	for bi, b := range batches {
		for i := range tb.rows(b) {
			refs = append(refs, rowRef{bi, i})
		}
	}
	return insertRefs(ctx, s, tb, batches, refs)
}

func insertRefs[T any](ctx context.Context, s *Sink, tb *table[T], batches []*processor.Batch, refs []rowRef) error {
	byRow := tb.columns == nil
	for len(refs) > 0 {
		start := time.Now()
		ictx, cancel := context.WithTimeout(ctx, s.InsertTimeout)
		bad, err := sendRows(ictx, s, tb, batches, refs, byRow)
		// Not cancel(): clickhouse-go's Batch.Send (v2.50.0) watches the
		// context on a goroutine that closes the connection when the context
		// is done, and if that goroutine has not yet run when Send returns,
		// canceling now can close the connection after it went back to the
		// pool, failing the next insert ("use of closed network
		// connection"). The timer releases the context once its deadline has
		// passed anyway.
		time.AfterFunc(s.InsertTimeout, cancel)
		switch {
		case bad == byColumnFailed:
			// Find the row the client refuses by appending row by row.
			byRow = true
			continue
		case err == nil:
			s.duration.WithLabelValues(tb.name).Observe(time.Since(start).Seconds())
			s.rows.WithLabelValues(tb.name).Observe(float64(len(refs)))
			return nil
		case bad >= 0 && tb.dead != nil:
			// The client refused this row: it spoiled the insert, so keep
			// it aside and send the others again.
			s.failures.WithLabelValues(tb.name, "poison").Inc()
			addDeadLetter(s, batches, tb, refs[bad], 0, err)
			refs = append(refs[:bad:bad], refs[bad+1:]...)
			continue
		case IsPoison(err) && tb.dead != nil:
			s.failures.WithLabelValues(tb.name, "poison").Inc()
			if len(refs) == 1 {
				code, _ := exceptionCode(err)
				addDeadLetter(s, batches, tb, refs[0], code, err)
				return nil
			}
			mid := len(refs) / 2
			if err := insertRefs(ctx, s, tb, batches, refs[:mid:mid]); err != nil {
				return err
			}
			return insertRefs(ctx, s, tb, batches, refs[mid:])
		default:
			s.failures.WithLabelValues(tb.name, "transient").Inc()
			return fmt.Errorf("cannot insert %d rows into %s: %w", len(refs), tb.name, err)
		}
	}
	return nil
}

// byColumnFailed is what sendRows returns when appending by column failed.
const byColumnFailed = -2

// sendBlockRows is the size of the blocks an insert is sent in.
const sendBlockRows = 4096

// sendRows inserts the rows of refs in one insert, column by column unless
// byRow. When the client refuses a row it returns that row's position in
// refs (or byColumnFailed), else -1.
func sendRows[T any](ctx context.Context, s *Sink, tb *table[T], batches []*processor.Batch, refs []rowRef, byRow bool) (int, error) {
	batch, err := s.conn.PrepareBatch(ctx, tb.query)
	if err != nil {
		return -1, err
	}
	defer batch.Abort()
	if !byRow {
		// In blocks of sendBlockRows, so the column buffers are reused
		// rather than grown to the whole insert; the server squashes the
		// blocks of one insert into one part.
		for start := 0; start < len(refs); start += sendBlockRows {
			end := min(start+sendBlockRows, len(refs))
			cols, release := tb.columns(batches, refs[start:end])
			for i, c := range cols {
				if err := batch.Column(i).Append(c); err != nil {
					release()
					return byColumnFailed, err
				}
			}
			release()
			if end < len(refs) {
				if err := batch.Flush(); err != nil {
					return -1, err
				}
			}
		}
		return -1, batch.Send()
	}
	var rows []T
	last := -1
	for j, r := range refs {
		if r.b != last {
			rows, last = tb.rows(batches[r.b]), r.b
		}
		var vals []any
		if tb.rowAt != nil {
			vals = tb.rowAt(batches[r.b], r.i)
		} else {
			vals = tb.row(&rows[r.i])
		}
		if err := batch.Append(vals...); err != nil {
			return j, err
		}
	}
	return -1, batch.Send()
}

// addDeadLetter keeps a refused row in its batch's dead letters. Tables are
// written concurrently, so it locks.
func addDeadLetter[T any](s *Sink, batches []*processor.Batch, tb *table[T], r rowRef, code int32, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := batches[r.b]
	d := tb.dead(&tb.rows(b)[r.i], b, r.i)
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
