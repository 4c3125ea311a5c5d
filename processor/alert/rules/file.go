package rules

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is the YAML rules file as written.
type File struct {
	Destinations map[string]DestinationSpec `yaml:"destinations"`
	Sites        map[string]SiteSpec        `yaml:"sites"`
}

// DestinationSpec is one place alerts go. The URL of a chat robot holds its
// token, so it is as secret as Secret: give it by url_env or url_file (url
// is allowed for test receivers and internal hosts). Neither is ever logged.
type DestinationSpec struct {
	Type       string `yaml:"type"`
	URL        string `yaml:"url"`
	URLEnv     string `yaml:"url_env"`
	URLFile    string `yaml:"url_file"`
	SecretEnv  string `yaml:"secret_env"`
	SecretFile string `yaml:"secret_file"`
	// RateLimit is "N/s", "N/m" or "N/h"; empty means unlimited. DingTalk
	// and WeCom robots take 20 messages a minute.
	RateLimit string `yaml:"rate_limit"`
}

// SiteSpec holds one site's rules and its local time.
type SiteSpec struct {
	TimeZone   string          `yaml:"timezone"`
	QuietHours *QuietHoursSpec `yaml:"quiet_hours"`
	Rules      []RuleSpec      `yaml:"rules"`
}

// QuietHoursSpec is a daily period ("HH:MM" to "HH:MM", site time) in which
// alerts wait; it may span midnight.
type QuietHoursSpec struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// RuleSpec is one rule as written.
type RuleSpec struct {
	Name string `yaml:"name"`
	// Type is cart_abandoned, customer_stage, customer_tier,
	// conversion_drop or hot_lead.
	Type string `yaml:"type"`
	// MinValue (cart_abandoned): cart value at or above it matches.
	MinValue *float64 `yaml:"min_value"`
	// Tiers: the customer's value tier in the set matches. For
	// cart_abandoned, MinValue OR Tiers; for customer_stage a filter; for
	// customer_tier the tiers a customer moves into that alert.
	Tiers []string `yaml:"tiers"`
	// FromTiers (customer_tier): the tiers a customer moves out of that
	// alert (with Tiers, both must hold), e.g. [A] for a key account
	// slipping.
	FromTiers []string `yaml:"from_tiers"`
	// Stages (customer_stage): the stages a customer moves into that
	// alert, e.g. at_risk, dormant, lost.
	Stages []string `yaml:"stages"`
	// Conversion drop (type conversion_drop): see package drop.
	Weeks       int     `yaml:"weeks"`
	MinVolume   float64 `yaml:"min_volume"`
	Threshold   float64 `yaml:"threshold"`
	MinDrop     float64 `yaml:"min_drop"`
	PriceRise   float64 `yaml:"price_rise"`
	ShareChange float64 `yaml:"share_change"`
	// Hot lead (type hot_lead): views of one product that make a lead hot
	// (default 3) and the window they are counted in (default 24h).
	MinViews int           `yaml:"min_views"`
	Window   Duration      `yaml:"window"`
	FollowUp *FollowUpSpec `yaml:"follow_up"`
	Cooldown Duration      `yaml:"cooldown"`
	HoldOut  float64       `yaml:"hold_out"`
	Digest   *DigestSpec   `yaml:"digest"`
	Route    RouteSpec     `yaml:"route"`
}

// FollowUpSpec sets the thresholds of the suggested follow-up by cart value:
// below PersonalEmail an automatic email, from PersonalEmail a personal
// email, from PhoneCall a phone call. Tier "A" customers get a phone call
// whatever the value when PhoneCallTiers says so.
type FollowUpSpec struct {
	PersonalEmail  float64  `yaml:"personal_email"`
	PhoneCall      float64  `yaml:"phone_call"`
	PhoneCallTiers []string `yaml:"phone_call_tiers"`
}

// DigestSpec turns a rule's alerts into one message a day per group, sent at
// At (site time).
type DigestSpec struct {
	At string `yaml:"at"`
	// GroupBy is "destination" (one digest per destination: a salesperson's
	// or a team's channel) or "channel" (per the customer's first channel,
	// each digest to the rule's destinations).
	GroupBy string `yaml:"group_by"`
}

// RouteSpec names the destinations of a rule: To by default, Tiers[tier]
// instead for customers of that tier.
type RouteSpec struct {
	To    []string            `yaml:"to"`
	Tiers map[string][]string `yaml:"tiers"`
}

// Duration is a time.Duration written as "24h", "90m".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// Parse decodes and compiles a rules file. Unknown keys are errors, so a
// typo does not silently disable a rule.
func Parse(data []byte, env Env) (*Set, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("cannot parse rules: %w", err)
	}
	return Compile(&f, env)
}

// Load reads and compiles the rules file at path.
func Load(path string, env Env) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read rules file: %w", err)
	}
	s, err := Parse(data, env)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Env looks up secrets; os.LookupEnv in production, a map in tests.
type Env func(name string) (string, bool)
