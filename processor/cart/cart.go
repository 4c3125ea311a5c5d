// Package cart keeps the shopping carts of one partition's visitors and
// flags abandonment in event time. It is pure: no I/O, no goroutines, no
// clock; time is the events' own, driven forward by a watermark.
//
// # Driving it
//
// Feed it the sessionizer's ordered, session-attributed events (each
// visitor's in event-time order, each at or after the previous watermark)
// with Add, move the watermark with Advance, collect with Drain:
//
//	t := cart.New(cfg)
//	for each event released by the sessionizer: t.Add(&ev)
//	t.Advance(watermark)
//	t.Drain(&out)       // abandonments, recoveries, hand-offs, problems
//
// # Rules
//
// A visitor's cart is built from Product Added (adds the quantity, 1 when
// none is sent, to the line of its product id, else sku), Product Removed
// (takes the quantity off, the whole line when none is sent), Cart Viewed
// and Checkout Started (whose products[], when sent, replace the cart: the
// cart as the shop sees it), Checkout Step Completed and Payment Info
// Entered (activity; payment info moves the furthest step to payment), and
// Order Completed (converts it: the cart is gone, nothing is flagged). A
// cart that holds items and sees no cart activity for AbandonAfter (per
// site, default 1 hour) is abandoned at last activity + AbandonAfter: one
// Abandonment, whose id is derived from the site, the visitor and the
// message id of the last cart activity, so a replay yields the same id. A
// cart emptied by removals is not abandoned.
//
// An abandoned cart waits RecoveryWindow (default 7 days) for an order of
// the same visitor: the first Order Completed within it recovers every
// abandoned cart waiting (a Recovery: the abandonment row again, with the
// order). Once the visitor is known as a customer (an event with a user
// id), its waiting abandonments are handed to the customer stage (Handoff),
// which recovers them on an order on any device of the customer; from then
// on the visitor's abandonments are handed off as they are flagged.
//
// # Bad input
//
// Counted in Output.Problems by kind, never an error: a cart event without
// a product id or sku (ignored), a negative or absurd price or quantity
// (the line is ignored), a product in another currency than the cart's
// (kept as a line, flagged MixedCurrency, left out of Value), too many
// lines (MaxLines; more are ignored).
package cart

import (
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/commerce"
)

// Config configures a Tracker. Zero fields take the defaults.
type Config struct {
	// AbandonAfter: a cart with items and no cart activity for this long
	// is abandoned. Default 1 hour.
	AbandonAfter time.Duration
	// SiteAbandonAfter overrides AbandonAfter per site id.
	SiteAbandonAfter map[string]time.Duration
	// RecoveryWindow: an order this long after the abandonment still
	// recovers the cart. Default 7 days.
	RecoveryWindow time.Duration
	// HandOff: hand the abandonments of visitors known as customers to the
	// customer stage (Output.Handoffs), which recovers them on an order
	// from any device. Without it the tracker keeps them and recovers them
	// on an order of the same visitor only.
	HandOff bool
}

// Defaults of Config.
const (
	DefaultAbandonAfter   = time.Hour
	DefaultRecoveryWindow = 7 * 24 * time.Hour
)

// RegisterFlags registers the cart.* flags on fs, with the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.AbandonAfter, "cart.abandon-after", DefaultAbandonAfter, "a cart with items and no cart activity for this long (event time) is abandoned")
	fs.DurationVar(&c.RecoveryWindow, "cart.recovery-window", DefaultRecoveryWindow, "an order of the same visitor or customer within this long after an abandonment recovers the cart")
}

func (c Config) withDefaults() Config {
	if c.AbandonAfter == 0 {
		c.AbandonAfter = DefaultAbandonAfter
	}
	if c.RecoveryWindow == 0 {
		c.RecoveryWindow = DefaultRecoveryWindow
	}
	return c
}

