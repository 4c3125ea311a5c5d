package collector

import (
	"net/url"
	"strings"
)

// URL cleaning. Page URLs and referrers keep their scheme, host and path;
// the fragment and any user:password@ are dropped; of the query string only
// allowlisted parameters stay: utm_*, ad click ids, the site's own
// QueryParams and, in referrers, search terms. Path segments and kept
// values that look like an email address, a phone number or a secret token
// are replaced by "[email]", "[phone]" or "[token]".

// searchParams are the query parameters search engines put the search
// terms in (Google q, Baidu wd/word, Sogou query, Yahoo p, Yandex text, 360
// q, Shenma q, Bing q), kept in referrers for organic keyword reports.
var searchParams = map[string]bool{"q": true, "wd": true, "word": true, "query": true, "p": true, "text": true, "keyword": true, "kw": true}

// clickIDParams are ad click ids kept in URLs and reported as
// context.campaign.clickIdKind (the processor's clickids.csv maps them to
// a source); other parameters ending in clid, clkid, braid or _vid count
// too, as the beacon reads them.
var clickIDParams = map[string]bool{
	"gclid": true, "gbraid": true, "wbraid": true, "dclid": true, "msclkid": true, "yclid": true,
	"bd_vid": true, "qhclickid": true, "uctrackid": true, "gdt_vid": true, "qz_gdt": true,
	"ttclid": true, "twclid": true, "li_fat_id": true, "fbclid": true, "clickid": true, "qclid": true,
}

func isClickID(k string) bool {
	return clickIDParams[k] || strings.HasSuffix(k, "clid") || strings.HasSuffix(k, "clkid") ||
		strings.HasSuffix(k, "braid") || (strings.HasSuffix(k, "_vid") && len(k) > 4)
}

// urlInfo is what cleaning a page URL learned from its query string.
type urlInfo struct {
	utmSource, utmMedium, utmCampaign, utmTerm, utmContent string
	clickKind, clickID                                     string
}

// cleaner cleans URLs for one site.
type cleaner struct {
	extra map[string]bool // site and flag QueryParams
}

func (c *cleaner) keep(k string, referrer bool) bool {
	return strings.HasPrefix(k, "utm_") || isClickID(k) || c.extra[k] || (referrer && searchParams[k])
}

// cleanURL returns s cleaned, and fills info (when not nil) from the
// query string. Strings without anything to clean are returned as they are,
// without allocating.
func (c *cleaner) cleanURL(s string, referrer bool, info *urlInfo) string {
	if !strings.ContainsAny(s, "?#@%+") && !suspiciousPath(s) {
		return s
	}
	orig := s
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	base, query, hasQuery := strings.Cut(s, "?")
	if i := strings.Index(base, "://"); i >= 0 {
		rest := base[i+3:]
		hostEnd := strings.IndexByte(rest, '/')
		if hostEnd < 0 {
			hostEnd = len(rest)
		}
		if at := strings.LastIndexByte(rest[:hostEnd], '@'); at >= 0 {
			base = base[:i+3] + rest[at+1:]
		}
	}
	base = redactPath(base)
	if !hasQuery {
		return base
	}
	q := c.cleanQuery(query, referrer, info)
	switch {
	case q == "":
		return base
	case q == query && len(base)+1+len(q) == len(s) && s == orig[:len(s)]:
		return s // nothing changed but the fragment: no copy
	}
	return base + "?" + q
}

