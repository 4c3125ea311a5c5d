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
	"strconv"
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
	// sessions, its customer id, its tabs' sequence numbers, its first
	// touch) is kept after its last event. A visitor seen again within it is
	// a returning visitor and keeps its customer id and first touch. The
	// default is 30 days.
	VisitorRetention time.Duration
	// OwnDomains lists, per site id, the domains whose referrers are
	// internal (subdomains included). The page URL's own host always is.
	OwnDomains map[string][]string
	// MaxVisitors and MaxStateBytes cap the state in memory: the visitors
	// (open sessions, waiting events and retained records alike), and the
	// heap they hold as StateBytes estimates it (long ids, paths,
	// referrers, campaign fields included), so that a flood of fresh
	// anonymous ids cannot grow it without bound. When a new visitor
	// arrives at a cap, the Sessionizer evicts visitors until the state is
	// at 7/8 of both: retained records first (no open session, no waiting
	// event), then visitors with an open session or waiting events (those
	// applied at once and the session closed, its row final), each group
	// least recently seen first. An evicted visitor seen again is new: not
	// returning, no customer id until it identifies again, its session
	// split there. Stats counts the evictions. The defaults are 1,000,000
	// visitors and 512 MiB; negative turns a cap off.
	MaxVisitors   int
	MaxStateBytes int64
}

// Defaults of Config.
const (
	DefaultTimeout          = 30 * time.Minute
	DefaultMaxLength        = 24 * time.Hour
	DefaultAllowedLateness  = 5 * time.Minute
	DefaultVisitorRetention = 30 * 24 * time.Hour
	DefaultMaxVisitors      = 1_000_000
	DefaultMaxStateBytes    = 512 << 20
)

// RegisterFlags registers the session.* flags on fs, with the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Timeout, "session.timeout", DefaultTimeout, "end a session after this much event time without events")
	fs.DurationVar(&c.MaxLength, "session.max-length", DefaultMaxLength, "longest session; a later event starts a new one")
	fs.DurationVar(&c.AllowedLateness, "session.allowed-lateness", DefaultAllowedLateness, "how far behind the newest event time an event may arrive and still count in its session")
	fs.BoolVar(&c.NoCampaignSplit, "session.no-campaign-split", false, "do not start a new session when the campaign source changes (GA4 behaviour)")
	fs.DurationVar(&c.VisitorRetention, "session.visitor-retention", DefaultVisitorRetention, "keep a visitor's record this long after its last event (returning visitors, customer id, first touch)")
	fs.IntVar(&c.MaxVisitors, "session.max-visitors", DefaultMaxVisitors, "visitors kept in memory per partition, at most; past it the least recently seen are evicted, retained records first (negative: no cap)")
	fs.Func("session.max-state-bytes", "estimated heap of a partition's session state, at most, in bytes (suffixes KiB, MiB, GiB); past it visitors are evicted as at session.max-visitors (default 512MiB; negative: no cap)", func(v string) error {
		n, err := parseBytes(v)
		c.MaxStateBytes = n
		return err
	})
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
	if c.MaxVisitors == 0 {
		c.MaxVisitors = DefaultMaxVisitors
	}
	if c.MaxStateBytes == 0 {
		c.MaxStateBytes = DefaultMaxStateBytes
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
	case c.MaxVisitors > 0 && c.MaxVisitors < 8:
		return fmt.Errorf("max visitors %d is below 8", c.MaxVisitors)
	case c.MaxStateBytes > 0 && c.MaxStateBytes < 1<<20:
		return fmt.Errorf("max state bytes %d is below 1 MiB", c.MaxStateBytes)
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
	// UserID is the customer id of the visitor's latest event carrying
	// one (identify or any event with a userId) up to the session's last
	// event, in event time (or of a late such event that arrived before
	// the session closed), else empty.
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

	// Final: the session is closed and the row is its last. Open returns
	// rows with Final false: the session so far, superseded by a later
	// row of the same SessionID.
	Final bool
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
//
// An Assigned assignment also carries the event's beacon loss: Lost events
// of its tab went missing right before it (a gap in the sequence numbers),
// charged to LostPath, the page the tab was on before the gap; Lost is -1
// when the event fills a gap counted before, 0 without a gap or without a
// tab sequence number. Unlike the aggregated LossRecords, these are exact
// under any replay: they belong to the message id, as the session id does.
// Sum them over the Assigned rows only (a Duplicate row repeats the
// session id, not the loss).
type Assignment struct {
	Site      string
	MessageID string
	SessionID string
	Status    Status
	Lost      int32
	LostPath  string
	// Watermark is, for a Late event, the watermark it arrived behind
	// (unix ms): the event time at which it became known.
	Watermark int64
}

// IdentityLink records that an anonymous visitor was identified as a
// customer: a row of the identity_links table. FirstSeen is the event time
// of the event that carried the link.
//
// The visitor's first link (to its first customer id) also carries its
// first touch when the Sessionizer knows it: FirstTouchAt, the start of
// the visitor's first session (within Config.VisitorRetention of its
// last event), and that session's channel and traffic source. A visitor
// restored from a changelog record written before first touches were kept,
// or whose first event carried the customer id and came late, has none
// (FirstTouchAt zero); later links of the visitor carry none either.
type IdentityLink struct {
	Site        string
	AnonymousID string
	UserID      string
	FirstSeen   time.Time

	FirstTouchAt time.Time
	FirstChannel string
	FirstSource  string
	// Arrived is set on a link carried by a late event: the watermark it
	// arrived behind, the event time at which the link became known.
	Arrived time.Time
}

// LossRecord counts beacon events per site, browser and page path: Received
// events that carried a tab sequence number, and Lost ones, the gaps in a
// tab's sequence (events that never arrived, or arrived later than the
// allowed lateness). A gap is charged to the page the tab was on before it,
// where the missing events were sent from; an event that fills a gap after
// it was counted yields Lost -1. Records are sums over one Drain; add them
// up downstream. They are the same numbers as the Assigned assignments'
// Lost, summed; but a sum cannot be rebuilt exactly when a replay after a
// torn checkpoint skips visitors whose state was saved already (see
// Checkpoint), so for exact totals sum the assignments' loss instead.
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
	// VisitorsEvicted counts visitors dropped at Config.MaxVisitors, and
	// SessionsEvicted those of them whose open session was closed early.
	VisitorsEvicted int64
	SessionsEvicted int64
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
// Memory: about 270 bytes of heap per open session (measured with 1,000,000
// open sessions: BenchmarkOpenSessionMemory), about 145 per visitor record
// kept between sessions, and about 120 per event waiting for the watermark.
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
	sites   map[string]uint16    // site id -> index into names
	names   []string             // site ids by index
	long    map[int32][]byte     // visitor keys too long to be inline
	loss    map[lossKey]*lossVal // since the last Drain
	skip    map[int32]int64      // restored visitors ahead of the meta offset
	skipMax int64                //

	// Estimated heap of the state beyond the fixed cost per live visitor,
	// session and pending event (see StateBytes).
	extraWords int64 // capacity of the visitors' extra slices
	longBytes  int64 // long visitor keys
	pendBytes  int64 // pending events' message ids

	out         Output
	dirty       []int32       // visitors changed since the last Checkpoint
	purged      []StateRecord // last records of visitors purged since the last Checkpoint
	deleted     []string      // their keys, whose tombstones go out with the next one
	deletedPrev []string      // keys purged before the last Checkpoint: tombstones due
	stats       Stats
	keyBuf      []byte
	hashBuf     []byte
	idBuf       []byte
	sidCache    [16]byte
	sidString   string
}