// Validate reports a configuration a Tracker cannot run with.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.AbandonAfter < time.Minute || c.AbandonAfter > 30*24*time.Hour {
		return fmt.Errorf("cart abandon-after %v is not within 1m..720h", c.AbandonAfter)
	}
	for site, d := range c.SiteAbandonAfter {
		if d < time.Minute || d > 30*24*time.Hour {
			return fmt.Errorf("cart abandon-after %v of site %q is not within 1m..720h", d, site)
		}
	}
	if c.RecoveryWindow < 0 || c.RecoveryWindow > 90*24*time.Hour {
		return fmt.Errorf("cart recovery window %v is not within 0..2160h", c.RecoveryWindow)
	}
	return nil
}

func (c *Config) abandonAfter(site string) time.Duration {
	if d, ok := c.SiteAbandonAfter[site]; ok {
		return d
	}
	return c.AbandonAfter
}

// Event is what the tracker reads of one event: the event, its session and
// its typed e-commerce properties.
type Event struct {
	Site        string
	AnonymousID string
	// CustomerID is the stitched customer id (the event's user id, or the
	// one the sessionizer linked the visitor to), empty when unknown.
	CustomerID string
	MessageID  string
	Name       string // track event name
	Time       time.Time
	Props      *commerce.Props

	SessionID string
	Channel   string
	Source    string
}

// Steps of a cart, furthest last.
const (
	StepCart     = "cart"
	StepCheckout = "checkout"
	StepPayment  = "payment"
)

var steps = [...]string{StepCart, StepCheckout, StepPayment}

// Item is one line of a cart.
type Item struct {
	ProductID string
	SKU       string
	Name      string
	Category  string
	Price     float64
	Quantity  float64
	Currency  string // the currency it was added in, "" when none was sent
}

// key is the line's identity: its product id, else its sku.
func (it *Item) key() string {
	if it.ProductID != "" {
		return it.ProductID
	}
	return it.SKU
}

// Abandonment is a row of cart_abandonments: an abandoned cart, and later
// (Recovered) the order that recovered it.
type Abandonment struct {
	ID          string // deterministic: see AbandonmentID
	Site        string
	CartID      string // the shop's cart_id, if it sent one
	AnonymousID string
	CustomerID  string
	Items       []Item
	ItemCount   float64 // sum of quantities
	Value       float64 // sum of price x quantity of the lines in Currency
	Currency    string
	// MixedCurrency: some lines were in another currency (left out of Value).
	MixedCurrency  bool
	LastActivityAt time.Time
	AbandonedAt    time.Time
	Step           string // furthest step: cart, checkout, payment
	SessionID      string // session of the last cart activity
	Channel        string
	Source         string

	// Set when recovered.
	Recovered        bool
	RecoveredAt      time.Time
	RecoveredOrderID string
	RecoveredValue   float64
}

// AbandonmentID is the id of the abandonment whose last cart activity was
// message msgID of visitor anonID on site: hex of the first 16 bytes of
// SHA-256 over them, NUL-separated.
func AbandonmentID(site, anonID, msgID string) string {
	return hex.EncodeToString(abandonmentID(site, anonID, msgID))
}

func abandonmentID(site, anonID, msgID string) []byte {
	b := make([]byte, 0, len(site)+len(anonID)+len(msgID)+2)
	b = append(append(append(append(append(b, site...), 0), anonID...), 0), msgID...)
	sum := sha256.Sum256(b)
	return sum[:16]
}

// Handoff hands an abandonment waiting for recovery to the customer stage:
// its visitor is now known as CustomerID.
type Handoff struct {
	CustomerID  string
	Abandonment *Abandonment
	// At is the event time of the hand-off: the abandonment's time when
	// its visitor was known then, else the time of the event that made it
	// known.
	At time.Time
}

// Problem kinds counted in Output.Problems.
const (
	ProblemNoProductID  = "cart_event_without_product_id"
	ProblemBadAmount    = "bad_price_or_quantity"
	ProblemCurrencyMix  = "currency_mix"
	ProblemTooManyLines = "too_many_lines"
	ProblemProperties   = "unreadable_properties"
)

