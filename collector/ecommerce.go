package collector

import (
	"math"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/shoptrail/shoptrail"
)

// Properties checks, for every event, on the Segment E-commerce v2 names:
//
//   - amounts (price, revenue, total, subtotal, value, shipping, tax,
//     discount) are finite JSON numbers, |x| <= 1e15; price is not negative;
//   - quantity is a finite number from 0 to 1e9;
//   - ids (order_id, product_id, sku, cart_id, checkout_id, promotion_id,
//     wishlist_id, list_id, coupon_id) are non-empty strings or numbers of
//     at most 256 bytes;
//   - currency is an ISO 4217 code (upper-cased when sent in lower case);
//   - products is an array of at most 500 product objects, each checked as
//     above;
//
// (url, referrer, search and path, like every string, were scrubbed
// before: scrub.go.)
// and per event: Order Completed, Updated, Refunded and Cancelled need an
// order_id; Product Added and Removed a product_id or sku; Promotion Viewed
// and Clicked a promotion_id or name; Products Searched's query is a
// string; Checkout Step Viewed and Completed's step a number. Other event
// names are custom events, carried as they are.

var amountKeys = map[string]bool{"price": true, "revenue": true, "total": true, "subtotal": true, "value": true, "shipping": true, "tax": true, "discount": true}

var idKeys = map[string]bool{"order_id": true, "product_id": true, "sku": true, "cart_id": true, "checkout_id": true, "promotion_id": true, "wishlist_id": true, "list_id": true, "coupon_id": true}

type requirement struct {
	anyOf []string // one of these properties must be present
}

var eventRequirements = map[string]requirement{
	shoptrail.EventOrderCompleted:   {[]string{"order_id"}},
	"Order Updated":                 {[]string{"order_id"}},
	shoptrail.EventOrderRefunded:    {[]string{"order_id"}},
	shoptrail.EventOrderCancelled:   {[]string{"order_id"}},
	shoptrail.EventProductAdded:     {[]string{"product_id", "sku"}},
	shoptrail.EventProductRemoved:   {[]string{"product_id", "sku"}},
	shoptrail.EventPromotionViewed:  {[]string{"promotion_id", "name"}},
	shoptrail.EventPromotionClicked: {[]string{"promotion_id", "name"}},
}

// currencies are the active ISO 4217 codes.
var currencies = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(`AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB
		BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP
		ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES
		KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV
		MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
		SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS
		VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL`) {
		m[c] = true
	}
	return m
}()

// propEdit is a property value the collector rewrites (an upper-cased
// currency).
type propEdit struct{ key, val string }

// properties checks and cleans the properties of e's message.
func (rq *request) properties(v *fastjson.Value, e *shoptrail.Event) *fieldError {
	var req requirement
	if e.Type == shoptrail.TypeTrack {
		req = eventRequirements[e.Event]
	}
	if isNull(v) {
		if len(req.anyOf) > 0 {
			return missing("properties."+req.anyOf[0], requiredMsg(req, e.Event))
		}
		return nil
	}
	o, err := v.Object()
	if err != nil {
		return invalid("properties", "must be an object, not "+typeName(v))
	}
	rq.edits = rq.edits[:0]
	found := false
	var fe *fieldError
	o.Visit(func(kb []byte, v *fastjson.Value) {
		if fe != nil {
			return
		}
		k := view(kb)
		for _, r := range req.anyOf {
			if r == k && !isNull(v) {
				found = true
			}
		}
		var edit string
		switch k {
		case "products":
			fe = rq.products(v)
		case "query":
			if e.Event == shoptrail.EventProductsSearched && !isNull(v) && v.Type() != fastjson.TypeString {
				fe = invalid("properties.query", "must be a string, not "+typeName(v))
			}
		case "step":
			if !isNull(v) && v.Type() != fastjson.TypeNumber && strings.HasPrefix(e.Event, "Checkout Step") {
				fe = invalid("properties.step", "must be a number, not "+typeName(v))
			}
		default:
			edit, fe = rq.productField("properties", k, v)
		}
		if edit != "" && fe == nil {
			rq.edits = append(rq.edits, propEdit{k, edit})
		}
	})
	if fe != nil {
		return fe
	}
	if len(req.anyOf) > 0 && !found {
		return missing("properties."+req.anyOf[0], requiredMsg(req, e.Event))
	}
	for _, ed := range rq.edits {
		o.Set(ed.key, rq.ps.arena.NewString(ed.val))
	}
	return nil
}