const (
	keyInline = 19 // a UUID visitor's key: site index, kind, 16 bytes
	longKey   = 255
)

// visitor is the state of one (site, visitor key): its open session, its
// pending events and a small record that outlives sessions.
type visitor struct {
	// extra holds ntabs tab records of 3 words (tab hash; max seq; last
	// path ref<<32 | last seen unix seconds), then the message id hashes of
	// the pending events and of the open session's events, and the order
	// id hashes (^ orderTag) of the open session: one short scan finds a
	// duplicate.
	extra []uint64
	// key is the packed visitor key (see packKey), inline when it fits;
	// klen is its length, or longKey for a key kept in Sessionizer.long.
	key      [keyInline]byte
	klen     uint8
	user     uint32 // strs ref: customer id
	sess     int32  // open session index + 1; 0 none
	pendHead int32  // first pending event index + 1, in (time, message id) order
	pendTail int32
	tailSec  uint32 // unix seconds of the last pending event: in-order appends need not read it
	sched    uint32 // wheel bucket of the close or expiry timer; 0 none
	settle   uint32 // wheel bucket of the settle timer; 0 none
	lastSeen uint32 // unix seconds of the newest settled event
	ntabs    uint8
	flags    uint8
	// The visitor's first touch: the start (unix seconds and milliseconds;
	// firstSec 0: unknown) and the traffic source (touches ref; 0 direct)
	// of the first session of this record. Unknown for a record restored
	// from a changelog written before it was kept.
	firstMs    uint16
	firstTouch uint32
	firstSec   uint32
}

