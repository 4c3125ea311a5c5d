package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/commerce"
	"github.com/shoptrail/shoptrail/processor/customer"
	"github.com/shoptrail/shoptrail/processor/repart"
	"github.com/shoptrail/shoptrail/processor/session"
)

// The cart stage of a partition. It reads the sessionizer's output, not the
// Kafka order: a cart event is kept aside when it arrives (captured) and
// fed to the cart tracker when the sessionizer assigns it to its session,
// which happens in each visitor's event-time order; the tracker's
// watermark is the sessionizer's. Its state goes into the partition's
// changelog checkpoint, before the sessionizer's records (see
// cartStage.checkpoint), and its rows and signals are written before the
// checkpoint like every other row.

// AbandonmentRow is a row of cart_abandonments: the abandonment and, when
// known, the customer's stage and tier at the moment it was flagged.
type AbandonmentRow struct {
	cart.Abandonment
	Stage, Tier string
}

// cartStateKey is the prefix of the cart stage's changelog records: a NUL
// first, which no visitor key of the sessionizer has.
const cartStateKey = "\x00c"

// cartPendingKey prefixes the records of captured events not yet assigned.
const cartPendingKey = "\x00p\x00"

// cartEvents are the events the cart stage reads.
var cartEvents = map[string]bool{
	shoptrail.EventProductAdded: true, shoptrail.EventProductRemoved: true, shoptrail.EventCartViewed: true,
	shoptrail.EventCheckoutStarted: true, shoptrail.EventCheckoutStepCompleted: true,
	shoptrail.EventPaymentInfoEntered: true, shoptrail.EventOrderCompleted: true,
}

// orderChanges are the order events after Order Completed, kept as
// order_updates rows.
var orderChanges = map[string]string{
	"Order Updated": "updated", shoptrail.EventOrderRefunded: "refunded", shoptrail.EventOrderCancelled: "cancelled",
}

// OrderUpdateRow is a row of order_updates.
type OrderUpdateRow struct {
	Site, OrderID, MessageID string
	CustomerID, AnonymousID  string
	At                       time.Time
	Status                   string
	Amount                   float64 // -1: none sent
}

// customerEvents are the track events of known customers the customer
// stage reads (besides identify calls and sessions).
var customerEvents = map[string]bool{
	shoptrail.EventProductAdded: true, shoptrail.EventCartViewed: true, shoptrail.EventCheckoutStarted: true,
	shoptrail.EventOrderCompleted: true, "Order Updated": true, shoptrail.EventOrderRefunded: true, shoptrail.EventOrderCancelled: true,
	shoptrail.EventProductAddedToWishlist: true, shoptrail.EventInquiry: true, shoptrail.EventSignedUp: true, shoptrail.EventLoggedIn: true,
}

// trackKinds tells, per event name, which of cartEvents, orderChanges and
// customerEvents hold it: capture looks at every track event, and one
// lookup costs a third of three.
var trackKinds = func() map[string]uint8 {
	m := map[string]uint8{}
	for name := range cartEvents {
		m[name] |= kindCart
	}
	for name := range orderChanges {
		m[name] |= kindOrderChange
	}
	for name := range customerEvents {
		m[name] |= kindCustomer
	}
	return m
}()

// Bits of trackKinds.
const (
	kindCart uint8 = 1 << iota
	kindOrderChange
	kindCustomer
)

// captured is a cart, order or customer event waiting for its assignment;
// n counts the copies of its message id waiting (each yields one
// assignment).
type captured struct {
	Site        string          `json:"site"`
	AnonymousID string          `json:"anonymousId"`
	UserID      string          `json:"userId,omitempty"`
	MessageID   string          `json:"messageId"`
	Type        string          `json:"type,omitempty"` // "" for track (older records)
	Name        string          `json:"name"`
	Time        time.Time       `json:"time"`
	Props       commerce.Props  `json:"props"`
	Traits      json.RawMessage `json:"traits,omitempty"`
	// Offset is the event's offset in the partition: facts of equal times
	// go to the customer stage in the order they arrived.
	Offset int64 `json:"offset,omitempty"`
	N      int   `json:"n"`
	// key is the event's key in the stage's pending map (site NUL
	// message id), kept so that it is made once.
	key string
}