// MaxLines bounds a cart's lines.
const MaxLines = 200

// maxAmount bounds a price and a quantity: anything larger is absurd.
const maxAmount = 1e9

// Output collects what the tracker concluded since the last Drain.
type Output struct {
	// Abandonments are new abandonments.
	Abandonments []Abandonment
	// Recoveries are abandonments recovered by an order of their visitor,
	// the whole row again with Recovered set.
	Recoveries []Abandonment
	// Handoffs are waiting abandonments whose visitor became a known
	// customer: from now on the customer stage recovers them.
	Handoffs []Handoff
	// Problems counts bad input by kind (Problem* constants).
	Problems map[string]int
	// Emptied and Converted count carts that ended without abandonment.
	Emptied, Converted int
	// Replayed counts cart events skipped after a Restore because the
	// restored state had applied them already.
	Replayed int
}

// Reset empties o, keeping its capacity.
func (o *Output) Reset() {
	clear(o.Abandonments)
	clear(o.Recoveries)
	clear(o.Handoffs)
	o.Abandonments, o.Recoveries, o.Handoffs = o.Abandonments[:0], o.Recoveries[:0], o.Handoffs[:0]
	clear(o.Problems)
	o.Emptied, o.Converted, o.Replayed = 0, 0, 0
}

// visitor is the state of one visitor (site and anonymous id): its open
// cart, and its abandonments waiting for recovery. It is kept small (an
// open cart costs about 285 bytes beyond its items, see
// BenchmarkOpenCartMemory): ids as raw bytes, the attribution shared, the
// rarely set fields behind one pointer.
type visitor struct {
	key       string // site NUL anonymous id: the key in Tracker.visitors
	items     []Item
	currency  string
	attr      *attribution // of the session of the last cart activity
	x         *extra       // nil while none of its fields is set
	abandonID [16]byte     // the id the cart gets if abandoned now
	sessionID [16]byte     // session of the last cart activity, raw
	last      int64        // unix ms of the last cart activity
	deadline  int64        // unix ms of the next timer (abandonment or the oldest waiting's expiry); 0 none
	idx       int32        // in the timer heap, -1 when not in it
	// applied and appliedHash mark the last cart event applied (its time
	// in unix ms, the FNV-1a of its message id): a replay after a restore
	// skips what the restored state holds already.
	applied     int64
	appliedHash uint64
	step        uint8
	mixed       bool
	dirty       bool // changed since the last Checkpoint (in Tracker.dirty)
}

// extra are a visitor's rarely set fields.
type extra struct {
	customerID string
	cartID     string
	waiting    []*Abandonment
}

// attribution is a session's channel and source, shared by the carts.
type attribution struct{ channel, source string }

func (v *visitor) site() string { return v.key[:strings.IndexByte(v.key, 0)] }

func (v *visitor) anonID() string { return v.key[strings.IndexByte(v.key, 0)+1:] }

func visitorKey(site, anonID string) string { return site + "\x00" + anonID }

func (v *visitor) customerID() string {
	if v.x == nil {
		return ""
	}
	return v.x.customerID
}

func (v *visitor) cartID() string {
	if v.x == nil {
		return ""
	}
	return v.x.cartID
}

func (v *visitor) waiting() []*Abandonment {
	if v.x == nil {
		return nil
	}
	return v.x.waiting
}

func (v *visitor) extra() *extra {
	if v.x == nil {
		v.x = &extra{}
	}
	return v.x
}

// tidy drops the extra fields when none is set.
func (v *visitor) tidy() {
	if v.x != nil && v.x.customerID == "" && v.x.cartID == "" && len(v.x.waiting) == 0 {
		v.x = nil
	}
}

