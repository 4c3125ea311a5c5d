package session

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail"
)

// Config configures a Sessionizer. Zero fields take the documented defaults.
type Config struct {
	// Timeout ends a session after this much event time without events: an
	// event at least Timeout after the previous one starts a new session.
	// The default is 30 minutes (GA4, Snowplow, PostHog).
	Timeout time.Duration
	// MaxLength caps a session: an event at least MaxLength after the
	// session's first event starts a new session. The default is 24 hours
	// (PostHog). At most 48 hours.
	MaxLength time.Duration
	// AllowedLateness is how far an event's time may lie behind the newest
	// event time seen on the partition and still count in its session. Later
	// events are emitted as Late and counted, not sessionized. It is also how
	// long an event waits before its session assignment is final, and so the
	// memory of pending events: about the partition's live event rate times
	// AllowedLateness. The default is 5 minutes, which covers beacon
	// batching, retries and several tabs of one visitor.
	AllowedLateness time.Duration
	// NoCampaignSplit turns off starting a new session when the campaign
	// source changes (GA4's behaviour). By default a hit with a different
	// source, medium, campaign, term, content or click id kind than its
	// session's starts a new session (Universal Analytics, Matomo); direct
	// hits and internal referrers never do.
	NoCampaignSplit bool
	// VisitorRetention is how long a visitor's small record (whether it had
	// sessions, its customer id, its tabs' sequence numbers) is kept after
	// its last event. A visitor seen again within it is a returning visitor
	// and keeps its customer id. The default is 30 days.
	VisitorRetention time.Duration
	// OwnDomains lists, per site id, the domains whose referrers are
	// internal (subdomains included). The page URL's own host always is.
	OwnDomains map[string][]string
}

// Defaults of Config.
const (
	DefaultTimeout          = 30 * time.Minute
	DefaultMaxLength        = 24 * time.Hour
	DefaultAllowedLateness  = 5 * time.Minute
	DefaultVisitorRetention = 30 * 24 * time.Hour
)

// RegisterFlags registers the session.* flags on fs, with the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Timeout, "session.timeout", DefaultTimeout, "end a session after this much event time without events")
	fs.DurationVar(&c.MaxLength, "session.max-length", DefaultMaxLength, "longest session; a later event starts a new one")
	fs.DurationVar(&c.AllowedLateness, "session.allowed-lateness", DefaultAllowedLateness, "how far behind the newest event time an event may arrive and still count in its session")
	fs.BoolVar(&c.NoCampaignSplit, "session.no-campaign-split", false, "do not start a new session when the campaign source changes (GA4 behaviour)")
	fs.DurationVar(&c.VisitorRetention, "session.visitor-retention", DefaultVisitorRetention, "keep a visitor's record this long after its last event (returning visitors, customer id)")
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxLength == 0 {
		c.MaxLength = DefaultMaxLength
	}
	if c.AllowedLateness == 0 {
		c.AllowedLateness = DefaultAllowedLateness
	}
	if c.VisitorRetention == 0 {
		c.VisitorRetention = DefaultVisitorRetention
	}
	return c
}

// Validate reports a configuration the Sessionizer cannot run with.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Timeout < time.Second:
		return fmt.Errorf("session timeout %v is shorter than a second", c.Timeout)
	case c.MaxLength < c.Timeout:
		return fmt.Errorf("session max length %v is shorter than the timeout %v", c.MaxLength, c.Timeout)
	case c.MaxLength > 48*time.Hour:
		return fmt.Errorf("session max length %v is longer than 48h", c.MaxLength)
	case c.AllowedLateness < 0 || c.AllowedLateness > 24*time.Hour:
		return fmt.Errorf("allowed lateness %v is not within 0..24h", c.AllowedLateness)
	case c.VisitorRetention < c.Timeout:
		return fmt.Errorf("visitor retention %v is shorter than the session timeout %v", c.VisitorRetention, c.Timeout)
	}
	return nil
}

// Session is one closed session: a row of the sessions table.
type Session struct {
	Site      string
	SessionID string // SessionID(Site, visitor key, first message id)
	// AnonymousID is the visitor's anonymous id; empty for a visitor known
	// only by user id (server-side events).
	AnonymousID string
	// UserID is the customer id the visitor was linked to before the
	// session closed (identify or any event with a userId), else empty.
	UserID string

	Start    time.Time // first event, UTC, millisecond precision
	End      time.Time // last event
	Duration time.Duration

	Events    uint32 // distinct events (duplicates excluded)
	PageViews uint32 // page and screen calls

	LandingPage string // path of the first event that has one
	ExitPage    string // path of the last event that has one
	Referrer    string // external referrer of the first event, if any

	// Traffic source of the session's first event (see Attribute) and its
	// default channel group under rules RulesVersion.
	Source       string
	Medium       string
	Campaign     string
	Term         string
	Content      string
	ClickIDKind  string
	Channel      string
	RulesVersion uint16

	DeviceClass string // of the first event that has a device
	Browser     string
	OS          string
	IsBot       bool // some event of the session was flagged as a bot's

	// Returning: the visitor had an earlier session (within
	// Config.VisitorRetention).
	Returning bool
	// Engaged (GA4): longer than 10 seconds, or 2+ page views, or a key
	// event (order, sign-up, inquiry).
	Engaged bool

	Funnel FunnelStep
	// CartValue is the highest cart value of the session: cart snapshots
	// (Cart Viewed, Checkout Started) set it, Product Added/Removed move it,
	// Order Completed empties it.
	CartValue float64
	Orders    uint32  // Order Completed events, distinct by order_id
	Revenue   float64 // their revenue (revenue, else total, value, products)
}

// Status tells what became of an event.
type Status uint8