// forCustomer tells whether the customer stage reads the event.
func (x *captured) forCustomer() bool {
	return x.UserID != "" && (x.Type == shoptrail.TypeIdentify || customerEvents[x.Name])
}

type cartStage struct {
	t       *cart.Tracker
	pending map[string]*captured // by site NUL message id
	dirty   map[string]bool      // pending keys changed since the checkpoint
	saved   map[string]bool      // pending keys with a record in the changelog
	out     cart.Output
	m       *cartMetrics
	// signals wait for the next checkpoint (writeCheckpoint).
	signals []shoptrail.Signal
	// closed are the sessions closed in the drain under way, by visitor
	// (site NUL anonymous id), and timeout the session timeout.
	closed  map[string][]closedSession
	timeout time.Duration
	recs    []cart.Record
	// facts are what the customer stage gets from this partition (source)
	// since they were last written; floor is the time after the watermark
	// this partition last sent it, the earliest a fact may have.
	facts  []repart.Fact
	source int
	floor  time.Time
}

func newCartStage(cfg cart.Config, timeout time.Duration, m *cartMetrics, source int) (*cartStage, error) {
	t, err := cart.New(cfg)
	if err != nil {
		return nil, err
	}
	if timeout == 0 {
		timeout = session.DefaultTimeout
	}
	return &cartStage{t: t, pending: map[string]*captured{}, dirty: map[string]bool{}, saved: map[string]bool{}, m: m,
		closed: map[string][]closedSession{}, timeout: timeout, source: source}, nil
}

// capture keeps a decoded cart event until the sessionizer assigns it.
func (c *cartStage) capture(e *shoptrail.Event, p *commerce.Props, offset int64) {
	if e.AnonymousID == "" || e.MessageID == "" {
		return
	}
	switch e.Type {
	case shoptrail.TypeTrack:
		if k := trackKinds[e.Event]; k&(kindCart|kindOrderChange) == 0 && (e.UserID == "" || k&kindCustomer == 0) {
			return
		}
	case shoptrail.TypeIdentify:
		if e.UserID == "" {
			return
		}
	default:
		return
	}
	key := e.Site + "\x00" + e.MessageID
	if x := c.pending[key]; x != nil {
		x.N++
		c.dirty[key] = true
		return
	}
	x := &captured{Site: e.Site, AnonymousID: e.AnonymousID, UserID: e.UserID, MessageID: e.MessageID, Name: e.Event,
		Time: e.Timestamp, Props: *p, Offset: offset, N: 1, key: key}
	if e.Type != shoptrail.TypeTrack {
		x.Type, x.Traits = e.Type, append(json.RawMessage(nil), e.Traits...)
	}
	x.Props.Products = append([]commerce.Product(nil), p.Products...)
	c.pending[key] = x
	c.dirty[key] = true
}

