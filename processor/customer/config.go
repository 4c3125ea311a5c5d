package customer

import (
	"flag"
	"fmt"
	"time"

	"github.com/shoptrail/shoptrail"
)

// Config configures a Tracker. Zero fields take the defaults.
type Config struct {
	// AtRisk, Dormant and Lost multiply a repeat buyer's median interval
	// between orders (clamped to MinInterval..MaxInterval) into the time
	// since the last order after which the buyer is at risk, dormant, lost.
	// Defaults 1.5, 3 and 6.
	AtRisk, Dormant, Lost float64
	// MinInterval and MaxInterval clamp the median interval. Defaults 7
	// days and 120 days.
	MinInterval, MaxInterval time.Duration
	// OneTimeAtRisk, OneTimeDormant and OneTimeLost are the thresholds of
	// a buyer with one order (no interval of their own). Defaults 30, 90
	// and 180 days.
	OneTimeAtRisk, OneTimeDormant, OneTimeLost time.Duration
	// PotentialDormant: a potential customer (carted, favorited or
	// inquired, never bought) without any event for this long becomes
	// potential_dormant. Default 30 days.
	PotentialDormant time.Duration
	// RFM are the value tier thresholds; SiteRFM overrides them per site.
	RFM     RFM
	SiteRFM map[string]RFM
}

// RFM are the thresholds of the value tier. A buyer scores 1 to 5 on each
// of recency (days since the last order: at most Recency[0] days scores 5,
// at most Recency[1] 4, ..., more than Recency[3] 1), frequency (orders: at
// least Frequency[0] scores 5, ..., fewer than Frequency[3] 1) and monetary
// (net revenue: at least Monetary[0] scores 5, ...); the sum (3..15) gives
// the tier: at least Tiers[0] "A", at least Tiers[1] "B", Tiers[2] "C",
// Tiers[3] "D", else "E". Customers who never bought have no tier.
type RFM struct {
	Recency   [4]float64 // days, rising
	Frequency [4]float64 // orders, falling
	Monetary  [4]float64 // net revenue, falling
	Tiers     [4]int     // score sums, falling
}

// DefaultRFM are the default value tier thresholds.
var DefaultRFM = RFM{
	Recency:   [4]float64{30, 60, 120, 240},
	Frequency: [4]float64{10, 5, 3, 2},
	Monetary:  [4]float64{5000, 2000, 500, 100},
	Tiers:     [4]int{13, 10, 7, 5},
}

// Defaults of Config.
const (
	DefaultAtRisk           = 1.5
	DefaultDormant          = 3
	DefaultLost             = 6
	DefaultMinInterval      = 7 * 24 * time.Hour
	DefaultMaxInterval      = 120 * 24 * time.Hour
	DefaultOneTimeAtRisk    = 30 * 24 * time.Hour
	DefaultOneTimeDormant   = 90 * 24 * time.Hour
	DefaultOneTimeLost      = 180 * 24 * time.Hour
	DefaultPotentialDormant = 30 * 24 * time.Hour
)

// RegisterFlags registers the customer.* flags on fs, with the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.AtRisk, "customer.at-risk", DefaultAtRisk, "a repeat buyer is at risk after this many times their median interval between orders without an order")
	fs.Float64Var(&c.Dormant, "customer.dormant", DefaultDormant, "... dormant after this many times their median interval")
	fs.Float64Var(&c.Lost, "customer.lost", DefaultLost, "... lost after this many times their median interval")
	fs.DurationVar(&c.MinInterval, "customer.min-interval", DefaultMinInterval, "clamp a buyer's median interval between orders to at least this")
	fs.DurationVar(&c.MaxInterval, "customer.max-interval", DefaultMaxInterval, "clamp a buyer's median interval between orders to at most this")
	fs.DurationVar(&c.OneTimeAtRisk, "customer.one-time-at-risk", DefaultOneTimeAtRisk, "a one-order buyer is at risk after this long without an order")
	fs.DurationVar(&c.OneTimeDormant, "customer.one-time-dormant", DefaultOneTimeDormant, "a one-order buyer is dormant after this long without an order")
	fs.DurationVar(&c.OneTimeLost, "customer.one-time-lost", DefaultOneTimeLost, "a one-order buyer is lost after this long without an order")
	fs.DurationVar(&c.PotentialDormant, "customer.potential-dormant", DefaultPotentialDormant, "a potential customer (carted, favorited or inquired, never bought) is potential_dormant after this long without events")
}