const (
	visDirty     uint8 = 1 << iota // changed since the last Checkpoint
	visReturning                   // had a session before
)

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
	sessChanged // events applied since its last provisional row (Open)
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
	next     int32  // index + 1
	user     uint32 // strs ref: the customer id an anonymous visitor's event carries
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
		touches:   newInterner[touchVal](2),
		devices:   newInterner[deviceVal](2),
		sites:     make(map[string]uint16),
		long:      make(map[int32][]byte),
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
	st.Visitors = s.visitors.live
	st.OpenSessions = s.sessions.live
	st.PendingEvents = s.pend.live
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
	si, ok := s.siteIndex(e.Site)
	if !ok {
		s.stats.Invalid++
		s.out.Assignments = append(s.out.Assignments, Assignment{Site: e.Site, MessageID: e.MessageID, Status: Invalid})
		return
	}
	s.keyBuf = packKey(s.keyBuf[:0], si, e)
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
		if s.overCap(8) {
			s.evict()
		}
		vi = s.newVisitor(s.keyBuf)
	}
	v := s.visitors.at(vi)
	h := xxh64(e.MessageID)
	if s.duplicate(vi, v, h, e) {
		return
	}
	if late {
		// A late event is in no session; its link still counts, now.
		// (An on-time one links when it is applied, in event-time order:
		// see apply.)
		if stitch {
			s.stitch(vi, v, e.UserID, t, s.wm)
		}
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
	s.insertPending(vi, v, s.newPending(e, t, h, stitch))
	if len(v.extra)-3*int(v.ntabs) >= maxIDs {
		s.trimIDs(v)
	}
	s.setExtra(v, append(v.extra, h))
	s.markDirty(vi, v)
	s.scheduleSettle(vi, v, t)
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
	// Keep the buffers for the next batch, unless a burst made them big.
	if cap(s.out.Assignments) > 1<<15 {
		s.out.Assignments = nil
	}
	if cap(s.out.Sessions) > 1<<12 {
		s.out.Sessions = nil
	}
	if cap(s.out.Links) > 1<<12 {
		s.out.Links = nil
	}
}

// Flush settles every pending event and closes every open session, as at
// the end of the input (batch runs, tests). Visitor records stay.
func (s *Sessionizer) Flush() {
	for i := int32(0); i < s.visitors.cap(); i++ {
		if !s.visitors.valid(i) {
			continue
		}
		v := s.visitors.at(i)
		for v.pendHead != 0 {
			s.settleHead(i, v)
		}
		if v.sess != 0 {
			s.closeSession(i, v)
		}
		s.markDirty(i, v)
		s.reschedule(i, v)
	}
}

// eventTime is the event's time in unix ms: its Timestamp, or ReceivedAt
// without one. A Timestamp more than a minute after ReceivedAt cannot be
// (the collector clamps such clocks; this is the guard behind it): it
// becomes ReceivedAt, so one bad clock cannot drag the watermark into the
// future and make the whole partition late.
func eventTime(e *shoptrail.Event) int64 {
	ts := e.Timestamp
	if ts.IsZero() {
		ts = e.ReceivedAt
	}
	if ts.IsZero() {
		return math.MinInt64
	}
	t := ts.UnixMilli()
	if !e.ReceivedAt.IsZero() {
		if r := e.ReceivedAt.UnixMilli(); t > r+60_000 {
			t = r
		}
	}
	return t
}

// Visitor keys are packed as the site's index (2 bytes), a kind byte and
// the id: 'A' for an anonymous id that is a lower-case UUID, as its 16
// bytes; 'a' for any other anonymous id, as it is; 'u' for a user id (events
// without an anonymous id). A UUID visitor's key is 19 bytes, inline in the
// visitor.
func packKey(dst []byte, site uint16, e *shoptrail.Event) []byte {
	if e.AnonymousID == "" {
		return packKeyParts(dst, site, e.UserID, false)
	}
	return packKeyParts(dst, site, e.AnonymousID, true)
}

func packKeyParts(dst []byte, site uint16, id string, anonymous bool) []byte {
	dst = append(dst, byte(site>>8), byte(site))
	if !anonymous {
		dst = append(dst, 'u')
		return append(dst, id...)
	}
	if u, upper, ok := parseUUID(id); ok {
		if upper {
			dst = append(dst, 'U')
		} else {
			dst = append(dst, 'A')
		}
		return append(dst, u[:]...)
	}
	dst = append(dst, 'a')
	return append(dst, id...)
}

// keyOf returns the visitor's packed key.
func (s *Sessionizer) keyOf(vi int32, v *visitor) []byte {
	if v.klen == longKey {
		return s.long[vi]
	}
	return v.key[:v.klen]
}

// site returns the site id of a packed key.
func (s *Sessionizer) site(key []byte) string {
	return s.names[int(key[0])<<8|int(key[1])]
}

// splitKey returns the site, visitor key (anonymous or user id) and whether
// it is an anonymous id, of a packed key.
func (s *Sessionizer) splitKey(key []byte) (site, id string, anonymous bool) {
	return s.site(key), string(appendVisitorID(nil, key)), key[2] != 'u'
}

// parseUUID parses a canonical UUID whose hex digits are all lower case,
// or all upper case (as iOS SDKs write them); mixed case does not parse, so
// that a packed key always formats back to the same string.
func parseUUID(s string) (u [16]byte, upper, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false, false
	}
	var seen byte // classes of the letters seen: 1 lower, 2 upper
	for j, i := range uuidDigits {
		hi, lo := hexVal[s[i]], hexVal[s[i+1]]
		if hi == 0xff || lo == 0xff {
			return u, false, false
		}
		seen |= hexCase[s[i]] | hexCase[s[i+1]]
		u[j] = hi<<4 | lo
	}
	if seen == 3 {
		return u, false, false
	}
	return u, seen == 2, true
}

// uuidDigits are the offsets of the 16 digit pairs of a canonical UUID.
var uuidDigits = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

