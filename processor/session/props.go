package session

import (
	"strconv"

	"github.com/shoptrail/shoptrail"
)

// FunnelStep is how far down the shop funnel a session got.
type FunnelStep uint8

// Funnel steps, in order. Every session reaches at least FunnelView.
const (
	FunnelNone     FunnelStep = iota
	FunnelView                // any page or event
	FunnelProduct             // Product Viewed
	FunnelCart                // Product Added, Product Removed, Cart Viewed
	FunnelCheckout            // Checkout Started, Checkout Step Viewed/Completed, Payment Info Entered
	FunnelOrder               // Order Completed
)

func (f FunnelStep) String() string {
	switch f {
	case FunnelView:
		return "view"
	case FunnelProduct:
		return "product"
	case FunnelCart:
		return "cart"
	case FunnelCheckout:
		return "checkout"
	case FunnelOrder:
		return "order"
	}
	return "none"
}

// evKind is what an event means to a session.
type evKind uint8

const (
	kindOther evKind = iota
	kindProductView
	kindProductAdded
	kindProductRemoved
	kindCartViewed
	kindCheckout
	kindOrder
	kindKey // a key event that makes a session engaged: sign-up, inquiry
)

func (k evKind) funnel() FunnelStep {
	switch k {
	case kindProductView:
		return FunnelProduct
	case kindProductAdded, kindProductRemoved, kindCartViewed:
		return FunnelCart
	case kindCheckout:
		return FunnelCheckout
	case kindOrder:
		return FunnelOrder
	}
	return FunnelView
}

// eventKinds maps normalized track event names (lower case, '_' and '-' as
// spaces) to kinds: Segment's E-commerce v2 names, GA4's recommended event
// names and their snake_case spellings.
var eventKinds = map[string]evKind{
	"product viewed":          kindProductView,
	"view item":               kindProductView,
	"product added":           kindProductAdded,
	"add to cart":             kindProductAdded,
	"product removed":         kindProductRemoved,
	"remove from cart":        kindProductRemoved,
	"cart viewed":             kindCartViewed,
	"view cart":               kindCartViewed,
	"checkout started":        kindCheckout,
	"begin checkout":          kindCheckout,
	"checkout step viewed":    kindCheckout,
	"checkout step completed": kindCheckout,
	"payment info entered":    kindCheckout,
	"add payment info":        kindCheckout,
	"add shipping info":       kindCheckout,
	"order completed":         kindOrder,
	"purchase":                kindOrder,
	"signed up":               kindKey,
	"sign up":                 kindKey,
	"inquiry started":         kindKey,
	"generate lead":           kindKey,
}

// classify returns the kind of a track event name.
func classify(e *shoptrail.Event) evKind {
	if e.Type != shoptrail.TypeTrack {
		return kindOther
	}
	switch e.Event { // the exact Segment names: no normalization needed
	case shoptrail.EventProductViewed:
		return kindProductView
	case shoptrail.EventProductAdded:
		return kindProductAdded
	case shoptrail.EventProductRemoved:
		return kindProductRemoved
	case shoptrail.EventCartViewed:
		return kindCartViewed
	case shoptrail.EventCheckoutStarted, shoptrail.EventCheckoutStepCompleted, shoptrail.EventPaymentInfoEntered:
		return kindCheckout
	case shoptrail.EventOrderCompleted:
		return kindOrder
	case shoptrail.EventSignedUp, shoptrail.EventInquiry:
		return kindKey
	case "", shoptrail.EventProductsSearched, shoptrail.EventProductListViewed, shoptrail.EventPromotionViewed,
		shoptrail.EventPromotionClicked, shoptrail.EventProductClicked, shoptrail.EventProductAddedToWishlist,
		shoptrail.EventLoggedIn, shoptrail.EventOrderRefunded, shoptrail.EventOrderCancelled:
		return kindOther
	}
	if len(e.Event) > 64 {
		return kindOther
	}
	var buf [64]byte
	b := buf[:len(e.Event)]
	for i := 0; i < len(e.Event); i++ {
		c := e.Event[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_' || c == '-':
			c = ' '
		}
		b[i] = c
	}
	return eventKinds[string(b)]
}

