package customer

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail/processor/cart"
)

// Record is one changelog record of a Tracker's state: a customer's state
// (Key: "cust" NUL site NUL customer id) or the meta record (MetaKey)
// with the watermark. Customers are never forgotten, so there are no
// tombstones.
type Record struct {
	Key   string
	Value []byte
}

// MetaKey is the key of the meta record.
const MetaKey = "cust\x00meta"

const keyPrefix = "cust\x00"

type orderState struct {
	ID       uint64  `json:"id"`
	At       int64   `json:"at"` // negative once cancelled
	Net      float64 `json:"net"`
	Refunded float32 `json:"refunded,omitempty"`
	Items    float32 `json:"items,omitempty"`
}

type waitingState struct {
	A       *cart.Abandonment `json:"a"`
	Expires int64             `json:"expires"`
	Stage   string            `json:"stage"`
	Tier    string            `json:"tier,omitempty"`
}

type customerState struct {
	Orders     []orderState `json:"orders,omitempty"`
	Channel    string       `json:"channel,omitempty"`
	Source     string       `json:"source,omitempty"`
	Currency   string       `json:"currency,omitempty"`
	NetRevenue float64      `json:"netRevenue,omitempty"`
	FirstSeen  int64        `json:"firstSeen"`
	// Registered and TouchAt: see customer. A record without them was
	// written before they were kept, when FirstSeen was the registration
	// and the channel that of the first session known: its touch is taken
	// as at FirstSeen.
	Registered int64          `json:"registered,omitempty"`
	TouchAt    int64          `json:"touchAt,omitempty"`
	LastOrder  int64          `json:"lastOrder,omitempty"`
	LastVisit  int64          `json:"lastVisit"`
	Clock      int64          `json:"clock"`
	OrderCount uint16         `json:"orderCount,omitempty"`
	St         uint8          `json:"st"`
	Flags      uint8          `json:"flags,omitempty"`
	Traits     *Traits        `json:"traits,omitempty"`
	Favorites  uint32         `json:"favorites,omitempty"`
	Inquiries  uint32         `json:"inquiries,omitempty"`
	FirstOrder int64          `json:"firstOrder,omitempty"`
	Waiting    []waitingState `json:"waiting,omitempty"`
	// Upto is the tracker's watermark (unix ms) at the checkpoint that
	// wrote the record: the state has every fact up to it.
	Upto int64 `json:"upto,omitempty"`
}

type metaState struct {
	Watermark time.Time `json:"watermark"`
}

// Checkpoint appends to dst the records of the customers changed since the
// last Checkpoint, then the meta record, and returns it.
func (t *Tracker) Checkpoint(dst []Record) []Record {
	for _, c := range t.stateDirty {
		c.flags &^= flagState
		st := customerState{NetRevenue: c.netRevenue(), FirstSeen: c.firstSeen.ms(), Registered: c.registered.ms(), TouchAt: c.touchAt.ms(), LastOrder: c.lastOrder(), LastVisit: c.lastVisit.ms(),
			Clock: c.clock, OrderCount: c.orderCount, St: c.st, Flags: c.flags &^ (flagDirty | flagState), Upto: t.wm.UnixMilli()}
		for _, o := range c.orders() {
			st.Orders = append(st.Orders, orderState{ID: o.id, At: o.at, Net: o.net, Refunded: o.refunded, Items: o.items})
		}
		if c.prof != nil {
			st.Channel, st.Source, st.Currency = c.prof.channel, c.prof.source, c.prof.currency
		}
		if x := c.x; x != nil {
			if x.traits != (Traits{}) {
				tr := x.traits
				st.Traits = &tr
			}
			st.Favorites, st.Inquiries, st.FirstOrder = x.favorites, x.inquiries, x.firstOrder
			for _, w := range x.waiting {
				st.Waiting = append(st.Waiting, waitingState{A: w.a, Expires: w.expires, Stage: w.stage, Tier: w.tier})
			}
		}
		b, _ := json.Marshal(&st) // plain data: cannot fail
		dst = append(dst, Record{Key: keyPrefix + c.key, Value: b})
	}
	clear(t.stateDirty)
	t.stateDirty = t.stateDirty[:0]
	b, _ := json.Marshal(metaState{Watermark: t.wm})
	return append(dst, Record{Key: MetaKey, Value: b})
}

