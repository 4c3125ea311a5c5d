package commerce

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		want Props
	}{
		{"empty", ``, Props{}},
		{"not an object", `[1]`, Props{Problem: "properties is not an object"}},
		{"single product", `{"product_id":"p1","sku":"S-1","name":"Relay","category":"Parts","price":2.5,"quantity":4,"currency":"EUR","cart_id":"c9"}`,
			Props{
				Product:  Product{ProductID: "p1", SKU: "S-1", Name: "Relay", Category: "Parts", Price: 2.5, Quantity: 4, HasQuantity: true},
				Products: []Product{{ProductID: "p1", SKU: "S-1", Name: "Relay", Category: "Parts", Price: 2.5, Quantity: 4, HasQuantity: true}},
				Currency: "EUR", CartID: "c9",
			}},
		{"numeric ids", `{"product_id":123,"order_id":98765}`,
			Props{Product: Product{ProductID: "123"}, Products: []Product{{ProductID: "123"}}, OrderID: "98765"}},
		{"order", `{"order_id":"o1","checkout_id":"k1","revenue":90,"total":100,"subtotal":95,"discount":5,"coupon":"SAVE5","shipping":7,"tax":3,"currency":"USD",
			"products":[{"product_id":"a","price":10,"quantity":2},{"sku":"B","name":"Cap","price":70}]}`,
			Props{
				OrderID: "o1", CheckoutID: "k1", Revenue: 90, Total: 100, Subtotal: 95, Discount: 5, Coupon: "SAVE5", Shipping: 7, Tax: 3, Currency: "USD",
				Has:      HasRevenue | HasTotal | HasSubtotal | HasDiscount | HasShipping | HasTax | HasProducts,
				Products: []Product{{ProductID: "a", Price: 10, Quantity: 2, HasQuantity: true}, {SKU: "B", Name: "Cap", Price: 70}},
			}},
		{"products win over top-level product", `{"product_id":"x","products":[]}`,
			Props{Product: Product{ProductID: "x"}, Products: []Product{}, Has: HasProducts}},
		{"step", `{"step":3,"checkout_id":"k"}`, Props{Step: 3, CheckoutID: "k", Has: HasStep}},
		{"promotion", `{"promotion_id":"b7","creative":"spring_top","name":"Spring","position":"top"}`,
			Props{PromotionID: "b7", Creative: "spring_top", Product: Product{Name: "Spring"}}},
		{"search", `{"query":"relay 24v"}`, Props{Query: "relay 24v"}},
		{"numeric string amount", `{"revenue":"12.50"}`, Props{Revenue: 12.5, Has: HasRevenue}},
		{"wrong types noted, rest kept", `{"revenue":true,"order_id":"o","price":{"a":1},"products":[1,{"product_id":"p"}]}`,
			Props{OrderID: "o", Has: HasProducts, Products: []Product{{ProductID: "p"}}, Problem: "revenue is not a number"}},
		{"absurd amount", `{"total":1e300}`, Props{Problem: "total is not a finite amount"}},
		{"products not an array", `{"products":{"a":1}}`, Props{Problem: "products is not an array"}},
		{"long id", `{"order_id":"` + string(make([]byte, 0)) + long + `"}`, Props{Problem: "order_id is longer than 256 bytes"}},
		{"nulls", `{"order_id":null,"products":null,"revenue":null}`, Props{}},
	}
	var ps Parser
	var got Props
	for _, c := range cases {
		ps.Parse([]byte(c.raw), &got)
		// Products reuses capacity: compare contents.
		g := got
		if len(g.Products) == 0 && len(c.want.Products) == 0 && (g.Products == nil) != (c.want.Products == nil) {
			g.Products = c.want.Products
		}
		if !reflect.DeepEqual(g, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, g, c.want)
		}
	}
}

var long = func() string {
	b := make([]byte, 300)
	for i := range b {
		b[i] = 'x'
	}
	return string(b)
}()

func TestParseMalformed(t *testing.T) {
	var ps Parser
	var p Props
	ps.Parse([]byte(`{"order_id":"o","a":`), &p)
	if !strings.HasPrefix(p.Problem, "properties: cannot parse JSON") || p.OrderID != "" {
		t.Fatalf("got %+v", p)
	}
}

func TestAmount(t *testing.T) {
	cases := []struct {
		raw  string
		want float64
		ok   bool
	}{
		{`{"revenue":10,"total":20}`, 10, true},
		{`{"total":20,"value":30}`, 20, true},
		{`{"value":30,"subtotal":40}`, 30, true},
		{`{"subtotal":40}`, 40, true},
		{`{"products":[{"price":2,"quantity":3},{"price":5}]}`, 11, true},
		{`{"product_id":"p","price":4}`, 4, true},
		{`{"order_id":"o"}`, 0, false},
	}
	var ps Parser
	var p Props
	for _, c := range cases {
		ps.Parse([]byte(c.raw), &p)
		got, ok := p.Amount()
		if got != c.want || ok != c.ok {
			t.Errorf("Amount(%s) = %v, %v; want %v, %v", c.raw, got, ok, c.want, c.ok)
		}
	}
}

func TestParseLimitsProducts(t *testing.T) {
	raw := []byte(`{"products":[`)
	for i := range MaxProducts + 3 {
		if i > 0 {
			raw = append(raw, ',')
		}
		raw = append(raw, `{"product_id":"p"}`...)
	}
	raw = append(raw, "]}"...)
	var ps Parser
	var p Props
	ps.Parse(raw, &p)
	if len(p.Products) != MaxProducts || p.Problem == "" {
		t.Fatalf("got %d products, problem %q", len(p.Products), p.Problem)
	}
}

func TestInternCopies(t *testing.T) {
	var interned int
	ps := Parser{Intern: func(b []byte) string { interned++; return string(b) }}
	var p Props
	ps.Parse([]byte(`{"name":"n","category":"c","currency":"EUR"}`), &p)
	raw := []byte(`{"name":"zz","category":"yy","currency":"USD"}`)
	var q Props
	ps.Parse(raw, &q)
	if p.Product.Name != "n" || p.Currency != "EUR" || interned != 6 {
		t.Fatalf("strings of an earlier parse changed or not interned: %+v (%d)", p, interned)
	}
}