// Statuses of an Assignment.
const (
	// Assigned: the event belongs to SessionID and is counted in it.
	Assigned Status = iota
	// Duplicate: the message id was already counted; SessionID is the
	// session of the first copy.
	Duplicate
	// Late: the event arrived more than AllowedLateness behind the newest
	// event time (its session may be closed already); it is not counted in
	// any session and SessionID is empty. Keep the event, count it.
	Late
	// Invalid: the event has no site, no visitor key, no message id or no
	// time; SessionID is empty.
	Invalid
)

func (s Status) String() string {
	switch s {
	case Assigned:
		return "assigned"
	case Duplicate:
		return "duplicate"
	case Late:
		return "late"
	case Invalid:
		return "invalid"
	}
	return "unknown"
}

// Assignment maps one event to its session. Every event passed to Add yields
// exactly one Assignment: Late, Invalid and duplicates of settled events at
// once; the others when the watermark passes them (about AllowedLateness
// later), because until then an earlier event may still arrive and move
// them to another session.
type Assignment struct {
	Site      string
	MessageID string
	SessionID string
	Status    Status
}

// IdentityLink records that an anonymous visitor was identified as a
// customer: a row of the identity_links table. FirstSeen is the event time
// of the event that carried the link.
type IdentityLink struct {
	Site        string
	AnonymousID string
	UserID      string
	FirstSeen   time.Time
}

// LossRecord counts beacon events per site, browser and page path: Received
// events that carried a tab sequence number, and Lost ones, the gaps in a
// tab's sequence (events that never arrived, or arrived later than the
// allowed lateness). A gap is charged to the page the tab was on before it,
// where the missing events were sent from; an event that fills a gap after
// it was counted yields Lost -1. Records are sums over one Drain; add them
// up downstream.
type LossRecord struct {
	Site     string
	Browser  string
	Path     string
	Received int64
	Lost     int64
}

// Output collects what the Sessionizer produced since the last Drain.
type Output struct {
	Sessions    []Session
	Assignments []Assignment
	Links       []IdentityLink
	Loss        []LossRecord
}

// Reset empties o, keeping its capacity.
func (o *Output) Reset() {
	clear(o.Sessions)
	clear(o.Assignments)
	clear(o.Links)
	clear(o.Loss)
	o.Sessions = o.Sessions[:0]
	o.Assignments = o.Assignments[:0]
	o.Links = o.Links[:0]
	o.Loss = o.Loss[:0]
}

// Stats are counters and gauges for metrics.
type Stats struct {
	Visitors       int   // visitors in memory (open or retained)
	OpenSessions   int   // sessions not yet closed
	PendingEvents  int   // events waiting for the watermark
	Closed         int64 // sessions closed so far
	Assigned       int64
	Duplicates     int64
	Late           int64
	Invalid        int64
	LinksEmitted   int64
	VisitorsPurged int64 // visitor records dropped after VisitorRetention
	// Replayed counts events skipped after a Restore because the visitor's
	// changelog record already included them.
	Replayed  int64
	Watermark time.Time
}

// SessionID returns the deterministic id of a session: the first 16 bytes
// of SHA-256 over site, visitor key (the event's Key(): anonymous id, or
// user id when there is none) and the message id of the session's first
// event, NUL-separated, in hex. Replays yield the same ids.
func SessionID(site, visitorKey, firstMessageID string) string {
	var b [16]byte
	sessionIDSum(&b, nil, site, []byte(visitorKey), firstMessageID)
	return hex.EncodeToString(b[:])
}

// sessionIDSum computes a session id into dst, using buf as scratch space,
// and returns buf for reuse.
func sessionIDSum(dst *[16]byte, buf []byte, site string, visitorKey []byte, msgID string) []byte {
	buf = append(buf[:0], site...)
	buf = append(buf, 0)
	buf = append(buf, visitorKey...)
	buf = append(buf, 0)
	buf = append(buf, msgID...)
	sum := sha256.Sum256(buf)
	copy(dst[:], sum[:16])
	return buf
}

// Sessionizer turns the events of one Kafka partition into sessions, in
// event time. It is deterministic: the same events in the same order with
// the same Advance calls produce the same output, and a Sessionizer
// restored from a Checkpoint continues exactly as the original would have.
//
// Events wait, per visitor, until the watermark (the newest event time seen
// minus AllowedLateness, or Advance's clock) passes them; then they are
// applied in event-time order, so an event that arrives out of order but
// within the allowed lateness lands in the session it belongs to, merging or
// splitting sessions as sorted data would. Timers are data: per-visitor
// deadlines in a wheel that the watermark drives.
//
// Memory: about 200 bytes per visitor with an open session (see
// BenchmarkOpenSessionMemory), about 100 per retained visitor record, and
// about 150 per pending event.
//
// A Sessionizer is not safe for concurrent use: one per partition, driven
// by the partition's consumer.
type Sessionizer struct {
	cfg       Config
	timeout   int64 // ms
	maxLen    int64
	lateness  int64
	retention int64
	split     bool

	offset  int64 // last Kafka offset passed to Add
	maxSeen int64 // newest event time seen, unix ms
	wm      int64 // watermark, unix ms

	visitors slab[visitor]
	sessions slab[session]
	pend     slab[pending]
	table    vtable
	wheel    wheel

	strs    strTab               // paths, referrers, user ids
	touches *interner[touchVal]  // traffic sources
	devices *interner[deviceVal] // device class, browser, OS
	sites   map[string]uint32    // site id -> index into siteNames
	names   []string             // site names by index
	loss    map[lossKey]*lossVal // since the last Drain
	skip    map[int32]int64      // restored visitors ahead of the meta offset
	skipMax int64                //

	out       Output
	dirty     []int32  // visitors changed since the last Checkpoint
	deleted   []string // changelog keys of visitors purged since then
	stats     Stats
	keyBuf    []byte
	hashBuf   []byte
	idBuf     []byte
	sidCache  [16]byte
	sidString string
}

