package rules

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail"
)

// Rule types.
const (
	TypeCartAbandoned  = "cart_abandoned"
	TypeCustomerStage  = "customer_stage"
	TypeCustomerTier   = "customer_tier"
	TypeConversionDrop = "conversion_drop"
	TypeHotLead        = "hot_lead"
)

// Destination types.
const (
	DestWebhook  = "webhook"
	DestSlack    = "slack"
	DestDingTalk = "dingtalk"
	DestWeCom    = "wecom"
	DestFeishu   = "feishu"
)

// Follow-ups suggested for an abandoned cart.
const (
	FollowUpAutoEmail     = "auto_email"
	FollowUpPersonalEmail = "personal_email"
	FollowUpPhoneCall     = "phone_call"
)

// Digest groupings.
const (
	GroupByDestination = "destination"
	GroupByChannel     = "channel"
)

// Set is a compiled rules file. It is immutable, so one Set may be read by
// many goroutines while a reload builds the next.
type Set struct {
	Destinations map[string]*Destination
	// Sites by id; "*" applies to every site.
	Sites map[string]*Site
}

// Destination is a resolved destination: URL and secret read.
type Destination struct {
	Name   string
	Type   string
	URL    string // secret: never log
	Secret string // secret: never log
	// Rate is the number of messages allowed per Per; 0 means unlimited.
	Rate int
	Per  time.Duration
}

// String names the destination without its URL or secret.
func (d *Destination) String() string { return d.Name + " (" + d.Type + ")" }

// Site is one site's compiled rules.
type Site struct {
	ID       string
	Location *time.Location
	Quiet    *QuietHours
	Rules    []*Rule
}

// Rule is a compiled rule.
type Rule struct {
	Name      string
	Type      string
	Site      string
	MinValue  float64
	HasMin    bool
	Tiers     []string
	FromTiers []string
	Stages    []string
	FollowUp  FollowUpSpec
	Cooldown  time.Duration
	HoldOut   float64
	Digest    *Digest
	Drop      DropSpec
	MinViews  int
	Window    time.Duration
	To        []string
	TierRoute map[string][]string
}

// DropSpec holds a conversion_drop rule's parameters (zero: package
// drop's defaults; Weeks default 4).
type DropSpec struct {
	Weeks                                                 int
	MinVolume, Threshold, MinDrop, PriceRise, ShareChange float64
	// Window is the span judged: the last hour (default) or up to a day.
	Window time.Duration
}

// Digest is a compiled digest schedule.
type Digest struct {
	At      int // minutes after local midnight
	GroupBy string
}

// QuietHours is a daily period in a site's time zone, in minutes after
// local midnight; From > To spans midnight.
type QuietHours struct {
	From, To int
}

var (
	ruleName  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	rateLimit = regexp.MustCompile(`^(\d+)/(s|m|h)$`)
	stageSet  = []string{shoptrail.StageStranger, shoptrail.StageRegistered, shoptrail.StagePotential, shoptrail.StagePotentialDormant,
		shoptrail.StageFirstBuyer, shoptrail.StageSecondBuyer, shoptrail.StageThirdBuyer, shoptrail.StageLoyal,
		shoptrail.StageAtRisk, shoptrail.StageDormant, shoptrail.StageLost}
)