// cleanQuery keeps the allowlisted parameters of a query string (without
// its "?").
func (c *cleaner) cleanQuery(query string, referrer bool, info *urlInfo) string {
	// While every pair is kept as it is, the answer is query itself, and
	// nothing is copied; b starts at the first change.
	var b []byte
	unchanged := true
	change := func(start int) {
		if unchanged {
			unchanged = false
			b = append(b, query[:start]...)
			b = bytesTrimSuffix(b, '&')
		}
	}
	for start := 0; start < len(query); {
		end := strings.IndexByte(query[start:], '&')
		if end < 0 {
			end = len(query)
		} else {
			end += start
		}
		pair := query[start:end]
		pairStart := start
		start = end + 1
		if pair == "" {
			change(pairStart)
			continue
		}
		rawKey, rawVal, _ := strings.Cut(pair, "=")
		key := rawKey
		if strings.ContainsAny(key, "%+") {
			if k, err := url.QueryUnescape(key); err == nil {
				key = k
			}
		}
		key = strings.ToLower(key)
		if !c.keep(key, referrer) {
			change(pairStart)
			continue
		}
		val := rawVal
		if strings.ContainsAny(val, "%+") {
			if v, err := url.QueryUnescape(val); err == nil {
				val = v
			}
		}
		click := isClickID(key)
		// Click ids are long numbers and random strings: only emails go.
		rules := textRules
		if click {
			rules = redactEmail
		}
		if red := redactText(val, rules); red != val {
			change(pairStart)
			val, pair = red, rawKey+"="+url.QueryEscape(red)
		}
		if info != nil {
			switch key {
			case "utm_source":
				info.utmSource = val
			case "utm_medium":
				info.utmMedium = val
			case "utm_campaign":
				info.utmCampaign = val
			case "utm_term":
				info.utmTerm = val
			case "utm_content":
				info.utmContent = val
			default:
				if click && info.clickKind == "" {
					info.clickKind, info.clickID = key, val
				}
			}
		}
		if !unchanged {
			if len(b) > 0 {
				b = append(b, '&')
			}
			b = append(b, pair...)
		}
	}
	if unchanged {
		return strings.TrimSuffix(query, "&")
	}
	return string(b)
}

func bytesTrimSuffix(b []byte, c byte) []byte {
	for len(b) > 0 && b[len(b)-1] == c {
		b = b[:len(b)-1]
	}
	return b
}

// cleanSearch cleans a "?a=b" search string (context.page.search).
func (c *cleaner) cleanSearch(s string) string {
	q, ok := strings.CutPrefix(s, "?")
	if !ok && s != "" && !strings.Contains(s, "=") {
		return s
	}
	q = c.cleanQuery(q, false, nil)
	if q == "" {
		return ""
	}
	return "?" + q
}

// suspiciousPath tells whether some path segment of s may need redacting:
// a cheap test before redactPath.
func suspiciousPath(s string) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '/' || c == '-' || c == '?' {
			run = 0
			continue
		}
		if run++; run >= 24 {
			return true
		}
	}
	return false
}

// redactPath replaces the path segments of u that hold an email address,
// a phone number or a token.
func redactPath(u string) string {
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		j := strings.IndexByte(u[i+3:], '/')
		if j < 0 {
			return u
		}
		start = i + 3 + j
	}
	var b []byte
	seg := start
	for i := start; i <= len(u); i++ {
		if i < len(u) && u[i] != '/' {
			continue
		}
		part := u[seg:i]
		if red := redactSegment(part); red != part {
			if b == nil {
				b = append(make([]byte, 0, len(u)), u[:seg]...)
			}
			b = append(b, red...)
		} else if b != nil {
			b = append(b, part...)
		}
		if b != nil && i < len(u) {
			b = append(b, '/')
		}
		seg = i + 1
	}
	if b == nil {
		return u
	}
	return string(b)
}

func looksLikeEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at < 1 || at == len(s)-1 {
		return false
	}
	dot := strings.LastIndexByte(s[at:], '.')
	return dot > 1 && dot < len(s[at:])-2
}

// looksLikePhone: 7 to 15 digits and nothing but + - . ( ) and spaces.
func looksLikePhone(s string) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '+' || c == '-' || c == '.' || c == '(' || c == ')' || c == ' ':
		default:
			return false
		}
	}
	return digits >= 7 && digits <= 15 && (s[0] == '+' || s[0] == '(' || digits >= 10)
}

// looksLikeToken: a JWT, or 32+ characters of a base64 or hex alphabet
// mixing letters and digits (slugs have hyphens between words).
func looksLikeToken(s string) bool {
	if strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2 {
		return true
	}
	if len(s) < 32 {
		return false
	}
	letters, digits := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letters++
		case c == '_' || c == '=' || c == '.':
		default:
			return false
		}
	}
	return letters > 0 && digits > 0
}
