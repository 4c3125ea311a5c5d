// Package drop detects conversion drops: a funnel step's conversion in the
// current window (the last hour) below its usual range, judged against the
// same window of the previous weeks, and names the likely suspects. It is
// pure: the caller reads the windows' counts (from ClickHouse) and the
// clock.
//
// # Method
//
// For each step (view -> cart, cart -> checkout, checkout -> order) the
// rate is the step's events over the previous step's events in a window.
// The baseline is the rates of the same window (same hours of the same
// weekday) in each of the previous weeks: weekly and daily seasonality are
// compared like with like. Its centre is the median m and its spread the
// median absolute deviation (MAD), both robust to one odd week (a holiday,
// an outage). The spread used is the larger of 1.4826 x MAD (the standard
// deviation a normal distribution with that MAD would have) and the
// binomial standard error of a rate m over the current window's volume n,
// sqrt(m(1-m)/n): with four baseline weeks the MAD alone can be
// accidentally tiny, and a small window is noisy however steady the
// baseline. It is widened by sqrt(1 + pi/(2k)) for the uncertainty of the
// median of k weeks itself. A drop is reported when
//
//   - the window's volume n (the previous step's count) is at least
//     MinVolume, and at least MinWeeks baseline weeks had MinVolume/4,
//   - z = (m - rate) / spread >= Threshold (a one-sided robust z score), and
//   - the relative drop (m - rate) / m >= MinDrop (so a large shop is not
//     alerted about statistically real but commercially trivial dips).
//
// Suspects: products whose price rose by at least PriceRise against their
// baseline median price and whose own cart rate (adds / views) fell by at
// least MinDrop against their baseline; and traffic sources whose share of
// sessions moved by at least ShareChange (absolute) from their baseline
// median share.
package drop

import (
	"math"
	"sort"
)

// Steps of the funnel, by the counts in Window.Steps.
var Steps = []string{"view_to_cart", "cart_to_checkout", "checkout_to_order"}

// Window is one window's counts.
type Window struct {
	// Steps are the counts of product views, adds to cart, checkouts
	// started and orders completed.
	Steps [4]float64
	// Products by product id.
	Products map[string]Product
	// Sources: sessions per traffic source.
	Sources map[string]float64
}

// Product is one product's counts and price in a window.
type Product struct {
	Views, Adds float64
	// Price is the mean price its views carried (0: unknown).
	Price float64
}

// Config holds the thresholds; zero values take the defaults.
type Config struct {
	MinVolume   float64 // default 200
	MinWeeks    int     // default 3
	Threshold   float64 // default 3
	MinDrop     float64 // default 0.15
	PriceRise   float64 // default 0.05
	ShareChange float64 // default 0.05
	// MinProductViews: products with fewer views in the window are not
	// judged; default 20.
	MinProductViews float64
}

func (c *Config) defaults() {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MinVolume, 200)
	def(&c.Threshold, 3)
	def(&c.MinDrop, 0.15)
	def(&c.PriceRise, 0.05)
	def(&c.ShareChange, 0.05)
	def(&c.MinProductViews, 20)
	if c.MinWeeks <= 0 {
		c.MinWeeks = 3
	}
}

// Finding is one step's drop and its suspects.
type Finding struct {
	Step     string  `json:"step"`
	Rate     float64 `json:"rate"`
	Baseline float64 `json:"baseline"`
	Spread   float64 `json:"spread"`
	Z        float64 `json:"z"`
	Volume   float64 `json:"volume"`
	Weeks    int     `json:"weeks"`
	// Hours is the window's length (set by the caller; Detect leaves it).
	Hours    int       `json:"hours,omitempty"`
	Products []Suspect `json:"products,omitempty"`
	Sources  []Shift   `json:"sources,omitempty"`
}

// Suspect is a product whose price rose and whose cart rate fell.
type Suspect struct {
	ProductID        string  `json:"productId"`
	BaselinePrice    float64 `json:"baselinePrice"`
	Price            float64 `json:"price"`
	BaselineCartRate float64 `json:"baselineCartRate"`
	CartRate         float64 `json:"cartRate"`
	Views            float64 `json:"views"`
}