// Tracker keeps the carts of one partition. Not safe for concurrent use.
type Tracker struct {
	cfg      Config
	visitors map[string]*visitor
	timers   timerHeap
	wm       time.Time
	out      Output
	attrs    map[attribution]*attribution
	// dirty are the visitors changed since the last Checkpoint, gone the
	// keys of those forgotten.
	dirty []*visitor
	gone  []string
	// Open is the number of open carts (with items or activity pending).
	open int
}

// New returns a Tracker, or an error for an invalid configuration.
func New(cfg Config) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Tracker{cfg: cfg.withDefaults(), visitors: map[string]*visitor{}, attrs: map[attribution]*attribution{},
		out: Output{Problems: map[string]int{}}}, nil
}

// Watermark is the event time up to which timers have fired.
func (t *Tracker) Watermark() time.Time { return t.wm }

// Stats are gauges for metrics.
type Stats struct {
	OpenCarts int // visitors with items in the cart
	Waiting   int // abandonments waiting for recovery
	Visitors  int
}

// OpenCarts is the number of carts with items.
func (t *Tracker) OpenCarts() int { return t.open }

// Stats returns the tracker's gauges (it visits every visitor: not for
// every batch).
func (t *Tracker) Stats() Stats {
	s := Stats{OpenCarts: t.open, Visitors: len(t.visitors)}
	for _, v := range t.visitors {
		s.Waiting += len(v.waiting())
	}
	return s
}

func (t *Tracker) problem(kind string) { t.out.Problems[kind]++ }

// Add applies one event. Events other than the cart and order events only
// tell the tracker the visitor's customer id.
func (t *Tracker) Add(e *Event) {
	if e.Site == "" || e.AnonymousID == "" || e.Time.IsZero() {
		return
	}
	ms := e.Time.UnixMilli()
	// A lookup by a key built on the stack allocates nothing.
	var kb [128]byte
	v := t.visitors[string(append(append(append(kb[:0], e.Site...), 0), e.AnonymousID...))]
	isCart := false
	switch e.Name {
	case shoptrail.EventProductAdded, shoptrail.EventProductRemoved, shoptrail.EventCartViewed,
		shoptrail.EventCheckoutStarted, shoptrail.EventCheckoutStepCompleted, shoptrail.EventPaymentInfoEntered,
		shoptrail.EventOrderCompleted:
		isCart = true
	}
	if v == nil {
		if !isCart {
			return
		}
		v = &visitor{key: visitorKey(e.Site, e.AnonymousID), idx: -1}
		t.visitors[v.key] = v
	}
	// Timers due before this event fire first, as they would have had the
	// watermark passed them before it arrived.
	t.fire(v, ms)
	if e.CustomerID != "" && v.customerID() != e.CustomerID {
		x := v.extra()
		x.customerID = e.CustomerID
		if t.cfg.HandOff {
			for _, a := range x.waiting {
				a.CustomerID = e.CustomerID
				t.out.Handoffs = append(t.out.Handoffs, Handoff{CustomerID: e.CustomerID, Abandonment: a, At: e.Time.UTC()})
			}
			clear(x.waiting)
			x.waiting = nil
		}
	}
	if isCart {
		h := fnv64a(e.MessageID)
		if ms < v.applied || ms == v.applied && h == v.appliedHash {
			// Applied before the state was saved: a replay.
			t.out.Replayed++
		} else {
			v.applied, v.appliedHash = ms, h
			t.apply(v, e, ms)
		}
	}
	t.schedule(v)
}

