package clickhouse

import (
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/commerce"
)

// eventColumns are the columns of the events table,
// in the order of eventRow. Always list columns: ClickHouse 18.16 refuses a
// prepared INSERT without them.
var eventColumns = []string{
	"site", "message_id", "type", "event", "name", "anonymous_id", "user_id",
	"event_time", "event_ms", "original_time", "sent_at", "received_at",
	"page_url", "page_path", "page_referrer", "page_title",
	"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
	"click_id_kind", "click_id", "user_agent", "ip", "device_class", "browser", "os",
	"is_bot", "bot_reason", "library", "locale", "tab_id", "seq", "transport",
	"flags", "properties", "traits", "schema_version",
	// typed e-commerce columns (migration 0003), from the batch's CommerceAt
	"product_id", "sku", "category", "coupon", "currency", "order_id", "cart_id", "checkout_id",
	"promotion_id", "creative", "search_query",
	"price", "quantity", "items", "revenue", "discount", "products", "step",
}

var insertEvents = "INSERT INTO events (" + strings.Join(eventColumns, ", ") + ")"

// minTime and maxTime bound what a DateTime column holds; zero times are
// stored as minTime (1970-01-01 00:00:00), absurd ones clamped.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Unix(1<<32-1, 0).UTC()
)

func dt(t time.Time) time.Time {
	switch {
	case t.Before(minTime):
		return minTime
	case t.After(maxTime):
		return maxTime
	}
	return t.UTC()
}

// typedCommerce are the typed e-commerce values of an event.
type typedCommerce struct {
	strs                                    [11]string // product_id .. search_query, in eventColumns order
	price, quantity, items, revenue, discnt float64
	products                                uint16
	step                                    int64
}

// commerceOf returns the typed e-commerce values of props (nil: none). The
// product is the event's top-level one, else the first of its products.
func commerceOf(p *commerce.Props) typedCommerce {
	var t typedCommerce
	if p == nil {
		return t
	}
	prod := &p.Product
	if prod.Key() == "" && len(p.Products) > 0 {
		prod = &p.Products[0]
	}
	t.strs = [11]string{prod.ProductID, prod.SKU, prod.Category, p.Coupon, p.Currency, p.OrderID, p.CartID, p.CheckoutID,
		p.PromotionID, p.Creative, p.Query}
	t.price = prod.Price
	if prod.HasQuantity {
		t.quantity = prod.Quantity
	}
	t.products = uint16(min(len(p.Products), 1<<16-1))
	for i := range p.Products {
		t.items += p.Products[i].LineQuantity()
	}
	if v, ok := p.Amount(); ok {
		t.revenue = v
	}
	t.discnt = p.Discount
	t.step = p.Step
	return t
}

// eventRowAt returns the values of event i of b, in eventColumns order.
func eventRowAt(b *processor.Batch, i int) []any {
	t := commerceOf(b.CommerceAt(i))
	vals := eventRow(&b.Events[i])
	for _, s := range t.strs {
		vals = append(vals, s)
	}
	return append(vals, t.price, t.quantity, t.items, t.revenue, t.discnt, t.products, t.step)
}

// eventRow returns the values of the events row of e without its typed
// e-commerce columns.
func eventRow(e *shoptrail.Event) []any {
	c := &e.Context
	isBot := uint8(0)
	if c.Bot.IsBot {
		isBot = 1
	}
	flags := e.Flags
	if flags == nil {
		flags = []string{}
	}
	lib := c.Library.Name
	if c.Library.Version != "" {
		lib += "/" + c.Library.Version
	}
	return []any{
		e.Site, e.MessageID, e.Type, e.Event, e.Name, e.AnonymousID, e.UserID,
		dt(e.Timestamp), uint16(e.Timestamp.Nanosecond() / 1e6), dt(e.OriginalTimestamp), dt(e.SentAt), dt(e.ReceivedAt),
		c.Page.URL, c.Page.Path, c.Page.Referrer, c.Page.Title,
		c.Campaign.Source, c.Campaign.Medium, c.Campaign.Name, c.Campaign.Term, c.Campaign.Content,
		c.Campaign.ClickIDKind, c.Campaign.ClickID, c.UserAgent, c.IP, c.Device.Class, c.Device.Browser, c.Device.OS,
		isBot, c.Bot.Reason, lib, c.Locale, c.Delivery.Tab, c.Delivery.Seq, c.Delivery.Transport,
		flags, string(orEmpty(e.Properties)), string(orEmpty(e.Traits)), uint8(e.V),
	}
}

