package alert

import (
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
