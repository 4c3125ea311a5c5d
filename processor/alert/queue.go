package alert

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/shoptrail/shoptrail/processor/alert/notify"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
	"github.com/shoptrail/shoptrail/processor/alert/safehttp"
)

// item is one alert on its way to one destination.
type item struct {
	alert     *notify.Alert
	dest      *rules.Destination
	row       Row // the signal's fields, copied into every attempt's row
	due       time.Time
	attempt   int
	decidedAt time.Time
	firstTry  time.Time
	quiet     *rules.QuietHours
	loc       *time.Location
	deferred  map[string]bool // reasons already counted
	done      func()
}

type itemHeap []*item

func (h itemHeap) Len() int           { return len(h) }
func (h itemHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h itemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)        { *h = append(*h, x.(*item)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

// destQueue is one destination's queue and senders: a destination that is
// down or slow holds only its own alerts.
type destQueue struct {
	name string
	a    *Alerter

	mu   sync.Mutex
	h    itemHeap
	wake chan struct{}
}

func (q *destQueue) push(it *item) {
	q.mu.Lock()
	heap.Push(&q.h, it)
	q.mu.Unlock()
	// Wake one idle sender (the channel holds one token per sender).
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// next pops the earliest item if it is due; else it tells how long until
// one is (0: the queue is empty).
func (q *destQueue) next(now time.Time) (*item, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.h) == 0 {
		return nil, 0
	}
	if d := q.h[0].due.Sub(now); d > 0 {
		return nil, d
	}
	return heap.Pop(&q.h).(*item), 0
}

func (q *destQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.h)
}

// sender takes due items and delivers them until ctx ends.
func (q *destQueue) sender(ctx context.Context) {
	a := q.a
	for {
		now := a.clock.Now()
		it, wait := q.next(now)
		if it == nil {
			var timer <-chan time.Time
			if wait > 0 {
				timer = a.clock.After(wait)
			}
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
			case <-timer:
			}
			continue
		}
		if t := it.quiet.Next(now, it.loc); t.After(now) {
			it.due = t
			q.deferOnce(it, reasonQuietHours)
			q.push(it)
			continue
		}
		if it.dest.Rate > 0 {
			ok, free, err := a.rl.reserve(ctx, q.name, it.dest.Rate, it.dest.Per, now)
			if err != nil && ctx.Err() == nil {
				a.log.Warn("cannot claim a rate-limit slot; retrying", "destination", q.name, "err", err)
			}
			if !ok {
				if ctx.Err() != nil {
					return
				}
				it.due = free
				if err == nil {
					q.deferOnce(it, reasonRateLimit)
				}
				q.push(it)
				continue
			}
		}
		q.attempt(ctx, it, now)
	}
}

func (q *destQueue) deferOnce(it *item, reason string) {
	if it.deferred == nil {
		it.deferred = map[string]bool{}
	}
	if !it.deferred[reason] {
		it.deferred[reason] = true
		q.a.m.deferred.WithLabelValues(reason).Inc()
	}
}

// attempt sends one try and records its outcome; a retry goes back on the
// queue at its backoff.
func (q *destQueue) attempt(ctx context.Context, it *item, now time.Time) {
	a := q.a
	it.attempt++
	if it.firstTry.IsZero() {
		it.firstTry = now
	}
	row := it.row
	row.RecordedAt, row.Attempt, row.Alerter = now, it.attempt, a.cfg.ID
	req, err := notify.Request(it.dest, it.alert, now)
	if err != nil {
		// Cannot happen with a compiled destination; recorded, not retried.
		row.Status, row.Final, row.Answer = StatusRejected, true, err.Error()
		a.m.failed.WithLabelValues(q.name, "rejected").Inc()
		a.finish(row, it)
		return
	}
	start := time.Now()
	ans, err := a.client.Do(ctx, req)
	row.Latency = time.Since(start)
	if err != nil && ctx.Err() != nil {
		// Stopping: the alert stays unrecorded, its signal uncommitted; it
		// is decided again after the restart.
		return
	}
	verdict, retryAfter := notify.Retry, time.Duration(0)
	if err != nil {
		row.Answer = truncate(err.Error(), 256)
		a.m.attempts.WithLabelValues(q.name, "error").Inc()
		if errors.Is(err, safehttp.ErrForbiddenAddress) || errors.Is(err, safehttp.ErrScheme) {
			verdict = notify.Rejected
		}
	} else {
		row.HTTPStatus, row.Answer = ans.Status, truncate(string(ans.Body), 256)
		verdict, retryAfter = notify.Judge(it.dest.Type, ans.Status, ans.Header, ans.Body, now)
		a.m.attempts.WithLabelValues(q.name, verdict.String()).Inc()
	}
	switch verdict {
	case notify.Delivered:
		row.Status, row.Final = StatusSent, true
		a.m.sent.WithLabelValues(q.name).Inc()
		a.m.latency.WithLabelValues(q.name).Observe(a.clock.Now().Sub(it.decidedAt).Seconds())
		a.finish(row, it)
	case notify.Rejected:
		row.Status, row.Final = StatusRejected, true
		a.m.failed.WithLabelValues(q.name, "rejected").Inc()
		a.finish(row, it)
	default:
		if now.Sub(it.firstTry) >= a.cfg.MaxAge {
			row.Status, row.Final = StatusGaveUp, true
			a.m.failed.WithLabelValues(q.name, "gave_up").Inc()
			a.finish(row, it)
			return
		}
		row.Status = StatusRetrying
		a.rec.add(row)
		wait := a.backoff(it.attempt)
		if retryAfter > 0 {
			wait = min(retryAfter, a.cfg.MaxAge)
		}
		it.due = now.Add(wait)
		q.push(it)
	}
}

// finish records an alert's final row; its signal's offset may be
// committed once the row is stored.
func (a *Alerter) finish(row Row, it *item) {
	row.done = it.done
	a.rec.add(row)
}

// backoff is the wait before attempt n+1: exponential from BackoffBase,
// capped at BackoffMax, with "equal jitter" (half fixed, half random) so
// alerters retrying after an outage do not all come back at once.
func (a *Alerter) backoff(attempt int) time.Duration {
	d := a.cfg.BackoffBase
	for i := 1; i < attempt && d < a.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, a.cfg.BackoffMax)
	half := d / 2
	return half + rand.N(half+1)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
