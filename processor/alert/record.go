package alert

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Statuses of alert_deliveries rows.
const (
	StatusSent          = "sent"
	StatusRetrying      = "retrying"
	StatusRejected      = "rejected"
	StatusGaveUp        = "gave_up"
	StatusHeldOut       = "held_out"
	StatusCooldown      = "suppressed_cooldown"
	StatusDigestPending = "digest_pending"
)

// Row is one alert_deliveries row.
type Row struct {
	RecordedAt    time.Time
	AlertID       string
	SignalID      string
	SignalType    string
	Site          string
	Rule          string
	Subject       string
	AbandonmentID string
	Destination   string
	Attempt       int
	Status        string
	Final         bool
	HTTPStatus    int
	Answer        string
	Latency       time.Duration
	HeldOut       bool
	FollowUp      string
	SignalAt      time.Time
	CooldownUntil time.Time
	Payload       string
	Alerter       string
	// done is called once the row is stored.
	done func()
}

// Recovery is one alert_recoveries row.
type Recovery struct {
	SignalID, Site, Subject, AbandonmentID, OrderID, Currency string
	AbandonedAt, RecoveredAt                                  time.Time
	Value                                                     float64
	done                                                      func()
}

// recorder batches rows into ClickHouse. A failed insert is retried with
// backoff (nothing is dropped: offsets wait for it); done callbacks run
// only after the rows are stored.
type recorder struct {
	conn     driver.Conn
	log      *slog.Logger
	m        *metrics
	interval time.Duration

	mu    sync.Mutex
	rows  []Row
	recov []Recovery
	spare []Row // the slice of the last flush, emptied, for the next rows
	kick  chan struct{}
}

func newRecorder(conn driver.Conn, log *slog.Logger, m *metrics, interval time.Duration) *recorder {
	return &recorder{conn: conn, log: log, m: m, interval: interval, kick: make(chan struct{}, 1)}
}

func (r *recorder) add(row Row) {
	r.mu.Lock()
	if r.rows == nil {
		r.rows, r.spare = r.spare, nil
	}
	r.rows = append(r.rows, row)
	n := len(r.rows)
	r.mu.Unlock()
	if n >= 5000 {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

func (r *recorder) addRecovery(rc Recovery) {
	r.mu.Lock()
	r.recov = append(r.recov, rc)
	r.mu.Unlock()
}

// run flushes every interval until ctx ends, then once more (with a fresh
// deadline) so a graceful stop records what was done.
func (r *recorder) run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r.flush(fctx)
			cancel()
			return
		case <-t.C:
		case <-r.kick:
		}
		r.flush(ctx)
	}
}

// flush stores what is buffered, retrying until it is stored or ctx ends.
func (r *recorder) flush(ctx context.Context) {
	r.mu.Lock()
	rows, recov := r.rows, r.recov
	r.rows, r.recov = nil, nil
	r.mu.Unlock()
	if len(rows) == 0 && len(recov) == 0 {
		return
	}
	wait := 100 * time.Millisecond
	pr, pc := rows, recov // what is still to store
	for {
		err := r.insertDeliveries(ctx, pr)
		if err == nil {
			pr = nil
			err = r.insertRecoveries(ctx, pc)
		}
		if err == nil {
			break
		}
		r.m.recordFails.Inc()
		r.log.Warn("cannot record alert outcomes; retrying", "rows", len(rows), "err", err)
		select {
		case <-ctx.Done():
			// Not stored: their offsets stay uncommitted and the signals
			// are read again after a restart.
			return
		case <-time.After(wait + rand.N(wait)):
		}
		wait = min(wait*2, 10*time.Second)
	}
	for i := range rows {
		if rows[i].done != nil {
			rows[i].done()
		}
	}
	for _, rc := range recov {
		if rc.done != nil {
			rc.done()
		}
	}
	// Reused: growing a new slice of rows (over 300 bytes each) every
	// flush was most of the recorder's allocation.
	clear(rows)
	r.mu.Lock()
	if r.spare == nil && cap(rows) <= 1<<14 { // at most ~5 MB kept
		r.spare = rows[:0]
	}
	r.mu.Unlock()
}

// dt clamps a time to what ClickHouse DateTime holds (the zero time is
// stored as 1970-01-01 00:00:00).
func dt(t time.Time) time.Time {
	if t.Before(time.Unix(0, 0)) {
		return time.Unix(0, 0).UTC()
	}
	return t.UTC()
}

const insertDeliveries = `INSERT INTO alert_deliveries (recorded_at, alert_id, signal_id, signal_type, site, rule, subject,
abandonment_id, destination, attempt, status, final, http_status, answer, latency_ms, held_out, follow_up, signal_at,
cooldown_until, payload, alerter)`

const insertRecoveries = `INSERT INTO alert_recoveries (recorded_at, signal_id, site, subject, abandonment_id, abandoned_at,
recovered_at, order_id, value, currency)`

func (r *recorder) insertDeliveries(ctx context.Context, rows []Row) error {
	if len(rows) > 0 {
		b, err := r.conn.PrepareBatch(ctx, insertDeliveries)
		if err != nil {
			return fmt.Errorf("cannot prepare insert into alert_deliveries: %w", err)
		}
		for i := range rows {
			w := &rows[i]
			if err := b.Append(dt(w.RecordedAt), w.AlertID, w.SignalID, w.SignalType, w.Site, w.Rule, w.Subject,
				w.AbandonmentID, w.Destination, uint16(min(w.Attempt, 65535)), w.Status, boolU8(w.Final),
				uint16(max(0, min(w.HTTPStatus, 65535))), w.Answer, uint32(min(w.Latency.Milliseconds(), 1<<32-1)),
				boolU8(w.HeldOut), w.FollowUp, dt(w.SignalAt), dt(w.CooldownUntil), w.Payload, w.Alerter); err != nil {
				b.Abort()
				return fmt.Errorf("cannot append to alert_deliveries: %w", err)
			}
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("cannot insert %d rows into alert_deliveries: %w", len(rows), err)
		}
	}
	return nil
}

func (r *recorder) insertRecoveries(ctx context.Context, recov []Recovery) error {
	if len(recov) > 0 {
		b, err := r.conn.PrepareBatch(ctx, insertRecoveries)
		if err != nil {
			return fmt.Errorf("cannot prepare insert into alert_recoveries: %w", err)
		}
		now := time.Now()
		for _, rc := range recov {
			if err := b.Append(dt(now), rc.SignalID, rc.Site, rc.Subject, rc.AbandonmentID, dt(rc.AbandonedAt),
				dt(rc.RecoveredAt), rc.OrderID, rc.Value, rc.Currency); err != nil {
				b.Abort()
				return fmt.Errorf("cannot append to alert_recoveries: %w", err)
			}
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("cannot insert %d rows into alert_recoveries: %w", len(recov), err)
		}
	}
	return nil
}

func boolU8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
