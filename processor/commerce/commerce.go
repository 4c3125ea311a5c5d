// Package commerce reads the Segment E-commerce v2 properties of an event
// into typed fields: the products of a cart, checkout or order, the single
// product of a product event, and the order's amounts. It is the one place
// the processor parses these properties; the events table's typed columns
// and the cart and customer stages all read its Props.
//
// The collector has checked the properties already (amounts are finite
// numbers, ids non-empty strings or numbers, currency an ISO 4217 code), so
// here a value of the wrong type is not expected; when it happens (a
// producer other than the collector, an older collector) the value is left
// out and the problem is noted in Props.Problem, never an error that stops
// anything.
package commerce

import (
	"math"
	"strconv"

	"github.com/valyala/fastjson"
)

// Product is one product of an event: an element of properties.products,
// or the product a product event (Product Added, Viewed, ...) names in its
// top-level properties.
type Product struct {
	ProductID string
	SKU       string
	Name      string
	Category  string
	Price     float64
	// Quantity as sent (it may be fractional: a weight); 0 when not sent.
	Quantity float64
	// HasQuantity tells a quantity of 0 from none.
	HasQuantity bool
}

// Key is the identity of a product in a cart: its product id, else its sku.
func (p *Product) Key() string {
	if p.ProductID != "" {
		return p.ProductID
	}
	return p.SKU
}

// Which amounts an event carried (Props.Has).
const (
	HasRevenue uint16 = 1 << iota
	HasTotal
	HasSubtotal
	HasValue
	HasDiscount
	HasShipping
	HasTax
	HasProducts // properties.products was an array (possibly empty)
	HasStep
)

// Props are the e-commerce properties of one event. The zero value means
// none (not a track event, or no such properties).
type Props struct {
	// Products is properties.products (when Has&HasProducts), else the one
	// product of the top-level product_id/sku/name/category/price/quantity
	// when the event names a product, else empty.
	Products []Product
	// Product is the top-level product (product events), zero when none.
	Product Product

	OrderID    string
	CartID     string
	CheckoutID string
	Coupon     string
	Currency   string

	// PromotionID and Creative are the banner of Promotion Viewed and
	// Promotion Clicked; Query is the search of Products Searched (at most
	// 256 bytes, not interned).
	PromotionID string
	Creative    string
	Query       string

	Revenue, Total, Subtotal, Value float64
	Discount, Shipping, Tax         float64
	Step                            int64
	Has                             uint16

	// Problem describes the first property that could not be read (wrong
	// type, non-finite number); empty when all was well.
	Problem string
}

// Amount returns the order's amount by Segment's precedence: revenue, else
// total, else value, else subtotal, else the sum of its products' price
// times quantity (quantity 1 when not sent); ok is false when none is known.
func (p *Props) Amount() (float64, bool) {
	switch {
	case p.Has&HasRevenue != 0:
		return p.Revenue, true
	case p.Has&HasTotal != 0:
		return p.Total, true
	case p.Has&HasValue != 0:
		return p.Value, true
	case p.Has&HasSubtotal != 0:
		return p.Subtotal, true
	}
	if len(p.Products) == 0 {
		return 0, false
	}
	var sum float64
	for i := range p.Products {
		sum += p.Products[i].Price * p.Products[i].LineQuantity()
	}
	return sum, true
}

// LineQuantity is the quantity of a line: Quantity, or 1 when not sent.
func (p *Product) LineQuantity() float64 {
	if !p.HasQuantity {
		return 1
	}
	return p.Quantity
}

// MaxProducts bounds the products read from one event (the collector
// allows 500).
const MaxProducts = 500

// Parser reads Props. It reuses its buffers: not safe for concurrent use,
// one per partition worker.
type Parser struct {
	p fastjson.Parser
	// Intern, when set, turns short repeated strings (names, categories,
	// currencies) into shared ones; it must copy b.
	Intern func(b []byte) string
}

