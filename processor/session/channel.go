package session

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"

	"github.com/shoptrail/shoptrail"
)

// RulesVersion identifies the attribution data (sources.csv, referrers.csv,
// clickids.csv) and the channel rule table below. Every session row carries
// it, so that history classified by older rules can be found and
// re-classified. Bump it with any change to those files or to channelRules;
// TestRulesFingerprint fails until you do.
//
// Versions:
//
//	1  GA4 default channel group (2024 rules: Cross-network, Paid/Organic
//	   Shopping, Paid Other, Mobile Push Notifications) with this market's
//	   search engines, social and video apps, marketplaces and B2B platforms.
const RulesVersion uint16 = 1

// Default channel group names, as GA4 spells them.
const (
	ChannelDirect          = "Direct"
	ChannelCrossNetwork    = "Cross-network"
	ChannelPaidShopping    = "Paid Shopping"
	ChannelPaidSearch      = "Paid Search"
	ChannelPaidSocial      = "Paid Social"
	ChannelPaidVideo       = "Paid Video"
	ChannelDisplay         = "Display"
	ChannelPaidOther       = "Paid Other"
	ChannelOrganicShopping = "Organic Shopping"
	ChannelOrganicSocial   = "Organic Social"
	ChannelOrganicVideo    = "Organic Video"
	ChannelOrganicSearch   = "Organic Search"
	ChannelReferral        = "Referral"
	ChannelEmail           = "Email"
	ChannelAffiliates      = "Affiliates"
	ChannelAudio           = "Audio"
	ChannelSMS             = "SMS"
	ChannelMobilePush      = "Mobile Push Notifications"
	ChannelUnassigned      = "Unassigned"
)

// Placeholder values of Source, as GA4 writes them.
const (
	SourceDirect   = "(direct)"
	MediumNone     = "(none)"
	NotSet         = "(not set)"
	MediumOrganic  = "organic"
	MediumReferral = "referral"
)

// Category is a source's category in GA4's source-category list.
type Category uint8

// Source categories.
const (
	CategoryNone Category = iota
	CategorySearch
	CategorySocial
	CategoryShopping
	CategoryVideo
)

func (c Category) String() string {
	switch c {
	case CategorySearch:
		return "search"
	case CategorySocial:
		return "social"
	case CategoryShopping:
		return "shopping"
	case CategoryVideo:
		return "video"
	}
	return ""
}

// Embedded attribution data; see the comments at the top of each file.
var (
	//go:embed sources.csv
	sourcesCSV string
	//go:embed referrers.csv
	referrersCSV string
	//go:embed clickids.csv
	clickIDsCSV string
)

// ignoreSource is the referrers.csv source name of hosts that are no source.
const ignoreSource = "(ignore)"

type clickID struct{ source, medium string }

// Lookup tables built once from the embedded files; read-only afterwards, so
// safe for concurrent use.
var (
	categories map[string]Category // lower-case source name -> category
	hostExact  map[string]string   // "cn.bing.com" -> "bing"
	hostTLD    map[string]string   // "google" (from google.*) -> "google"
	hostSub    map[string]string   // "baidu.com" (from *.baidu.com) -> "baidu"
	clickIDs   map[string]clickID  // "gclid" -> google/cpc
)

func init() {
	if err := loadData(); err != nil {
		// The files are compiled in: a bad line is a bug caught by every test.
		panic(err)
	}
}