func (t *Tracker) apply(v *visitor, e *Event, ms int64) {
	p := e.Props
	if p == nil {
		p = &commerce.Props{}
	}
	if p.Problem != "" {
		t.problem(ProblemProperties)
	}
	hadItems := len(v.items) > 0
	activity := true
	switch e.Name {
	case shoptrail.EventProductAdded:
		if len(p.Products) == 0 || p.Products[0].Key() == "" {
			t.problem(ProblemNoProductID)
			activity = false
			break
		}
		t.addLine(v, &p.Products[0], p.Currency, false)
	case shoptrail.EventProductRemoved:
		if len(p.Products) == 0 || p.Products[0].Key() == "" {
			t.problem(ProblemNoProductID)
			activity = false
			break
		}
		t.removeLine(v, &p.Products[0])
	case shoptrail.EventCartViewed, shoptrail.EventCheckoutStarted:
		if p.Has&commerce.HasProducts != 0 {
			clear(v.items)
			v.items, v.currency, v.mixed = v.items[:0], "", false
			for i := range p.Products {
				if p.Products[i].Key() == "" {
					t.problem(ProblemNoProductID)
					continue
				}
				t.addLine(v, &p.Products[i], p.Currency, true)
			}
		}
		if e.Name == shoptrail.EventCheckoutStarted {
			v.step = max(v.step, 1)
		}
	case shoptrail.EventCheckoutStepCompleted:
		v.step = max(v.step, 1)
	case shoptrail.EventPaymentInfoEntered:
		v.step = 2
	case shoptrail.EventOrderCompleted:
		t.order(v, e, p, ms)
		return
	}
	if p.CartID != "" {
		v.extra().cartID = p.CartID
	}
	if !activity {
		return
	}
	v.last = ms
	copy(v.abandonID[:], abandonmentID(e.Site, e.AnonymousID, e.MessageID))
	v.sessionID = [16]byte{}
	if len(e.SessionID) == 32 {
		_, _ = hex.Decode(v.sessionID[:], []byte(e.SessionID))
	}
	v.attr = t.attribution(e.Channel, e.Source)
	switch {
	case len(v.items) > 0 && !hadItems:
		t.open++
	case len(v.items) == 0 && hadItems:
		t.open--
		t.out.Emptied++
		t.closeCart(v)
	}
}

// order converts the visitor's cart and recovers its waiting abandonments.
func (t *Tracker) order(v *visitor, e *Event, p *commerce.Props, ms int64) {
	if len(v.items) > 0 {
		t.open--
		t.out.Converted++
	}
	t.closeCart(v)
	if len(v.waiting()) == 0 {
		return
	}
	amount, _ := p.Amount()
	for _, a := range v.x.waiting {
		r := *a
		r.Recovered, r.RecoveredAt, r.RecoveredOrderID, r.RecoveredValue = true, time.UnixMilli(ms).UTC(), p.OrderID, amount
		t.out.Recoveries = append(t.out.Recoveries, r)
	}
	clear(v.x.waiting)
	v.x.waiting = nil
	v.tidy()
}

// attribution returns the shared attribution of channel and source.
func (t *Tracker) attribution(channel, source string) *attribution {
	k := attribution{channel, source}
	if a, ok := t.attrs[k]; ok {
		return a
	}
	if len(t.attrs) >= maxAttributions {
		clear(t.attrs) // the carts keep theirs
	}
	a := &k
	t.attrs[k] = a
	return a
}

// maxAttributions bounds the shared attributions; the table starts over
// when full.
const maxAttributions = 4096

func (t *Tracker) closeCart(v *visitor) {
	clear(v.items)
	v.items = v.items[:0]
	if cap(v.items) > 16 {
		v.items = nil
	}
	v.currency, v.mixed, v.step, v.last = "", false, 0, 0
	v.abandonID, v.sessionID, v.attr = [16]byte{}, [16]byte{}, nil
	if v.x != nil {
		v.x.cartID = ""
		v.tidy()
	}
}

func validAmount(f float64) bool { return f >= 0 && f <= maxAmount }

