package collector

import (
	"context"
	"time"
)

// deadlineCtx is the context a request gives Produce: done when its
// deadline passes. A request keeps it for the next one that reuses the
// request, with the same timer, as long as it did not expire:
// context.WithTimeout cost every request a timer and three allocations.
// Produce must not keep it after it returns (groupProducer does not).
type deadlineCtx struct {
	context.Context // Background: no values, never canceled otherwise
	deadline        time.Time
	done            chan struct{}
	timer           *time.Timer
}

// startDeadline returns c (a new one when c is nil), done after d.
func startDeadline(c *deadlineCtx, d time.Duration) *deadlineCtx {
	if c == nil {
		c = &deadlineCtx{Context: context.Background(), done: make(chan struct{})}
		done := c.done
		c.deadline = time.Now().Add(d)
		c.timer = time.AfterFunc(d, func() { close(done) })
		return c
	}
	c.deadline = time.Now().Add(d)
	c.timer.Reset(d)
	return c
}

// stop ends c's wait; it returns c if it can be started again, nil when
// its deadline passed (its done channel is closed).
func (c *deadlineCtx) stop() *deadlineCtx {
	if !c.timer.Stop() {
		return nil
	}
	return c
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *deadlineCtx) Done() <-chan struct{}       { return c.done }

func (c *deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