func loadData() error {
	categories = make(map[string]Category)
	err := eachCSVLine(sourcesCSV, "sources.csv", 2, func(f []string) error {
		var c Category
		switch f[1] {
		case "search":
			c = CategorySearch
		case "social":
			c = CategorySocial
		case "shopping":
			c = CategoryShopping
		case "video":
			c = CategoryVideo
		default:
			return fmt.Errorf("unknown category %q", f[1])
		}
		name := strings.ToLower(f[0])
		if _, dup := categories[name]; dup {
			return fmt.Errorf("duplicate source %q", name)
		}
		categories[name] = c
		return nil
	})
	if err != nil {
		return err
	}
	hostExact = make(map[string]string)
	hostTLD = make(map[string]string)
	hostSub = make(map[string]string)
	err = eachCSVLine(referrersCSV, "referrers.csv", 2, func(f []string) error {
		pat, name := strings.ToLower(f[0]), f[1]
		if name != ignoreSource && categories[strings.ToLower(name)] == CategoryNone {
			return fmt.Errorf("source %q of pattern %q has no category in sources.csv", name, pat)
		}
		var m map[string]string
		switch {
		case strings.HasPrefix(pat, "*."):
			m, pat = hostSub, pat[2:]
		case strings.HasSuffix(pat, ".*"):
			m, pat = hostTLD, pat[:len(pat)-2]
		default:
			m = hostExact
		}
		if pat == "" || strings.ContainsAny(pat, "*/: ") {
			return fmt.Errorf("bad host pattern %q", f[0])
		}
		if _, dup := m[pat]; dup {
			return fmt.Errorf("duplicate host pattern %q", f[0])
		}
		m[pat] = name
		return nil
	})
	if err != nil {
		return err
	}
	clickIDs = make(map[string]clickID)
	return eachCSVLine(clickIDsCSV, "clickids.csv", 3, func(f []string) error {
		kind := strings.ToLower(f[0])
		if _, dup := clickIDs[kind]; dup {
			return fmt.Errorf("duplicate click id %q", kind)
		}
		clickIDs[kind] = clickID{source: f[1], medium: f[2]}
		return nil
	})
}

// eachCSVLine calls fn with the fields of each data line of a small CSV file
// (no quoting; '#' starts a comment line; the first data line is a header).
func eachCSVLine(data, name string, fields int, fn func([]string) error) error {
	header := true
	for n, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if header {
			header = false
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != fields {
			return fmt.Errorf("%s:%d: want %d fields, got %d", name, n+1, fields, len(f))
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
			if f[i] == "" {
				return fmt.Errorf("%s:%d: empty field %d", name, n+1, i+1)
			}
		}
		if err := fn(f); err != nil {
			return fmt.Errorf("%s:%d: %w", name, n+1, err)
		}
	}
	return nil
}

// SourceCategory returns the category of a source name (case-insensitive),
// or CategoryNone.
func SourceCategory(source string) Category {
	if c, ok := categories[source]; ok {
		return c
	}
	return categories[strings.ToLower(source)]
}

// Source is where a session came from: the utm parameters of its landing
// page, or what Attribute derived from an ad click id or the referrer.
// Source and Medium are lower case; Campaign, Term and Content are as tagged.
type Source struct {
	Source      string
	Medium      string
	Campaign    string
	Term        string
	Content     string
	ClickIDKind string
}

// Direct is the Source of a visit without utm parameters, click id or
// external referrer.
var Direct = Source{Source: SourceDirect, Medium: MediumNone}

// IsDirect tells whether s is a direct visit: it carries no traffic source,
// and so never splits a session on a campaign change.
func (s Source) IsDirect() bool {
	return s.Source == SourceDirect && (s.Medium == MediumNone || s.Medium == NotSet)
}

// Attribute derives the traffic source of a hit from its page URL, referrer
// and campaign context, in this order:
//
//  1. utm parameters win: any of utm_source, utm_medium, utm_campaign makes
//     the hit tagged; a missing source or medium is "(not set)" (a missing
//     medium is taken from the click id table when the hit has a click id).
//  2. an ad click id (c.ClickIDKind, see clickids.csv) stands for a paid
//     click: gclid/gbraid/wbraid -> google/cpc, msclkid -> bing/cpc, bd_vid
//     -> baidu/cpc, qhclickid -> 360/cpc, uctrackid -> shenma/cpc, gdt_vid
//     -> tencent/cpc, ...; when the referrer is a known video, social or
//     shopping site, that site is the source.
//  3. an external referrer: a search engine (referrers.csv, category search)
//     -> engine/organic; another known site -> its name/referral, so the
//     channel rules put it in Organic Social, Organic Video or Organic
//     Shopping by the name's category; an unknown host -> host/referral
//     (without "www.").
//  4. otherwise, or when the referrer is one of the site's own domains
//     (ownDomains and their subdomains, the page URL's host with its
//     subdomains, or a payment gateway marked "(ignore)"): (direct)/(none).
//
// Attribute is pure and safe for concurrent use.
func Attribute(pageURL, referrer string, c shoptrail.Campaign, ownDomains []string) Source {
	s, _ := attribute(pageURL, referrer, &c, ownDomains)
	return s
}

