package customer

import (
	"math"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/cart"
)

// Stages, by index (stageNames).
const (
	stStranger uint8 = iota
	stRegistered
	stPotential
	stPotentialDormant
	stFirst
	stSecond
	stThird
	stLoyal
	stAtRisk
	stDormant
	stLost
)

var stageNames = [...]string{
	shoptrail.StageStranger, shoptrail.StageRegistered, shoptrail.StagePotential, shoptrail.StagePotentialDormant,
	shoptrail.StageFirstBuyer, shoptrail.StageSecondBuyer, shoptrail.StageThirdBuyer, shoptrail.StageLoyal,
	shoptrail.StageAtRisk, shoptrail.StageDormant, shoptrail.StageLost,
}

var tierNames = [...]string{"", "A", "B", "C", "D", "E"}

// Customer flags.
const (
	flagCarted = 1 << iota // carted, favorited or inquired
	flagDirty              // changed since its last row
	flagState              // changed since the last Checkpoint (in Tracker.stateDirty)
)

// maxOrders bounds the orders a customer keeps (for refunds and the median
// interval): the most recent ones.
const maxOrders = 32

// orderRec is what a customer keeps of an order (32 bytes).
type orderRec struct {
	id       uint64 // hashID(order id)
	at       int64  // unix ms; negative (-at) once cancelled
	net      float64
	refunded float32
	items    float32
}

func (o *orderRec) time() int64 {
	if o.at < 0 {
		return -o.at
	}
	return o.at
}

func (o *orderRec) cancelled() bool { return o.at < 0 }

// customer is one customer's state, 80 bytes (a size class; see
// BenchmarkCustomerMemory): its clock as unix ms, the times its rows give
// to the second (first seen, registration, first touch, last visit) as
// unix seconds, what many customers share
// (first channel and source, currency) behind one shared pointer, the
// rarely set fields behind another, the order history as a pointer and
// two bytes of length and capacity rather than a 24-byte slice header
// (orders, setOrders), the timer's deadline in seconds.
type customer struct {
	key        string    // site NUL customer id
	ordp       *orderRec // the kept orders: see orders
	prof       *profile  // shared
	x          *extra    // nil until traits, an abandonment or a trimmed order history
	clock      int64     // event time of its last event or timer (its row's version)
	firstSeen  sec       // the earliest known: its registration, or a touch before it
	registered sec       // its first event: the first fact with the customer id
	touchAt    sec       // the first touch known (prof's channel and source); 0 none
	lastVisit  sec
	deadline   uint32 // unix seconds, rounded up, of the next timer (the heap's key)
	idx        int32
	orderCount uint16
	st         uint8 // stage | tier<<4
	flags      uint8
	on, oc     uint8 // orders kept, and their capacity
}

// orders returns the kept orders, oldest first (at most maxOrders).
func (c *customer) orders() []orderRec {
	if c.ordp == nil {
		return nil
	}
	return unsafe.Slice(c.ordp, int(c.oc))[:c.on]
}

// setOrders keeps s as the customer's orders (len(s) <= maxOrders).
func (c *customer) setOrders(s []orderRec) {
	if cap(s) == 0 {
		c.ordp, c.on, c.oc = nil, 0, 0
		return
	}
	c.ordp, c.on, c.oc = unsafe.SliceData(s), uint8(len(s)), uint8(min(cap(s), math.MaxUint8))
}

// profile is what many customers share: how they first came, and the
// currency of their first order.
type profile struct{ channel, source, currency string }

type extra struct {
	traits               Traits
	favorites, inquiries uint32
	// firstOrder, once the order history was trimmed (else its first
	// order's time), and the net revenue of the orders trimmed.
	firstOrder int64
	trimmedNet float64
	waiting    []waiting
}

// waiting is an abandonment waiting for the customer's order.
type waiting struct {
	a           *cart.Abandonment
	expires     int64
	stage, tier string
}

func (c *customer) firstOrder() int64 {
	if c.x != nil && c.x.firstOrder != 0 {
		return c.x.firstOrder
	}
	if c.on > 0 {
		return c.orders()[0].time()
	}
	return 0
}

// lastOrder is the time of the customer's last order not cancelled among
// those kept (unix ms), 0 if none.
func (c *customer) lastOrder() int64 {
	var last int64
	for _, o := range c.orders() {
		if !o.cancelled() {
			last = max(last, o.time())
		}
	}
	return last
}

// netRevenue is the net revenue of the customer's orders: those kept (a
// cancelled one's is 0) and those trimmed from the history.
func (c *customer) netRevenue() float64 {
	var sum float64
	if c.x != nil {
		sum = c.x.trimmedNet
	}
	for _, o := range c.orders() {
		sum += o.net
	}
	return sum
}

func (c *customer) currency() string {
	if c.prof == nil {
		return ""
	}
	return c.prof.currency
}