// visitor is the state of one (site, visitor key): its open session, its
// pending events and a small record that outlives sessions.
type visitor struct {
	key string // site NUL kind id; see packKey
	// extra holds ntabs tab records of 3 words (tab hash; max seq; last
	// path ref<<32 | last seen unix seconds), then the message id hashes
	// (and order id hashes ^ orderTag) of the open session.
	extra    []uint64
	user     uint32 // strs ref: customer id
	sess     int32  // open session index + 1; 0 none
	pendHead int32  // first pending event index + 1, in (time, message id) order
	pendTail int32
	sched    uint32 // wheel bucket of the visitor's earliest timer entry; 0 none
	lastSeen uint32 // unix seconds of the newest settled event
	sessions uint32 // sessions closed so far
	ntabs    uint8
	dirty    bool
}

// session is an open session: only what its row needs, as numbers and
// interned ids, no pointers.
type session struct {
	start    int64 // unix ms
	cartRun  float64
	cartPeak float64
	revenue  float64
	sid      [16]byte
	endOff   uint32 // ms after start
	events   uint32
	pages    uint32
	orders   uint32
	touch    uint32 // touches ref; 0 direct
	referrer uint32 // strs ref
	landing  uint32 // strs ref
	exit     uint32 // strs ref
	device   uint32 // devices ref
	funnel   FunnelStep
	flags    uint8
}

const (
	sessBot uint8 = 1 << iota
	sessReturning
	sessKeyEvent
)

// pending is an event waiting for the watermark, reduced to what a session
// needs from it.
type pending struct {
	t        int64 // unix ms
	msgHash  uint64
	msgID    string
	tab      uint64 // hash of context.delivery.tab; 0 none
	seq      int64
	value    float64
	orderKey uint64
	next     int32 // index + 1
	dups     uint16
	kind     evKind
	flags    uint8
	touch    uint32
	referrer uint32
	path     uint32
	device   uint32
}

const (
	pendPage uint8 = 1 << iota
	pendBot
	pendValue
)

// touchVal is an interned traffic source with its channel.
type touchVal struct {
	src     Source
	channel string
}

type deviceVal struct{ class, browser, os string }

type lossKey struct{ site, device, path uint32 }
type lossVal struct{ received, lost int64 }

// orderTag separates order id hashes from message id hashes in extra.
const orderTag = 0x6f72646572000000

// maxIDs bounds the message ids remembered per open session: beyond it the
// older half is forgotten (their duplicates would be late anyway).
const maxIDs = 512

// maxTabs bounds the tab records per visitor; the least recently seen goes.
const maxTabs = 8

// New returns a Sessionizer for one partition.
func New(cfg Config) (*Sessionizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create sessionizer: %w", err)
	}
	cfg = cfg.withDefaults()
	s := &Sessionizer{
		cfg:       cfg,
		timeout:   cfg.Timeout.Milliseconds(),
		maxLen:    cfg.MaxLength.Milliseconds(),
		lateness:  cfg.AllowedLateness.Milliseconds(),
		retention: cfg.VisitorRetention.Milliseconds(),
		split:     !cfg.NoCampaignSplit,
		offset:    -1,
		maxSeen:   math.MinInt64,
		wm:        math.MinInt64,
		strs:      newStrTab(),
		touches:   newInterner[touchVal](),
		devices:   newInterner[deviceVal](),
		sites:     make(map[string]uint32),
		loss:      make(map[lossKey]*lossVal),
	}
	s.table.init()
	s.wheel.init(int((cfg.AllowedLateness+cfg.Timeout)/time.Second) + 2)
	return s, nil
}

// Watermark returns the current watermark: events before it are late.
// Before the first event it is the zero Time.
func (s *Sessionizer) Watermark() time.Time {
	if s.wm == math.MinInt64 {
		return time.Time{}
	}
	return time.UnixMilli(s.wm).UTC()
}

// Offset returns the last Kafka offset passed to Add (or restored), -1 if
// none: after a Restore, resume consuming at Offset()+1.
func (s *Sessionizer) Offset() int64 { return s.offset }

// Stats returns counters and gauges.
func (s *Sessionizer) Stats() Stats {
	st := s.stats
	st.Visitors = s.visitors.live()
	st.OpenSessions = s.sessions.live()
	st.PendingEvents = s.pend.live()
	st.Watermark = s.Watermark()
	return st
}

// Add feeds one event of the partition, in Kafka order, with its offset.
// Outputs collect until Drain.
func (s *Sessionizer) Add(offset int64, e *shoptrail.Event) {
	if offset > s.offset {
		s.offset = offset
	}
	if s.skip != nil && offset > s.skipMax {
		s.skip = nil // the replay has passed every restored visitor
	}
	t := eventTime(e)
	if e.Site == "" || e.MessageID == "" || e.Key() == "" || t == math.MinInt64 || strings.IndexByte(e.Site, 0) >= 0 {
		s.stats.Invalid++
		s.out.Assignments = append(s.out.Assignments, Assignment{Site: e.Site, MessageID: e.MessageID, Status: Invalid})
		return
	}
	if t > s.maxSeen {
		s.maxSeen = t
		if w := t - s.lateness; w > s.wm {
			s.wm = w
			// Fire what the new watermark makes due before this event
			// looks up its visitor: an expired record is gone first.
			s.runTimers()
		}
	}
	s.keyBuf = packKey(s.keyBuf[:0], e.Site, e)
	vi := s.find(s.keyBuf)
	if vi >= 0 && s.skip != nil {
		if through, ok := s.skip[vi]; ok && offset <= through {
			// Restored from a changelog record written after this event
			// was applied: it is in the state already, and its outputs
			// were emitted before that record was written.
			s.stats.Replayed++
			return
		}
	}
	late := t < s.wm
	stitch := e.UserID != "" && e.AnonymousID != ""
	if vi < 0 {
		if late && !stitch {
			s.emitLate(e)
			return
		}
		vi = s.newVisitor(s.keyBuf)
	}
	v := s.visitors.at(vi)
	h := xxh64(e.MessageID)
	if s.duplicate(vi, v, h, e) {
		return
	}
	if stitch {
		s.stitch(vi, v, e.UserID, t)
	}
	if late {
		s.emitLate(e)
		if v.sess == 0 && v.pendHead == 0 {
			if sec := uint32(t / 1000); sec > v.lastSeen {
				v.lastSeen = sec
				s.markDirty(vi, v)
			}
			s.reschedule(vi, v)
		}
		return
	}
	s.insertPending(vi, v, s.newPending(e, t, h))
	s.markDirty(vi, v)
	s.schedule(vi, v, t+1)
}

