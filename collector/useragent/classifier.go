package useragent

import "sync"

// Entry is the classification of one user agent. UA is the user agent
// itself, a string the cache keeps: callers may hold it instead of making
// their own copy.
type Entry struct {
	UA string
	Info
}

// Classifier parses user agents and recognizes crawlers, remembering up to
// Size distinct user agents (real traffic has few; when the cache is full
// it is emptied, so hostile traffic with random user agents costs CPU but
// never unbounded memory). Safe for concurrent use.
type Classifier struct {
	size int

	mu    sync.RWMutex
	cache map[string]*Entry
}

// NewClassifier returns a classifier caching up to size user agents
// (default 10,000).
func NewClassifier(size int) *Classifier {
	if size <= 0 {
		size = 10000
	}
	return &Classifier{size: size, cache: make(map[string]*Entry, 256)}
}

// Classify returns the classification of ua. ua may be a view of a reused
// buffer: the entry holds its own copy.
func (c *Classifier) Classify(ua []byte) *Entry {
	c.mu.RLock()
	e, ok := c.cache[string(ua)]
	c.mu.RUnlock()
	if ok {
		return e
	}
	s := string(ua)
	e = &Entry{UA: s, Info: Parse(s)}
	if reason, bot := Bot(s); bot {
		e.Bot, e.BotReason, e.Class = true, reason, ClassBot
	}
	c.mu.Lock()
	if len(c.cache) >= c.size {
		clear(c.cache)
	}
	c.cache[s] = e
	c.mu.Unlock()
	return e
}
