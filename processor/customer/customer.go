// Package customer keeps customers (stitched customer ids, across all their
// devices): orders, lifecycle stage, value tier, dormancy by each
// customer's own rhythm, and the recovery of their abandoned carts. It is
// pure: no I/O, no goroutines, no clock; time is the events' own, driven
// forward by a watermark.
//
// Feed it a customer partition's events in event-time order (each at or
// after the previous watermark) with Add, the abandonments the cart stage
// hands over with AddAbandonment, move the watermark with Advance, and
// collect rows and signals with Drain. The README's "Customers" section
// states the rules; the code below is their one implementation.
package customer

import (
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/commerce"
)

// Event is what the tracker reads of one event of a known customer.
type Event struct {
	Site       string
	CustomerID string
	// AnonymousID is the device the event came from.
	AnonymousID string
	MessageID   string
	Type        string // track, identify, page, ...
	Name        string // track event name
	Time        time.Time
	Props       *commerce.Props // track events
	Traits      *Traits         // identify calls (and Signed Up's traits)

	SessionID string
	Channel   string
	Source    string
	// SessionStart is set on session facts (Type TypeSession): a session
	// of the customer closed at Time; it began at SessionStart.
	SessionStart time.Time `json:",omitzero"`
	// Arrived is set on a late order event (behind the allowed lateness
	// where it was sessionized): the event time at which it became known.
	// The event counts for the customer then (timers due before it fire
	// first, its stage and tier changes are stamped then); its order keeps
	// Time.
	Arrived time.Time `json:",omitzero"`
}

// TypeSession is the Type of a session fact: a closed session of the
// customer, with its channel and source.
const TypeSession = "session"

// TypeLink is the Type of a link fact: a device (AnonymousID) linked to
// the customer at Time, whose first session began at SessionStart with
// Channel and Source: the device's first touch, its anonymous visits
// included. A link fact makes the touch known to the customer and
// nothing else: a customer first known by it gets its row, stage and
// transitions with its first event or session, as without it.
const TypeLink = "link"

// Order is a row of the orders table: one per site and order id, rewritten
// (Version rising) when an update, refund or cancellation changes it.
type Order struct {
	Site, OrderID string
	CustomerID    string
	AnonymousID   string
	At            time.Time // Order Completed's time
	Items         []cart.Item
	ItemCount     float64
	Revenue       float64 // as completed (revenue, else total, value, subtotal, products)
	Subtotal      float64
	Discount      float64
	Coupon        string
	Shipping      float64
	Tax           float64
	Currency      string
	// NetRevenue is Revenue as completed (updates: order_updates).
	NetRevenue float64
	// Status is completed (updates: order_updates).
	Status     string
	FirstOrder bool // the customer's first order
	// Number is which of the customer's orders it is (1: the first),
	// counting cancelled ones.
	Number    int
	SessionID string
	Channel   string
	Source    string
	// Version is the event time (unix ms) of the last event that changed
	// the row: the newest version wins.
	Version int64
	// Problem notes a documented treatment of bad input ("" when none).
	Problem string
}

// OrderUpdate is a row of order_updates: an Order Updated, Refunded or
// Cancelled applied to an order. The order's current status and net
// revenue are those of its newest update (by Version), else its orders
// row's.
type OrderUpdate struct {
	Site, OrderID string
	CustomerID    string
	MessageID     string
	At            time.Time
	Status        string // updated, refunded, cancelled
	// Amount: the new amount (updated), the refund, or the net revenue
	// the cancellation took away.
	Amount     float64
	NetRevenue float64 // of the order after this update
	Version    int64   // unix ms of At
}

// Order statuses.
const (
	StatusCompleted = "completed"
	StatusUpdated   = "updated"
	StatusRefunded  = "refunded"
	StatusCancelled = "cancelled"
)

// Transition is a row of customer_transitions.
type Transition struct {
	ID         string // deterministic: TransitionID
	Site       string
	CustomerID string
	Kind       string // "stage" or "tier"
	From, To   string
	At         time.Time
	// Cause is "event:" and the event name and message id, or "timer:" and
	// the threshold that passed (at_risk, dormant, lost, potential_dormant,
	// recency).
	Cause string
}

