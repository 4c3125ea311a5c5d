// Package simulate generates realistic shop traffic, deterministically from
// a seed, as Segment messages: visitors from a mix of sources (search
// engines, vertical B2B platforms, short video, social, email, direct,
// exhibitions by campaign links), browsing with banners, search, favorites,
// carts, checkouts, inquiries and orders with realistic amounts (mostly
// small, a long tail of large B2B orders), first-order discounts,
// registrations, anonymous and known visitors with several devices each,
// repeat buyers with their own rhythm, customers going dormant, price
// changes, bots, and daily and weekly seasonality. Send posts them to a
// collector, in time order.
package simulate

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// Config shapes the simulated shop.
type Config struct {
	// Seed makes the run repeatable: the same seed and config give the
	// same messages (ids, times, contents).
	Seed uint64
	// DailyVisitors is the mean number of visitors (people, not bots) on
	// a weekday; weekends and the season move it.
	DailyVisitors int
	// Products in the catalogue.
	Products int
	// BotShare is the share of sessions made by crawlers.
	BotShare float64
	// Sources is the mix of sources of new visitors' sessions, by name
	// (see SourceNames); nil means DefaultSources.
	Sources map[string]float64
}

// DefaultSources is the default mix of new visitors' sources.
var DefaultSources = map[string]float64{
	"baidu": 0.22, "google": 0.10, "bing": 0.03, "baidu_cpc": 0.08,
	"1688": 0.07, "made-in-china": 0.04,
	"douyin": 0.08, "wechat": 0.07, "xiaohongshu": 0.03,
	"email": 0.04, "direct": 0.20, "expo": 0.04,
}

// SourceNames lists the sources a mix may name.
var SourceNames = []string{"baidu", "google", "bing", "baidu_cpc", "1688", "made-in-china", "douyin", "wechat", "xiaohongshu", "email", "direct", "expo"}

type source struct {
	referrer string // the referring URL, "" for direct and email
	utm      string // utm query of the landing URL
	landing  string // landing path kind: home, product, category, promo, expo
	bounce   float64
}

var sources = map[string]source{
	"baidu":         {"https://www.baidu.com/s?wd=relay", "", "product", 0.45},
	"google":        {"https://www.google.com/", "", "product", 0.42},
	"bing":          {"https://www.bing.com/search?q=relay", "", "product", 0.45},
	"baidu_cpc":     {"https://www.baidu.com/s?wd=relay", "utm_source=baidu&utm_medium=cpc&utm_campaign=brand_q4&bd_vid=", "promo", 0.5},
	"1688":          {"https://detail.1688.com/offer/1.html", "", "product", 0.35},
	"made-in-china": {"https://www.made-in-china.com/products", "", "product", 0.38},
	"douyin":        {"https://www.douyin.com/video/7", "utm_source=douyin&utm_medium=video&utm_campaign=short_video", "promo", 0.6},
	"wechat":        {"https://mp.weixin.qq.com/s/a", "", "category", 0.5},
	"xiaohongshu":   {"https://www.xiaohongshu.com/explore", "", "category", 0.55},
	"email":         {"", "utm_source=newsletter&utm_medium=email&utm_campaign=weekly", "promo", 0.3},
	"direct":        {"", "", "home", 0.3},
	"expo":          {"", "utm_source=canton_fair&utm_medium=exhibition&utm_campaign=expo_2026", "expo", 0.25},
}

