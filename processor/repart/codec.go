package repart

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/shoptrail/shoptrail/processor/cart"
	"github.com/shoptrail/shoptrail/processor/commerce"
	"github.com/shoptrail/shoptrail/processor/customer"
)

// The record format of the repartition topic: a version byte (codecV1),
// then the fact's fields in a fixed order — strings as a uvarint length
// and their bytes, times as a varint of unix nanoseconds (with a presence
// byte), floats as 8 bytes. encoding/json took a sixth of the processor's
// CPU for these records in the pipeline benchmark; this takes a fraction.
// Decode also reads the JSON of a Fact (a record starting with '{').

const codecV1 = 1

// Fact kinds.
const (
	kindWatermark = 'w'
	kindEvent     = 'e'
	kindLate      = 'l' // an event fact with Arrived
	kindHandoff   = 'a'
)

// AppendFact appends the encoding of f to dst.
func AppendFact(dst []byte, f *Fact) []byte {
	e := encoder{b: dst}
	e.byte(codecV1)
	switch {
	case f.Event != nil && !f.Event.Arrived.IsZero():
		e.byte(kindLate)
	case f.Event != nil:
		e.byte(kindEvent)
	case f.Abandonment != nil:
		e.byte(kindHandoff)
	default:
		e.byte(kindWatermark)
	}
	e.varint(int64(f.Source))
	e.varint(f.Offset)
	e.time(f.Watermark)
	if ev := f.Event; ev != nil {
		e.strs(ev.Site, ev.CustomerID, ev.AnonymousID, ev.MessageID, ev.Type, ev.Name)
		e.time(ev.Time)
		e.strs(ev.SessionID, ev.Channel, ev.Source)
		e.time(ev.SessionStart)
		e.props(ev.Props)
		if tr := ev.Traits; tr != nil {
			e.byte(1)
			e.strs(tr.Email, tr.Name, tr.Phone, tr.Company, tr.Industry, tr.CustomerType, tr.Role, tr.Level)
		} else {
			e.byte(0)
		}
		if !ev.Arrived.IsZero() {
			e.time(ev.Arrived)
		}
	}
	if a := f.Abandonment; a != nil {
		e.bool(f.New)
		e.time(f.At)
		e.strs(a.ID, a.Site, a.CartID, a.AnonymousID, a.CustomerID)
		e.uvarint(uint64(len(a.Items)))
		for _, it := range a.Items {
			e.strs(it.ProductID, it.SKU, it.Name, it.Category, it.Currency)
			e.f64(it.Price)
			e.f64(it.Quantity)
		}
		e.f64(a.ItemCount)
		e.f64(a.Value)
		e.str(a.Currency)
		e.bool(a.MixedCurrency)
		e.time(a.LastActivityAt)
		e.time(a.AbandonedAt)
		e.strs(a.Step, a.SessionID, a.Channel, a.Source)
		e.bool(a.Recovered)
		e.time(a.RecoveredAt)
		e.str(a.RecoveredOrderID)
		e.f64(a.RecoveredValue)
	}
	return e.b
}

func (e *encoder) props(p *commerce.Props) {
	if p == nil {
		e.byte(0)
		return
	}
	e.byte(1)
	e.uvarint(uint64(len(p.Products)))
	for i := range p.Products {
		e.product(&p.Products[i])
	}
	e.product(&p.Product)
	e.strs(p.OrderID, p.CartID, p.CheckoutID, p.Coupon, p.Currency, p.PromotionID, p.Creative, p.Query, p.Problem)
	for _, x := range [...]float64{p.Revenue, p.Total, p.Subtotal, p.Value, p.Discount, p.Shipping, p.Tax} {
		e.f64(x)
	}
	e.varint(p.Step)
	e.uvarint(uint64(p.Has))
}

func (e *encoder) product(p *commerce.Product) {
	e.strs(p.ProductID, p.SKU, p.Name, p.Category)
	e.f64(p.Price)
	e.f64(p.Quantity)
	e.bool(p.HasQuantity)
}