// assigned feeds the captured event of a, if any, to the tracker when a
// assigns it to a session, and puts its orders and order updates rows
// (also of late events) into held.
func (c *cartStage) assigned(a *session.Assignment, held *Batch) {
	if len(c.pending) == 0 {
		return
	}
	var kb [160]byte
	x := c.pending[string(append(append(append(kb[:0], a.Site...), 0), a.MessageID...))]
	if x == nil {
		return
	}
	key := x.key
	if a.Status == session.Assigned && (cartEvents[x.Name] || x.UserID != "") {
		// Other events of a known customer tell the cart tracker the
		// visitor's customer id (its waiting carts are handed off).
		c.feedClosed(x.Site, x.AnonymousID, x.Time, false)
		c.t.Add(&cart.Event{Site: x.Site, AnonymousID: x.AnonymousID, CustomerID: x.UserID, MessageID: x.MessageID,
			Name: x.Name, Time: x.Time, Props: &x.Props, SessionID: a.SessionID})
	}
	if a.Status == session.Assigned && x.forCustomer() {
		c.eventFact(x, a.SessionID)
	}
	if a.Status == session.Late && x.UserID != "" && (x.Name == shoptrail.EventOrderCompleted || orderChanges[x.Name] != "") {
		c.lateFact(x, time.UnixMilli(a.Watermark).UTC())
	}
	if a.Status == session.Assigned || a.Status == session.Late {
		c.orderRows(x, a, held)
	}
	c.dirty[key] = true
	if x.N--; x.N <= 0 {
		delete(c.pending, key)
	}
}

// orderRows adds the orders or order_updates row of an order event.
func (c *cartStage) orderRows(x *captured, a *session.Assignment, held *Batch) {
	if x.Props.OrderID == "" {
		return // the collector requires one; a producer that sent none gets no row
	}
	if x.Name == shoptrail.EventOrderCompleted {
		o, problem := customer.NewOrder(&customer.Event{Site: x.Site, CustomerID: x.UserID, AnonymousID: x.AnonymousID,
			MessageID: x.MessageID, Name: x.Name, Time: x.Time, Props: &x.Props, SessionID: a.SessionID})
		if problem != "" {
			c.m.problems.WithLabelValues(problem).Inc()
		}
		held.Orders = append(held.Orders, OrderRow{Order: o, MessageID: x.MessageID})
		c.m.orders.Inc()
		return
	}
	status := orderChanges[x.Name]
	if status == "" {
		return
	}
	amount, ok := x.Props.Amount()
	if !ok {
		amount = -1
	} else if amount < 0 || amount > 1e9 {
		c.m.problems.WithLabelValues(customer.ProblemBadAmount).Inc()
		amount = -1
	}
	held.OrderUpdates = append(held.OrderUpdates, OrderUpdateRow{Site: x.Site, OrderID: x.Props.OrderID, MessageID: x.MessageID,
		CustomerID: x.UserID, AnonymousID: x.AnonymousID, At: x.Time, Status: status, Amount: amount})
}

// OrderRow is a row of orders.
type OrderRow struct {
	customer.Order
	MessageID string
}

// sessions takes the sessions closed in this drain: each is fed to the
// tracker right before the first event of its visitor that comes after its
// close (see cart.Tracker.Session), the others by flushSessions.
func (c *cartStage) sessions(ss []session.Session) {
	for i := range ss {
		s := &ss[i]
		if s.AnonymousID == "" || !s.Final {
			continue
		}
		k := s.Site + "\x00" + s.AnonymousID
		c.closed[k] = append(c.closed[k], closedSession{s: s, at: s.End.Add(c.timeout)})
		if s.UserID != "" {
			c.sessionFact(s, s.End.Add(c.timeout))
		}
	}
}

type closedSession struct {
	s  *session.Session
	at time.Time
}

// feedClosed feeds the visitor's sessions closed at or before t.
func (c *cartStage) feedClosed(site, anon string, t time.Time, all bool) {
	if len(c.closed) == 0 {
		return
	}
	k := site + "\x00" + anon
	list := c.closed[k]
	n := 0
	for _, cs := range list {
		if all || !cs.at.After(t) {
			c.t.Session(cs.s.Site, cs.s.AnonymousID, cs.s.SessionID, cs.s.Channel, cs.s.Source, cs.at)
			continue
		}
		list[n] = cs
		n++
	}
	if n == 0 {
		delete(c.closed, k)
	} else {
		c.closed[k] = list[:n]
	}
}