// Advance moves the watermark to now minus AllowedLateness if that is later,
// closing what is due. Call it with the wall clock for a partition that has
// no new events (the consumer is at the partition's end), so that its
// sessions still close; never while catching up on a backlog, where it
// would make the backlog late.
func (s *Sessionizer) Advance(now time.Time) {
	if w := now.UnixMilli() - s.lateness; w > s.wm {
		s.wm = w
		s.runTimers()
	}
}

// Drain appends everything produced since the last Drain to out (Loss
// records aggregated and sorted by site, browser and path) and forgets it.
func (s *Sessionizer) Drain(out *Output) {
	out.Sessions = append(out.Sessions, s.out.Sessions...)
	out.Assignments = append(out.Assignments, s.out.Assignments...)
	out.Links = append(out.Links, s.out.Links...)
	if len(s.loss) > 0 {
		type agg struct{ site, browser, path string }
		sums := make(map[agg]*LossRecord, len(s.loss))
		for k, v := range s.loss {
			a := agg{s.names[k.site], s.devices.val(k.device).browser, s.strs.str(k.path)}
			r := sums[a]
			if r == nil {
				r = &LossRecord{Site: a.site, Browser: a.browser, Path: a.path}
				sums[a] = r
			}
			r.Received += v.received
			r.Lost += v.lost
			s.devices.dec(k.device)
			s.strs.dec(k.path)
		}
		start := len(out.Loss)
		for _, r := range sums {
			out.Loss = append(out.Loss, *r)
		}
		slices.SortFunc(out.Loss[start:], func(a, b LossRecord) int {
			if c := strings.Compare(a.Site, b.Site); c != 0 {
				return c
			}
			if c := strings.Compare(a.Browser, b.Browser); c != 0 {
				return c
			}
			return strings.Compare(a.Path, b.Path)
		})
		clear(s.loss)
	}
	s.out.Reset()
}

// Flush settles every pending event and closes every open session, as at
// the end of the input (batch runs, tests). Visitor records stay.
func (s *Sessionizer) Flush() {
	for i := int32(0); i < s.visitors.n; i++ {
		v := s.visitors.at(i)
		if v.key == "" {
			continue
		}
		for p := v.pendHead; p != 0; {
			r := s.pend.at(p - 1)
			s.apply(i, v, r)
			next := r.next
			s.freePending(p - 1)
			p = next
		}
		v.pendHead, v.pendTail = 0, 0
		if v.sess != 0 {
			s.closeSession(i, v)
		}
		s.markDirty(i, v)
		s.reschedule(i, v)
	}
}

func eventTime(e *shoptrail.Event) int64 {
	ts := e.Timestamp
	if ts.IsZero() {
		ts = e.ReceivedAt
	}
	if ts.IsZero() {
		return math.MinInt64
	}
	return ts.UnixMilli()
}

// Visitor keys are packed as site NUL kind id, where kind is 'a' (anonymous
// id as is), 'A' (anonymous id that is a lower-case UUID, as its 16 bytes)
// or 'u' (user id, for events without an anonymous id).
func packKey(dst []byte, site string, e *shoptrail.Event) []byte {
	dst = append(dst, site...)
	dst = append(dst, 0)
	if e.AnonymousID == "" {
		dst = append(dst, 'u')
		return append(dst, e.UserID...)
	}
	if u, ok := parseUUID(e.AnonymousID); ok {
		dst = append(dst, 'A')
		return append(dst, u[:]...)
	}
	dst = append(dst, 'a')
	return append(dst, e.AnonymousID...)
}

// splitKey returns the site, visitor key (anonymous or user id) and whether
// it is an anonymous id, of a packed key.
func splitKey(key string) (site, id string, anonymous bool) {
	i := strings.IndexByte(key, 0)
	site, kind, id := key[:i], key[i+1], key[i+2:]
	if kind == 'A' {
		id = formatUUID(id)
	}
	return site, id, kind != 'u'
}

func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false // upper case stays unpacked, to round-trip exactly
}

func formatUUID(b string) string {
	var out [36]byte
	hex.Encode(out[0:8], []byte(b[0:4]))
	out[8] = '-'
	hex.Encode(out[9:13], []byte(b[4:6]))
	out[13] = '-'
	hex.Encode(out[14:18], []byte(b[6:8]))
	out[18] = '-'
	hex.Encode(out[19:23], []byte(b[8:10]))
	out[23] = '-'
	hex.Encode(out[24:36], []byte(b[10:16]))
	return string(out[:])
}

// visitorID returns the visitor key (anonymous or user id) of a packed key
// as bytes appended to dst, without formatting a string.
func appendVisitorID(dst []byte, key string) []byte {
	i := strings.IndexByte(key, 0)
	if key[i+1] != 'A' {
		return append(dst, key[i+2:]...)
	}
	var out [36]byte
	b := key[i+2:]
	hex.Encode(out[0:8], []byte(b[0:4]))
	out[8] = '-'
	hex.Encode(out[9:13], []byte(b[4:6]))
	out[13] = '-'
	hex.Encode(out[14:18], []byte(b[6:8]))
	out[18] = '-'
	hex.Encode(out[19:23], []byte(b[8:10]))
	out[23] = '-'
	hex.Encode(out[24:36], []byte(b[10:16]))
	return append(dst, out[:]...)
}