// attribute is Attribute, also telling whether the referrer is external.
func attribute(pageURL, referrer string, c *shoptrail.Campaign, ownDomains []string) (Source, bool) {
	var refSource, refMedium string
	var external bool
	if referrer != "" {
		refSource, refMedium, external = referrerSource(referrer, hostOf(pageURL), ownDomains)
	}
	var kind string
	var ck clickID
	var hasClick bool
	if c.ClickIDKind != "" {
		kind = lowerASCII(strings.TrimSpace(c.ClickIDKind))
		ck, hasClick = clickIDs[kind]
	}
	if c.Source != "" || c.Medium != "" || c.Name != "" {
		s := Source{
			Source:      lowerASCII(strings.TrimSpace(c.Source)),
			Medium:      lowerASCII(strings.TrimSpace(c.Medium)),
			Campaign:    strings.TrimSpace(c.Name),
			Term:        strings.TrimSpace(c.Term),
			Content:     strings.TrimSpace(c.Content),
			ClickIDKind: kind,
		}
		if s.Source == "" {
			s.Source = NotSet
		}
		if s.Medium == "" {
			s.Medium = NotSet
			if hasClick {
				s.Medium = ck.medium
			}
		}
		return s, external
	}
	if hasClick {
		s := Source{Source: ck.source, Medium: ck.medium, Term: strings.TrimSpace(c.Term),
			Content: strings.TrimSpace(c.Content), ClickIDKind: kind}
		if external && ck.medium == "cpc" {
			switch SourceCategory(refSource) {
			case CategoryVideo, CategorySocial, CategoryShopping:
				s.Source = refSource
			}
		}
		return s, external
	}
	if !external {
		d := Direct
		d.ClickIDKind = kind
		return d, false
	}
	return Source{Source: refSource, Medium: refMedium, ClickIDKind: kind}, true
}

// referrerSource turns a referrer URL into a source and medium; external is
// false when there is no usable referrer or it is one of the site's own.
func referrerSource(referrer, pageHost string, ownDomains []string) (source, medium string, external bool) {
	host := hostOf(referrer)
	if host == "" || isOwnHost(host, pageHost, ownDomains) {
		return "", "", false
	}
	name, known := lookupHost(host)
	if name == ignoreSource {
		return "", "", false
	}
	if !known {
		name = strings.TrimPrefix(host, "www.")
	}
	if SourceCategory(name) == CategorySearch {
		return name, MediumOrganic, true
	}
	return name, MediumReferral, true
}

// lookupHost finds the source name of a referrer host: an exact pattern, then
// a name.* pattern, then the longest *.domain pattern.
func lookupHost(host string) (string, bool) {
	if n, ok := hostExact[host]; ok {
		return n, true
	}
	// name.*: strip a top-level domain of one or two labels of at most
	// three letters each (com, de, com.hk, co.uk).
	if i := strings.LastIndexByte(host, '.'); i > 0 && len(host)-i-1 <= 3 {
		if n, ok := hostTLD[host[:i]]; ok {
			return n, true
		}
		if j := strings.LastIndexByte(host[:i], '.'); j > 0 && i-j-1 <= 3 {
			if n, ok := hostTLD[host[:j]]; ok {
				return n, true
			}
		}
	}
	for d := host; ; {
		if n, ok := hostSub[d]; ok {
			return n, true
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return "", false
		}
		d = d[i+1:]
	}
}

