package shoptrail

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Site is one shop sending events: the collector authenticates and checks
// its events by it, the processor attributes its sessions by OwnDomains.
// Both read the same sites file (LoadSitesFile). A site's write keys are public (they
// sit in every page); they say which site an event belongs to, and the
// allowed origins keep other web sites from sending with them.
type Site struct {
	// ID names the site on every event (Event.Site).
	ID string `json:"id"`
	// WriteKeys authenticate the site; several allow rotation.
	WriteKeys []string `json:"writeKeys"`
	// AllowedOrigins are the browser origins allowed to send events
	// ("https://shop.example", "https://*.shop.example"), answered with
	// CORS headers. Without any, no browser may send (fail closed); "*"
	// allows every origin, and the collector warns about it at start.
	// Requests without an Origin header (server-side SDKs) are always
	// allowed.
	AllowedOrigins []string `json:"allowedOrigins"`
	// TimeZone is the site's IANA time zone, for daily figures downstream
	// (the default is UTC). The collector only checks it.
	TimeZone string `json:"timeZone"`
	// OwnDomains are the shop's own domains, whose referrers are no traffic
	// source (for the processor's attribution; the collector only checks
	// them).
	OwnDomains []string `json:"ownDomains"`
	// QueryParams are query parameters kept in this site's page URLs and
	// referrers besides the collector's allowlist (utm_*, click ids,
	// search terms), e.g. "page" or "category".
	QueryParams []string `json:"queryParams"`
	// HashTraits are traits (top-level keys of traits and context.traits)
	// stored as "sha256:" and the hex SHA-256 of the value, trimmed and
	// lower-cased — a pseudonym that still joins, e.g. "email", "phone".
	// DropTraits are traits removed before storage. Other traits are kept
	// as sent.
	HashTraits []string `json:"hashTraits"`
	DropTraits []string `json:"dropTraits"`
	// CartAbandonAfter overrides the processor's -cart.abandon-after for
	// this site: a Go duration such as "30m" or "2h" (1m..720h).
	CartAbandonAfter string `json:"cartAbandonAfter,omitempty"`
	// ValueTiers overrides the processor's value tier thresholds for this
	// site (see the README, "Customers, lifecycle and value tiers").
	ValueTiers *ValueTiers `json:"valueTiers,omitempty"`

	anyOrigin   bool
	origins     []originPattern
	traitPolicy map[string]TraitAction // TraitHash or TraitDrop by name
}

// TraitAction is what happens to a trait before storage.
type TraitAction uint8

// Trait actions (Site.HashTraits, Site.DropTraits).
const (
	TraitKeep TraitAction = iota // stored as sent
	TraitHash                    // "sha256:" and the hex SHA-256 of the value, trimmed and lower-cased
	TraitDrop                    // removed
)

// originPattern is an allowed origin; a host starting with "*." matches
// its subdomains.
type originPattern struct {
	scheme, host string // host without "*."
	wildcard     bool
}

// Sites is the set of sites, looked up by write key.
type Sites struct {
	byKey map[string]*Site
	list  []*Site
}

var siteID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ParseSites parses the -sites flag, "site=key1|key2@origin1|origin2,site2=key3":
// the write keys, then after "@" the allowed browser origins ("*": any).
// A site without "@origins" accepts no browser, only server-side SDKs.
// Use a sites file for everything else a site has.
func ParseSites(s string) (*Sites, error) {
	var list []Site
	for _, part := range splitComma(s) {
		id, keys, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("site %q: want site=key1|key2[@origin1|origin2]", part)
		}
		site := Site{ID: id}
		if i := strings.LastIndexByte(keys, '@'); i >= 0 {
			if o := keys[i+1:]; o == "*" || strings.HasPrefix(o, "http://") || strings.HasPrefix(o, "https://") {
				site.AllowedOrigins = strings.Split(o, "|")
				keys = keys[:i]
			}
		}
		site.WriteKeys = strings.Split(keys, "|")
		list = append(list, site)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("no sites in %q", s)
	}
	return NewSites(list)
}

// LoadSitesFile reads a JSON file holding an array of Site, for example
//
//	[{"id": "shop", "writeKeys": ["k1"], "allowedOrigins": ["https://shop.example"],
//	  "timeZone": "Asia/Shanghai", "ownDomains": ["shop.example"], "queryParams": ["page"]}]
func LoadSitesFile(path string) (*Sites, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read sites file: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var list []Site
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("sites file %s: %w", path, err)
	}
	sites, err := NewSites(list)
	if err != nil {
		return nil, fmt.Errorf("sites file %s: %w", path, err)
	}
	return sites, nil
}