func (c Config) withDefaults() Config {
	def := func(f *float64, d float64) {
		if *f == 0 {
			*f = d
		}
	}
	dur := func(f *time.Duration, d time.Duration) {
		if *f == 0 {
			*f = d
		}
	}
	def(&c.AtRisk, DefaultAtRisk)
	def(&c.Dormant, DefaultDormant)
	def(&c.Lost, DefaultLost)
	dur(&c.MinInterval, DefaultMinInterval)
	dur(&c.MaxInterval, DefaultMaxInterval)
	dur(&c.OneTimeAtRisk, DefaultOneTimeAtRisk)
	dur(&c.OneTimeDormant, DefaultOneTimeDormant)
	dur(&c.OneTimeLost, DefaultOneTimeLost)
	dur(&c.PotentialDormant, DefaultPotentialDormant)
	if c.RFM == (RFM{}) {
		c.RFM = DefaultRFM
	}
	return c
}

// Validate reports a configuration a Tracker cannot run with.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case !(1 <= c.AtRisk && c.AtRisk < c.Dormant && c.Dormant < c.Lost && c.Lost <= 100):
		return fmt.Errorf("customer dormancy multipliers %v < %v < %v must rise, from 1 to 100", c.AtRisk, c.Dormant, c.Lost)
	case c.MinInterval < time.Hour || c.MaxInterval < c.MinInterval:
		return fmt.Errorf("customer interval clamps %v..%v: at least an hour, rising", c.MinInterval, c.MaxInterval)
	case !(time.Hour <= c.OneTimeAtRisk && c.OneTimeAtRisk < c.OneTimeDormant && c.OneTimeDormant < c.OneTimeLost):
		return fmt.Errorf("customer one-time thresholds %v < %v < %v must rise, from an hour", c.OneTimeAtRisk, c.OneTimeDormant, c.OneTimeLost)
	case c.PotentialDormant < time.Hour:
		return fmt.Errorf("customer potential-dormant %v is shorter than an hour", c.PotentialDormant)
	}
	if err := c.RFM.validate(); err != nil {
		return err
	}
	for site, r := range c.SiteRFM {
		if err := r.validate(); err != nil {
			return fmt.Errorf("site %q: %w", site, err)
		}
	}
	return nil
}

func (r RFM) validate() error {
	for i := 1; i < 4; i++ {
		if r.Recency[i] <= r.Recency[i-1] || r.Frequency[i] >= r.Frequency[i-1] || r.Monetary[i] >= r.Monetary[i-1] || r.Tiers[i] >= r.Tiers[i-1] {
			return fmt.Errorf("value tier thresholds %+v: recency must rise, frequency, monetary and tiers fall", r)
		}
	}
	if r.Recency[0] <= 0 || r.Tiers[3] < 3 || r.Tiers[0] > 15 {
		return fmt.Errorf("value tier thresholds %+v: recency above 0, tier sums within 3..15", r)
	}
	return nil
}

func (c *Config) rfm(site string) *RFM {
	if r, ok := c.SiteRFM[site]; ok {
		return &r
	}
	return &c.RFM
}

// SiteTiers converts the sites file's valueTiers overrides to SiteRFM.
func SiteTiers(sites map[string]shoptrail.ValueTiers) map[string]RFM {
	m := make(map[string]RFM, len(sites))
	for id, v := range sites {
		m[id] = RFM{Recency: v.RecencyDays, Frequency: v.Orders, Monetary: v.Revenue, Tiers: v.Tiers}
	}
	return m
}