// isOwnHost tells whether a referrer host belongs to the site: the page's
// host or a subdomain of it (ignoring "www."), or one of ownDomains or their
// subdomains.
func isOwnHost(host, pageHost string, ownDomains []string) bool {
	if pageHost != "" {
		if hostWithin(host, strings.TrimPrefix(pageHost, "www.")) {
			return true
		}
	}
	for _, d := range ownDomains {
		d = strings.TrimPrefix(strings.TrimPrefix(d, "*"), ".")
		if d != "" && hostWithin(host, lowerASCII(d)) {
			return true
		}
	}
	return false
}

// hostWithin tells whether host is domain or a subdomain of it.
func hostWithin(host, domain string) bool {
	if len(host) == len(domain) {
		return host == domain
	}
	return len(host) > len(domain) && host[len(host)-len(domain)-1] == '.' && host[len(host)-len(domain):] == domain
}

// hostOf returns the lower-case host of an http(s) or android-app URL (or a
// scheme-relative "//host/..." one), without port, user info or trailing
// dot; "" for anything else. One pass, no allocation unless the host has
// upper-case letters.
func hostOf(u string) string {
	switch {
	case strings.HasPrefix(u, "https://"):
		u = u[8:]
	case strings.HasPrefix(u, "http://"):
		u = u[7:]
	case hasPrefixFold(u, "https://"):
		u = u[8:]
	case hasPrefixFold(u, "http://"):
		u = u[7:]
	case hasPrefixFold(u, "android-app://"):
		u = u[14:]
	case strings.HasPrefix(u, "//"):
		u = u[2:]
	default:
		return ""
	}
	start, end, colon, upper := 0, len(u), -1, false
scan:
	for i := 0; i < len(u); i++ {
		switch c := u[i]; {
		case c == '/' || c == '?' || c == '#' || c == '\\':
			end = i
			break scan
		case c == '@':
			start, colon, upper = i+1, -1, false
		case c == ':':
			colon = i
		case c == ']':
			colon = -1 // a colon inside an IPv6 literal is no port
		case 'A' <= c && c <= 'Z':
			upper = true
		}
	}
	if colon >= start {
		end = colon
	}
	h := u[start:end]
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		} else {
			return ""
		}
	}
	h = strings.TrimSuffix(h, ".")
	if upper {
		h = lowerASCII(h)
	}
	return h
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// lowerASCII lower-cases ASCII letters, without allocating when there are
// none to change (the common case); other bytes are left alone, so the
// Chinese names in sources.csv match as written.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// The channel rules: GA4's default channel group, evaluated in order, first
// match wins, case-insensitive. Each rule is a conjunction of clauses and
// each clause a disjunction of conditions, so the table reads like Google's
// definitions (support.google.com/analytics/answer/9756891).
type field uint8

const (
	fieldSource field = iota
	fieldMedium
	fieldCampaign
)

type op uint8

const (
	opIs       op = iota // equals one of vals
	opContains           // contains one of vals
	opSuffix             // ends with one of vals
	opMatches            // matches re (anchored by the pattern itself)
	opCategory           // source is in the category cat
)

type cond struct {
	field field
	op    op
	vals  []string
	re    *regexp.Regexp
	cat   Category
}

type rule struct {
	channel string
	all     [][]cond // AND of ORs
}

func is(f field, vals ...string) cond       { return cond{field: f, op: opIs, vals: vals} }
func contains(f field, vals ...string) cond { return cond{field: f, op: opContains, vals: vals} }
func suffix(f field, vals ...string) cond   { return cond{field: f, op: opSuffix, vals: vals} }
func matches(f field, re *regexp.Regexp) cond {
	return cond{field: f, op: opMatches, re: re}
}
func inCategory(c Category) cond { return cond{field: fieldSource, op: opCategory, cat: c} }
func anyOf(c ...cond) []cond     { return c }

var (
	// paidMedium is GA4's paid medium pattern.
	paidMedium = regexp.MustCompile(`^(.*cp.*|ppc|retargeting|paid.*)$`)
	// shopCampaign is GA4's shopping campaign pattern.
	shopCampaign = regexp.MustCompile(`^(.*(([^a-df-z]|^)shop|shopping).*)$`)
)