// TransitionID is hex of the first 16 bytes of SHA-256 over site,
// customer, kind, to and the time in unix ms, NUL-separated.
func TransitionID(site, customer, kind, to string, at time.Time) string {
	b := []byte(site + "\x00" + customer + "\x00" + kind + "\x00" + to + "\x00" + strconv.FormatInt(at.UnixMilli(), 10))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Problems counted in Output.Problems.
const (
	ProblemOrderWithoutItems = "order_without_items"
	ProblemBadAmount         = "negative_or_absurd_amount"
	ProblemNoOrderID         = "order_without_order_id"
	ProblemUnknownOrder      = "update_of_unknown_order"
	ProblemProperties        = "unreadable_properties"
)

// maxAmount: an order amount beyond it is absurd.
const maxAmount = 1e9

// Output collects what the tracker concluded since the last Drain.
type Output struct {
	// Customers are the rows of customers that changed (the latest row
	// per customer since the last Drain).
	Customers    []Row
	Orders       []Order
	OrderUpdates []OrderUpdate
	Transitions  []Transition
	// Abandonments are abandonment rows the customer stage (re)wrote:
	// handed-over new ones stamped with the customer's stage and tier, and
	// recovered ones.
	Abandonments []Abandonment
	Signals      []shoptrail.Signal
	Problems     map[string]int
}

// Abandonment is a cart abandonment with the customer's stage and tier at
// the moment it was flagged.
type Abandonment struct {
	cart.Abandonment
	Stage, Tier string
}

// Reset empties o, keeping its capacity.
func (o *Output) Reset() {
	clear(o.Customers)
	clear(o.Orders)
	clear(o.OrderUpdates)
	o.OrderUpdates = o.OrderUpdates[:0]
	clear(o.Transitions)
	clear(o.Abandonments)
	clear(o.Signals)
	o.Customers, o.Orders, o.Transitions, o.Abandonments, o.Signals = o.Customers[:0], o.Orders[:0], o.Transitions[:0], o.Abandonments[:0], o.Signals[:0]
	clear(o.Problems)
}

// Tracker keeps the customers of one customer partition.
type Tracker struct {
	cfg       Config
	customers map[uint64]*customer // by hash of site NUL customer id
	collided  map[string]*customer
	seed      maphash.Seed
	profiles  map[profile]*profile
	timers    timerHeap
	wm        time.Time
	out       Output
	changed   []*customer
	// stateDirty are the customers changed since the last Checkpoint.
	stateDirty []*customer
	// ahead are customers restored from records of a checkpoint that was
	// cut short (written after the meta record Restore read): their state
	// has the facts up to the time given already, and Add and
	// AddAbandonment skip those. Empty but after such a Restore; entries
	// go once the watermark passes them.
	ahead map[*customer]int64
	// Skipped counts facts skipped for ahead customers.
	Skipped int
}

// New returns a Tracker, or an error for an invalid configuration.
func New(cfg Config) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Tracker{cfg: cfg.withDefaults(), customers: map[uint64]*customer{}, collided: map[string]*customer{},
		seed: maphash.MakeSeed(), profiles: map[profile]*profile{}, out: Output{Problems: map[string]int{}}}, nil
}

// Watermark is the event time up to which timers have fired.
func (t *Tracker) Watermark() time.Time { return t.wm }

// Len is the number of customers tracked.
func (t *Tracker) Len() int { return len(t.customers) + len(t.collided) }

// lookup finds (or creates) a customer. Customers are kept by a 64-bit
// hash of their key (a map slot of 16 bytes rather than 24); the rare key
// whose hash another customer holds already is kept in collided.
func (t *Tracker) lookup(site, id string, create bool) *customer {
	var kb [160]byte
	key := append(append(append(kb[:0], site...), 0), id...)
	h := maphash.Bytes(t.seed, key)
	c := t.customers[h]
	if c != nil && c.key != string(key) {
		c = t.collided[string(key)]
	}
	if c == nil && create {
		c = &customer{key: string(key), idx: -1}
		if _, taken := t.customers[h]; taken {
			t.collided[c.key] = c
		} else {
			t.customers[h] = c
		}
	}
	return c
}

// profile returns the shared profile of these values.
func (t *Tracker) profile(channel, source, currency string) *profile {
	k := profile{channel, source, currency}
	if p, ok := t.profiles[k]; ok {
		return p
	}
	if len(t.profiles) >= 4096 {
		clear(t.profiles) // the customers keep theirs
	}
	p := &k
	t.profiles[k] = p
	return p
}

func (t *Tracker) problem(kind string) { t.out.Problems[kind]++ }