func (s *Sessionizer) newVisitor(key []byte) int32 {
	vi := s.visitors.alloc()
	v := s.visitors.at(vi)
	v.key = string(key)
	s.table.insert(s, vi)
	return vi
}

func (s *Sessionizer) markDirty(vi int32, v *visitor) {
	if !v.dirty {
		v.dirty = true
		s.dirty = append(s.dirty, vi)
	}
}

func (s *Sessionizer) emitLate(e *shoptrail.Event) {
	s.stats.Late++
	s.out.Assignments = append(s.out.Assignments, Assignment{Site: e.Site, MessageID: e.MessageID, Status: Late})
}

// duplicate handles an event whose message id the visitor has counted in
// its open session or is holding as pending, and reports whether it was
// one.
func (s *Sessionizer) duplicate(vi int32, v *visitor, h uint64, e *shoptrail.Event) bool {
	for p := v.pendHead; p != 0; {
		r := s.pend.at(p - 1)
		if r.msgHash == h && r.msgID == e.MessageID {
			// Its assignment goes out with the original's.
			if r.dups < math.MaxUint16 {
				r.dups++
			}
			s.stats.Duplicates++
			s.markDirty(vi, v)
			return true
		}
		p = r.next
	}
	if v.sess != 0 && slices.Contains(v.extra[3*int(v.ntabs):], h) {
		s.stats.Duplicates++
		s.out.Assignments = append(s.out.Assignments, Assignment{
			Site: e.Site, MessageID: e.MessageID, SessionID: s.sidHex(s.sessions.at(v.sess - 1)), Status: Duplicate,
		})
		return true
	}
	return false
}

// stitch links an anonymous visitor to a customer id.
func (s *Sessionizer) stitch(vi int32, v *visitor, userID string, t int64) {
	if v.user != 0 && s.strs.str(v.user) == userID {
		return
	}
	old := v.user
	v.user = s.strs.ref(userID)
	s.strs.dec(old)
	site, anon, _ := splitKey(v.key)
	s.out.Links = append(s.out.Links, IdentityLink{Site: site, AnonymousID: anon, UserID: userID, FirstSeen: time.UnixMilli(t).UTC()})
	s.stats.LinksEmitted++
	s.markDirty(vi, v)
}

// newPending reduces an event to a pending record.
func (s *Sessionizer) newPending(e *shoptrail.Event, t int64, h uint64) int32 {
	pi := s.pend.alloc()
	r := s.pend.at(pi)
	r.t, r.msgHash, r.msgID = t, h, e.MessageID
	r.kind = classify(e)
	if e.Type == shoptrail.TypePage || e.Type == shoptrail.TypeScreen {
		r.flags |= pendPage
	}
	if e.Context.Bot.IsBot {
		r.flags |= pendBot
	}
	pg := &e.Context.Page
	path := pg.Path
	if path == "" && pg.URL != "" {
		path = pathOf(pg.URL)
	}
	r.path = s.strs.ref(path)
	c := &e.Context.Campaign
	if pg.Referrer != "" || c.Source != "" || c.Medium != "" || c.Name != "" || c.ClickIDKind != "" {
		src, external := attribute(pg.URL, pg.Referrer, c, s.cfg.OwnDomains[e.Site])
		if !src.IsDirect() {
			r.touch = s.touchRef(&src)
		}
		if external {
			r.referrer = s.strs.ref(pg.Referrer)
		}
	}
	if d := &e.Context.Device; d.Class != "" || d.Browser != "" || d.OS != "" {
		r.device = s.deviceRef(d)
	}
	if tab := e.Context.Delivery.Tab; tab != "" {
		r.tab = xxh64(tab) | 1 // never 0
		r.seq = e.Context.Delivery.Seq
	}
	switch r.kind {
	case kindProductAdded, kindProductRemoved, kindCartViewed, kindCheckout, kindOrder:
		if len(e.Properties) > 0 {
			ec := ecomOf(r.kind, e.Properties)
			if ec.hasValue && !math.IsNaN(ec.value) && !math.IsInf(ec.value, 0) {
				r.value = ec.value
				r.flags |= pendValue
			}
			r.orderKey = ec.orderKey
		}
	}
	return pi
}

// pathOf returns the path of a URL.
func pathOf(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		j := strings.IndexAny(u, "/?#")
		if j < 0 || u[j] != '/' {
			return "/"
		}
		u = u[j:]
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	return u
}

func (s *Sessionizer) touchRef(src *Source) uint32 {
	b := append(s.hashBuf[:0], src.Source...)
	for _, f := range [...]string{src.Medium, src.Campaign, src.Term, src.Content, src.ClickIDKind} {
		b = append(b, 0)
		b = append(b, f...)
	}
	s.hashBuf = b
	if id := s.touches.lookup(b); id != 0 {
		return id
	}
	return s.touches.add(string(b), touchVal{src: *src, channel: Channel(src.Source, src.Medium, src.Campaign)})
}

func (s *Sessionizer) deviceRef(d *shoptrail.Device) uint32 {
	b := append(s.hashBuf[:0], d.Class...)
	b = append(b, 0)
	b = append(b, d.Browser...)
	b = append(b, 0)
	b = append(b, d.OS...)
	s.hashBuf = b
	if id := s.devices.lookup(b); id != 0 {
		return id
	}
	return s.devices.add(string(b), deviceVal{class: d.Class, browser: d.Browser, os: d.OS})
}

