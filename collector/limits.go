package collector

import (
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// budget is a non-blocking semaphore of bytes: the memory requests in
// progress may hold. A request reserves its share before reading its body
// and releases it after answering; when the budget is spent, new requests
// are shed at once (503 + Retry-After) instead of queueing.
type budget struct {
	limit int64
	used  atomic.Int64
}

func (b *budget) acquire(n int64) bool {
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *budget) release(n int64) { b.used.Add(-n) }

// limiter is a set of token buckets keyed by K (an IP block or a write
// key). Buckets idle long enough to be full again are forgotten, and the
// set holds at most maxKeys (some 100 bytes each): a new key beyond that
// evicts the fullest of a few random buckets (evict), so memory is bounded
// whatever the traffic. New keys never share a bucket: a spray of fresh
// keys (IPv6 /64s cost an attacker nothing) cannot drain one that
// everybody else then meets, and a network being throttled keeps its
// nearly empty bucket while the spray evicts fuller ones.
// Safe for concurrent use.
type limiter[K comparable] struct {
	rate, burst float64 // tokens per second, bucket size
	maxKeys     int
	now         func() time.Time // the clock; tests inject one
	evicted     atomic.Uint64    // buckets evicted for new keys

	shards [32]limiterShard[K]
	hash   func(K) uint32
}

type limiterShard[K comparable] struct {
	mu      sync.Mutex
	buckets map[K]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter[K comparable](rate float64, burst int, hash func(K) uint32) *limiter[K] {
	if rate <= 0 {
		return nil // no limit
	}
	l := &limiter[K]{rate: rate, burst: float64(burst), maxKeys: 1 << 16, now: time.Now, hash: hash}
	for i := range l.shards {
		l.shards[i].buckets = map[K]*bucket{}
	}
	return l
}

// allow takes n tokens from k's bucket; when there are not enough it takes
// none and says how long until there will be.
func (l *limiter[K]) allow(k K, n float64) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	s := &l.shards[l.hash(k)%uint32(len(l.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[k]
	if !ok {
		if now.Sub(s.swept) > time.Minute {
			l.sweep(s, now)
		}
		if len(s.buckets) >= l.maxKeys/len(l.shards) {
			b = l.evict(s, now)
		}
		if b == nil {
			b = new(bucket)
		}
		*b = bucket{tokens: l.burst, last: now}
		s.buckets[k] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= n {
		b.tokens -= n
		return true, 0
	}
	wait := time.Duration((n - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// evictSample is how many buckets evict looks at.
const evictSample = 8

// evict removes, of a few buckets taken at random (map order is), the one
// holding the most tokens once refilled, and returns it for reuse. A full
// bucket is the ideal victim (a new one would be full as well); a network
// being throttled holds few tokens and keeps its bucket.
func (l *limiter[K]) evict(s *limiterShard[K], now time.Time) *bucket {
	var victim K
	var vb *bucket
	most, n := -1.0, 0
	for k, b := range s.buckets {
		if t := math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate); t > most {
			victim, vb, most = k, b, t
		}
		if n++; n == evictSample || most >= l.burst {
			break
		}
	}
	delete(s.buckets, victim)
	l.evicted.Add(1)
	return vb
}

// sweep forgets the buckets that refilled since their last use.
func (l *limiter[K]) sweep(s *limiterShard[K], now time.Time) {
	s.swept = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range s.buckets {
		if now.Sub(b.last) > full {
			delete(s.buckets, k)
		}
	}
}

// ipBlock is the rate-limited unit of client addresses: an IPv4 /24 or an
// IPv6 /64 (one household or office).
func ipBlock(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		b[3] = 0
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	clear(b[8:])
	return netip.AddrFrom16(b)
}

func hashAddr(a netip.Addr) uint32 {
	b := a.As16()
	return fnv1a(b[:])
}

func hashString(s string) uint32 { return fnv1a(s) }

// fnv1a is the 32-bit FNV-1a hash.
func fnv1a[T string | []byte](s T) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// limitListener accepts at most n connections at a time; Accept waits for
// one to close. Memory per connection is then bounded too.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