// Add applies one event of a known customer.
func (t *Tracker) Add(e *Event) {
	if e.Site == "" || e.CustomerID == "" || e.Time.IsZero() {
		return
	}
	ms := e.Time.UnixMilli()
	// The event counts at its time, or a late one when it arrived.
	at, now := e.Time, ms
	if e.Arrived.After(e.Time) {
		at, now = e.Arrived, e.Arrived.UnixMilli()
	}
	c := t.lookup(e.Site, e.CustomerID, true)
	if t.isAhead(c, now) {
		return
	}
	// Timers due before this event fire first, as they would have had the
	// watermark passed them before it arrived.
	t.fire(c, now)
	if e.Type == TypeLink {
		t.link(c, e, at, ms, now)
		return
	}
	before := c.snapshot()
	cause := "event:" + e.Name
	if e.Name == "" {
		cause = "event:" + e.Type
	}
	cause += ":" + e.MessageID
	visit := ms
	if e.Type == TypeSession && !e.SessionStart.IsZero() {
		visit = min(ms, e.SessionStart.UnixMilli())
	}
	t.register(c, ms)
	if e.Channel != "" {
		t.touch(c, visit, e.Channel, e.Source)
	}
	c.lastVisit = max(c.lastVisit, secOf(visit))
	if e.Traits != nil {
		c.extra().traits.merge(e.Traits)
	}
	p := e.Props
	if p != nil && p.Problem != "" {
		t.problem(ProblemProperties)
	}
	if p == nil {
		p = &commerce.Props{}
	}
	switch e.Name {
	case shoptrail.EventProductAdded, shoptrail.EventCartViewed, shoptrail.EventCheckoutStarted:
		c.flags |= flagCarted
	case shoptrail.EventProductAddedToWishlist:
		c.flags |= flagCarted
		c.extra().favorites++
	case shoptrail.EventInquiry:
		c.flags |= flagCarted
		c.extra().inquiries++
	case shoptrail.EventOrderCompleted:
		t.orderCompleted(c, e, p, ms)
	case "Order Updated", shoptrail.EventOrderRefunded, shoptrail.EventOrderCancelled:
		t.orderChanged(c, e, p, ms)
	}
	t.settle(c, before, at, cause, now)
}

// register records the customer's first event at ms (the first fact of
// the customer the tracker applies): its registration, and its first
// seen unless a touch before it is known.
func (t *Tracker) register(c *customer, ms int64) {
	if c.registered != 0 {
		return
	}
	s := secOf(ms)
	c.registered = s
	if c.firstSeen == 0 || s < c.firstSeen {
		c.firstSeen = s
	}
}

// touch records that the customer came at ms by channel and source (a
// session's start, or a linked device's first session): the earliest such
// touch known is how the customer first came, and the customer was first
// seen no later. Facts come in a deterministic order and a touch replaces
// another only when strictly earlier, so a replay ends with the same.
func (t *Tracker) touch(c *customer, ms int64, channel, source string) {
	s := secOf(ms)
	if channel != "" && (c.touchAt == 0 || s < c.touchAt) {
		c.touchAt = s
		c.prof = t.profile(channel, source, c.currency())
	}
	if c.firstSeen == 0 || s < c.firstSeen {
		c.firstSeen = s
	}
}

// link applies a link fact (TypeLink) at ms (the link's event time; now,
// when it counts): the device's first touch. A customer without a row yet
// (first known by the link, or by a hand-off of its cart) takes it
// silently: its row, stage and transitions come with its next event or
// session, at the same time or later, as they did before links were
// facts, so a link never causes a transition. A customer with a row has
// it rewritten if the touch changes its first seen or first channel and
// source.
func (t *Tracker) link(c *customer, e *Event, at time.Time, ms, now int64) {
	t.register(c, ms)
	seen, prof := c.firstSeen, c.prof
	if !e.SessionStart.IsZero() {
		t.touch(c, e.SessionStart.UnixMilli(), e.Channel, e.Source)
	}
	if c.stage() == stStranger || c.firstSeen == seen && c.prof == prof {
		return // (fire scheduled c: its changelog record is written)
	}
	t.settle(c, c.snapshot(), at, "event:link:"+e.MessageID, now)
}