// Parse reads the e-commerce properties of raw (a JSON object; anything
// else yields empty Props with Problem set, or nothing for empty input)
// into dst, which it resets first. dst.Products reuses its capacity.
func (ps *Parser) Parse(raw []byte, dst *Props) {
	products := dst.Products[:0]
	clear(products[:cap(products)])
	*dst = Props{Products: products}
	if len(raw) == 0 {
		return
	}
	v, err := ps.p.ParseBytes(raw)
	if err != nil {
		dst.Problem = "properties: " + err.Error()
		return
	}
	o, err := v.Object()
	if err != nil {
		dst.Problem = "properties is not an object"
		return
	}
	r := reader{ps: ps, dst: dst}
	o.Visit(func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "products":
			r.products(v)
		case "order_id":
			dst.OrderID = r.id("order_id", v)
		case "cart_id":
			dst.CartID = r.id("cart_id", v)
		case "checkout_id":
			dst.CheckoutID = r.id("checkout_id", v)
		case "coupon":
			dst.Coupon = r.str("coupon", v)
		case "currency":
			dst.Currency = r.str("currency", v)
		case "promotion_id":
			dst.PromotionID = r.id("promotion_id", v)
		case "creative":
			dst.Creative = r.str("creative", v)
		case "query":
			dst.Query = r.id("query", v)
		case "revenue":
			r.amount("revenue", v, &dst.Revenue, HasRevenue)
		case "total":
			r.amount("total", v, &dst.Total, HasTotal)
		case "subtotal":
			r.amount("subtotal", v, &dst.Subtotal, HasSubtotal)
		case "value":
			r.amount("value", v, &dst.Value, HasValue)
		case "discount":
			r.amount("discount", v, &dst.Discount, HasDiscount)
		case "shipping":
			r.amount("shipping", v, &dst.Shipping, HasShipping)
		case "tax":
			r.amount("tax", v, &dst.Tax, HasTax)
		case "step":
			if f, ok := r.number("step", v); ok {
				dst.Step = int64(f)
				dst.Has |= HasStep
			}
		case "product_id", "sku", "name", "category", "price", "quantity":
			r.productField(&dst.Product, key, v, "")
		}
	})
	if dst.Has&HasProducts == 0 && dst.Product.Key() != "" {
		dst.Products = append(dst.Products, dst.Product)
	}
}

type reader struct {
	ps  *Parser
	dst *Props
}

func (r *reader) problem(field, what string) {
	if r.dst.Problem == "" {
		r.dst.Problem = field + " " + what
	}
}

func (r *reader) intern(b []byte) string {
	if r.ps.Intern != nil {
		return r.ps.Intern(b)
	}
	return string(b)
}

// str reads a string property; a number is taken as its text.
func (r *reader) str(field string, v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return r.intern(b)
	case fastjson.TypeNumber:
		return r.intern(v.MarshalTo(nil))
	case fastjson.TypeNull:
		return ""
	}
	r.problem(field, "is not a string")
	return ""
}

// id reads an id: a string or a number (its JSON text), at most 256 bytes.
func (r *reader) id(field string, v *fastjson.Value) string {
	var b []byte
	switch v.Type() {
	case fastjson.TypeString:
		b, _ = v.StringBytes()
	case fastjson.TypeNumber:
		b = v.MarshalTo(nil)
	case fastjson.TypeNull:
		return ""
	default:
		r.problem(field, "is not a string or number")
		return ""
	}
	if len(b) > 256 {
		r.problem(field, "is longer than 256 bytes")
		return ""
	}
	return string(b)
}

// number reads a finite number (a numeric string is taken too).
func (r *reader) number(field string, v *fastjson.Value) (float64, bool) {
	var f float64
	switch v.Type() {
	case fastjson.TypeNumber:
		f = v.GetFloat64()
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		var err error
		if f, err = strconv.ParseFloat(string(b), 64); err != nil {
			r.problem(field, "is not a number")
			return 0, false
		}
	case fastjson.TypeNull:
		return 0, false
	default:
		r.problem(field, "is not a number")
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e15 {
		r.problem(field, "is not a finite amount")
		return 0, false
	}
	return f, true
}

func (r *reader) amount(field string, v *fastjson.Value, dst *float64, bit uint16) {
	if f, ok := r.number(field, v); ok {
		*dst = f
		r.dst.Has |= bit
	}
}

func (r *reader) productField(p *Product, key []byte, v *fastjson.Value, prefix string) {
	switch string(key) {
	case "product_id":
		p.ProductID = r.id(prefix+"product_id", v)
	case "sku":
		p.SKU = r.id(prefix+"sku", v)
	case "name":
		p.Name = r.str(prefix+"name", v)
	case "category":
		p.Category = r.str(prefix+"category", v)
	case "price":
		if f, ok := r.number(prefix+"price", v); ok {
			p.Price = f
		}
	case "quantity":
		if f, ok := r.number(prefix+"quantity", v); ok {
			p.Quantity, p.HasQuantity = f, true
		}
	}
}

func (r *reader) products(v *fastjson.Value) {
	if v.Type() == fastjson.TypeNull {
		return
	}
	a, err := v.Array()
	if err != nil {
		r.problem("products", "is not an array")
		return
	}
	r.dst.Has |= HasProducts
	for i, pv := range a {
		if i == MaxProducts {
			r.problem("products", "has more than "+strconv.Itoa(MaxProducts)+" elements; the rest are left out")
			break
		}
		o, err := pv.Object()
		if err != nil {
			r.problem("products["+strconv.Itoa(i)+"]", "is not an object")
			continue
		}
		var p Product
		o.Visit(func(key []byte, v *fastjson.Value) { r.productField(&p, key, v, "products[].") })
		r.dst.Products = append(r.dst.Products, p)
	}
}