// Restore loads the records of a compacted changelog (the latest record
// per key, in any order) into a new Tracker.
func (t *Tracker) Restore(recs []Record) error {
	if t.Len() > 0 {
		return fmt.Errorf("restore into a tracker in use")
	}
	upto := map[*customer]int64{}
	for _, r := range recs {
		if r.Key == MetaKey {
			var m metaState
			if err := json.Unmarshal(r.Value, &m); err != nil {
				return fmt.Errorf("customer meta record: %w", err)
			}
			t.wm = m.Watermark
			continue
		}
		key, ok := strings.CutPrefix(r.Key, keyPrefix)
		i := strings.IndexByte(key, 0)
		if !ok || i < 1 || i == len(key)-1 {
			return fmt.Errorf("customer record key %q is not a customer's", r.Key)
		}
		var st customerState
		if err := json.Unmarshal(r.Value, &st); err != nil {
			return fmt.Errorf("customer record %q: %w", r.Key, err)
		}
		if st.St&15 >= uint8(len(stageNames)) || st.St>>4 >= uint8(len(tierNames)) {
			return fmt.Errorf("customer record %q: stage and tier %d out of range", r.Key, st.St)
		}
		c := t.lookup(key[:i], key[i+1:], true)
		upto[c] = st.Upto
		c.firstSeen, c.registered, c.touchAt, c.lastVisit, c.clock = secOf(st.FirstSeen), secOf(st.Registered), secOf(st.TouchAt), secOf(st.LastVisit), st.Clock
		if c.registered == 0 {
			c.registered = c.firstSeen
		}
		if c.touchAt == 0 && st.Channel != "" {
			c.touchAt = c.firstSeen
		}
		c.orderCount, c.st, c.flags = st.OrderCount, st.St, st.Flags&flagCarted
		var orders []orderRec
		for _, o := range st.Orders {
			orders = append(orders, orderRec{id: o.ID, at: o.At, net: o.Net, refunded: o.Refunded, items: o.Items})
		}
		c.setOrders(orders)
		if st.Channel != "" || st.Source != "" || st.Currency != "" {
			c.prof = t.profile(st.Channel, st.Source, st.Currency)
		}
		if st.Traits != nil || st.Favorites > 0 || st.Inquiries > 0 || st.FirstOrder != 0 || len(st.Waiting) > 0 {
			x := c.extra()
			if st.Traits != nil {
				x.traits = *st.Traits
			}
			x.favorites, x.inquiries, x.firstOrder = st.Favorites, st.Inquiries, st.FirstOrder
			for _, w := range st.Waiting {
				if w.A == nil {
					return fmt.Errorf("customer record %q: waiting abandonment without its row", r.Key)
				}
				x.waiting = append(x.waiting, waiting{a: w.A, expires: w.Expires, stage: w.Stage, tier: w.Tier})
			}
		}
		// The record's net revenue beyond its orders' is that of orders
		// trimmed from the history.
		if d := st.NetRevenue - c.netRevenue(); math.Abs(d) > 1e-6*max(1, math.Abs(st.NetRevenue)) {
			c.extra().trimmedNet = d
		}
	}
	// Records written after the meta record read (a checkpoint cut short)
	// are ahead of it: see Tracker.ahead.
	wm := t.wm.UnixMilli()
	for c, u := range upto {
		if u > wm {
			if t.ahead == nil {
				t.ahead = map[*customer]int64{}
			}
			t.ahead[c] = u
		}
	}
	for _, c := range t.customers {
		t.schedule(c)
	}
	for _, c := range t.collided {
		t.schedule(c)
	}
	clear(t.stateDirty)
	t.stateDirty = t.stateDirty[:0]
	for _, c := range t.customers {
		c.flags &^= flagState
	}
	for _, c := range t.collided {
		c.flags &^= flagState
	}
	return nil
}