func (c *customer) extra() *extra {
	if c.x == nil {
		c.x = &extra{}
	}
	return c.x
}

func (c *customer) site() string { return c.key[:strings.IndexByte(c.key, 0)] }
func (c *customer) id() string   { return c.key[strings.IndexByte(c.key, 0)+1:] }

func (c *customer) stage() uint8      { return c.st & 15 }
func (c *customer) tier() uint8       { return c.st >> 4 }
func (c *customer) stageName() string { return stageNames[c.stage()] }
func (c *customer) tierName() string  { return tierNames[c.tier()] }

// state is what a transition compares.
type state struct{ stage, tier uint8 }

func (c *customer) snapshot() state { return state{c.stage(), c.tier()} }

func (c *customer) findOrder(h uint64) int {
	for i, o := range c.orders() {
		if o.id == h {
			return i
		}
	}
	return -1
}

// medianInterval is the median of the intervals between the customer's
// kept, not cancelled orders, in ms.
func (c *customer) medianInterval() int64 {
	var times [maxOrders]int64
	ts := times[:0]
	for _, o := range c.orders() {
		if !o.cancelled() {
			ts = append(ts, o.time())
		}
	}
	if len(ts) < 2 {
		return 0
	}
	slices.Sort(ts)
	var ivs [maxOrders]int64
	iv := ivs[:0]
	for i := 1; i < len(ts); i++ {
		iv = append(iv, ts[i]-ts[i-1])
	}
	slices.Sort(iv)
	if n := len(iv); n%2 == 1 {
		return iv[n/2]
	} else {
		return (iv[n/2-1] + iv[n/2]) / 2
	}
}

// Row is a row of the customers table: the customer as of Version.
type Row struct {
	Site, CustomerID             string
	FirstSeen, RegisteredAt      time.Time
	FirstChannel, FirstSource    string
	CustomerType, Role, Industry string
	Company, Level               string
	FirstOrderAt, LastOrderAt    time.Time
	OrderCount                   int
	NetRevenue                   float64
	Currency                     string
	AvgOrderValue                float64
	AvgItems                     float64
	MedianDaysBetweenOrders      float64
	Favorites, Inquiries         int
	LastVisitAt                  time.Time
	Stage, Tier                  string
	// Version is the event time (unix ms) the row is current at.
	Version int64
}

func (t *Tracker) row(c *customer) Row {
	r := Row{Site: c.site(), CustomerID: c.id(), FirstSeen: msTime(c.firstSeen.ms()), RegisteredAt: msTime(c.registered.ms()),
		FirstOrderAt: msTime(c.firstOrder()), LastOrderAt: msTime(c.lastOrder()), OrderCount: int(c.orderCount),
		NetRevenue: c.netRevenue(), Currency: c.currency(),
		LastVisitAt: msTime(c.lastVisit.ms()), Stage: c.stageName(), Tier: c.tierName(), Version: c.clock,
		MedianDaysBetweenOrders: float64(c.medianInterval()) / float64(24*time.Hour/time.Millisecond)}
	if c.orderCount > 0 {
		r.AvgOrderValue = r.NetRevenue / float64(c.orderCount)
		var items float64
		n := 0
		for _, o := range c.orders() {
			if !o.cancelled() {
				items += float64(o.items)
				n++
			}
		}
		if n > 0 {
			r.AvgItems = items / float64(n)
		}
	}
	if c.prof != nil {
		r.FirstChannel, r.FirstSource = c.prof.channel, c.prof.source
	}
	if c.x != nil {
		tr := &c.x.traits
		r.Favorites, r.Inquiries = int(c.x.favorites), int(c.x.inquiries)
		r.CustomerType, r.Role, r.Industry, r.Company, r.Level = tr.CustomerType, tr.Role, tr.Industry, tr.Company, tr.Level
	}
	return r
}

type timerHeap []*customer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = int32(i), int32(j)
}
func (h *timerHeap) Push(x any) {
	c := x.(*customer)
	c.idx = int32(len(*h))
	*h = append(*h, c)
}
func (h *timerHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.idx = -1
	return c
}

// sec is a time in unix seconds, rounded down; 0 is none. The customer's
// times that its row and signals give to the second (ClickHouse DateTime)
// take 4 bytes rather than 8: the struct stays in the 80-byte size class.
type sec uint32

// secOf is ms as a sec, within 1970 .. February 2106.
func secOf(ms int64) sec { return sec(min(max(ms/1000, 0), math.MaxUint32)) }

// ms is s in unix ms.
func (s sec) ms() int64 { return int64(s) * 1000 }

// deadlineSec is a timer's time in unix seconds, rounded up (a timer at ms
// is due once the watermark reaches deadlineSec(ms)*1000), at most
// math.MaxUint32 (February 2106).
func deadlineSec(ms int64) uint32 {
	return uint32(min(max((ms+999)/1000, 0), math.MaxUint32))
}