// NewOrder builds the orders row of an Order Completed event e (of a
// customer or a guest), and names the problem of its input if any:
// a negative or absurd amount is counted as 0 (ProblemBadAmount); an order
// without items keeps its amount (ProblemOrderWithoutItems).
func NewOrder(e *Event) (Order, string) {
	p := e.Props
	if p == nil {
		p = &commerce.Props{}
	}
	o := Order{Site: e.Site, OrderID: p.OrderID, CustomerID: e.CustomerID, AnonymousID: e.AnonymousID,
		At: e.Time.UTC(), Status: StatusCompleted, Version: e.Time.UnixMilli(), Coupon: p.Coupon, Currency: p.Currency,
		SessionID: e.SessionID, Channel: e.Channel, Source: e.Source}
	o.Items, o.ItemCount = items(p)
	amount, _ := p.Amount()
	o.Subtotal, o.Discount, o.Shipping, o.Tax = p.Subtotal, p.Discount, p.Shipping, p.Tax
	problem := ""
	switch {
	case amount < 0 || amount > maxAmount:
		problem = ProblemBadAmount
		o.Problem = "amount " + strconv.FormatFloat(amount, 'g', -1, 64) + " is negative or absurd: counted as 0"
		amount = 0
	case len(o.Items) == 0:
		problem = ProblemOrderWithoutItems
		o.Problem = "order without items: counted, with its amount"
	}
	o.Revenue, o.NetRevenue = amount, amount
	return o, problem
}

// orderCompleted records a new order.
func (t *Tracker) orderCompleted(c *customer, e *Event, p *commerce.Props, ms int64) {
	if p.OrderID == "" {
		t.problem(ProblemNoOrderID)
		return
	}
	h := hashID(p.OrderID)
	if c.findOrder(h) >= 0 {
		return // a second Order Completed of the same order: the first stands
	}
	o, problem := NewOrder(e)
	if problem != "" {
		t.problem(problem)
	}
	amount := o.Revenue
	o.FirstOrder = c.orderCount == 0
	if len(c.orders()) == maxOrders {
		if c.extra().firstOrder == 0 {
			c.x.firstOrder = c.firstOrder()
		}
		c.x.trimmedNet += c.orders()[0].net
		c.setOrders(slices.Delete(c.orders(), 0, 1))
	}
	c.setOrders(append(c.orders(), orderRec{id: h, at: ms, net: amount, items: float32(o.ItemCount)}))
	c.orderCount = min(c.orderCount+1, math.MaxUint16-1)
	o.Number = int(c.orderCount)
	if c.currency() == "" && p.Currency != "" {
		var ch, src string
		if c.prof != nil {
			ch, src = c.prof.channel, c.prof.source
		}
		c.prof = t.profile(ch, src, p.Currency)
	}
	t.out.Orders = append(t.out.Orders, o)
	t.recover(c, e, p.OrderID, amount, ms)
}

// orderChanged applies Order Updated, Refunded or Cancelled to an order of
// the customer.
func (t *Tracker) orderChanged(c *customer, e *Event, p *commerce.Props, ms int64) {
	if p.OrderID == "" {
		t.problem(ProblemNoOrderID)
		return
	}
	i := c.findOrder(hashID(p.OrderID))
	if i < 0 {
		t.problem(ProblemUnknownOrder)
		return
	}
	r := &c.orders()[i]
	if r.cancelled() {
		return
	}
	u := OrderUpdate{Site: e.Site, OrderID: p.OrderID, CustomerID: e.CustomerID, MessageID: e.MessageID,
		At: e.Time.UTC(), Version: ms}
	amount, known := p.Amount()
	if known && (amount < 0 || amount > maxAmount) {
		t.problem(ProblemBadAmount)
		return
	}
	net := r.net
	switch e.Name {
	case "Order Updated":
		u.Status = StatusUpdated
		if known {
			net = amount - float64(r.refunded)
			u.Amount = amount
		}
	case shoptrail.EventOrderRefunded:
		u.Status = StatusRefunded
		refund := net // no amount: a full refund
		if known {
			refund = min(amount, net)
		}
		u.Amount = refund
		net -= refund
		r.refunded += float32(refund)
	case shoptrail.EventOrderCancelled:
		u.Status = StatusCancelled
		u.Amount = net
		net = 0
		r.at = -r.at
		c.orderCount--
	}
	r.net = net
	u.NetRevenue = net
	t.out.OrderUpdates = append(t.out.OrderUpdates, u)
}