var hexVal, hexCase = func() (v, c [256]byte) {
	for i := range v {
		v[i] = 0xff
	}
	for i := byte(0); i < 10; i++ {
		v['0'+i] = i
	}
	for i := byte(0); i < 6; i++ {
		v['a'+i], v['A'+i] = 10+i, 10+i
		c['a'+i], c['A'+i] = 1, 2
	}
	return v, c
}()

// appendVisitorID appends the visitor key (anonymous or user id) of a
// packed key to dst.
func appendVisitorID(dst []byte, key []byte) []byte {
	if key[2] != 'A' && key[2] != 'U' {
		return append(dst, key[3:]...)
	}
	digits := "0123456789abcdef"
	if key[2] == 'U' {
		digits = "0123456789ABCDEF"
	}
	var out [36]byte
	for i := range out {
		out[i] = '-'
	}
	for j, i := range uuidDigits {
		b := key[3+j]
		out[i], out[i+1] = digits[b>>4], digits[b&15]
	}
	return append(dst, out[:]...)
}

func (s *Sessionizer) newVisitor(key []byte) int32 {
	vi := s.visitors.alloc()
	v := s.visitors.at(vi)
	if len(key) <= keyInline {
		v.klen = uint8(copy(v.key[:], key))
	} else {
		v.klen = longKey
		s.long[vi] = append([]byte(nil), key...)
		s.longBytes += int64(len(key)) + longKeyBytes
	}
	s.table.insert(s, vi, maphash.Bytes(s.table.seed, key))
	return vi
}

func (s *Sessionizer) markDirty(vi int32, v *visitor) {
	if v.flags&visDirty == 0 {
		v.flags |= visDirty
		s.dirty = append(s.dirty, vi)
	}
}

func (s *Sessionizer) emitLate(e *shoptrail.Event) {
	s.stats.Late++
	s.out.Assignments = append(s.out.Assignments, Assignment{Site: e.Site, MessageID: e.MessageID, Status: Late, Watermark: s.wm})
}

// duplicate handles an event whose message id the visitor has counted in
// its open session or is holding as pending, and reports whether it was
// one.
func (s *Sessionizer) duplicate(vi int32, v *visitor, h uint64, e *shoptrail.Event) bool {
	if !slices.Contains(v.extra[3*int(v.ntabs):], h) {
		return false
	}
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
	if v.sess != 0 {
		s.stats.Duplicates++
		s.out.Assignments = append(s.out.Assignments, Assignment{
			Site: e.Site, MessageID: e.MessageID, SessionID: s.sidHex(s.sessions.at(v.sess - 1)), Status: Duplicate,
		})
		return true
	}
	return false
}

// stitch links an anonymous visitor to a customer id; arrived is the
// watermark a late event carrying the link arrived behind (0: on time).
func (s *Sessionizer) stitch(vi int32, v *visitor, userID string, t, arrived int64) {
	if v.user != 0 && s.strs.str(v.user) == userID {
		return
	}
	old := v.user
	v.user = s.strs.ref(userID)
	s.strs.dec(old)
	site, anon, _ := s.splitKey(s.keyOf(vi, v))
	l := IdentityLink{Site: site, AnonymousID: anon, UserID: userID, FirstSeen: time.UnixMilli(t).UTC()}
	if arrived != 0 {
		l.Arrived = time.UnixMilli(arrived).UTC()
	}
	if old == 0 && v.firstSec != 0 {
		// The visitor's anonymous history before this link is the
		// customer's: its first touch goes with its first link.
		l.FirstTouchAt = time.UnixMilli(int64(v.firstSec)*1000 + int64(v.firstMs)).UTC()
		l.FirstChannel, l.FirstSource = ChannelDirect, SourceDirect
		if v.firstTouch != 0 {
			tv := s.touches.val(v.firstTouch)
			l.FirstChannel, l.FirstSource = tv.channel, tv.src.Source
		}
	}
	s.out.Links = append(s.out.Links, l)
	s.stats.LinksEmitted++
	s.markDirty(vi, v)
}