// ecom is what a session needs from an e-commerce event's properties.
type ecom struct {
	// value: Product Added/Removed: price*quantity (or the products[] sum);
	// Cart Viewed/Checkout: the cart's value; Order Completed: revenue.
	value    float64
	hasValue bool
	// orderKey is the hash of order_id (0 if none), so that an order page
	// reloaded under a new message id counts once.
	orderKey uint64
}

// ecomOf extracts the value of an e-commerce event from its properties
// (Segment E-commerce v2): revenue, else total, else value, else the sum of
// products[].price*quantity for orders; the products[] sum, else value,
// revenue or total for cart snapshots; price*quantity (quantity 1 when
// absent), else the products[] sum, for cart additions and removals.
// Numbers may be JSON numbers or numeric strings. Malformed JSON yields what
// was read before the error.
func ecomOf(k evKind, raw []byte) ecom {
	var p props
	p.scan(raw)
	var out ecom
	if p.has&hasOrderID != 0 {
		out.orderKey = p.orderKey
	}
	pick := func(fields ...uint16) {
		for _, f := range fields {
			if p.has&f == 0 {
				continue
			}
			out.hasValue = true
			switch f {
			case hasRevenue:
				out.value = p.revenue
			case hasTotal:
				out.value = p.total
			case hasValue:
				out.value = p.value
			case hasProducts:
				out.value = p.products
			case hasPrice:
				q := 1.0
				if p.has&hasQuantity != 0 {
					q = p.quantity
				}
				out.value = p.price * q
			}
			return
		}
	}
	switch k {
	case kindOrder:
		pick(hasRevenue, hasTotal, hasValue, hasProducts)
	case kindCartViewed, kindCheckout:
		pick(hasProducts, hasValue, hasRevenue, hasTotal)
	case kindProductAdded, kindProductRemoved:
		pick(hasPrice, hasProducts)
	}
	return out
}

const (
	hasPrice uint16 = 1 << iota
	hasQuantity
	hasRevenue
	hasTotal
	hasValue
	hasProducts
	hasOrderID
)

// props is a minimal, allocation-free reader of the few top-level fields of
// a properties object the sessionizer uses. It skips everything else.
type props struct {
	b        []byte
	i        int
	bad      bool
	has      uint16
	price    float64
	quantity float64
	revenue  float64
	total    float64
	value    float64
	products float64
	orderKey uint64
}

func (p *props) scan(b []byte) {
	p.b, p.i = b, 0
	p.ws()
	if !p.eat('{') {
		return
	}
	p.object(func(key []byte) bool {
		switch string(key) {
		case "price":
			p.number(hasPrice, &p.price)
		case "quantity":
			p.number(hasQuantity, &p.quantity)
		case "revenue":
			p.number(hasRevenue, &p.revenue)
		case "total":
			p.number(hasTotal, &p.total)
		case "value":
			p.number(hasValue, &p.value)
		case "order_id", "orderId":
			p.orderID()
		case "products":
			p.productList()
		default:
			return false
		}
		return true
	})
}

