package alert

import (
	"sort"
	"sync"
	"time"
)

// cooldowns holds, per (site, rule, subject) key, until when (event time)
// the subject gets no further alert from the rule, and which signal set
// it: the same signal read again (a replay, or its other destinations) is
// not held back by its own cooldown. 24 bytes of key and value per entry;
// see the memory benchmark for the map's real cost.
type cooldowns struct {
	mu sync.Mutex
	m  map[uint64]cooldown
}

type cooldown struct {
	until  int64 // unix seconds, event time
	signal uint64
}

func newCooldowns() *cooldowns { return &cooldowns{m: map[uint64]cooldown{}} }

// active tells whether key is cooling down at t for another signal.
func (c *cooldowns) active(key uint64, t time.Time, signal uint64) bool {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	return ok && e.signal != signal && t.Unix() < e.until
}

// set records a cooldown unless a later one is already there.
func (c *cooldowns) set(key uint64, until time.Time, signal uint64) {
	c.mu.Lock()
	if e, ok := c.m[key]; !ok || e.until < until.Unix() {
		c.m[key] = cooldown{until: until.Unix(), signal: signal}
	}
	c.mu.Unlock()
}

// sweep drops entries that ended before t and returns how many are left.
func (c *cooldowns) sweep(t time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if e.until < t.Unix() {
			delete(c.m, k)
		}
	}
	return len(c.m)
}

func (c *cooldowns) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// limiter is a destination's sliding-window rate limit: at most rate sends
// in any window of per. own are this alerter's sends (kept across restarts
// by loading them from alert_deliveries at start); others are the other
// alerters' sends, replaced on every refresh from alert_deliveries.
type limiter struct {
	mu     sync.Mutex
	rate   int
	per    time.Duration
	own    []time.Time
	others []time.Time
}

// reserve takes a slot at now if the window has one; otherwise it tells
// when the next slot frees.
func (l *limiter) reserve(now time.Time) (ok bool, next time.Time) {
	if l == nil || l.rate <= 0 {
		return true, now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	from := now.Add(-l.per)
	l.own = prune(l.own, from)
	l.others = prune(l.others, from)
	if len(l.own)+len(l.others) < l.rate {
		l.own = append(l.own, now)
		return true, now
	}
	all := append(append([]time.Time{}, l.own...), l.others...)
	sort.Slice(all, func(i, j int) bool { return all[i].Before(all[j]) })
	// The slot frees when enough of the oldest sends leave the window.
	return false, all[len(all)-l.rate].Add(l.per)
}

// release gives back a slot taken at t whose send did not reach the
// destination (no answer): it did not count against its limit.
func (l *limiter) release(t time.Time) {
	if l == nil || l.rate <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.own) - 1; i >= 0; i-- {
		if l.own[i].Equal(t) {
			l.own = append(l.own[:i], l.own[i+1:]...)
			return
		}
	}
}

func (l *limiter) setOthers(ts []time.Time) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	l.mu.Lock()
	l.others = ts
	l.mu.Unlock()
}

func (l *limiter) addOwn(ts []time.Time) {
	l.mu.Lock()
	l.own = append(l.own, ts...)
	sort.Slice(l.own, func(i, j int) bool { return l.own[i].Before(l.own[j]) })
	l.mu.Unlock()
}

func prune(ts []time.Time, from time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(from) {
		i++
	}
	if i == 0 {
		return ts
	}
	return append(ts[:0], ts[i:]...)
}