// newPending reduces an event to a pending record; stitch: it links the
// anonymous visitor to e.UserID.
func (s *Sessionizer) newPending(e *shoptrail.Event, t int64, h uint64, stitch bool) int32 {
	pi := s.pend.alloc()
	r := s.pend.at(pi)
	r.t, r.msgHash, r.msgID = t, h, e.MessageID
	s.pendBytes += int64(len(r.msgID))
	if stitch {
		r.user = s.strs.ref(e.UserID)
	}
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
		var own []string
		if pg.Referrer != "" && s.cfg.OwnDomains != nil {
			own = s.cfg.OwnDomains[e.Site]
		}
		src, external := attribute(pg.URL, pg.Referrer, c, own)
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
	sec := uint32(max(0, r.t/1000))
	if v.pendTail == 0 {
		v.pendHead, v.pendTail, v.tailSec = pi+1, pi+1, sec
		return
	}
	// In order (the common case): link after the tail, which is written
	// but, when a second apart, not read: one cache miss less per event.
	if sec > v.tailSec || !pendBefore(r, s.pend.at(v.pendTail-1)) {
		s.pend.at(v.pendTail - 1).next = pi + 1
		v.pendTail, v.tailSec = pi+1, sec
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

// settleHead applies the visitor's first pending event and unlinks it. It
// stays linked while it is applied, so that a session closed meanwhile
// keeps its message id among the pending ones.
func (s *Sessionizer) settleHead(vi int32, v *visitor) {
	p := v.pendHead
	r := s.pend.at(p - 1)
	s.apply(vi, v, r)
	v.pendHead = r.next
	if v.pendHead == 0 {
		v.pendTail = 0
	}
	s.freePending(p - 1)
	s.markDirty(vi, v)
}

// trimIDs forgets the older half of the open session's message ids, to
// bound the memory of very long sessions (a duplicate that old would be
// late anyway). Pending events' ids stay: they guard against counting a
// copy twice.
func (s *Sessionizer) trimIDs(v *visitor) {
	pend := make(map[uint64]bool)
	for p := v.pendHead; p != 0; p = s.pend.at(p - 1).next {
		pend[s.pend.at(p-1).msgHash] = true
	}
	base := 3 * int(v.ntabs)
	ids := v.extra[base:]
	drop := (len(ids) - len(pend)) / 2
	out := v.extra[:base]
	for _, h := range ids {
		if drop > 0 && !pend[h] {
			drop--
			continue
		}
		out = append(out, h)
	}
	s.setExtra(v, out)
}

func pendBefore(a, b *pending) bool {
	return a.t < b.t || a.t == b.t && a.msgID < b.msgID
}

func (s *Sessionizer) freePending(pi int32) {
	r := s.pend.at(pi)
	s.pendBytes -= int64(len(r.msgID))
	s.strs.dec(r.path)
	s.strs.dec(r.referrer)
	s.strs.dec(r.user)
	s.touches.dec(r.touch)
	s.devices.dec(r.device)
	s.pend.release(pi)
}

// visit is a visitor's timer: it applies the pending events the watermark
// has passed, closes the session if no on-time event can extend it any more,
// purges an expired visitor record, and sets the next timers.
//
// Everything happens at canonical watermarks, whole seconds, where the wheel
// fires, whoever visits and whenever: an event settles once the watermark
// has passed the whole second after it, a session closes once it has passed
// its due time rounded up to the second. So each change falls at the same
// place in the input in every run, a restored one included, and what comes
// between, such as an identify event, lands on the same side.
func (s *Sessionizer) visit(vi int32) {
	v := s.visitors.at(vi)
	limit := floorSecond(s.wm)
	for v.pendHead != 0 && s.pend.at(v.pendHead-1).t < limit {
		s.settleHead(vi, v)
	}
	if v.sess != 0 && s.wm >= canonical(s.closeDue(s.sessions.at(v.sess-1))) {
		s.closeSession(vi, v)
	}
	if v.sess == 0 && v.pendHead == 0 && s.wm >= canonical(s.expiry(v)) {
		s.purge(vi, v)
		return
	}
	if v.pendHead != 0 {
		s.scheduleSettle(vi, v, s.pend.at(v.pendHead-1).t)
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

// reschedule sets the visitor's close timer: its session's close, or the
// expiry of its record. (Pending events have the settle timer.)
func (s *Sessionizer) reschedule(vi int32, v *visitor) {
	var due int64
	switch {
	case v.sess != 0:
		due = s.closeDue(s.sessions.at(v.sess - 1))
	case v.pendHead != 0:
		return
	default:
		due = s.expiry(v)
	}
	if b := s.bucket(due); v.sched == 0 || b < v.sched {
		v.sched = b
		s.wheel.push(b, vi)
	}
}

// scheduleSettle makes sure the visitor is visited once the watermark has
// passed the whole second after t.
func (s *Sessionizer) scheduleSettle(vi int32, v *visitor, t int64) {
	if b := s.bucket(t + 1); v.settle == 0 || b < v.settle {
		v.settle = b
		s.wheel.push(b, vi)
	}
}

// bucket returns the wheel bucket of a due time: its second, rounded up,
// and never one the wheel has passed.
func (s *Sessionizer) bucket(due int64) uint32 {
	b := ceilSecond(due)
	if c := s.wheel.cursor; c != math.MinInt64 && int64(b) <= c {
		b = uint32(min(c+1, math.MaxUint32))
	}
	return b
}

// floorSecond rounds ms down to whole seconds.
func floorSecond(ms int64) int64 {
	if ms == math.MinInt64 {
		return ms
	}
	f := ms / 1000 * 1000
	if ms < 0 && f != ms {
		f -= 1000
	}
	return f
}

// canonical returns a due time rounded up to the second, in ms.
func canonical(ms int64) int64 { return int64(ceilSecond(ms)) * 1000 }

// ceilSecond returns ms rounded up to whole seconds, clamped to uint32.
func ceilSecond(ms int64) uint32 {
	b := ms / 1000
	if ms%1000 > 0 {
		b++
	}
	return uint32(min(max(b, 1), math.MaxUint32))
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
		s.openSession(vi, v, r)
	}
	if r.user != 0 {
		// Linked in event-time order, after the session it may have
		// closed: the link belongs to the sessions from this one on,
		// whatever other visitors' events moved the watermark meanwhile.
		s.stitch(vi, v, s.strs.str(r.user), r.t, 0)
	}
	ss := s.sessions.at(v.sess - 1)
	if off := r.t - ss.start; off > int64(ss.endOff) {
		ss.endOff = uint32(off)
	}
	ss.flags |= sessChanged
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
	s.setExtra(v, ids)
	ss.cartPeak = max(ss.cartPeak, ss.cartRun)
	if r.kind == kindOrder {
		ss.cartRun = 0
	}
	var lost int64
	var lostPath uint32
	if r.tab != 0 {
		lost, lostPath = s.trackTab(vi, v, ss, r)
	}
	if sec := uint32(r.t / 1000); sec > v.lastSeen {
		v.lastSeen = sec
	}
	sid := s.sidHex(ss)
	site := s.site(s.keyOf(vi, v))
	s.out.Assignments = append(s.out.Assignments, Assignment{
		Site: site, MessageID: r.msgID, SessionID: sid, Status: Assigned,
		Lost: int32(min(max(lost, math.MinInt32), math.MaxInt32)), LostPath: s.strs.str(lostPath),
	})
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

func (s *Sessionizer) openSession(vi int32, v *visitor, r *pending) {
	si := s.sessions.alloc()
	ss := s.sessions.at(si)
	ss.start = r.t
	key := s.keyOf(vi, v)
	site := s.site(key)
	s.idBuf = appendVisitorID(s.idBuf[:0], key)
	s.hashBuf = sessionIDSum(&ss.sid, s.hashBuf, site, s.idBuf, r.msgID)
	ss.touch = r.touch
	s.touches.inc(r.touch)
	ss.referrer = r.referrer
	s.strs.inc(r.referrer)
	if v.flags&visReturning != 0 {
		ss.flags |= sessReturning
	} else if v.firstSec == 0 && r.t >= 1000 && r.t/1000 <= math.MaxUint32 {
		// The record's first session: its first touch.
		v.firstSec, v.firstMs = uint32(r.t/1000), uint16(r.t%1000)
		v.firstTouch = r.touch
		s.touches.inc(r.touch)
	}
	v.sess = si + 1
}

// closeSession emits the visitor's open session and frees it.
func (s *Sessionizer) closeSession(vi int32, v *visitor) {
	ss := s.sessions.at(v.sess - 1)
	out := s.row(vi, v, ss)
	out.Final = true
	s.out.Sessions = append(s.out.Sessions, out)
	s.stats.Closed++
	s.strs.dec(ss.landing)
	s.strs.dec(ss.exit)
	s.strs.dec(ss.referrer)
	s.touches.dec(ss.touch)
	s.devices.dec(ss.device)
	s.sessions.release(v.sess - 1)
	v.sess = 0
	v.flags |= visReturning
	// Keep the tabs and the pending events' ids; the session's go.
	base := 3 * int(v.ntabs)
	keep := base
	for p := v.pendHead; p != 0; p = s.pend.at(p - 1).next {
		keep++
	}
	extra := v.extra[:base]
	if cap(v.extra) > keep+8 {
		extra = append(make([]uint64, 0, keep), v.extra[:base]...)
	}
	for p := v.pendHead; p != 0; p = s.pend.at(p - 1).next {
		extra = append(extra, s.pend.at(p-1).msgHash)
	}
	if len(extra) == 0 {
		extra = nil
	}
	s.setExtra(v, extra)
	s.markDirty(vi, v)
}

// Open appends to dst a provisional row (Final false) for every open
// session that took events since its last provisional row, and returns the
// extended slice. Call it before Checkpoint, which forgets which visitors
// changed. The rows depend on when it is called, but a session's final row
// (from Drain, once it closes) is always produced after all of its
// provisional ones, replays included: store rows in the order they come
// and let the last row of a session win.
func (s *Sessionizer) Open(dst []Session) []Session {
	for _, vi := range s.dirty {
		if !s.visitors.valid(vi) {
			continue
		}
		v := s.visitors.at(vi)
		if v.sess == 0 {
			continue
		}
		ss := s.sessions.at(v.sess - 1)
		if ss.flags&sessChanged == 0 {
			continue
		}
		ss.flags &^= sessChanged
		dst = append(dst, s.row(vi, v, ss))
	}
	return dst
}

// row returns the row of the visitor's session as it stands.
func (s *Sessionizer) row(vi int32, v *visitor, ss *session) Session {
	site, id, anonymous := s.splitKey(s.keyOf(vi, v))
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
	return out
}

// trackTab counts gaps in the tab's sequence numbers.
func (s *Sessionizer) trackTab(vi int32, v *visitor, ss *session, r *pending) (lost int64, lostPath uint32) {
	key := s.keyOf(vi, v)
	site := uint32(key[0])<<8 | uint32(key[1])
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
			lost = r.seq - maxSeq - 1
		case r.seq < maxSeq:
			lost = -1
		}
		if lost != 0 {
			lostPath = lastPath
			s.countLoss(site, dev, lastPath, 0, lost)
		}
		if r.seq > maxSeq {
			s.strs.inc(r.path)
			s.strs.dec(lastPath)
			tabs[i+1] = uint64(r.seq)
			lastPath = r.path
		}
		tabs[i+2] = uint64(lastPath)<<32 | sec
		s.countLoss(site, dev, r.path, 1, 0)
		return lost, lostPath
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
		s.setExtra(v, slices.Insert(v.extra, n, rec[:]...))
		v.ntabs++
	}
	s.countLoss(site, dev, r.path, 1, 0)
	return 0, 0
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

// siteIndex interns a site id; false when there are 65536 already.
func (s *Sessionizer) siteIndex(site string) (uint16, bool) {
	if i, ok := s.sites[site]; ok {
		return i, true
	}
	if len(s.names) > math.MaxUint16 {
		return 0, false
	}
	i := uint16(len(s.names))
	s.names = append(s.names, site)
	s.sites[site] = i
	return i, true
}

// purge drops an expired visitor record.
//
// The next Checkpoint writes the visitor's last state marked purged, the one
// after it a tombstone: a restore from the first skips the record, while one
// from an older meta record (a torn checkpoint) keeps it, and the replay
// purges it again where it was purged.
func (s *Sessionizer) purge(vi int32, v *visitor) {
	key := s.keyOf(vi, v)
	site, id, anonymous := s.splitKey(key)
	ck := changelogKey(site, id, anonymous)
	var enc encoder
	s.encodeVisitor(&enc, v, recPurged)
	s.purged = append(s.purged, StateRecord{Key: ck, Value: enc.bytes()})
	s.deleted = append(s.deleted, ck)
	s.releaseVisitor(vi, v)
	s.stats.VisitorsPurged++
}

// releaseVisitor forgets a visitor whose open session and pending events
// are gone: its key, its skip entry, its references to interned strings
// and touches, and its slot.
func (s *Sessionizer) releaseVisitor(vi int32, v *visitor) {
	s.table.remove(s, vi, maphash.Bytes(s.table.seed, s.keyOf(vi, v)))
	s.forgetKey(vi, v)
	delete(s.skip, vi)
	s.strs.dec(v.user)
	s.touches.dec(v.firstTouch)
	for i := 0; i < int(v.ntabs); i++ {
		s.strs.dec(uint32(v.extra[3*i+2] >> 32))
	}
	s.setExtra(v, nil)
	s.visitors.release(vi)
}

// Estimated heap bytes of the state's parts, measured with
// TestVisitorCapHostileFlood and BenchmarkOpenSessionMemory: a visitor's
// slab slot and lookup table share; an open session's slot; a pending
// event's slot; a long key's map entry.
const (
	visitorBytes = 128
	sessionBytes = 120
	pendingBytes = 120
	longKeyBytes = 64
)

// setExtra replaces v.extra, keeping count of the capacity.
func (s *Sessionizer) setExtra(v *visitor, x []uint64) {
	s.extraWords += int64(cap(x) - cap(v.extra))
	v.extra = x
}

// forgetKey drops a visitor's long key, if it has one.
func (s *Sessionizer) forgetKey(vi int32, v *visitor) {
	if v.klen == longKey {
		s.longBytes -= int64(len(s.long[vi])) + longKeyBytes
		delete(s.long, vi)
	}
}

// StateBytes estimates the heap the Sessionizer's state holds: visitors,
// open sessions, pending events and the strings they refer to. It is what
// Config.MaxStateBytes caps.
func (s *Sessionizer) StateBytes() int64 {
	return int64(s.visitors.live)*visitorBytes + int64(s.sessions.live)*sessionBytes + int64(s.pend.live)*pendingBytes +
		s.extraWords*8 + s.longBytes + s.pendBytes + s.strs.bytes + s.touches.bytes + s.devices.bytes
}

// overCap tells whether the state is at or past its caps, scaled by
// num/8.
func (s *Sessionizer) overCap(num int64) bool {
	c := &s.cfg
	return c.MaxVisitors > 0 && int64(s.visitors.live)*8 >= int64(c.MaxVisitors)*num ||
		c.MaxStateBytes > 0 && s.StateBytes()*8 >= c.MaxStateBytes*num
}

// evict drops visitors until the state is at 7/8 of its caps: retained
// records first, then visitors with an open session or waiting events,
// each least recently seen first, ties by a hash of the key. The choice
// depends on the state alone, not on where visitors live in memory, so a
// restored Sessionizer evicts the same visitors at the same point.
func (s *Sessionizer) evict() {
	type cand struct {
		order uint64 // class<<32 | last seen
		hash  uint64
		vi    int32
	}
	cands := make([]cand, 0, s.visitors.live)
	for i := int32(0); i < s.visitors.cap(); i++ {
		if !s.visitors.valid(i) {
			continue
		}
		v := s.visitors.at(i)
		class := uint64(0)
		if v.sess != 0 || v.pendHead != 0 {
			class = 1
		}
		cands = append(cands, cand{class<<32 | uint64(v.lastSeen), xxh64(string(s.keyOf(i, v))), i})
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.order != b.order {
			return cmpU64(a.order, b.order)
		}
		return cmpU64(a.hash, b.hash)
	})
	for _, c := range cands {
		if !s.overCap(7) {
			break
		}
		v := s.visitors.at(c.vi)
		for v.pendHead != 0 {
			s.settleHead(c.vi, v)
		}
		if v.sess != 0 {
			s.closeSession(c.vi, v)
			s.stats.SessionsEvicted++
		}
		s.purge(c.vi, v)
		s.stats.VisitorsPurged--
		s.stats.VisitorsEvicted++
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// vtable maps packed visitor keys to visitor indexes: open addressing with
// linear probing. A slot holds the upper half of the key's hash and the
// visitor index + 1, so that a probe touches only the visitor it finds:
// about 11 bytes per visitor.
type vtable struct {
	slots []uint64
	n     int
	seed  maphash.Seed
}

func (t *vtable) init() {
	t.slots = make([]uint64, 1024)
	t.seed = maphash.MakeSeed()
}

func slotOf(h uint64, vi int32) uint64 { return h&^0xffffffff | uint64(vi+1) }

func (s *Sessionizer) find(key []byte) int32 {
	t := &s.table
	h := maphash.Bytes(t.seed, key)
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		x := t.slots[i]
		if x == 0 {
			return -1
		}
		if x>>32 != h>>32 {
			continue
		}
		vi := int32(uint32(x)) - 1
		if string(s.keyOf(vi, s.visitors.at(vi))) == string(key) {
			return vi
		}
	}
}

func (t *vtable) insert(s *Sessionizer, vi int32, h uint64) {
	if (t.n+1)*4 > len(t.slots)*3 {
		old := t.slots
		t.slots = make([]uint64, 2*len(old))
		for _, x := range old {
			if x != 0 {
				t.place(s, x)
			}
		}
	}
	t.place(s, slotOf(h, vi))
	t.n++
}

// home returns the first slot to probe for an entry.
func (t *vtable) home(s *Sessionizer, x uint64) uint64 {
	vi := int32(uint32(x)) - 1
	return maphash.Bytes(t.seed, s.keyOf(vi, s.visitors.at(vi))) & uint64(len(t.slots)-1)
}

func (t *vtable) place(s *Sessionizer, x uint64) {
	mask := uint64(len(t.slots) - 1)
	i := t.home(s, x)
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = x
}

func (t *vtable) remove(s *Sessionizer, vi int32, h uint64) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for uint32(t.slots[i]) != uint32(vi+1) {
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
		home := t.home(s, x)
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
	cursor int64 // last bucket processed
	// spare is the list of the last bucket processed, emptied, for the
	// next bucket's later-lap entries and new timers: one list passed
	// from slot to slot instead of a new one grown for each (that was a
	// tenth of the timers' CPU), and never more than maxSpare of room.
	spare []int32
}

// maxSpare bounds the room of the wheel's spare list.
const maxSpare = 1 << 14

func (w *wheel) init(n int) {
	w.slots = make([][]int32, max(n, 64))
	w.cursor = math.MinInt64
}

func (w *wheel) push(b uint32, vi int32) {
	slot := int64(b) % int64(len(w.slots))
	w.slots[slot] = append(w.slots[slot], vi)
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
		// The spare list, not this one: keeping each slot's own would leave
		// every slot with the capacity of the busiest second ever.
		w.slots[slot], w.spare = w.spare, nil
		for _, vi := range list {
			if !s.visitors.valid(vi) {
				continue
			}
			v := s.visitors.at(vi)
			// The entry stands for whichever of the visitor's timers lives
			// in this slot: due now, due in a later lap (kept), or neither
			// (stale, dropped).
			fire, keep := false, false
			for _, x := range [2]int64{int64(v.sched), int64(v.settle)} {
				switch {
				case x == 0 || x%n != slot:
				case x <= b:
					fire = true
				default:
					keep = true
				}
			}
			if fire {
				if int64(v.sched) <= b {
					v.sched = 0
				}
				if int64(v.settle) <= b {
					v.settle = 0
				}
				s.visit(vi)
			} else if keep {
				w.slots[slot] = append(w.slots[slot], vi) // a later lap
			}
		}
		if cap(list) <= maxSpare {
			w.spare = list[:0]
		}
	}
	w.cursor = target
}

// errNotFresh is returned by Restore on a Sessionizer that has state.
var errNotFresh = errors.New("sessionizer already has state")

// parseBytes reads a byte count: a number, optionally with KiB, MiB or GiB.
func parseBytes(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a byte count (e.g. 512MiB)", v)
	}
	if n > math.MaxInt64/mult || n < math.MinInt64/mult {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return n * mult, nil
}