// insertPending links a record into the visitor's list in (time, message
// id) order: the order sorted data would have.
func (s *Sessionizer) insertPending(vi int32, v *visitor, pi int32) {
	r := s.pend.at(pi)
	if v.pendTail == 0 {
		v.pendHead, v.pendTail = pi+1, pi+1
		return
	}
	if tail := s.pend.at(v.pendTail - 1); !pendBefore(r, tail) {
		tail.next = pi + 1
		v.pendTail = pi + 1
		return
	}
	prev := int32(0)
	for p := v.pendHead; p != 0; {
		q := s.pend.at(p - 1)
		if pendBefore(r, q) {
			r.next = p
			if prev == 0 {
				v.pendHead = pi + 1
			} else {
				s.pend.at(prev - 1).next = pi + 1
			}
			return
		}
		prev, p = p, q.next
	}
}

func pendBefore(a, b *pending) bool {
	return a.t < b.t || a.t == b.t && a.msgID < b.msgID
}

func (s *Sessionizer) freePending(pi int32) {
	r := s.pend.at(pi)
	s.strs.dec(r.path)
	s.strs.dec(r.referrer)
	s.touches.dec(r.touch)
	s.devices.dec(r.device)
	s.pend.release(pi)
}

// visit is a visitor's timer: it applies the pending events the watermark
// has passed, closes the session if no on-time event can extend it any more,
// purges an expired visitor record, and sets the next timer.
func (s *Sessionizer) visit(vi int32) {
	v := s.visitors.at(vi)
	if v.key == "" {
		return
	}
	p := v.pendHead
	for p != 0 {
		r := s.pend.at(p - 1)
		if r.t >= s.wm {
			break
		}
		s.apply(vi, v, r)
		next := r.next
		s.freePending(p - 1)
		p = next
		s.markDirty(vi, v)
	}
	v.pendHead = p
	if p == 0 {
		v.pendTail = 0
	}
	if v.sess != 0 && s.wm >= s.closeDue(s.sessions.at(v.sess-1)) {
		s.closeSession(vi, v)
	}
	if v.sess == 0 && v.pendHead == 0 && s.wm >= s.expiry(v) {
		s.purge(vi, v)
		return
	}
	s.reschedule(vi, v)
}

// closeDue is when no on-time event can join the session any more: any
// event from then on is a Timeout after its end or MaxLength after its
// start.
func (s *Sessionizer) closeDue(ss *session) int64 {
	return min(ss.start+int64(ss.endOff)+s.timeout, ss.start+s.maxLen)
}

func (s *Sessionizer) expiry(v *visitor) int64 {
	return (int64(v.lastSeen)+1)*1000 + s.retention
}

func (s *Sessionizer) reschedule(vi int32, v *visitor) {
	var due int64
	switch {
	case v.pendHead != 0:
		due = s.pend.at(v.pendHead-1).t + 1
		if v.sess != 0 {
			due = min(due, s.closeDue(s.sessions.at(v.sess-1)))
		}
	case v.sess != 0:
		due = s.closeDue(s.sessions.at(v.sess - 1))
	default:
		due = s.expiry(v)
	}
	s.schedule(vi, v, due)
}

// apply adds a settled event to the visitor's session, closing the open
// session first if the event starts a new one.
func (s *Sessionizer) apply(vi int32, v *visitor, r *pending) {
	if v.sess != 0 {
		ss := s.sessions.at(v.sess - 1)
		end := ss.start + int64(ss.endOff)
		if r.t-end >= s.timeout || r.t-ss.start >= s.maxLen || (s.split && r.touch != 0 && r.touch != ss.touch) {
			s.closeSession(vi, v)
		}
	}
	if v.sess == 0 {
		s.openSession(v, r)
	}
	ss := s.sessions.at(v.sess - 1)
	if off := r.t - ss.start; off > int64(ss.endOff) {
		ss.endOff = uint32(off)
	}
	ss.events++
	if r.flags&pendPage != 0 {
		ss.pages++
	}
	if r.flags&pendBot != 0 {
		ss.flags |= sessBot
	}
	if r.path != 0 {
		if ss.landing == 0 {
			s.strs.inc(r.path)
			ss.landing = r.path
		}
		if ss.exit != r.path {
			s.strs.inc(r.path)
			s.strs.dec(ss.exit)
			ss.exit = r.path
		}
	}
	if ss.device == 0 && r.device != 0 {
		s.devices.inc(r.device)
		ss.device = r.device
	}
	if f := r.kind.funnel(); f > ss.funnel {
		ss.funnel = f
	}
	ids := v.extra
	if n := len(ids) - 3*int(v.ntabs); n >= maxIDs {
		base := 3 * int(v.ntabs)
		ids = append(ids[:base], ids[base+n/2:]...)
	}
	ids = append(ids, r.msgHash)
	switch r.kind {
	case kindProductAdded:
		if r.flags&pendValue != 0 {
			ss.cartRun += r.value
		}
	case kindProductRemoved:
		if r.flags&pendValue != 0 {
			ss.cartRun = max(0, ss.cartRun-r.value)
		}
	case kindCartViewed, kindCheckout:
		if r.flags&pendValue != 0 {
			ss.cartRun = r.value
		}
	case kindOrder:
		ss.flags |= sessKeyEvent
		counted := false
		if r.orderKey != 0 {
			counted = slices.Contains(ids[3*int(v.ntabs):], r.orderKey^orderTag)
			if !counted {
				ids = append(ids, r.orderKey^orderTag)
			}
		}
		if !counted {
			ss.orders++
			if r.flags&pendValue != 0 {
				ss.revenue += r.value
			}
		}
	case kindKey:
		ss.flags |= sessKeyEvent
	}
	v.extra = ids
	ss.cartPeak = max(ss.cartPeak, ss.cartRun)
	if r.kind == kindOrder {
		ss.cartRun = 0
	}
	if r.tab != 0 {
		s.trackTab(v, ss, r)
	}
	if sec := uint32(r.t / 1000); sec > v.lastSeen {
		v.lastSeen = sec
	}
	sid := s.sidHex(ss)
	site := v.key[:strings.IndexByte(v.key, 0)]
	s.out.Assignments = append(s.out.Assignments, Assignment{Site: site, MessageID: r.msgID, SessionID: sid, Status: Assigned})
	s.stats.Assigned++
	for range r.dups {
		s.out.Assignments = append(s.out.Assignments, Assignment{Site: site, MessageID: r.msgID, SessionID: sid, Status: Duplicate})
	}
}