// items converts an event's products into cart lines.
func items(p *commerce.Props) ([]cart.Item, float64) {
	if len(p.Products) == 0 {
		return nil, 0
	}
	its := make([]cart.Item, 0, len(p.Products))
	var n float64
	for i := range p.Products {
		pr := &p.Products[i]
		q := pr.LineQuantity()
		its = append(its, cart.Item{ProductID: pr.ProductID, SKU: pr.SKU, Name: pr.Name, Category: pr.Category,
			Price: pr.Price, Quantity: q, Currency: p.Currency})
		n += q
	}
	return its, n
}

// AddAbandonment takes over an abandonment from the cart stage: its
// customer's order within the recovery window, on any device, recovers
// it. New is set when the cart stage flagged it just now (not earlier,
// while the visitor was anonymous): then the row is rewritten with the
// customer's stage and tier, and a cart.abandoned signal goes out.
//
// At is the time of the hand-off (cart.Handoff.At).
func (t *Tracker) AddAbandonment(a *cart.Abandonment, isNew bool, window time.Duration, at time.Time) {
	if a.Site == "" || a.CustomerID == "" {
		return
	}
	c := t.lookup(a.Site, a.CustomerID, true)
	if t.isAhead(c, max(at.UnixMilli(), a.AbandonedAt.UnixMilli())) {
		return
	}
	t.fire(c, a.AbandonedAt.UnixMilli())
	t.register(c, a.LastActivityAt.UnixMilli())
	if c.lastVisit == 0 {
		c.lastVisit = secOf(a.LastActivityAt.UnixMilli())
	}
	if isNew {
		row := Abandonment{Abandonment: *a, Stage: c.stageName(), Tier: c.tierName()}
		t.out.Abandonments = append(t.out.Abandonments, row)
		t.out.Signals = append(t.out.Signals, t.cartSignal(c, &row, shoptrail.SignalCartAbandoned, a.AbandonedAt))
	}
	exp := a.AbandonedAt.Add(window).UnixMilli()
	if exp > t.wm.UnixMilli() && window > 0 {
		x := c.extra()
		x.waiting = append(x.waiting, waiting{a: a, expires: exp, stage: c.stageName(), tier: c.tierName()})
		t.schedule(c)
	}
}

// isAhead tells whether c's restored state has the fact at ms already.
func (t *Tracker) isAhead(c *customer, ms int64) bool {
	if len(t.ahead) == 0 {
		return false
	}
	if upto, ok := t.ahead[c]; ok && ms <= upto {
		t.Skipped++
		return true
	}
	return false
}

// recover marks the customer's waiting abandonments recovered by an order.
func (t *Tracker) recover(c *customer, e *Event, orderID string, amount float64, ms int64) {
	if c.x == nil || len(c.x.waiting) == 0 {
		return
	}
	for _, w := range c.x.waiting {
		if w.expires <= ms || w.a.AbandonedAt.UnixMilli() > ms {
			continue
		}
		row := Abandonment{Abandonment: *w.a, Stage: w.stage, Tier: w.tier}
		row.Recovered, row.RecoveredAt, row.RecoveredOrderID, row.RecoveredValue = true, e.Time.UTC(), orderID, amount
		t.out.Abandonments = append(t.out.Abandonments, row)
		t.out.Signals = append(t.out.Signals, t.cartSignal(c, &row, shoptrail.SignalCartRecovered, e.Time))
	}
	c.x.waiting = c.x.waiting[:0]
}

// Advance moves the watermark to wm (never back) and fires the timers due
// at or before it: dormancy thresholds, value tier recency boundaries,
// expiring abandonments.
func (t *Tracker) Advance(wm time.Time) {
	if !wm.After(t.wm) {
		return
	}
	t.wm = wm
	ms := wm.UnixMilli()
	for c, upto := range t.ahead {
		if upto <= ms {
			delete(t.ahead, c)
		}
	}
	for len(t.timers) > 0 && int64(t.timers[0].deadline)*1000 <= ms {
		c := t.timers[0]
		t.fire(c, ms) // reschedules c past ms, or drops its timer
		if c.idx == 0 && int64(c.deadline)*1000 <= ms {
			// Its next timer lies past what a deadline holds (2106), and
			// so do those of every customer left: they wait.
			break
		}
	}
}