// Compile checks a parsed file and resolves its destinations' URLs and
// secrets. Every problem is reported, one per line, naming where it is.
func Compile(f *File, env Env) (*Set, error) {
	if env == nil {
		env = os.LookupEnv
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := &Set{Destinations: map[string]*Destination{}, Sites: map[string]*Site{}}
	for name, ds := range f.Destinations {
		d, err := compileDestination(name, ds, env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Destinations[name] = d
	}
	if len(f.Sites) == 0 {
		bad("no sites: a rules file needs at least one site with rules")
	}
	names := map[string]string{}
	for id, ss := range f.Sites {
		site := &Site{ID: id, Location: time.UTC}
		if ss.TimeZone != "" {
			loc, err := time.LoadLocation(ss.TimeZone)
			if err != nil {
				bad("site %q: unknown timezone %q", id, ss.TimeZone)
			} else {
				site.Location = loc
			}
		}
		if ss.QuietHours != nil {
			from, err1 := clock(ss.QuietHours.From)
			to, err2 := clock(ss.QuietHours.To)
			if err := errors.Join(err1, err2); err != nil {
				bad("site %q: quiet_hours: %v", id, err)
			} else if from == to {
				bad("site %q: quiet_hours: from and to are equal", id)
			} else {
				site.Quiet = &QuietHours{From: from, To: to}
			}
		}
		for i, rs := range ss.Rules {
			where := fmt.Sprintf("site %q rule %d (%q)", id, i+1, rs.Name)
			r, rerrs := compileRule(id, rs, s.Destinations, f.Destinations)
			for _, e := range rerrs {
				bad("%s: %v", where, e)
			}
			if prev, dup := names[rs.Name]; dup {
				bad("%s: the name is also used in site %q; rule names are unique in a file", where, prev)
			}
			names[rs.Name] = id
			if len(rerrs) == 0 {
				site.Rules = append(site.Rules, r)
			}
		}
		s.Sites[id] = site
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid rules:\n%w", errors.Join(sortedErrs(errs)...))
	}
	return s, nil
}

func sortedErrs(errs []error) []error {
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

func compileDestination(name string, ds DestinationSpec, env Env) (*Destination, error) {
	d := &Destination{Name: name, Type: ds.Type}
	switch ds.Type {
	case DestWebhook, DestSlack, DestDingTalk, DestWeCom, DestFeishu:
	default:
		return nil, fmt.Errorf("destination %q: type %q is not one of webhook, slack, dingtalk, wecom, feishu", name, ds.Type)
	}
	var err error
	d.URL, err = secret(ds.URL, ds.URLEnv, ds.URLFile, env)
	if err != nil {
		return nil, fmt.Errorf("destination %q: url: %w", name, err)
	}
	if d.URL == "" {
		return nil, fmt.Errorf("destination %q: no url (give url, url_env or url_file)", name)
	}
	u, err := url.Parse(d.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL itself is not repeated: it may hold a token.
		return nil, fmt.Errorf("destination %q: url is not an http(s) URL with a host", name)
	}
	if ds.URL != "" && (ds.URLEnv != "" || ds.URLFile != "") {
		return nil, fmt.Errorf("destination %q: give only one of url, url_env, url_file", name)
	}
	d.Secret, err = secret("", ds.SecretEnv, ds.SecretFile, env)
	if err != nil {
		return nil, fmt.Errorf("destination %q: secret: %w", name, err)
	}
	switch ds.Type {
	case DestWebhook:
		if d.Secret == "" {
			return nil, fmt.Errorf("destination %q: a webhook needs a signing secret (secret_env or secret_file, whsec_ followed by base64)", name)
		}
		if _, err := WebhookKey(d.Secret); err != nil {
			return nil, fmt.Errorf("destination %q: %w", name, err)
		}
	case DestSlack, DestWeCom:
		if d.Secret != "" {
			return nil, fmt.Errorf("destination %q: %s robots are not signed (the URL is the secret); remove secret_env/secret_file", name, ds.Type)
		}
	}
	if ds.RateLimit != "" {
		m := rateLimit.FindStringSubmatch(ds.RateLimit)
		if m == nil {
			return nil, fmt.Errorf("destination %q: rate_limit %q is not N/s, N/m or N/h", name, ds.RateLimit)
		}
		d.Rate, _ = strconv.Atoi(m[1])
		d.Per = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[m[2]]
		if d.Rate <= 0 {
			return nil, fmt.Errorf("destination %q: rate_limit must allow at least one message", name)
		}
	}
	return d, nil
}

// secret takes a value given inline, by environment variable or by file
// (trailing newline trimmed).
func secret(inline, envName, file string, env Env) (string, error) {
	n := 0
	for _, s := range []string{inline, envName, file} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return "", errors.New("give only one way")
	}
	switch {
	case envName != "":
		v, ok := env(envName)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", envName)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("cannot read %s: %w", file, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return inline, nil
}

func compileRule(site string, rs RuleSpec, dests map[string]*Destination, specs map[string]DestinationSpec) (*Rule, []error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	r := &Rule{Name: rs.Name, Type: rs.Type, Site: site, Tiers: rs.Tiers, FromTiers: rs.FromTiers, Stages: rs.Stages,
		Cooldown: time.Duration(rs.Cooldown), HoldOut: rs.HoldOut, To: rs.Route.To, TierRoute: rs.Route.Tiers}
	if !ruleName.MatchString(rs.Name) {
		bad("name must be 1-63 of a-z 0-9 _ . - starting with a letter or digit")
	}
	switch rs.Type {
	case TypeCartAbandoned:
		if rs.MinValue != nil {
			r.MinValue, r.HasMin = *rs.MinValue, true
			if r.MinValue < 0 {
				bad("min_value must not be negative")
			}
		}
		if len(rs.Stages) > 0 {
			bad("stages belong to customer_stage rules")
		}
		if rs.Digest != nil {
			bad("digest is for customer_stage and customer_tier rules; abandoned carts are alerted one by one")
		}
	case TypeCustomerStage:
		if len(rs.Stages) == 0 {
			bad("customer_stage needs stages, e.g. [at_risk, dormant, lost]")
		}
		for _, st := range rs.Stages {
			if !slices.Contains(stageSet, st) {
				bad("unknown stage %q (one of %s)", st, strings.Join(stageSet, ", "))
			}
		}
		if rs.MinValue != nil {
			bad("min_value belongs to cart_abandoned rules")
		}
		if rs.FollowUp != nil {
			bad("follow_up belongs to cart_abandoned rules")
		}
	case TypeCustomerTier:
		if len(rs.Tiers) == 0 && len(rs.FromTiers) == 0 {
			bad("customer_tier needs tiers (moved into, e.g. [A]) or from_tiers (moved out of), or both")
		}
		if rs.MinValue != nil || len(rs.Stages) > 0 || rs.FollowUp != nil {
			bad("customer_tier takes tiers, from_tiers, cooldown, hold_out, digest and route only")
		}
	case TypeConversionDrop:
		r.Drop = DropSpec{Weeks: rs.Weeks, MinVolume: rs.MinVolume, Threshold: rs.Threshold, MinDrop: rs.MinDrop,
			PriceRise: rs.PriceRise, ShareChange: rs.ShareChange}
		if r.Drop.Weeks == 0 {
			r.Drop.Weeks = 4
		}
		r.Drop.Window = time.Duration(rs.Window)
		if r.Drop.Window == 0 {
			r.Drop.Window = time.Hour
		}
		if r.Drop.Window < time.Hour || r.Drop.Window > 24*time.Hour || r.Drop.Window%time.Hour != 0 {
			bad("window must be whole hours from 1h to 24h, got %v", time.Duration(rs.Window))
		}
		if r.Drop.Weeks < 2 || r.Drop.Weeks > 12 {
			bad("weeks must be 2 to 12 (the baseline weeks), got %d", rs.Weeks)
		}
		if rs.MinVolume < 0 || rs.Threshold < 0 || rs.MinDrop < 0 || rs.MinDrop >= 1 || rs.PriceRise < 0 || rs.ShareChange < 0 || rs.ShareChange >= 1 {
			bad("min_volume, threshold, price_rise must not be negative; min_drop and share_change are shares in [0, 1)")
		}
		if rs.MinValue != nil || len(rs.Stages) > 0 || rs.FollowUp != nil || rs.Digest != nil || rs.HoldOut != 0 {
			bad("conversion_drop takes weeks, window, min_volume, threshold, min_drop, price_rise, share_change, cooldown and route only")
		}
		if rs.Cooldown == 0 {
			r.Cooldown = 6 * time.Hour
		}
	case TypeHotLead:
		r.MinViews, r.Window = rs.MinViews, time.Duration(rs.Window)
		if r.MinViews == 0 {
			r.MinViews = 3
		}
		if r.Window == 0 {
			r.Window = 24 * time.Hour
		}
		if r.MinViews < 2 || r.Window < time.Hour || r.Window > 7*24*time.Hour {
			bad("min_views must be at least 2 and window between 1h and 168h")
		}
		if rs.MinValue != nil || len(rs.Stages) > 0 || rs.FollowUp != nil || rs.Digest != nil || len(rs.Tiers) > 0 {
			bad("hot_lead takes min_views, window, cooldown, hold_out and route only")
		}
		if rs.Cooldown == 0 {
			r.Cooldown = 24 * time.Hour
		}
	default:
		bad("type %q is not cart_abandoned, customer_stage, customer_tier, conversion_drop or hot_lead", rs.Type)
	}
	if rs.Type != TypeCustomerTier && len(rs.FromTiers) > 0 {
		bad("from_tiers belongs to customer_tier rules")
	}
	if rs.Type != TypeHotLead && rs.MinViews != 0 {
		bad("min_views belongs to hot_lead rules")
	}
	if rs.Type != TypeHotLead && rs.Type != TypeConversionDrop && rs.Window != 0 {
		bad("window belongs to hot_lead and conversion_drop rules")
	}
	if rs.Type != TypeConversionDrop && (rs.Weeks != 0 || rs.MinVolume != 0 || rs.Threshold != 0 || rs.MinDrop != 0 || rs.PriceRise != 0 || rs.ShareChange != 0) {
		bad("weeks, min_volume, threshold, min_drop, price_rise, share_change belong to conversion_drop rules")
	}
	if rs.FollowUp != nil {
		r.FollowUp = *rs.FollowUp
		if r.FollowUp.PhoneCall > 0 && r.FollowUp.PhoneCall < r.FollowUp.PersonalEmail {
			bad("follow_up: phone_call (%v) is below personal_email (%v)", r.FollowUp.PhoneCall, r.FollowUp.PersonalEmail)
		}
	}
	if rs.Cooldown < 0 {
		bad("cooldown must not be negative")
	}
	if rs.HoldOut < 0 || rs.HoldOut >= 1 {
		bad("hold_out is a share in [0, 1), got %v", rs.HoldOut)
	}
	if rs.Digest != nil {
		at, err := clock(rs.Digest.At)
		if err != nil {
			bad("digest: %v", err)
		}
		switch rs.Digest.GroupBy {
		case GroupByDestination, GroupByChannel:
		case "":
			rs.Digest.GroupBy = GroupByDestination
		default:
			bad("digest: group_by %q is not destination or channel", rs.Digest.GroupBy)
		}
		r.Digest = &Digest{At: at, GroupBy: rs.Digest.GroupBy}
	}
	if len(rs.Route.To) == 0 && len(rs.Route.Tiers) == 0 {
		bad("route: no destinations (route.to or route.tiers)")
	}
	check := func(names []string, where string) {
		for _, n := range names {
			if _, ok := specs[n]; !ok {
				bad("%s: unknown destination %q", where, n)
			} else if _, ok := dests[n]; !ok {
				// Its own error was reported; do not repeat it.
				errs = append(errs, fmt.Errorf("%s: destination %q is invalid", where, n))
			}
		}
	}
	check(rs.Route.To, "route.to")
	for tier, names := range rs.Route.Tiers {
		check(names, "route.tiers."+tier)
	}
	return r, errs
}

// clock parses "HH:MM" into minutes after midnight.
func clock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}
