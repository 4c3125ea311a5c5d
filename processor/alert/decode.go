package alert

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/shoptrail/shoptrail"
)

// decodeSignal decodes one record of the signals topic into sig exactly as
// json.Unmarshal would, in about a quarter of its CPU (json.Unmarshal was
// 9 % of the alerter's CPU in BenchmarkDeliver). The fast path takes what
// the processor writes (json.Marshal's compact output); anything it is not
// sure of goes to json.Unmarshal, which also gives the error: a record
// with a backslash escape, a control character or invalid UTF-8 anywhere, a
// field of an unexpected JSON type, a repeated field, a key that matches a
// field only case-insensitively, a number that is not a JSON number.
// TestDecodeSignalAsJSON checks it against json.Unmarshal on a signal with
// every field set, so a field added to shoptrail.Signal and not here fails
// that test. One difference is left: fields it does not know (a newer
// processor's) are only checked for JSON structure, not their numbers'
// grammar.
//
// p is reused between calls (not concurrently); sig must be zero.
func decodeSignal(p *fastjson.Parser, b []byte, sig *shoptrail.Signal) error {
	if plain(b) {
		if v, err := p.ParseBytes(b); err == nil {
			d := decoder{ok: true}
			d.signal(v, sig)
			if d.ok {
				return nil
			}
			*sig = shoptrail.Signal{}
		}
	}
	return json.Unmarshal(b, sig)
}

// plain tells whether b holds no backslash, no control character (JSON
// whitespace included: compact JSON has none) and only valid UTF-8. In such
// a record every string's bytes are its value.
func plain(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '\\' {
			return false
		}
	}
	return utf8.Valid(b)
}

// decoder fills a Signal from a parsed value; ok turns false at the first
// thing the fast path does not take.
type decoder struct {
	ok  bool
	num [32]byte
}

// fields calls f for each key of an object (ok false if v is neither an
// object nor null) and turns ok false for a key seen twice or one that only
// case-insensitively matches one of names.
func (d *decoder) fields(v *fastjson.Value, names []string, f func(i int, v *fastjson.Value)) bool {
	if v.Type() == fastjson.TypeNull {
		return false
	}
	o, err := v.Object()
	if err != nil {
		d.ok = false
		return false
	}
	var seen uint64
	o.Visit(func(k []byte, v *fastjson.Value) {
		if !d.ok {
			return
		}
		for i, n := range names {
			if string(k) == n { // compared in place, not copied
				if seen&(1<<i) != 0 {
					d.ok = false
					return
				}
				seen |= 1 << i
				f(i, v)
				return
			}
		}
		for _, n := range names {
			if strings.EqualFold(string(k), n) {
				d.ok = false
				return
			}
		}
	})
	return true
}

func (d *decoder) str(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeNull:
		return ""
	}
	d.ok = false
	return ""
}

// raw returns a number's literal if it is a JSON number.
func (d *decoder) raw(v *fastjson.Value) (string, bool) {
	if v.Type() != fastjson.TypeNumber {
		if v.Type() != fastjson.TypeNull {
			d.ok = false
		}
		return "", false
	}
	b := v.MarshalTo(d.num[:0])
	if !jsonNumber(b) {
		d.ok = false
		return "", false
	}
	return string(b), true
}

func (d *decoder) float(v *fastjson.Value) float64 {
	s, ok := d.raw(v)
	if !ok {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		d.ok = false
	}
	return f
}

func (d *decoder) int(v *fastjson.Value) int {
	s, ok := d.raw(v)
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || int64(int(n)) != n {
		d.ok = false
	}
	return int(n)
}

func (d *decoder) time(v *fastjson.Value) time.Time {
	var t time.Time
	switch v.Type() {
	case fastjson.TypeString:
		if err := t.UnmarshalText(v.GetStringBytes()); err != nil {
			d.ok = false
		}
	case fastjson.TypeNull:
	default:
		d.ok = false
	}
	return t
}

// jsonNumber tells whether b is a number as JSON writes it:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNumber(b []byte) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

var signalFields = []string{"v", "id", "type", "site", "at", "customerId", "anonymousId", "customer", "cart", "transition"}