// fire runs c's timers due at or before ms, each at its own time, in order.
func (t *Tracker) fire(c *customer, ms int64) {
	for {
		at, cause := t.nextTimer(c)
		if at == 0 || at > ms {
			break
		}
		before := c.snapshot()
		c.clock = at
		if c.x != nil {
			n := 0
			for _, w := range c.x.waiting {
				if w.expires > at {
					c.x.waiting[n] = w
					n++
				}
			}
			clear(c.x.waiting[n:])
			c.x.waiting = c.x.waiting[:n]
		}
		t.settle(c, before, time.UnixMilli(at).UTC(), "timer:"+cause, at)
	}
	// c.clock stays at its last event or timer (every timer up to ms has
	// run): the version of its row must not depend on how far the
	// watermark had moved when it was written.
	t.schedule(c)
}

// nextTimer is the time of c's next timer after c.clock, and its cause.
func (t *Tracker) nextTimer(c *customer) (int64, string) {
	best, cause := int64(0), ""
	consider := func(at int64, why string) {
		if at > c.clock && (best == 0 || at < best) {
			best, cause = at, why
		}
	}
	if c.orderCount > 0 {
		r, d, l := t.thresholds(c)
		last := c.lastOrder()
		consider(last+r, "at_risk")
		consider(last+d, "dormant")
		consider(last+l, "lost")
		rf := t.cfg.rfm(c.site())
		for _, days := range rf.Recency {
			consider(last+int64(days*float64(24*time.Hour/time.Millisecond))+1, "recency")
		}
	} else if c.flags&flagCarted != 0 {
		consider(c.lastVisit.ms()+t.cfg.PotentialDormant.Milliseconds(), "potential_dormant")
	}
	if c.x != nil {
		for _, w := range c.x.waiting {
			consider(w.expires, "recovery_window")
		}
	}
	return best, cause
}

// thresholds are c's at-risk, dormant and lost times after the last order,
// in ms.
func (t *Tracker) thresholds(c *customer) (int64, int64, int64) {
	if c.orderCount < 2 || c.on < 2 {
		return t.cfg.OneTimeAtRisk.Milliseconds(), t.cfg.OneTimeDormant.Milliseconds(), t.cfg.OneTimeLost.Milliseconds()
	}
	med := float64(c.medianInterval())
	med = math.Min(math.Max(med, float64(t.cfg.MinInterval.Milliseconds())), float64(t.cfg.MaxInterval.Milliseconds()))
	return int64(med * t.cfg.AtRisk), int64(med * t.cfg.Dormant), int64(med * t.cfg.Lost)
}

// settle recomputes c's stage and tier at time at (ms) and records what
// changed.
func (t *Tracker) settle(c *customer, before state, at time.Time, cause string, ms int64) {
	c.clock = max(c.clock, ms)
	c.st = t.stage(c, ms) | t.tier(c, ms)<<4
	after := c.snapshot()
	if after.stage != before.stage {
		t.transition(c, "stage", stageNames[before.stage], stageNames[after.stage], at, cause)
	}
	if after.tier != before.tier {
		t.transition(c, "tier", tierNames[before.tier], tierNames[after.tier], at, cause)
	}
	if c.flags&flagDirty == 0 {
		c.flags |= flagDirty
		t.changed = append(t.changed, c)
	}
	t.schedule(c)
}

func (t *Tracker) transition(c *customer, kind, from, to string, at time.Time, cause string) {
	tr := Transition{ID: TransitionID(c.site(), c.id(), kind, to, at), Site: c.site(), CustomerID: c.id(),
		Kind: kind, From: from, To: to, At: at.UTC(), Cause: cause}
	t.out.Transitions = append(t.out.Transitions, tr)
	typ := shoptrail.SignalStageChanged
	if kind == "tier" {
		typ = shoptrail.SignalTierChanged
	}
	s := shoptrail.Signal{V: shoptrail.SignalVersion, ID: signalID(typ, tr.ID), Type: typ, Site: tr.Site, At: tr.At,
		CustomerID: tr.CustomerID, Customer: t.view(c),
		Transition: &shoptrail.SignalTransition{Kind: kind, From: from, To: to, Cause: cause}}
	t.out.Signals = append(t.out.Signals, s)
}

func signalID(typ, of string) string {
	sum := sha256.Sum256([]byte(typ + "\x00" + of))
	return hex.EncodeToString(sum[:16])
}

func (t *Tracker) cartSignal(c *customer, a *Abandonment, typ string, at time.Time) shoptrail.Signal {
	return shoptrail.Signal{V: shoptrail.SignalVersion, ID: signalID(typ, a.ID), Type: typ, Site: a.Site, At: at.UTC(),
		CustomerID: a.CustomerID, AnonymousID: a.AnonymousID, Customer: t.view(c), Cart: CartSignal(&a.Abandonment)}
}