// sidHex returns the session's id as a string, reusing the last one made.
func (s *Sessionizer) sidHex(ss *session) string {
	if ss.sid != s.sidCache || s.sidString == "" {
		s.sidCache = ss.sid
		s.sidString = hex.EncodeToString(ss.sid[:])
	}
	return s.sidString
}

func (s *Sessionizer) openSession(v *visitor, r *pending) {
	si := s.sessions.alloc()
	ss := s.sessions.at(si)
	ss.start = r.t
	site := v.key[:strings.IndexByte(v.key, 0)]
	s.idBuf = appendVisitorID(s.idBuf[:0], v.key)
	s.hashBuf = sessionIDSum(&ss.sid, s.hashBuf, site, s.idBuf, r.msgID)
	ss.touch = r.touch
	s.touches.inc(r.touch)
	ss.referrer = r.referrer
	s.strs.inc(r.referrer)
	if v.sessions > 0 {
		ss.flags |= sessReturning
	}
	v.sess = si + 1
	v.extra = v.extra[:3*int(v.ntabs)]
}

// closeSession emits the visitor's open session and frees it.
func (s *Sessionizer) closeSession(vi int32, v *visitor) {
	ss := s.sessions.at(v.sess - 1)
	site, id, anonymous := splitKey(v.key)
	out := Session{
		Site:         site,
		SessionID:    hex.EncodeToString(ss.sid[:]),
		Start:        time.UnixMilli(ss.start).UTC(),
		End:          time.UnixMilli(ss.start + int64(ss.endOff)).UTC(),
		Duration:     time.Duration(ss.endOff) * time.Millisecond,
		Events:       ss.events,
		PageViews:    ss.pages,
		LandingPage:  s.strs.str(ss.landing),
		ExitPage:     s.strs.str(ss.exit),
		Referrer:     s.strs.str(ss.referrer),
		RulesVersion: RulesVersion,
		IsBot:        ss.flags&sessBot != 0,
		Returning:    ss.flags&sessReturning != 0,
		Funnel:       ss.funnel,
		CartValue:    ss.cartPeak,
		Orders:       ss.orders,
		Revenue:      ss.revenue,
	}
	out.Engaged = ss.endOff > 10000 || ss.pages >= 2 || ss.flags&sessKeyEvent != 0
	if anonymous {
		out.AnonymousID = id
		out.UserID = s.strs.str(v.user)
	} else {
		out.UserID = id
	}
	if ss.touch != 0 {
		tv := s.touches.val(ss.touch)
		out.Source, out.Medium, out.Campaign = tv.src.Source, tv.src.Medium, tv.src.Campaign
		out.Term, out.Content, out.ClickIDKind = tv.src.Term, tv.src.Content, tv.src.ClickIDKind
		out.Channel = tv.channel
	} else {
		out.Source, out.Medium, out.Channel = SourceDirect, MediumNone, ChannelDirect
	}
	if ss.device != 0 {
		d := s.devices.val(ss.device)
		out.DeviceClass, out.Browser, out.OS = d.class, d.browser, d.os
	}
	s.out.Sessions = append(s.out.Sessions, out)
	s.stats.Closed++
	s.strs.dec(ss.landing)
	s.strs.dec(ss.exit)
	s.strs.dec(ss.referrer)
	s.touches.dec(ss.touch)
	s.devices.dec(ss.device)
	s.sessions.release(v.sess - 1)
	v.sess = 0
	v.sessions++
	n := 3 * int(v.ntabs)
	if cap(v.extra) > n+8 {
		if n == 0 {
			v.extra = nil
		} else {
			v.extra = append([]uint64(nil), v.extra[:n]...)
		}
	} else {
		v.extra = v.extra[:n]
	}
	s.markDirty(vi, v)
}

// trackTab counts gaps in the tab's sequence numbers.
func (s *Sessionizer) trackTab(v *visitor, ss *session, r *pending) {
	site := s.siteIndex(v.key)
	dev := r.device
	if dev == 0 {
		dev = ss.device
	}
	sec := uint64(uint32(r.t / 1000))
	tabs := v.extra[:3*int(v.ntabs)]
	for i := 0; i < len(tabs); i += 3 {
		if tabs[i] != r.tab {
			continue
		}
		maxSeq := int64(tabs[i+1])
		lastPath := uint32(tabs[i+2] >> 32)
		switch {
		case r.seq > maxSeq+1:
			s.countLoss(site, dev, lastPath, 0, r.seq-maxSeq-1)
		case r.seq < maxSeq:
			s.countLoss(site, dev, lastPath, 0, -1)
		}
		if r.seq > maxSeq {
			s.strs.inc(r.path)
			s.strs.dec(lastPath)
			tabs[i+1] = uint64(r.seq)
			lastPath = r.path
		}
		tabs[i+2] = uint64(lastPath)<<32 | sec
		s.countLoss(site, dev, r.path, 1, 0)
		return
	}
	// A tab not seen before (or forgotten): start tracking at this event;
	// a gap before it cannot be told from a tab opened earlier.
	rec := [3]uint64{r.tab, uint64(r.seq), uint64(r.path)<<32 | sec}
	s.strs.inc(r.path)
	if v.ntabs == maxTabs {
		oldest := 0
		for i := 3; i < len(tabs); i += 3 {
			if uint32(tabs[i+2]) < uint32(tabs[oldest+2]) {
				oldest = i
			}
		}
		s.strs.dec(uint32(tabs[oldest+2] >> 32))
		copy(tabs[oldest:oldest+3], rec[:])
	} else {
		n := 3 * int(v.ntabs)
		v.extra = slices.Insert(v.extra, n, rec[:]...)
		v.ntabs++
	}
	s.countLoss(site, dev, r.path, 1, 0)
}