var devices = []struct{ class, ua string }{
	{"desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"},
	{"desktop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"},
	{"mobile", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"},
	{"mobile", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"},
	{"tablet", "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"},
}

var bots = []string{
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
	"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
}

var categories = []string{"Relays", "Connectors", "Sensors", "Switches", "Fuses", "Cables", "Capacitors", "Resistors",
	"Motors", "Power Supplies", "Enclosures", "Tools", "LEDs", "Transformers", "PLC", "Displays"}

// hourWeight is the share of a day's visits starting in each hour (UTC),
// office hours and an evening peak.
var hourWeight = [24]float64{0.3, 0.2, 0.15, 0.1, 0.1, 0.2, 0.5, 1.2, 2.4, 3.4, 3.6, 3.3, 2.5, 3.0, 3.5, 3.4, 3.0, 2.4, 2.0, 2.3, 2.6, 2.2, 1.3, 0.7}

// weekdayWeight: a B2B shop is quieter on weekends.
var weekdayWeight = [7]float64{0.62, 1.05, 1.08, 1.06, 1.04, 0.98, 0.7} // Sunday first

// Message is one Segment message as the simulator sends it.
type Message struct {
	Type        string         `json:"type"`
	Event       string         `json:"event,omitempty"`
	Name        string         `json:"name,omitempty"`
	MessageID   string         `json:"messageId"`
	AnonymousID string         `json:"anonymousId"`
	UserID      string         `json:"userId,omitempty"`
	Timestamp   time.Time      `json:"timestamp"`
	Context     Context        `json:"context"`
	Properties  map[string]any `json:"properties,omitempty"`
	Traits      map[string]any `json:"traits,omitempty"`
}

// Context is the part of the Segment context the simulator fills.
type Context struct {
	UserAgent string `json:"userAgent"`
	Page      Page   `json:"page"`
	Locale    string `json:"locale,omitempty"`
}

// Page is context.page.
type Page struct {
	URL      string `json:"url"`
	Path     string `json:"path"`
	Referrer string `json:"referrer,omitempty"`
	Title    string `json:"title,omitempty"`
}

type product struct {
	id, sku, category string
	price             float64
	raisedUntil       int // day index until which a price rise dampens carting
}

type device struct {
	anon string
	kind int // index into devices
}

type person struct {
	id         int
	devices    []device
	userID     string // set once registered
	orders     int
	rhythm     float64 // mean days between visits
	dormantDay int     // no visits from this day on
	source     string  // the source that brought them first
	b2b        bool    // buys in quantity
}

// Shop is the simulated shop: its catalogue and its people, advanced one
// day at a time.
type Shop struct {
	cfg      Config
	site     string // "https://" + host
	rng      *rand.Rand
	products []product
	people   []*person
	visits   map[int][]int // day -> people due to come back
	srcNames []string
	srcCum   []float64
	start    time.Time
	day      int
	msgSeq   uint64
}

// NewShop returns a shop whose first simulated day is start (truncated to
// the day, UTC). host is the shop's host name in page URLs.
func NewShop(cfg Config, host string, start time.Time) (*Shop, error) {
	if cfg.DailyVisitors <= 0 {
		return nil, fmt.Errorf("daily visitors must be positive, not %d", cfg.DailyVisitors)
	}
	if cfg.Products <= 0 {
		cfg.Products = 500
	}
	if cfg.BotShare < 0 || cfg.BotShare >= 1 {
		return nil, fmt.Errorf("bot share %v is not within [0, 1)", cfg.BotShare)
	}
	mix := cfg.Sources
	if mix == nil {
		mix = DefaultSources
	}
	s := &Shop{cfg: cfg, site: "https://" + host, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		visits: map[int][]int{}, start: start.UTC().Truncate(24 * time.Hour)}
	total := 0.0
	for _, n := range SourceNames { // fixed order: deterministic
		w, ok := mix[n]
		if !ok || w <= 0 {
			continue
		}
		total += w
		s.srcNames = append(s.srcNames, n)
		s.srcCum = append(s.srcCum, total)
	}
	for n := range mix {
		if _, ok := sources[n]; !ok {
			return nil, fmt.Errorf("unknown source %q (known: %v)", n, SourceNames)
		}
	}
	if total == 0 {
		return nil, fmt.Errorf("the source mix has no positive weight")
	}
	for i := range s.srcCum {
		s.srcCum[i] /= total
	}
	for i := range cfg.Products {
		s.products = append(s.products, product{
			id: fmt.Sprintf("P%05d", i), sku: fmt.Sprintf("SKU-%05d", i), category: categories[i%len(categories)],
			price: round2(math.Exp(math.Log(25) + 1.0*s.rng.NormFloat64())),
		})
	}
	return s, nil
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// Day returns the date of day index d.
func (s *Shop) Day(d int) time.Time { return s.start.AddDate(0, 0, d) }

// NextDay simulates the next day and returns its messages in time order.
func (s *Shop) NextDay() []Message {
	d := s.day
	s.day++
	date := s.Day(d)
	s.changePrices(d)
	season := weekdayWeight[date.Weekday()] * (1 + 0.12*math.Sin(2*math.Pi*float64(date.YearDay()-250)/365))
	var out []Message
	// Returning people due today.
	due := s.visits[d]
	delete(s.visits, d)
	for _, pi := range due {
		p := s.people[pi]
		if d >= p.dormantDay {
			continue
		}
		if s.rng.Float64() > weekdayWeight[date.Weekday()] { // a quiet day: come the next one
			s.visits[d+1] = append(s.visits[d+1], pi)
			continue
		}
		out = s.session(out, p, d, false)
		s.schedule(p, d)
	}
	// New people: the rest of the day's visitors.
	newCount := int(math.Round(float64(s.cfg.DailyVisitors) * season * (0.7 + 0.1*s.rng.Float64())))
	for range newCount {
		p := s.newPerson(d)
		out = s.session(out, p, d, true)
		s.schedule(p, d)
	}
	// Bots.
	nb := int(math.Round(float64(len(due)+newCount) * s.cfg.BotShare / (1 - s.cfg.BotShare)))
	for range nb {
		out = s.botSession(out, d)
	}
	return byTime(out)
}

// byTime returns msgs in time order, those of one time in the order given:
// it sorts indexes, not the messages (a stable sort of the large structs
// moved them about n log² n times: most of the simulator's CPU), then
// copies each message once.
func byTime(msgs []Message) []Message {
	idx := make([]int32, len(msgs))
	ts := make([]int64, len(msgs))
	for i := range msgs {
		idx[i] = int32(i)
		ts[i] = msgs[i].Timestamp.UnixNano()
	}
	sort.Slice(idx, func(a, b int) bool {
		x, y := idx[a], idx[b]
		if ts[x] != ts[y] {
			return ts[x] < ts[y]
		}
		return x < y
	})
	out := make([]Message, len(msgs))
	for i, j := range idx {
		out[i] = msgs[j]
	}
	return out
}

func (s *Shop) changePrices(d int) {
	if d == 0 {
		return
	}
	for range max(1, len(s.products)/100) {
		p := &s.products[s.rng.IntN(len(s.products))]
		if s.rng.Float64() < 0.5 {
			p.price = round2(p.price * 1.15)
			p.raisedUntil = d + 14
		} else {
			p.price = round2(p.price * 0.88)
			p.raisedUntil = 0
		}
	}
}

func (s *Shop) newPerson(d int) *person {
	p := &person{id: len(s.people), rhythm: 3 + 40*s.rng.ExpFloat64()/2, b2b: s.rng.Float64() < 0.15}
	p.dormantDay = d + 10 + int(120*s.rng.ExpFloat64())
	p.source = s.pickSource()
	p.devices = []device{{anon: s.id("a", uint64(p.id), 0), kind: s.rng.IntN(len(devices))}}
	s.people = append(s.people, p)
	return p
}

func (s *Shop) pickSource() string {
	x := s.rng.Float64()
	i := sort.SearchFloat64s(s.srcCum, x)
	if i >= len(s.srcNames) {
		i = len(s.srcNames) - 1
	}
	return s.srcNames[i]
}

// schedule draws the person's next visit: sooner for buyers, never after
// they go dormant; a third never come back at all.
func (s *Shop) schedule(p *person, d int) {
	if p.orders == 0 && p.userID == "" && s.rng.Float64() < 0.45 {
		return
	}
	gap := 1 + int(p.rhythm*s.rng.ExpFloat64())
	if p.orders > 0 {
		gap = 1 + int(p.rhythm*0.6*s.rng.ExpFloat64())
	}
	next := d + gap
	if next >= p.dormantDay {
		return
	}
	s.visits[next] = append(s.visits[next], p.id)
}

// id returns a deterministic id from the seed and parts.
func (s *Shop) id(prefix string, a, b uint64) string {
	h := fnv.New64a()
	var buf [24]byte
	binary.LittleEndian.PutUint64(buf[0:], s.cfg.Seed)
	binary.LittleEndian.PutUint64(buf[8:], a)
	binary.LittleEndian.PutUint64(buf[16:], b)
	h.Write([]byte(prefix))
	h.Write(buf[:])
	return prefix + "-" + hex.EncodeToString(h.Sum(nil))
}

func (s *Shop) msgID() string {
	s.msgSeq++
	return s.id("m", s.msgSeq, uint64(s.day))
}

// startTime draws a visit's start within day d from the hourly profile.
func (s *Shop) startTime(d int) time.Time {
	total := 0.0
	for _, w := range hourWeight {
		total += w
	}
	x := s.rng.Float64() * total
	h := 0
	for ; h < 23 && x > hourWeight[h]; h++ {
		x -= hourWeight[h]
	}
	return s.Day(d).Add(time.Duration(h)*time.Hour + time.Duration(s.rng.Int64N(int64(time.Hour))))
}

// visit carries one session's state while its events are made.
type visit struct {
	s        *Shop
	p        *person
	dev      device
	t        time.Time
	out      []Message
	referrer string
	d        int
}

func (v *visit) step() { v.t = v.t.Add(time.Duration(5+v.s.rng.ExpFloat64()*40) * time.Second) }

func (v *visit) msg(typ, event string, props map[string]any) *Message {
	m := Message{Type: typ, Event: event, MessageID: v.s.msgID(), AnonymousID: v.dev.anon, UserID: v.p.userID,
		Timestamp: v.t, Properties: props, Context: Context{UserAgent: devices[v.dev.kind].ua, Locale: "zh-CN"}}
	v.out = append(v.out, m)
	return &v.out[len(v.out)-1]
}

func (v *visit) page(path, title string) {
	m := v.msg("page", "", nil)
	m.Name = title
	m.Context.Page = Page{URL: v.s.site + path, Path: pathOnly(path), Referrer: v.referrer, Title: title}
	v.referrer = v.s.site + pathOnly(path)
	v.step()
}

func pathOnly(p string) string {
	for i := range p {
		if p[i] == '?' {
			return p[:i]
		}
	}
	return p
}

func (v *visit) track(event string, props map[string]any) {
	m := v.msg("track", event, props)
	m.Context.Page = Page{URL: v.referrer, Path: pathOnly(trimSite(v.referrer, v.s.site)), Referrer: ""}
	v.step()
}

func trimSite(u, site string) string {
	if len(u) >= len(site) && u[:len(site)] == site {
		return u[len(site):]
	}
	return u
}

func (v *visit) productProps(p *product, qty int) map[string]any {
	return map[string]any{"product_id": p.id, "sku": p.sku, "category": p.category, "price": p.price, "quantity": qty, "currency": "CNY"}
}

var banners = []struct{ id, creative, path string }{
	{"B-spring", "hero_relays", "/promo/relays"},
	{"B-bulk", "bulk_discount", "/promo/bulk"},
	{"B-new", "new_sensors", "/c/sensors"},
}

// session makes one visit of p on day d.
func (s *Shop) session(out []Message, p *person, d int, first bool) []Message {
	v := &visit{s: s, p: p, d: d, t: s.startTime(d)}
	// Known customers now and then come on another device.
	if !first && p.userID != "" && len(p.devices) < 3 && s.rng.Float64() < 0.15 {
		p.devices = append(p.devices, device{anon: s.id("a", uint64(p.id), uint64(len(p.devices))), kind: s.rng.IntN(len(devices))})
	}
	v.dev = p.devices[s.rng.IntN(len(p.devices))]
	src := p.source
	if !first {
		switch x := s.rng.Float64(); {
		case x < 0.35:
			src = "direct"
		case x < 0.5 && p.userID != "":
			src = "email"
		case x < 0.75:
			src = s.pickSource()
		}
	}
	so := sources[src]
	v.referrer = so.referrer
	var landing, title string
	prod := &s.products[s.zipf()]
	switch so.landing {
	case "home":
		landing, title = "/", "Home"
	case "product":
		landing, title = "/p/"+prod.id, "Product "+prod.id
	case "category":
		landing, title = "/c/"+prod.category, prod.category
	case "promo":
		landing, title = "/promo/relays", "Spring relays"
	case "expo":
		landing, title = "/expo", "Canton Fair 2026"
	}
	if so.utm != "" {
		q := so.utm
		if q[len(q)-1] == '=' { // a click id to fill
			q += s.id("c", uint64(p.id), uint64(d))[2:14]
		}
		landing += "?" + q
	}
	v.page(landing, title)
	if p.userID != "" && !first && s.rng.Float64() < 0.5 {
		v.track("Logged In", nil)
		m := v.msg("identify", "", nil)
		m.Traits = map[string]any{"plan": map[bool]string{true: "b2b", false: "retail"}[p.b2b]}
		v.step()
	}
	if so.landing == "product" {
		v.track("Product Viewed", v.productProps(prod, 1))
	}
	bounce := so.bounce
	if !first {
		bounce *= 0.6
	}
	if s.rng.Float64() < bounce {
		return append(out, v.out...)
	}
	pages := 1 + int(s.rng.ExpFloat64()*4)
	var cart []*product
	var qtys []int
	for i := 0; i < pages; i++ {
		switch x := s.rng.Float64(); {
		case x < 0.15:
			v.page("/", "Home")
			for j, b := range banners[:1+s.rng.IntN(len(banners))] {
				v.track("Promotion Viewed", map[string]any{"promotion_id": b.id, "creative": b.creative, "name": b.id, "position": fmt.Sprint("slot", j+1)})
			}
			if s.rng.Float64() < 0.12 {
				b := banners[s.rng.IntN(len(banners))]
				v.track("Promotion Clicked", map[string]any{"promotion_id": b.id, "creative": b.creative, "name": b.id})
				v.page(b.path, b.id)
			}
		case x < 0.27:
			q := categories[s.rng.IntN(len(categories))]
			v.track("Products Searched", map[string]any{"query": q})
			v.page("/search?q="+q, "Search")
		case x < 0.4:
			c := categories[s.rng.IntN(len(categories))]
			v.page("/c/"+c, c)
			v.track("Product List Viewed", map[string]any{"category": c})
		default:
			prod = &s.products[s.zipf()]
			v.page("/p/"+prod.id, "Product "+prod.id)
			v.track("Product Viewed", v.productProps(prod, 1))
			pc := 0.11
			if p.b2b {
				pc = 0.16
			}
			if prod.raisedUntil > d { // a recent price rise puts buyers off
				pc *= 0.55
			}
			switch y := s.rng.Float64(); {
			case y < pc:
				qty := 1 + s.rng.IntN(3)
				if p.b2b && s.rng.Float64() < 0.35 {
					qty = 20 + int(s.rng.ExpFloat64()*150)
				}
				v.track("Product Added", withCart(v.productProps(prod, qty), s.id("cart", uint64(p.id), uint64(p.orders))))
				cart = append(cart, prod)
				qtys = append(qtys, qty)
			case y < pc+0.04:
				v.track("Product Added to Wishlist", v.productProps(prod, 1))
			case y < pc+0.07 && p.b2b:
				v.track("Inquiry Started", map[string]any{"product_id": prod.id, "sku": prod.sku, "quantity": 100})
			}
		}
	}
	// Registration: a share of first visits, fewer later.
	if p.userID == "" && s.rng.Float64() < map[bool]float64{true: 0.07, false: 0.05}[first] {
		p.userID = s.id("u", uint64(p.id), 0)
		v.page("/signup", "Sign up")
		v.track("Signed Up", map[string]any{"method": "email"})
		m := v.msg("identify", "", nil)
		m.Traits = map[string]any{"plan": map[bool]string{true: "b2b", false: "retail"}[p.b2b]}
		v.step()
	}
	if len(cart) == 0 {
		return append(out, v.out...)
	}
	cartID := s.id("cart", uint64(p.id), uint64(p.orders))
	v.page("/cart", "Cart")
	v.track("Cart Viewed", map[string]any{"cart_id": cartID})
	if s.rng.Float64() > 0.5 {
		return append(out, v.out...) // abandoned
	}
	var lines []map[string]any
	sub := 0.0
	for i, c := range cart {
		lines = append(lines, map[string]any{"product_id": c.id, "sku": c.sku, "category": c.category, "price": c.price, "quantity": qtys[i]})
		sub += c.price * float64(qtys[i])
	}
	sub = round2(sub)
	v.page("/checkout", "Checkout")
	v.track("Checkout Started", map[string]any{"cart_id": cartID, "value": sub, "currency": "CNY", "products": lines})
	v.track("Checkout Step Completed", map[string]any{"step": 1, "cart_id": cartID})
	if s.rng.Float64() > 0.72 {
		return append(out, v.out...) // gone at checkout
	}
	if p.userID == "" && s.rng.Float64() < 0.4 { // guests sign up to order
		p.userID = s.id("u", uint64(p.id), 0)
		v.track("Signed Up", map[string]any{"method": "checkout"})
	}
	orderID := s.id("o", uint64(p.id), uint64(p.orders))
	props := map[string]any{"order_id": orderID, "cart_id": cartID, "subtotal": sub, "currency": "CNY", "products": lines}
	revenue := sub
	if p.orders == 0 && p.userID != "" { // first-order discount
		disc := round2(sub * 0.1)
		props["coupon"], props["discount"] = "FIRST10", disc
		revenue = round2(sub - disc)
	}
	props["revenue"] = revenue
	v.track("Order Completed", props)
	p.orders++
	if s.rng.Float64() < 0.08 { // some buyers never come back
		p.dormantDay = d + 1
	}
	return append(out, v.out...)
}

func withCart(m map[string]any, cartID string) map[string]any {
	m["cart_id"] = cartID
	return m
}

// zipf draws a product index, popular ones far more often.
func (s *Shop) zipf() int {
	n := len(s.products)
	i := int(math.Floor(math.Pow(float64(n), s.rng.Float64()))) - 1
	return max(0, min(n-1, i))
}

// botSession makes a crawler's visit: many pages, no commerce.
func (s *Shop) botSession(out []Message, d int) []Message {
	p := &person{id: -1}
	v := &visit{s: s, p: p, d: d, t: s.startTime(d)}
	v.dev = device{anon: s.id("bot", uint64(d), s.msgSeq)}
	ua := bots[s.rng.IntN(len(bots))]
	n := 3 + s.rng.IntN(15)
	for range n {
		prod := &s.products[s.rng.IntN(len(s.products))]
		v.page("/p/"+prod.id, "Product "+prod.id)
	}
	for i := range v.out {
		v.out[i].Context.UserAgent = ua
	}
	return append(out, v.out...)
}