// CartSignal is the cart part of a cart.* signal for a.
func CartSignal(a *cart.Abandonment) *shoptrail.SignalCart {
	items := make([]shoptrail.SignalCartItem, len(a.Items))
	for i, it := range a.Items {
		items[i] = shoptrail.SignalCartItem{ProductID: it.ProductID, SKU: it.SKU, Name: it.Name, Category: it.Category,
			Price: it.Price, Quantity: int(math.Round(it.Quantity))}
	}
	return &shoptrail.SignalCart{CartID: a.CartID, Value: a.Value, Currency: a.Currency, ItemCount: int(math.Round(a.ItemCount)),
		Items: items, Step: a.Step, LastActivityAt: a.LastActivityAt, AbandonedAt: a.AbandonedAt, SessionID: a.SessionID,
		Channel: a.Channel, Source: a.Source, AbandonmentID: a.ID, RecoveredAt: a.RecoveredAt,
		RecoveredOrderID: a.RecoveredOrderID, RecoveredValue: a.RecoveredValue}
}

// AbandonedSignal is the cart.abandoned signal of an anonymous visitor's
// abandonment (the cart stage's; a known customer's comes from the
// customer stage, with the customer).
func AbandonedSignal(a *cart.Abandonment) shoptrail.Signal {
	typ := shoptrail.SignalCartAbandoned
	if a.Recovered {
		typ = shoptrail.SignalCartRecovered
	}
	at := a.AbandonedAt
	if a.Recovered {
		at = a.RecoveredAt
	}
	return shoptrail.Signal{V: shoptrail.SignalVersion, ID: signalID(typ, a.ID), Type: typ, Site: a.Site, At: at.UTC(),
		CustomerID: a.CustomerID, AnonymousID: a.AnonymousID, Cart: CartSignal(a)}
}