// NewSites checks the sites and indexes them by write key.
func NewSites(list []Site) (*Sites, error) {
	s := &Sites{byKey: map[string]*Site{}}
	ids := map[string]bool{}
	for i := range list {
		site := list[i]
		if !siteID.MatchString(site.ID) {
			return nil, fmt.Errorf("site id %q: want 1 to 64 letters, digits, _ . -", site.ID)
		}
		if ids[site.ID] {
			return nil, fmt.Errorf("site %q is listed twice", site.ID)
		}
		ids[site.ID] = true
		if len(site.WriteKeys) == 0 {
			return nil, fmt.Errorf("site %q has no write key", site.ID)
		}
		for _, k := range site.WriteKeys {
			if k == "" || len(k) > 256 {
				return nil, fmt.Errorf("site %q has an empty or overlong write key", site.ID)
			}
			if other, dup := s.byKey[k]; dup {
				return nil, fmt.Errorf("a write key of site %q is also one of site %q", site.ID, other.ID)
			}
		}
		if site.TimeZone != "" {
			if _, err := time.LoadLocation(site.TimeZone); err != nil {
				return nil, fmt.Errorf("site %q: time zone %q: %w", site.ID, site.TimeZone, err)
			}
		}
		if site.CartAbandonAfter != "" {
			d, err := time.ParseDuration(site.CartAbandonAfter)
			if err != nil || d < time.Minute || d > 720*time.Hour {
				return nil, fmt.Errorf("site %q: cartAbandonAfter %q: want a duration from 1m to 720h, e.g. 30m", site.ID, site.CartAbandonAfter)
			}
		}
		for _, d := range site.OwnDomains {
			if d == "" || strings.ContainsAny(d, "/:@ ") {
				return nil, fmt.Errorf("site %q: own domain %q: want a host name such as shop.example", site.ID, d)
			}
		}
		site.traitPolicy = map[string]TraitAction{}
		for _, t := range site.HashTraits {
			site.traitPolicy[t] = TraitHash
		}
		for _, t := range site.DropTraits {
			if site.traitPolicy[t] == TraitHash {
				return nil, fmt.Errorf("site %q: trait %q is both hashed and dropped", site.ID, t)
			}
			site.traitPolicy[t] = TraitDrop
		}
		for _, o := range site.AllowedOrigins {
			if o == "*" {
				site.anyOrigin = true
				continue
			}
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return nil, fmt.Errorf("site %q: allowed origin %q: want scheme://host[:port], e.g. https://shop.example or https://*.shop.example", site.ID, o)
			}
			p := originPattern{scheme: u.Scheme, host: strings.ToLower(u.Host)}
			if h, ok := strings.CutPrefix(p.host, "*."); ok {
				p.host, p.wildcard = h, true
			}
			site.origins = append(site.origins, p)
		}
		sp := &site
		s.list = append(s.list, sp)
		for _, k := range site.WriteKeys {
			s.byKey[k] = sp
		}
	}
	if len(s.list) == 0 {
		return nil, fmt.Errorf("no sites")
	}
	return s, nil
}

// ByKey returns the site of a write key.
func (s *Sites) ByKey(key string) (*Site, bool) {
	site, ok := s.byKey[key]
	return site, ok
}

// List returns the sites in the order they were given.
func (s *Sites) List() []*Site { return slices.Clone(s.list) }

// OwnDomains returns each site's own domains by site id, for the
// processor's attribution (session.Config.OwnDomains).
func (s *Sites) OwnDomains() map[string][]string {
	m := make(map[string][]string)
	for _, site := range s.list {
		if len(site.OwnDomains) > 0 {
			m[site.ID] = slices.Clone(site.OwnDomains)
		}
	}
	return m
}

// ValueTiers are a site's RFM thresholds of the customer value tier: days
// since the last order scoring 5, 4, 3, 2 (at most; rising), orders and
// net revenue scoring 5, 4, 3, 2 (at least; falling), and the score sums
// (3..15) of tiers A, B, C, D (at least; falling).
type ValueTiers struct {
	RecencyDays [4]float64 `json:"recencyDays"`
	Orders      [4]float64 `json:"orders"`
	Revenue     [4]float64 `json:"revenue"`
	Tiers       [4]int     `json:"tiers"`
}

// ValueTiers returns the sites' valueTiers overrides by site id.
func (s *Sites) ValueTiers() map[string]ValueTiers {
	m := make(map[string]ValueTiers)
	for _, site := range s.list {
		if site.ValueTiers != nil {
			m[site.ID] = *site.ValueTiers
		}
	}
	return m
}

// CartAbandonAfter returns the sites' cartAbandonAfter overrides by site
// id, for the processor (cart.Config.SiteAbandonAfter).
func (s *Sites) CartAbandonAfter() map[string]time.Duration {
	m := make(map[string]time.Duration)
	for _, site := range s.list {
		if d, err := time.ParseDuration(site.CartAbandonAfter); err == nil {
			m[site.ID] = d
		}
	}
	return m
}

// AnyOrigin tells whether the site lets every browser origin send ("*").
func (s *Site) AnyOrigin() bool { return s.anyOrigin }

// NoOrigin tells whether the site lets no browser send (no allowedOrigins:
// server-side SDKs only).
func (s *Site) NoOrigin() bool { return !s.anyOrigin && len(s.origins) == 0 }

// TraitAction says what happens to the trait name before storage.
func (s *Site) TraitAction(name string) TraitAction { return s.traitPolicy[name] }

// HasTraitActions tells whether any trait is hashed or dropped.
func (s *Site) HasTraitActions() bool { return len(s.traitPolicy) > 0 }

// AllowsOrigin tells whether a browser on origin may send events with the
// site's write keys.
func (s *Site) AllowsOrigin(origin string) bool {
	if s.anyOrigin {
		return true
	}
	scheme, host, ok := strings.Cut(origin, "://")
	if !ok {
		return false
	}
	host = strings.ToLower(host)
	for _, p := range s.origins {
		if p.scheme != scheme {
			continue
		}
		if host == p.host || (p.wildcard && strings.HasSuffix(host, "."+p.host)) {
			return true
		}
	}
	return false
}

// AnyAllows tells whether some site allows origin; preflight requests
// carry no write key, so they are answered for the union of the sites.
func (s *Sites) AnyAllows(origin string) bool {
	for _, site := range s.list {
		if site.AllowsOrigin(origin) {
			return true
		}
	}
	return false
}

// splitComma splits a comma-separated list, dropping empty items.
func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
