package useragent

import "sync"

// Entry is the classification of one user agent. UA is the user agent
// itself, a string the cache keeps: callers may hold it instead of making
// their own copy.
type Entry struct {
	UA string
	Info
}

// MaxLen is the longest user agent classified: longer ones are cut to it
// first (real ones are under 400 bytes), so neither the parse nor the
// cache ever holds more.
const MaxLen = 512

// entryCost is what a cached entry holds besides its user agent: the map
// slot, the Entry, the shared result strings.
const entryCost = 160

// Classifier parses user agents and recognizes crawlers, remembering up to
// size distinct user agents within maxBytes (real traffic has few; when
// the cache is full it is emptied, so hostile traffic with random user
// agents costs CPU but never unbounded memory: at most 10,000 entries and
// 4 MiB by default). Safe for concurrent use.
type Classifier struct {
	// Scrub, when set, rewrites the user agent an Entry keeps (e.g.
	// redacting what looks like PII), once per distinct user agent; set
	// it before the first Classify.
	Scrub func(string) string

	size     int
	maxBytes int

	mu    sync.RWMutex
	cache map[string]*Entry
	bytes int // held by cache
}

// NewClassifier returns a classifier caching up to size user agents
// (default 10,000) in at most 4 MiB.
func NewClassifier(size int) *Classifier {
	if size <= 0 {
		size = 10000
	}
	return &Classifier{size: size, maxBytes: 4 << 20, cache: make(map[string]*Entry, 256)}
}

// Bytes is the memory the cache holds, as it counts it.
func (c *Classifier) Bytes() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bytes
}

// Classify returns the classification of ua, cut to MaxLen bytes (at a
// UTF-8 boundary). ua may be a view of a reused buffer: the entry holds
// its own copy.
func (c *Classifier) Classify(ua []byte) *Entry {
	if len(ua) > MaxLen {
		n := MaxLen
		for n > 0 && ua[n]&0xC0 == 0x80 {
			n--
		}
		ua = ua[:n]
	}
	c.mu.RLock()
	e, ok := c.cache[string(ua)]
	c.mu.RUnlock()
	if ok {
		return e
	}
	s := string(ua)
	e = &Entry{UA: s, Info: Parse(s)}
	if c.Scrub != nil {
		e.UA = c.Scrub(s)
	}
	if reason, bot := Bot(s); bot {
		e.Bot, e.BotReason, e.Class = true, reason, ClassBot
	}
	cost := len(s) + entryCost
	c.mu.Lock()
	if _, ok := c.cache[s]; !ok {
		if len(c.cache) >= c.size || c.bytes+cost > c.maxBytes {
			clear(c.cache)
			c.bytes = 0
		}
		c.cache[s] = e
		c.bytes += cost
	}
	c.mu.Unlock()
	return e
}