// view is what a salesperson sees of c.
func (t *Tracker) view(c *customer) *shoptrail.SignalCustomer {
	v := &shoptrail.SignalCustomer{ID: c.id(), Stage: c.stageName(), Tier: c.tierName(), OrderCount: int(c.orderCount),
		NetRevenue: c.netRevenue(), Currency: c.currency(), FirstSeenAt: msTime(c.firstSeen.ms()), LastOrderAt: msTime(c.lastOrder()),
		LastVisitAt: msTime(c.lastVisit.ms())}
	if c.prof != nil {
		v.FirstChannel, v.FirstSource = c.prof.channel, c.prof.source
	}
	if c.x != nil {
		tr := &c.x.traits
		v.Email, v.Name, v.Phone, v.Company, v.Industry = tr.Email, tr.Name, tr.Phone, tr.Company, tr.Industry
		v.Type, v.Role, v.Level = tr.CustomerType, tr.Role, tr.Level
	}
	return v
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// stage derives c's lifecycle stage at ms.
func (t *Tracker) stage(c *customer, ms int64) uint8 {
	if c.orderCount <= 0 {
		switch {
		case c.flags&flagCarted == 0:
			return stRegistered
		case ms >= c.lastVisit.ms()+t.cfg.PotentialDormant.Milliseconds():
			return stPotentialDormant
		}
		return stPotential
	}
	r, d, l := t.thresholds(c)
	since := ms - c.lastOrder()
	switch {
	case since >= l:
		return stLost
	case since >= d:
		return stDormant
	case since >= r:
		return stAtRisk
	}
	switch c.orderCount {
	case 1:
		return stFirst
	case 2:
		return stSecond
	case 3:
		return stThird
	}
	return stLoyal
}

// tier derives c's value tier at ms (0: none).
func (t *Tracker) tier(c *customer, ms int64) uint8 {
	if c.orderCount <= 0 {
		return 0
	}
	rf := t.cfg.rfm(c.site())
	days := float64(ms-c.lastOrder()) / float64(24*time.Hour/time.Millisecond)
	score := 1
	for i, d := range rf.Recency {
		if days <= d {
			score = 5 - i
			break
		}
	}
	f, m := 1, 1
	for i, n := range rf.Frequency {
		if float64(c.orderCount) >= n {
			f = 5 - i
			break
		}
	}
	for i, n := range rf.Monetary {
		if c.netRevenue() >= n {
			m = 5 - i
			break
		}
	}
	sum := score + f + m
	for i, n := range rf.Tiers {
		if sum >= n {
			return uint8(1 + i)
		}
	}
	return 5
}

func (t *Tracker) schedule(c *customer) {
	if c.flags&flagState == 0 {
		c.flags |= flagState
		t.stateDirty = append(t.stateDirty, c)
	}
	at, _ := t.nextTimer(c)
	c.deadline = deadlineSec(at)
	switch {
	case at == 0 && c.idx >= 0:
		heap.Remove(&t.timers, int(c.idx))
	case at != 0 && c.idx >= 0:
		heap.Fix(&t.timers, int(c.idx))
	case at != 0:
		heap.Push(&t.timers, c)
	}
}

// Drain moves what the tracker concluded into o (appending) and empties
// its own output.
func (t *Tracker) Drain(o *Output) {
	for _, c := range t.changed {
		if c.flags&flagDirty != 0 {
			o.Customers = append(o.Customers, t.row(c))
			c.flags &^= flagDirty
		}
	}
	clear(t.changed)
	t.changed = t.changed[:0]
	o.Orders = append(o.Orders, t.out.Orders...)
	o.OrderUpdates = append(o.OrderUpdates, t.out.OrderUpdates...)
	o.Transitions = append(o.Transitions, t.out.Transitions...)
	o.Abandonments = append(o.Abandonments, t.out.Abandonments...)
	o.Signals = append(o.Signals, t.out.Signals...)
	if o.Problems == nil {
		o.Problems = map[string]int{}
	}
	for k, n := range t.out.Problems {
		o.Problems[k] += n
	}
	t.out.Reset()
}

// hashID hashes an order id (FNV-1a, 64 bits): orders are kept as hashes.
func hashID(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Traits are the identify traits the customer stage keeps (names as
// sent: email, name, phone, company, industry, customer_type, role, level;
// company may also be an object with a name).
type Traits struct {
	Email, Name, Phone, Company, Industry string
	CustomerType, Role, Level             string
}

func (tr *Traits) merge(o *Traits) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&tr.Email, o.Email)
	set(&tr.Name, o.Name)
	set(&tr.Phone, o.Phone)
	set(&tr.Company, o.Company)
	set(&tr.Industry, o.Industry)
	set(&tr.CustomerType, normalize(o.CustomerType, "enterprise", "individual"))
	set(&tr.Role, normalize(o.Role, "engineer", "purchaser"))
	set(&tr.Level, o.Level)
}

// normalize lower-cases v; a value other than the known ones is "other"
// (customer type: kept as "" unless known).
func normalize(v string, known ...string) string {
	if v == "" {
		return ""
	}
	l := strings.ToLower(strings.TrimSpace(v))
	for _, k := range known {
		if l == k {
			return k
		}
	}
	if known[0] == "enterprise" {
		return ""
	}
	return "other"
}

// ParseTraits reads the traits the customer stage keeps from identify
// traits (JSON); company may be a string or an object with a name. It
// returns nil when there are none or the JSON is not an object.
func ParseTraits(raw []byte) *Traits {
	var in struct {
		Email        string          `json:"email"`
		Name         string          `json:"name"`
		Phone        string          `json:"phone"`
		Company      json.RawMessage `json:"company"`
		Industry     string          `json:"industry"`
		CustomerType string          `json:"customer_type"`
		Role         string          `json:"role"`
		Level        string          `json:"level"`
	}
	if json.Unmarshal(raw, &in) != nil {
		// A field of another type than expected: take what reads.
		var loose map[string]any
		if json.Unmarshal(raw, &loose) != nil {
			return nil
		}
		str := func(k string) string { v, _ := loose[k].(string); return v }
		in.Email, in.Name, in.Phone, in.Industry = str("email"), str("name"), str("phone"), str("industry")
		in.CustomerType, in.Role, in.Level = str("customer_type"), str("role"), str("level")
		if c, ok := loose["company"]; ok {
			in.Company, _ = json.Marshal(c)
		}
	}
	tr := Traits{Email: in.Email, Name: in.Name, Phone: in.Phone, Industry: in.Industry,
		CustomerType: in.CustomerType, Role: in.Role, Level: in.Level}
	var company struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(in.Company, &tr.Company) != nil && json.Unmarshal(in.Company, &company) == nil {
		tr.Company = company.Name
	}
	if tr == (Traits{}) {
		return nil
	}
	return &tr
}