// flushSessions feeds the sessions not fed yet, in close order per visitor.
func (c *cartStage) flushSessions() {
	for k, list := range c.closed {
		for _, cs := range list {
			c.t.Session(cs.s.Site, cs.s.AnonymousID, cs.s.SessionID, cs.s.Channel, cs.s.Source, cs.at)
		}
		delete(c.closed, k)
	}
}

// advance moves the tracker to the sessionizer's watermark and puts what
// it concluded into b.
func (c *cartStage) advance(wm time.Time, b *Batch) {
	c.flushSessions()
	c.t.Advance(wm)
	c.t.Drain(&c.out)
	o := &c.out
	// A hand-off of a cart flagged now, of a visitor known as a customer
	// then, is new: the customer stage writes its row and signal, with the
	// customer's stage and tier. Other hand-offs are of carts flagged
	// earlier, whose rows are written.
	var known, handed map[string]bool // flagged now of a known visitor; and handed off
	for i := range o.Abandonments {
		if a := &o.Abandonments[i]; a.CustomerID != "" {
			if known == nil {
				known, handed = map[string]bool{}, map[string]bool{}
			}
			known[a.ID] = true
		}
	}
	for _, h := range o.Handoffs {
		isNew := known[h.Abandonment.ID]
		if isNew {
			handed[h.Abandonment.ID] = true
		}
		c.handoffFact(h, isNew)
	}
	for i := range o.Abandonments {
		c.m.abandoned.Inc()
		if !handed[o.Abandonments[i].ID] {
			c.addAbandonment(b, &o.Abandonments[i])
		}
	}
	for i := range o.Recoveries {
		c.addAbandonment(b, &o.Recoveries[i])
		c.m.recovered.Inc()
	}
	for kind, n := range o.Problems {
		if n > 0 {
			c.m.problems.WithLabelValues(kind).Add(float64(n))
		}
	}
	c.m.ended.WithLabelValues("emptied").Add(float64(o.Emptied))
	c.m.ended.WithLabelValues("converted").Add(float64(o.Converted))
	c.m.replayed.Add(float64(o.Replayed))
	o.Reset()
}

func (c *cartStage) addAbandonment(b *Batch, a *cart.Abandonment) {
	r := AbandonmentRow{Abandonment: *a}
	if a.CustomerID == "" {
		r.Stage = shoptrail.StageStranger
	}
	b.Abandonments = append(b.Abandonments, r)
	c.signals = append(c.signals, customer.AbandonedSignal(a))
}

// eventFact adds the fact of an assigned event of a known customer.
func (c *cartStage) eventFact(x *captured, sessionID string) *customer.Event {
	e := &customer.Event{Site: x.Site, CustomerID: x.UserID, AnonymousID: x.AnonymousID, MessageID: x.MessageID,
		Type: x.Type, Name: x.Name, Time: x.Time, SessionID: sessionID}
	if e.Type == "" {
		e.Type = shoptrail.TypeTrack
	}
	if e.Type == shoptrail.TypeTrack {
		p := x.Props
		e.Props = &p
	}
	if len(x.Traits) > 0 {
		e.Traits = customer.ParseTraits(x.Traits)
	}
	c.facts = append(c.facts, repart.Fact{Source: c.source, Offset: x.Offset, Event: e})
	return e
}

// lateFact adds the fact of a late order event of a known customer: it
// counts for the customer when it arrived, at the watermark wm it arrived
// behind (a function of the partition's events before it, so a replay
// gives the same), and never before the watermark last sent to the
// customer stage.
func (c *cartStage) lateFact(x *captured, wm time.Time) {
	c.eventFact(x, "").Arrived = maxTime(wm, c.floor)
}

func maxTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// sessionFact adds the fact of a closed session of a known customer, at
// its close: its start is the customer's visit, its channel and source how
// the customer came. (A session closes once this partition's watermark
// passes its end plus the timeout, so after the watermark last sent to
// the customer stage; floor guards the rare session closed earlier,
// evicted under memory pressure.)
func (c *cartStage) sessionFact(s *session.Session, at time.Time) {
	at = maxTime(at, c.floor)
	c.facts = append(c.facts, repart.Fact{Source: c.source, Event: &customer.Event{Site: s.Site, CustomerID: s.UserID,
		AnonymousID: s.AnonymousID, MessageID: "session:" + s.SessionID, Type: customer.TypeSession, Time: at,
		SessionID: s.SessionID, Channel: s.Channel, Source: s.Source, SessionStart: s.Start}})
}

// links adds a link fact (customer.TypeLink) for each link that carries
// the visitor's first touch: the customer stage learns how the customer
// first came, anonymous visits before the link included. The fact is at
// the link's event time, before the events of that time (offset -1), so
// that the customer's row and signals of that moment have the touch
// already; a link carried by a late event counts when it arrived, as a
// late order does (lateFact).
func (c *cartStage) links(ls []session.IdentityLink) {
	for i := range ls {
		l := &ls[i]
		if l.FirstTouchAt.IsZero() {
			continue
		}
		e := &customer.Event{Site: l.Site, CustomerID: l.UserID, AnonymousID: l.AnonymousID,
			MessageID: "link:" + l.AnonymousID + ":" + strconv.FormatInt(l.FirstSeen.UnixMilli(), 10), Type: customer.TypeLink,
			Time: l.FirstSeen, Channel: l.FirstChannel, Source: l.FirstSource, SessionStart: l.FirstTouchAt}
		if !l.Arrived.IsZero() {
			e.Arrived = maxTime(l.Arrived, c.floor)
		}
		c.facts = append(c.facts, repart.Fact{Source: c.source, Offset: -1, Event: e})
	}
}

// handoffFact adds the fact of a hand-off to the customer stage.
func (c *cartStage) handoffFact(h cart.Handoff, isNew bool) {
	a := *h.Abandonment
	a.CustomerID = h.CustomerID
	c.facts = append(c.facts, repart.Fact{Source: c.source, Abandonment: &a, New: isNew, At: h.At})
}

// checkpoint appends the stage's changelog records: captured events
// changed since the last checkpoint (or their tombstones), the tracker's
// records, its meta record. They go before the sessionizer's records, so
// that a checkpoint cut short never leaves the sessionizer ahead of the
// carts: a visitor whose session state was saved skips the replayed events,
// and its cart state, saved before, has them; a cart ahead of the
// sessionizer skips the events it has applied (see cart.Tracker.Add).
func (c *cartStage) checkpoint(dst []session.StateRecord) []session.StateRecord {
	for key := range c.dirty {
		r := session.StateRecord{Key: cartPendingKey + key}
		if x := c.pending[key]; x != nil {
			r.Value, _ = json.Marshal(x) // plain data: cannot fail
			c.saved[key] = true
		} else if c.saved[key] {
			delete(c.saved, key) // a tombstone
		} else {
			continue // captured and assigned since the last checkpoint
		}
		dst = append(dst, r)
	}
	clear(c.dirty)
	c.recs = c.t.Checkpoint(c.recs[:0])
	for _, r := range c.recs {
		dst = append(dst, session.StateRecord{Key: cartStateKey + r.Key, Value: r.Value})
	}
	clear(c.recs)
	return dst
}

// restore takes the stage's records out of a partition's changelog records
// and returns the others (the sessionizer's).
func (c *cartStage) restore(recs []session.StateRecord) ([]session.StateRecord, error) {
	rest := recs[:0:0]
	var mine []cart.Record
	for _, r := range recs {
		switch {
		case strings.HasPrefix(r.Key, cartPendingKey):
			if r.Value == nil {
				continue
			}
			var x captured
			if err := json.Unmarshal(r.Value, &x); err != nil {
				return nil, fmt.Errorf("cart stage: captured event %q: %w", r.Key, err)
			}
			key := strings.TrimPrefix(r.Key, cartPendingKey)
			x.key = key
			c.pending[key] = &x
			c.saved[key] = true
		case strings.HasPrefix(r.Key, cartStateKey):
			mine = append(mine, cart.Record{Key: strings.TrimPrefix(r.Key, cartStateKey), Value: r.Value})
		default:
			rest = append(rest, r)
		}
	}
	if err := c.t.Restore(mine); err != nil {
		return nil, fmt.Errorf("cart stage: %w", err)
	}
	return rest, nil
}