// DecodeFact decodes a record of the repartition topic into f.
func DecodeFact(b []byte, f *Fact) error {
	*f = Fact{}
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, f); err != nil {
			return fmt.Errorf("repart: fact: %w", err)
		}
		return nil
	}
	d := decoder{b: b}
	if v := d.byte(); v != codecV1 && d.err == nil {
		return fmt.Errorf("repart: fact: unknown version %d", v)
	}
	kind := d.byte()
	f.Source = int(d.varint())
	f.Offset = d.varint()
	f.Watermark = d.time()
	switch kind {
	case kindWatermark:
	case kindEvent, kindLate:
		ev := &customer.Event{}
		f.Event = ev
		ev.Site, ev.CustomerID, ev.AnonymousID, ev.MessageID, ev.Type, ev.Name = d.str(), d.str(), d.str(), d.str(), d.str(), d.str()
		ev.Time = d.time()
		ev.SessionID, ev.Channel, ev.Source = d.str(), d.str(), d.str()
		ev.SessionStart = d.time()
		ev.Props = d.props()
		if d.byte() == 1 {
			ev.Traits = &customer.Traits{Email: d.str(), Name: d.str(), Phone: d.str(), Company: d.str(), Industry: d.str(),
				CustomerType: d.str(), Role: d.str(), Level: d.str()}
		}
		if kind == kindLate {
			ev.Arrived = d.time()
		}
	case kindHandoff:
		a := &cart.Abandonment{}
		f.Abandonment = a
		f.New = d.bool()
		f.At = d.time()
		a.ID, a.Site, a.CartID, a.AnonymousID, a.CustomerID = d.str(), d.str(), d.str(), d.str(), d.str()
		if n := d.count(); n > 0 {
			a.Items = make([]cart.Item, n)
			for i := range a.Items {
				it := &a.Items[i]
				it.ProductID, it.SKU, it.Name, it.Category, it.Currency = d.str(), d.str(), d.str(), d.str(), d.str()
				it.Price, it.Quantity = d.f64(), d.f64()
			}
		}
		a.ItemCount, a.Value = d.f64(), d.f64()
		a.Currency = d.str()
		a.MixedCurrency = d.bool()
		a.LastActivityAt, a.AbandonedAt = d.time(), d.time()
		a.Step, a.SessionID, a.Channel, a.Source = d.str(), d.str(), d.str(), d.str()
		a.Recovered = d.bool()
		a.RecoveredAt = d.time()
		a.RecoveredOrderID = d.str()
		a.RecoveredValue = d.f64()
	default:
		if d.err == nil {
			return fmt.Errorf("repart: fact: unknown kind %q", kind)
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("repart: fact: %w", d.err)
	}
	return nil
}

func (d *decoder) props() *commerce.Props {
	if d.byte() != 1 {
		return nil
	}
	p := &commerce.Props{}
	if n := d.count(); n > 0 {
		p.Products = make([]commerce.Product, n)
		for i := range p.Products {
			d.product(&p.Products[i])
		}
	}
	d.product(&p.Product)
	p.OrderID, p.CartID, p.CheckoutID, p.Coupon, p.Currency = d.str(), d.str(), d.str(), d.str(), d.str()
	p.PromotionID, p.Creative, p.Query, p.Problem = d.str(), d.str(), d.str(), d.str()
	p.Revenue, p.Total, p.Subtotal, p.Value = d.f64(), d.f64(), d.f64(), d.f64()
	p.Discount, p.Shipping, p.Tax = d.f64(), d.f64(), d.f64()
	p.Step = d.varint()
	p.Has = uint16(d.uvarint())
	return p
}

func (d *decoder) product(p *commerce.Product) {
	p.ProductID, p.SKU, p.Name, p.Category = d.str(), d.str(), d.str(), d.str()
	p.Price, p.Quantity = d.f64(), d.f64()
	p.HasQuantity = d.bool()
}

type encoder struct{ b []byte }

func (e *encoder) byte(c byte)      { e.b = append(e.b, c) }
func (e *encoder) uvarint(x uint64) { e.b = binary.AppendUvarint(e.b, x) }
func (e *encoder) varint(x int64)   { e.b = binary.AppendVarint(e.b, x) }
func (e *encoder) f64(x float64)    { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(x)) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }

func (e *encoder) strs(ss ...string) {
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}

// time writes a presence byte and, for a time that is not zero, its unix
// nanoseconds (facts are from 1678 to 2262: the events' own times).
func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.byte(0)
		return
	}
	e.byte(1)
	e.varint(t.UnixNano())
}

type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) f64() float64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	x := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return math.Float64frombits(x)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) bool() bool { return d.byte() == 1 }

// count reads a length of a list whose elements take at least a byte
// each, so a corrupt length cannot allocate more than the record holds.
func (d *decoder) count() int {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errShort
		return 0
	}
	return int(n)
}

func (d *decoder) time() time.Time {
	if d.byte() != 1 {
		return time.Time{}
	}
	ns := d.varint()
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