func (t *Tracker) addLine(v *visitor, pr *commerce.Product, currency string, snapshot bool) {
	q := pr.LineQuantity()
	if !validAmount(pr.Price) || !validAmount(q) || (q == 0 && !snapshot) {
		t.problem(ProblemBadAmount)
		return
	}
	if q == 0 {
		return
	}
	if currency != "" {
		if v.currency == "" && len(v.items) == 0 {
			v.currency = currency
		} else if v.currency != currency {
			if !v.mixed {
				t.problem(ProblemCurrencyMix)
			}
			v.mixed = true
		}
	}
	key := pr.Key()
	for i := range v.items {
		it := &v.items[i]
		if it.key() == key {
			it.Quantity += q
			if it.Quantity > maxAmount {
				it.Quantity = maxAmount
			}
			if pr.Price > 0 {
				it.Price = pr.Price
			}
			if pr.Name != "" {
				it.Name = pr.Name
			}
			if pr.Category != "" {
				it.Category = pr.Category
			}
			it.Currency = currency
			return
		}
	}
	if len(v.items) >= MaxLines {
		t.problem(ProblemTooManyLines)
		return
	}
	v.items = append(v.items, Item{ProductID: pr.ProductID, SKU: pr.SKU, Name: pr.Name, Category: pr.Category,
		Price: pr.Price, Quantity: q, Currency: currency})
}

func (t *Tracker) removeLine(v *visitor, pr *commerce.Product) {
	key := pr.Key()
	for i := range v.items {
		it := &v.items[i]
		if it.key() == key {
			if pr.HasQuantity {
				if !validAmount(pr.Quantity) {
					t.problem(ProblemBadAmount)
					return
				}
				it.Quantity -= pr.Quantity
			} else {
				it.Quantity = 0
			}
			if it.Quantity <= 0 {
				n := len(v.items)
				copy(v.items[i:], v.items[i+1:])
				v.items[n-1] = Item{}
				v.items = v.items[:n-1]
			}
			return
		}
	}
	// Removing what is not in the cart (added before the tracker knew the
	// visitor, or twice) is no problem: the cart as we know it stays.
}

// Session tells the tracker a session's channel and source once the
// session is closed, closed being the event time it closed at (its last
// event plus the session timeout). The visitor's cart takes them when its
// last cart activity was in that session and the session closed before the
// cart would be abandoned. Call it in each visitor's event-time order:
// after the visitor's events before closed, before those after it; then
// what a cart carries depends on event times only, never on how the input
// was batched.
func (t *Tracker) Session(site, anonID, sessionID, channel, source string, closed time.Time) {
	var kb [128]byte
	v := t.visitors[string(append(append(append(kb[:0], site...), 0), anonID...))]
	if v == nil || len(v.items) == 0 || len(sessionID) != 32 {
		return
	}
	var sid [16]byte
	if _, err := hex.Decode(sid[:], []byte(sessionID)); err != nil || sid != v.sessionID {
		return
	}
	if closed.UnixMilli() > v.last+t.cfg.abandonAfter(v.site()).Milliseconds() {
		return
	}
	if v.attr == nil || v.attr.channel != channel || v.attr.source != source {
		v.attr = t.attribution(channel, source)
		t.touch(v)
	}
}

func (t *Tracker) touch(v *visitor) {
	if !v.dirty {
		v.dirty = true
		t.dirty = append(t.dirty, v)
	}
}

// Advance moves the watermark to wm (never back) and fires the timers due
// at or before it.
func (t *Tracker) Advance(wm time.Time) {
	if !wm.After(t.wm) {
		return
	}
	t.wm = wm
	ms := wm.UnixMilli()
	for len(t.timers) > 0 && t.timers[0].deadline <= ms {
		v := t.timers[0]
		t.fire(v, ms)
		t.schedule(v)
	}
}

// fire runs v's timers due at or before ms: abandonment, then the expiry of
// waiting abandonments.
func (t *Tracker) fire(v *visitor, ms int64) {
	if len(v.items) > 0 {
		if at := v.last + t.cfg.abandonAfter(v.site()).Milliseconds(); at <= ms {
			t.abandon(v, at)
		}
	}
	if len(v.waiting()) == 0 {
		return
	}
	w := t.cfg.RecoveryWindow.Milliseconds()
	n := 0
	for _, a := range v.x.waiting {
		if a.AbandonedAt.UnixMilli()+w > ms {
			v.x.waiting[n] = a
			n++
		}
	}
	clear(v.x.waiting[n:])
	v.x.waiting = v.x.waiting[:n]
	v.tidy()
}