// object reads the members of an object whose '{' was consumed, calling
// member with each key; member either reads the value and returns true, or
// returns false to have it skipped.
func (p *props) object(member func(key []byte) bool) {
	p.ws()
	if p.eat('}') {
		return
	}
	for !p.bad {
		p.ws()
		key, ok := p.str()
		if !ok {
			p.bad = true
			return
		}
		p.ws()
		if !p.eat(':') {
			p.bad = true
			return
		}
		p.ws()
		if !member(key) {
			p.skip(0)
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if !p.eat('}') {
			p.bad = true
		}
		return
	}
}

func (p *props) productList() {
	if !p.eat('[') {
		p.skip(0)
		return
	}
	sum, any := 0.0, false
	p.ws()
	if !p.eat(']') {
		for !p.bad {
			p.ws()
			if p.eat('{') {
				var price, qty float64
				var has uint16
				p.object(func(key []byte) bool {
					switch string(key) {
					case "price":
						has |= p.numberInto(&price)
					case "quantity":
						if p.numberInto(&qty) != 0 {
							has |= hasQuantity
						}
					default:
						return false
					}
					return true
				})
				if has&hasPrice != 0 {
					if has&hasQuantity == 0 {
						qty = 1
					}
					sum += price * qty
					any = true
				}
			} else {
				p.skip(0)
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if !p.eat(']') {
				p.bad = true
			}
			break
		}
	}
	if any && !p.bad {
		p.has |= hasProducts
		p.products = sum
	}
}

func (p *props) number(flag uint16, dst *float64) {
	if p.numberInto(dst) != 0 {
		p.has |= flag
	}
}

// numberInto reads a number or numeric string into dst; it returns hasPrice
// (any non-zero flag) when it did.
func (p *props) numberInto(dst *float64) uint16 {
	var tok []byte
	if p.i < len(p.b) && p.b[p.i] == '"' {
		s, ok := p.str()
		if !ok {
			p.bad = true
			return 0
		}
		tok = s
	} else {
		start := p.i
		for p.i < len(p.b) {
			c := p.b[p.i]
			if (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
				break
			}
			p.i++
		}
		if p.i == start {
			p.skip(0)
			return 0
		}
		tok = p.b[start:p.i]
	}
	v, ok := parseNumber(tok)
	if !ok {
		return 0
	}
	*dst = v
	return hasPrice
}

func (p *props) orderID() {
	if p.i < len(p.b) && p.b[p.i] == '"' {
		s, ok := p.str()
		if !ok {
			p.bad = true
			return
		}
		if len(s) > 0 {
			p.orderKey = xxh64(string(s))
			p.has |= hasOrderID
		}
		return
	}
	start := p.i
	p.skip(0)
	if tok := p.b[start:p.i]; len(tok) > 0 && tok[0] != 'n' && tok[0] != '{' && tok[0] != '[' {
		p.orderKey = xxh64(string(tok))
		p.has |= hasOrderID
	}
}

// parseNumber parses a decimal number; plain decimals with up to 15 digits
// take an exact fast path (mantissa / 10^n, both exact, one correctly
// rounded division: the same result as strconv), the rest strconv.
func parseNumber(b []byte) (float64, bool) {
	var mant uint64
	digits, frac, i := 0, -1, 0
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, i = true, 1
	}
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			mant = mant*10 + uint64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0:
			frac = 0
		default:
			digits = 99 // exponent or junk: let strconv decide
		}
		if digits > 15 {
			break
		}
	}
	if digits > 0 && digits <= 15 && frac != 0 {
		v := float64(mant)
		if frac > 0 {
			v /= pow10[frac]
		}
		if neg {
			v = -v
		}
		return v, true
	}
	v, err := strconv.ParseFloat(string(b), 64)
	return v, err == nil
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

func (p *props) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *props) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string and returns its raw contents (escapes left as they
// are: the keys and numbers we look for never contain any).
func (p *props) str() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '\\':
			p.i += 2
		case '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		default:
			p.i++
		}
	}
	return nil, false
}

// skip skips one value of any type.
func (p *props) skip(depth int) {
	if depth > 64 {
		p.bad = true
		return
	}
	if p.i >= len(p.b) {
		p.bad = true
		return
	}
	switch p.b[p.i] {
	case '"':
		if _, ok := p.str(); !ok {
			p.bad = true
		}
	case '{':
		p.i++
		p.object(func([]byte) bool { p.skip(depth + 1); return true })
	case '[':
		p.i++
		p.ws()
		if p.eat(']') {
			return
		}
		for !p.bad {
			p.ws()
			p.skip(depth + 1)
			p.ws()
			if p.eat(',') {
				continue
			}
			if !p.eat(']') {
				p.bad = true
			}
			return
		}
	default: // number, true, false, null
		start := p.i
		for p.i < len(p.b) {
			c := p.b[p.i]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
			p.i++
		}
		if p.i == start {
			p.bad = true
		}
	}
}