// Shift is a traffic source whose share of sessions changed.
type Shift struct {
	Source        string  `json:"source"`
	BaselineShare float64 `json:"baselineShare"`
	Share         float64 `json:"share"`
}

// Detect compares cur with the same window of previous weeks (base) and
// returns the steps that dropped, with their suspects.
func Detect(cur Window, base []Window, cfg Config) []Finding {
	cfg.defaults()
	var out []Finding
	for s := range 3 {
		n := cur.Steps[s]
		if n < cfg.MinVolume {
			continue
		}
		var rates []float64
		for _, b := range base {
			if b.Steps[s] >= cfg.MinVolume/4 {
				rates = append(rates, b.Steps[s+1]/b.Steps[s])
			}
		}
		if len(rates) < cfg.MinWeeks {
			continue
		}
		m := median(rates)
		if m <= 0 {
			continue
		}
		dev := make([]float64, len(rates))
		for i, r := range rates {
			dev[i] = math.Abs(r - m)
		}
		// One week's spread, widened by the uncertainty of a median of k
		// weeks (its variance is about pi/2 * sigma^2 / k).
		sigma := math.Max(1.4826*median(dev), math.Sqrt(m*(1-m)/n))
		spread := sigma * math.Sqrt(1+math.Pi/2/float64(len(rates)))
		rate := cur.Steps[s+1] / n
		z := (m - rate) / spread
		if z < cfg.Threshold || (m-rate)/m < cfg.MinDrop {
			continue
		}
		f := Finding{Step: Steps[s], Rate: rate, Baseline: m, Spread: spread, Z: z, Volume: n, Weeks: len(rates)}
		if s == 0 {
			f.Products = suspects(cur, base, cfg)
		}
		f.Sources = shifts(cur, base, cfg)
		out = append(out, f)
	}
	return out
}

func suspects(cur Window, base []Window, cfg Config) []Suspect {
	var out []Suspect
	for id, p := range cur.Products {
		if p.Views < cfg.MinProductViews || p.Price <= 0 {
			continue
		}
		var prices []float64
		var views, adds float64
		for _, b := range base {
			bp, ok := b.Products[id]
			if !ok {
				continue
			}
			if bp.Price > 0 {
				prices = append(prices, bp.Price)
			}
			views += bp.Views
			adds += bp.Adds
		}
		if len(prices) == 0 || views == 0 {
			continue
		}
		basePrice, baseRate := median(prices), adds/views
		rate := p.Adds / p.Views
		if p.Price >= basePrice*(1+cfg.PriceRise) && rate <= baseRate*(1-cfg.MinDrop) {
			out = append(out, Suspect{ProductID: id, BaselinePrice: basePrice, Price: p.Price,
				BaselineCartRate: baseRate, CartRate: rate, Views: p.Views})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Views != out[j].Views {
			return out[i].Views > out[j].Views
		}
		return out[i].ProductID < out[j].ProductID
	})
	return out
}

func shifts(cur Window, base []Window, cfg Config) []Shift {
	share := func(w Window) map[string]float64 {
		var tot float64
		for _, v := range w.Sources {
			tot += v
		}
		m := map[string]float64{}
		if tot > 0 {
			for k, v := range w.Sources {
				m[k] = v / tot
			}
		}
		return m
	}
	cs := share(cur)
	bs := make([]map[string]float64, len(base))
	keys := map[string]bool{}
	for k := range cs {
		keys[k] = true
	}
	for i, b := range base {
		bs[i] = share(b)
		for k := range bs[i] {
			keys[k] = true
		}
	}
	if len(cs) == 0 || len(base) == 0 {
		return nil
	}
	var out []Shift
	for k := range keys {
		vals := make([]float64, len(bs))
		for i := range bs {
			vals[i] = bs[i][k]
		}
		b := median(vals)
		if math.Abs(cs[k]-b) >= cfg.ShareChange {
			out = append(out, Shift{Source: k, BaselineShare: b, Share: cs[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		di, dj := math.Abs(out[i].Share-out[i].BaselineShare), math.Abs(out[j].Share-out[j].BaselineShare)
		if di != dj {
			return di > dj
		}
		return out[i].Source < out[j].Source
	})
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