func (t *Tracker) abandon(v *visitor, at int64) {
	a := Abandonment{
		ID: hex.EncodeToString(v.abandonID[:]), Site: v.site(), CartID: v.cartID(), AnonymousID: v.anonID(),
		CustomerID: v.customerID(), Items: append([]Item(nil), v.items...), Currency: v.currency, MixedCurrency: v.mixed,
		LastActivityAt: time.UnixMilli(v.last).UTC(), AbandonedAt: time.UnixMilli(at).UTC(), Step: steps[v.step],
	}
	if v.sessionID != [16]byte{} {
		a.SessionID = hex.EncodeToString(v.sessionID[:])
	}
	if v.attr != nil {
		a.Channel, a.Source = v.attr.channel, v.attr.source
	}
	for _, it := range v.items {
		a.ItemCount += it.Quantity
		if it.Currency == v.currency || it.Currency == "" {
			a.Value += it.Price * it.Quantity
		}
	}
	t.out.Abandonments = append(t.out.Abandonments, a)
	t.open--
	t.closeCart(v)
	if t.cfg.RecoveryWindow <= 0 {
		return
	}
	w := &a
	w.Items = append([]Item(nil), a.Items...)
	if c := v.customerID(); c != "" && t.cfg.HandOff {
		t.out.Handoffs = append(t.out.Handoffs, Handoff{CustomerID: c, Abandonment: w, At: a.AbandonedAt})
		return
	}
	x := v.extra()
	x.waiting = append(x.waiting, w)
}

// schedule sets v's next timer, and forgets v when it has nothing left.
func (t *Tracker) schedule(v *visitor) {
	var d int64
	if len(v.items) > 0 {
		d = v.last + t.cfg.abandonAfter(v.site()).Milliseconds()
	}
	if ws := v.waiting(); len(ws) > 0 {
		exp := ws[0].AbandonedAt.UnixMilli() + t.cfg.RecoveryWindow.Milliseconds()
		if d == 0 || exp < d {
			d = exp
		}
	}
	v.deadline = d
	t.touch(v)
	switch {
	case d == 0 && v.idx >= 0:
		heap.Remove(&t.timers, int(v.idx))
	case d != 0 && v.idx >= 0:
		heap.Fix(&t.timers, int(v.idx))
	case d != 0:
		heap.Push(&t.timers, v)
	}
	if d == 0 && len(v.items) == 0 && len(v.waiting()) == 0 {
		// Nothing to remember: the customer id comes again with the
		// visitor's next event if it is known.
		delete(t.visitors, v.key)
		t.gone = append(t.gone, v.key)
	}
}

// Drain moves what the tracker concluded into o (appending) and empties
// its own output.
func (t *Tracker) Drain(o *Output) {
	o.Abandonments = append(o.Abandonments, t.out.Abandonments...)
	o.Recoveries = append(o.Recoveries, t.out.Recoveries...)
	o.Handoffs = append(o.Handoffs, t.out.Handoffs...)
	if o.Problems == nil {
		o.Problems = map[string]int{}
	}
	for k, n := range t.out.Problems {
		o.Problems[k] += n
	}
	o.Emptied += t.out.Emptied
	o.Converted += t.out.Converted
	o.Replayed += t.out.Replayed
	t.out.Reset()
}

type timerHeap []*visitor

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = int32(i), int32(j)
}
func (h *timerHeap) Push(x any) {
	v := x.(*visitor)
	v.idx = int32(len(*h))
	*h = append(*h, v)
}
func (h *timerHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	v.idx = -1
	return v
}

// fnv64a is 64-bit FNV-1a: deterministic across processes, so the marks
// written to the changelog stay valid after a restore.
func fnv64a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