func (d *decoder) signal(v *fastjson.Value, s *shoptrail.Signal) {
	if v.Type() != fastjson.TypeObject {
		d.ok = false // json.Unmarshal says why (null would leave s as it is: taken slowly too)
		return
	}
	d.fields(v, signalFields, func(i int, v *fastjson.Value) {
		switch i {
		case 0:
			s.V = d.int(v)
		case 1:
			s.ID = d.str(v)
		case 2:
			s.Type = d.str(v)
		case 3:
			s.Site = d.str(v)
		case 4:
			s.At = d.time(v)
		case 5:
			s.CustomerID = d.str(v)
		case 6:
			s.AnonymousID = d.str(v)
		case 7:
			s.Customer = nil
			c := &shoptrail.SignalCustomer{}
			if d.customer(v, c) {
				s.Customer = c
			}
		case 8:
			s.Cart = nil
			c := &shoptrail.SignalCart{}
			if d.cart(v, c) {
				s.Cart = c
			}
		case 9:
			s.Transition = nil
			t := &shoptrail.SignalTransition{}
			if d.fields(v, transitionFields, func(i int, v *fastjson.Value) {
				switch i {
				case 0:
					t.Kind = d.str(v)
				case 1:
					t.From = d.str(v)
				case 2:
					t.To = d.str(v)
				case 3:
					t.Cause = d.str(v)
				}
			}) {
				s.Transition = t
			}
		}
	})
}

var transitionFields = []string{"kind", "from", "to", "cause"}

var customerFields = []string{"id", "email", "name", "phone", "company", "industry", "customerType", "role", "level", "stage",
	"tier", "orderCount", "netRevenue", "currency", "firstSeenAt", "lastOrderAt", "lastVisitAt", "firstChannel", "firstSource"}

func (d *decoder) customer(v *fastjson.Value, c *shoptrail.SignalCustomer) bool {
	return d.fields(v, customerFields, func(i int, v *fastjson.Value) {
		switch i {
		case 0:
			c.ID = d.str(v)
		case 1:
			c.Email = d.str(v)
		case 2:
			c.Name = d.str(v)
		case 3:
			c.Phone = d.str(v)
		case 4:
			c.Company = d.str(v)
		case 5:
			c.Industry = d.str(v)
		case 6:
			c.Type = d.str(v)
		case 7:
			c.Role = d.str(v)
		case 8:
			c.Level = d.str(v)
		case 9:
			c.Stage = d.str(v)
		case 10:
			c.Tier = d.str(v)
		case 11:
			c.OrderCount = d.int(v)
		case 12:
			c.NetRevenue = d.float(v)
		case 13:
			c.Currency = d.str(v)
		case 14:
			c.FirstSeenAt = d.time(v)
		case 15:
			c.LastOrderAt = d.time(v)
		case 16:
			c.LastVisitAt = d.time(v)
		case 17:
			c.FirstChannel = d.str(v)
		case 18:
			c.FirstSource = d.str(v)
		}
	})
}

var cartFields = []string{"cartId", "value", "currency", "itemCount", "items", "step", "lastActivityAt", "abandonedAt", "sessionId",
	"channel", "source", "medium", "campaign", "abandonmentId", "recoveredAt", "recoveredOrderId", "recoveredValue"}

var itemFields = []string{"productId", "sku", "name", "category", "price", "quantity"}

func (d *decoder) cart(v *fastjson.Value, c *shoptrail.SignalCart) bool {
	return d.fields(v, cartFields, func(i int, v *fastjson.Value) {
		switch i {
		case 0:
			c.CartID = d.str(v)
		case 1:
			c.Value = d.float(v)
		case 2:
			c.Currency = d.str(v)
		case 3:
			c.ItemCount = d.int(v)
		case 4:
			c.Items = d.items(v)
		case 5:
			c.Step = d.str(v)
		case 6:
			c.LastActivityAt = d.time(v)
		case 7:
			c.AbandonedAt = d.time(v)
		case 8:
			c.SessionID = d.str(v)
		case 9:
			c.Channel = d.str(v)
		case 10:
			c.Source = d.str(v)
		case 11:
			c.Medium = d.str(v)
		case 12:
			c.Campaign = d.str(v)
		case 13:
			c.AbandonmentID = d.str(v)
		case 14:
			c.RecoveredAt = d.time(v)
		case 15:
			c.RecoveredOrderID = d.str(v)
		case 16:
			c.RecoveredValue = d.float(v)
		}
	})
}

func (d *decoder) items(v *fastjson.Value) []shoptrail.SignalCartItem {
	if v.Type() == fastjson.TypeNull {
		return nil
	}
	a, err := v.Array()
	if err != nil {
		d.ok = false
		return nil
	}
	items := make([]shoptrail.SignalCartItem, len(a)) // [] is an empty slice, not nil, as json.Unmarshal makes it
	for j, v := range a {
		it := &items[j]
		if !d.fields(v, itemFields, func(i int, v *fastjson.Value) {
			switch i {
			case 0:
				it.ProductID = d.str(v)
			case 1:
				it.SKU = d.str(v)
			case 2:
				it.Name = d.str(v)
			case 3:
				it.Category = d.str(v)
			case 4:
				it.Price = d.float(v)
			case 5:
				it.Quantity = d.int(v)
			}
		}) {
			// A null item is a zero item to json.Unmarshal.
			continue
		}
	}
	return items
}