// productField checks one field of properties or of a product; it returns
// a replacement value for a currency in lower case.
func (rq *request) productField(prefix, k string, v *fastjson.Value) (string, *fieldError) {
	switch {
	case amountKeys[k]:
		f, fe := number(v, prefix, k)
		if fe != nil {
			return "", fe
		}
		if math.Abs(f) > maxAmount {
			return "", invalid(prefix+"."+k, "is out of range (more than 1e15)")
		}
		if k == "price" && f < 0 {
			return "", invalid(prefix+"."+k, "must not be negative")
		}
	case k == "quantity":
		f, fe := number(v, prefix, k)
		if fe != nil {
			return "", fe
		}
		if f < 0 || f > maxQuantity {
			return "", invalid(prefix+".quantity", "must be from 0 to 1e9")
		}
	case idKeys[k]:
		if reason := rq.checkID(v); reason != "" {
			return "", invalid(prefix+"."+k, reason)
		}
	case k == "currency":
		if isNull(v) {
			return "", nil
		}
		if v.Type() != fastjson.TypeString {
			return "", invalid(prefix+".currency", "must be an ISO 4217 code such as USD, not "+typeName(v))
		}
		b, _ := v.StringBytes()
		s := view(b)
		if currencies[s] {
			return "", nil
		}
		if up := strings.ToUpper(s); len(s) == 3 && currencies[up] {
			return up, nil
		}
		return "", invalid(prefix+".currency", strconv.Quote(truncate(s, 16))+" is not an ISO 4217 code such as USD or CNY")
	}
	return "", nil
}

func number(v *fastjson.Value, prefix, k string) (float64, *fieldError) {
	if isNull(v) {
		return 0, nil
	}
	if v.Type() != fastjson.TypeNumber {
		return 0, invalid(prefix+"."+k, "must be a number, not "+typeName(v))
	}
	f, err := v.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, invalid(prefix+"."+k, "is not a finite number")
	}
	return f, nil
}

func (rq *request) products(v *fastjson.Value) *fieldError {
	if isNull(v) {
		return nil
	}
	arr, err := v.Array()
	if err != nil {
		return invalid("properties.products", "must be an array, not "+typeName(v))
	}
	if len(arr) > maxProducts {
		return invalid("properties.products", "has more than 500 products")
	}
	for i, p := range arr {
		prefix := "properties.products[" + strconv.Itoa(i) + "]"
		o, err := p.Object()
		if err != nil {
			return invalid(prefix, "must be an object, not "+typeName(p))
		}
		var fe *fieldError
		var edit propEdit
		o.Visit(func(kb []byte, v *fastjson.Value) {
			if fe != nil {
				return
			}
			var s string
			s, fe = rq.productField(prefix, view(kb), v)
			if s != "" {
				edit = propEdit{view(kb), s}
			}
		})
		if fe != nil {
			return fe
		}
		if edit.key != "" {
			o.Set(edit.key, rq.ps.arena.NewString(edit.val))
		}
	}
	return nil
}

// depth returns the nesting depth of v (1 for a scalar).
func depth(v *fastjson.Value) int {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		d := 0
		o.Visit(func(_ []byte, v *fastjson.Value) { d = max(d, depth(v)) })
		return d + 1
	case fastjson.TypeArray:
		a, _ := v.Array()
		d := 0
		for _, x := range a {
			d = max(d, depth(x))
		}
		return d + 1
	}
	return 1
}

func requiredMsg(req requirement, event string) string {
	return strconv.Quote(event) + " needs properties." + strings.Join(req.anyOf, " or properties.")
}