var channelRules = []rule{
	{ChannelDirect, [][]cond{
		anyOf(is(fieldSource, SourceDirect)),
		anyOf(is(fieldMedium, NotSet, MediumNone)),
	}},
	{ChannelCrossNetwork, [][]cond{
		anyOf(contains(fieldCampaign, "cross-network")),
	}},
	{ChannelPaidShopping, [][]cond{
		anyOf(inCategory(CategoryShopping), matches(fieldCampaign, shopCampaign)),
		anyOf(matches(fieldMedium, paidMedium)),
	}},
	{ChannelPaidSearch, [][]cond{
		anyOf(inCategory(CategorySearch)),
		anyOf(matches(fieldMedium, paidMedium)),
	}},
	{ChannelPaidSocial, [][]cond{
		anyOf(inCategory(CategorySocial)),
		anyOf(matches(fieldMedium, paidMedium)),
	}},
	{ChannelPaidVideo, [][]cond{
		anyOf(inCategory(CategoryVideo)),
		anyOf(matches(fieldMedium, paidMedium)),
	}},
	{ChannelDisplay, [][]cond{
		anyOf(is(fieldMedium, "display", "banner", "expandable", "interstitial", "cpm")),
	}},
	{ChannelPaidOther, [][]cond{
		anyOf(matches(fieldMedium, paidMedium)),
	}},
	{ChannelOrganicShopping, [][]cond{
		anyOf(inCategory(CategoryShopping), matches(fieldCampaign, shopCampaign)),
	}},
	{ChannelOrganicSocial, [][]cond{
		anyOf(inCategory(CategorySocial),
			is(fieldMedium, "social", "social-network", "social-media", "sm", "social network", "social media")),
	}},
	{ChannelOrganicVideo, [][]cond{
		anyOf(inCategory(CategoryVideo), contains(fieldMedium, "video")),
	}},
	{ChannelOrganicSearch, [][]cond{
		anyOf(inCategory(CategorySearch), is(fieldMedium, MediumOrganic)),
	}},
	{ChannelReferral, [][]cond{
		anyOf(is(fieldMedium, MediumReferral, "app", "link")),
	}},
	{ChannelEmail, [][]cond{
		anyOf(is(fieldSource, "email", "e-mail", "e_mail", "e mail"),
			is(fieldMedium, "email", "e-mail", "e_mail", "e mail")),
	}},
	{ChannelAffiliates, [][]cond{
		anyOf(is(fieldMedium, "affiliate")),
	}},
	{ChannelAudio, [][]cond{
		anyOf(is(fieldMedium, "audio")),
	}},
	{ChannelSMS, [][]cond{
		anyOf(is(fieldSource, "sms"), is(fieldMedium, "sms")),
	}},
	{ChannelMobilePush, [][]cond{
		anyOf(suffix(fieldMedium, "push"), contains(fieldMedium, "mobile", "notification"),
			is(fieldSource, "firebase")),
	}},
}

// Channel returns the default channel group of a source, medium and
// campaign name: the first of channelRules that matches (case-insensitive),
// or Unassigned.
func Channel(source, medium, campaign string) string {
	in := [3]string{lowerASCII(source), lowerASCII(medium), lowerASCII(campaign)}
	cat := SourceCategory(in[fieldSource])
	for i := range channelRules {
		if channelRules[i].match(&in, cat) {
			return channelRules[i].channel
		}
	}
	return ChannelUnassigned
}

func (r *rule) match(in *[3]string, cat Category) bool {
	for _, clause := range r.all {
		ok := false
		for i := range clause {
			if clause[i].match(in, cat) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (c *cond) match(in *[3]string, cat Category) bool {
	v := in[c.field]
	switch c.op {
	case opCategory:
		return cat == c.cat && cat != CategoryNone
	case opMatches:
		return c.re.MatchString(v)
	}
	for _, want := range c.vals {
		switch c.op {
		case opIs:
			if v == want {
				return true
			}
		case opContains:
			if strings.Contains(v, want) {
				return true
			}
		case opSuffix:
			if strings.HasSuffix(v, want) {
				return true
			}
		}
	}
	return false
}