func (s *Sessionizer) countLoss(site, device, path uint32, received, lost int64) {
	k := lossKey{site, device, path}
	lv := s.loss[k]
	if lv == nil {
		lv = &lossVal{}
		s.loss[k] = lv
		s.devices.inc(device)
		s.strs.inc(path)
	}
	lv.received += received
	lv.lost += lost
}

func (s *Sessionizer) siteIndex(key string) uint32 {
	site := key[:strings.IndexByte(key, 0)]
	if i, ok := s.sites[site]; ok {
		return i
	}
	i := uint32(len(s.names))
	s.names = append(s.names, site)
	s.sites[site] = i
	return i
}

// purge drops an expired visitor record.
func (s *Sessionizer) purge(vi int32, v *visitor) {
	site, id, anonymous := splitKey(v.key)
	s.deleted = append(s.deleted, changelogKey(site, id, anonymous))
	s.table.remove(s, vi)
	s.strs.dec(v.user)
	for i := 0; i < int(v.ntabs); i++ {
		s.strs.dec(uint32(v.extra[3*i+2] >> 32))
	}
	if s.skip != nil {
		delete(s.skip, vi)
	}
	s.visitors.release(vi)
	s.stats.VisitorsPurged++
}

// vtable maps packed visitor keys to visitor indexes: open addressing with
// linear probing over int32 slots (index + 1), about 6 bytes per visitor.
type vtable struct {
	slots []int32
	n     int
	seed  maphash.Seed
}

func (t *vtable) init() {
	t.slots = make([]int32, 1024)
	t.seed = maphash.MakeSeed()
}

func (s *Sessionizer) find(key []byte) int32 {
	t := &s.table
	mask := uint64(len(t.slots) - 1)
	for i := maphash.Bytes(t.seed, key) & mask; ; i = (i + 1) & mask {
		vi := t.slots[i] - 1
		if vi < 0 {
			return -1
		}
		if s.visitors.at(vi).key == string(key) {
			return vi
		}
	}
}

func (t *vtable) insert(s *Sessionizer, vi int32) {
	if (t.n+1)*4 > len(t.slots)*3 {
		old := t.slots
		t.slots = make([]int32, 2*len(old))
		for _, x := range old {
			if x != 0 {
				t.place(s, x)
			}
		}
	}
	t.place(s, vi+1)
	t.n++
}

func (t *vtable) place(s *Sessionizer, x int32) {
	mask := uint64(len(t.slots) - 1)
	i := maphash.String(t.seed, s.visitors.at(x-1).key) & mask
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = x
}

func (t *vtable) remove(s *Sessionizer, vi int32) {
	mask := uint64(len(t.slots) - 1)
	i := maphash.String(t.seed, s.visitors.at(vi).key) & mask
	for t.slots[i] != vi+1 {
		i = (i + 1) & mask
	}
	// Backward-shift deletion keeps probe sequences intact without
	// tombstones.
	for j := i; ; {
		j = (j + 1) & mask
		x := t.slots[j]
		if x == 0 {
			break
		}
		home := maphash.String(t.seed, s.visitors.at(x-1).key) & mask
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = x
			i = j
		}
	}
	t.slots[i] = 0
	t.n--
}

// wheel is a timing wheel of one-second buckets over absolute unix seconds:
// bucket b lives in slot b % len(slots). Each visitor has at most one live
// entry (its sched); stale entries are skipped when their bucket comes.
type wheel struct {
	slots  [][]int32
	spare  []int32
	cursor int64 // last bucket processed
}

func (w *wheel) init(n int) {
	w.slots = make([][]int32, max(n, 64))
	w.cursor = math.MinInt64
}

// schedule makes sure the visitor's timer fires by due (unix ms).
func (s *Sessionizer) schedule(vi int32, v *visitor, due int64) {
	b := due / 1000
	if due%1000 != 0 && due > 0 {
		b++
	}
	if s.wheel.cursor != math.MinInt64 && b <= s.wheel.cursor {
		b = s.wheel.cursor + 1
	}
	if b < 1 {
		b = 1
	}
	if b > math.MaxUint32 {
		b = math.MaxUint32
	}
	if v.sched != 0 && uint32(b) >= v.sched {
		return
	}
	v.sched = uint32(b)
	slot := b % int64(len(s.wheel.slots))
	s.wheel.slots[slot] = append(s.wheel.slots[slot], vi)
}

// runTimers fires the timers of every bucket the watermark has passed.
func (s *Sessionizer) runTimers() {
	w := &s.wheel
	if s.wm == math.MinInt64 {
		return
	}
	target := s.wm / 1000
	if s.wm < 0 && s.wm%1000 != 0 {
		target--
	}
	if w.cursor == math.MinInt64 {
		w.cursor = target - int64(len(w.slots))
	}
	if target <= w.cursor {
		return
	}
	n := int64(len(w.slots))
	from := w.cursor + 1
	if target-w.cursor > n {
		from = target - n + 1
	}
	for b := from; b <= target; b++ {
		w.cursor = b
		slot := b % n
		if slot < 0 {
			slot += n
		}
		list := w.slots[slot]
		if len(list) == 0 {
			continue
		}
		w.slots[slot] = w.spare[:0]
		for _, vi := range list {
			if vi >= s.visitors.n {
				continue
			}
			v := s.visitors.at(vi)
			sched := int64(v.sched)
			if v.sched == 0 || sched%n != slot {
				continue // stale
			}
			if sched > b {
				w.slots[slot] = append(w.slots[slot], vi) // a later lap
				continue
			}
			v.sched = 0
			s.visit(vi)
		}
		clear(list)
		w.spare = list[:0]
	}
	w.cursor = target
}

// errNotFresh is returned by Restore on a Sessionizer that has state.
var errNotFresh = errors.New("sessionizer already has state")