func orEmpty(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

// eventsTable is the events table: ReplacingMergeTree keyed by (site,
// message_id), so an event written twice collapses.
var eventsTable = table[shoptrail.Event]{
	name:    "events",
	rows:    func(b *processor.Batch) []shoptrail.Event { return b.Events },
	query:   insertEvents,
	rowAt:   eventRowAt,
	columns: eventColumnValues,
	dead: func(e *shoptrail.Event, b *processor.Batch, i int) processor.DeadLetter {
		d := processor.DeadLetter{RowKey: e.MessageID, Time: e.Timestamp, Payload: payload(e)}
		if i < len(b.Offsets) {
			d.Offset = b.Offsets[i]
		}
		return d
	},
}

// eventCols holds the events table's values column by column, in
// eventColumns order: appending whole columns costs a fraction of
// appending row by row through []any.
type eventCols struct {
	strs     [31][]string // the String columns, in eventColumns order
	typed    [11][]string // the typed e-commerce String columns
	floats   [5][]float64 // price, quantity, items, revenue, discount
	products []uint16
	steps    []int64
	times    [4][]time.Time
	eventMS  []uint16
	isBot    []uint8
	seq      []int64
	flags    [][]string
	versions []uint8
	libs     map[shoptrail.Library]string // "name/version"
}

// bytesString returns b as a string without copying; b must not change
// while the string is in use.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// eventColsCache keeps the eventCols of past inserts, one per insert in
// progress at once (processor.Config.Writes), for the next (a sync.Pool
// would lose them at every garbage collection, and they are large).
var eventColsCache struct {
	sync.Mutex
	free []*eventCols
}

// maxCachedEventCols bounds eventColsCache.
const maxCachedEventCols = 4

func getEventCols() *eventCols {
	eventColsCache.Lock()
	defer eventColsCache.Unlock()
	if n := len(eventColsCache.free); n > 0 {
		c := eventColsCache.free[n-1]
		eventColsCache.free[n-1] = nil
		eventColsCache.free = eventColsCache.free[:n-1]
		return c
	}
	return new(eventCols)
}

func putEventCols(c *eventCols) {
	eventColsCache.Lock()
	defer eventColsCache.Unlock()
	if len(eventColsCache.free) < maxCachedEventCols {
		eventColsCache.free = append(eventColsCache.free, c)
	}
}

// eventColumnValues returns the values of the events rows refs, one slice
// per column, and a function that releases them once appended.
func eventColumnValues(batches []*processor.Batch, refs []rowRef) ([]any, func()) {
	c := getEventCols()
	for i := range c.strs {
		c.strs[i] = c.strs[i][:0]
	}
	for i := range c.times {
		c.times[i] = c.times[i][:0]
	}
	for i := range c.typed {
		c.typed[i] = c.typed[i][:0]
	}
	for i := range c.floats {
		c.floats[i] = c.floats[i][:0]
	}
	c.products, c.steps = c.products[:0], c.steps[:0]
	c.eventMS, c.isBot, c.seq, c.flags, c.versions = c.eventMS[:0], c.isBot[:0], c.seq[:0], c.flags[:0], c.versions[:0]
	if c.libs == nil {
		c.libs = map[shoptrail.Library]string{}
	}
	for _, r := range refs {
		e := &batches[r.b].Events[r.i]
		x := &e.Context
		library := x.Library.Name
		if x.Library.Version != "" {
			var ok bool
			if library, ok = c.libs[x.Library]; !ok {
				library = x.Library.Name + "/" + x.Library.Version
				if len(c.libs) > 1000 {
					clear(c.libs)
				}
				c.libs[x.Library] = library
			}
		}
		for i, v := range [...]string{
			e.Site, e.MessageID, e.Type, e.Event, e.Name, e.AnonymousID, e.UserID,
			x.Page.URL, x.Page.Path, x.Page.Referrer, x.Page.Title,
			x.Campaign.Source, x.Campaign.Medium, x.Campaign.Name, x.Campaign.Term, x.Campaign.Content,
			x.Campaign.ClickIDKind, x.Campaign.ClickID, x.UserAgent, x.IP, x.Device.Class, x.Device.Browser, x.Device.OS,
			x.Bot.Reason, library, x.Locale, x.Delivery.Tab, x.Delivery.Transport,
			// The columns copy the bytes; no need to copy them first.
			bytesString(orEmpty(e.Properties)), bytesString(orEmpty(e.Traits)),
		} {
			c.strs[i] = append(c.strs[i], v)
		}
		c.times[0] = append(c.times[0], dt(e.Timestamp))
		c.times[1] = append(c.times[1], dt(e.OriginalTimestamp))
		c.times[2] = append(c.times[2], dt(e.SentAt))
		c.times[3] = append(c.times[3], dt(e.ReceivedAt))
		c.eventMS = append(c.eventMS, uint16(e.Timestamp.Nanosecond()/1e6))
		c.isBot = append(c.isBot, boolU8(x.Bot.IsBot))
		c.seq = append(c.seq, x.Delivery.Seq)
		f := e.Flags
		if f == nil {
			f = []string{}
		}
		c.flags = append(c.flags, f)
		c.versions = append(c.versions, uint8(e.V))
		t := commerceOf(batches[r.b].CommerceAt(r.i))
		for i, v := range t.strs {
			c.typed[i] = append(c.typed[i], v)
		}
		for i, v := range [...]float64{t.price, t.quantity, t.items, t.revenue, t.discnt} {
			c.floats[i] = append(c.floats[i], v)
		}
		c.products = append(c.products, t.products)
		c.steps = append(c.steps, t.step)
	}
	s := &c.strs
	vals := []any{
		s[0], s[1], s[2], s[3], s[4], s[5], s[6], // site .. user_id
		c.times[0], c.eventMS, c.times[1], c.times[2], c.times[3],
		s[7], s[8], s[9], s[10], // page
		s[11], s[12], s[13], s[14], s[15], // utm
		s[16], s[17], s[18], s[19], s[20], s[21], s[22], // click id .. os
		c.isBot, s[23], s[24], s[25], s[26], c.seq, s[27], // is_bot .. transport
		c.flags, s[28], s[29], c.versions,
	}
	for i := range c.typed {
		vals = append(vals, c.typed[i])
	}
	for i := range c.floats {
		vals = append(vals, c.floats[i])
	}
	vals = append(vals, c.products, c.steps)
	return vals, func() {
		for i := range c.strs {
			clear(c.strs[i])
		}
		for i := range c.typed {
			clear(c.typed[i])
		}
		clear(c.flags)
		putEventCols(c)
	}
}