// cartMetrics are the cart stage's metrics.
type cartMetrics struct {
	abandoned, recovered prometheus.Counter
	problems             *prometheus.CounterVec
	ended                *prometheus.CounterVec
	replayed             prometheus.Counter
	openCarts            *prometheus.GaugeVec
	signals              prometheus.Counter
	orders               prometheus.Counter
}

func newCartMetrics(reg prometheus.Registerer) *cartMetrics {
	m := &cartMetrics{
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_carts_abandoned_total",
			Help: "Carts flagged abandoned (replays after a restore count again).",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_carts_recovered_total",
			Help: "Abandoned carts recovered by a later order.",
		}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_processor_cart_bad_input_total",
			Help: "Cart events with bad input, by kind (see README: carts); the event is otherwise kept.",
		}, []string{"kind"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoptrail_processor_carts_ended_total",
			Help: "Carts that ended without abandonment: emptied or converted by an order.",
		}, []string{"how"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_cart_events_replayed_total",
			Help: "Cart events skipped after a restore because the saved cart state had them.",
		}),
		openCarts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoptrail_processor_open_carts",
			Help: "Carts with items, per partition.",
		}, []string{"partition"}),
		orders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_orders_total",
			Help: "Order Completed events written to orders (replays count again).",
		}),
		signals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoptrail_processor_signals_total",
			Help: "Signals written to the signals topic (replays after a restore count again; consumers collapse them by id).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.abandoned, m.recovered, m.problems, m.ended, m.replayed, m.openCarts, m.signals, m.orders)
	}
	return m
}

// signalWriteTimeout bounds one attempt to write a checkpoint's signals.
const signalWriteTimeout = 20 * time.Second

// signalWriter writes signals to the signals topic, keyed by
// Signal.Key(), every write acknowledged by all in-sync replicas.
type signalWriter struct {
	topic     string
	client    *kafka.Client
	transport *kafka.Transport
	w         *kafka.Writer
}

func newSignalWriter(brokers []string, topic string) *signalWriter {
	addr := kafka.TCP(brokers...)
	tr := &kafka.Transport{}
	return &signalWriter{
		topic:     topic,
		transport: tr,
		client:    &kafka.Client{Addr: addr, Timeout: 10 * time.Second, Transport: tr},
		w: &kafka.Writer{Addr: addr, Transport: tr, Topic: topic, Balancer: &kafka.Hash{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond, MaxAttempts: 5},
	}
}

// ensure creates the signals topic with the events topic's partition
// count unless it exists.
func (s *signalWriter) ensure(ctx context.Context, eventsTopic string) error {
	_, err := ensureTopic(ctx, s.client, eventsTopic, s.topic, false, nil)
	return err
}

func (s *signalWriter) write(ctx context.Context, sigs []shoptrail.Signal) error {
	msgs := make([]kafka.Message, len(sigs))
	for i := range sigs {
		v, err := shoptrail.AppendSignalJSON(nil, &sigs[i])
		if err != nil {
			return fmt.Errorf("cannot encode signal %s: %w", sigs[i].ID, err)
		}
		msgs[i] = kafka.Message{Key: []byte(sigs[i].Key()), Value: v}
	}
	if err := s.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot write %d signals to %s: %w", len(msgs), s.topic, err)
	}
	return nil
}

func (s *signalWriter) Close() error {
	err := s.w.Close()
	s.transport.CloseIdleConnections()
	return err
}
