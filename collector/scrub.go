package collector

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/shoptrail/shoptrail"
)

// Scrubbing is the one privacy step every stored string goes through:
// sanitize rewrites a whole message, as parsed and before anything reads
// it, and both the event built from it and a dead letter of it (the
// message as sent) are made of its result. Nothing is cleaned anywhere
// else. The rules, by where a string sits in the message:
//
//   - kept verbatim: the ids (messageId, anonymousId, userId, groupId,
//     previousId; in properties and products the id keys order_id,
//     product_id, sku, cart_id, checkout_id, promotion_id, wishlist_id,
//     list_id, coupon_id) — they are keys the shop chose — and traits
//     (traits, context.traits), which a shop sends on purpose, except
//     the site's hashTraits (replaced by "sha256:" and the hex SHA-256 of
//     the value, trimmed and lower-cased) and dropTraits (removed);
//   - removed: writeKey (a message may carry it; it is not data);
//   - context.ip: anonymized as -privacy.ip says;
//   - url and referrer (in context.page, properties and products, at any
//     depth of properties): cleaned as URLs (cleanURL: fragment and
//     credentials dropped, only allowlisted query parameters kept, emails,
//     phones and tokens in the path and kept values redacted); search: a
//     query string cleaned the same way; path: a URL path;
//   - every other string and every object key, anywhere in the message:
//     emails, phone numbers and tokens inside it become [email], [phone],
//     [token] (redactText).
//
// A message whose objects repeat a key is rejected (decoders downstream
// would read another copy than the collector checked); its dead letter is
// scrubbed all the same, every copy of the key.

// sanitize scrubs v in place; it returns the error of the first duplicated
// key, after scrubbing everything.
func (rq *request) sanitize(v *fastjson.Value) *fieldError {
	rq.dup, rq.renames = nil, rq.renames[:0]
	rq.pageInfo, rq.propsInfo = urlInfo{}, urlInfo{}
	o, err := v.Object()
	if err != nil {
		rq.walkText(v)
		return nil
	}
	kc := rq.keyCheck(o, "", true)
	var drop bool
	o.Visit(func(kb []byte, v *fastjson.Value) {
		kc.add(view(kb))
		switch string(kb) {
		case "messageId", "anonymousId", "userId", "groupId", "previousId":
			// verbatim
		case "writeKey":
			drop = true
		case "traits":
			rq.traits(v)
		case "context":
			rq.sanitizeContext(v)
		case "properties":
			rq.sanitizeProps(v, "properties", &rq.propsInfo)
		default:
			rq.walkText(v)
		}
	})
	if drop {
		o.Del("writeKey")
	}
	rq.renameKeys(o)
	return rq.dup
}

func (rq *request) sanitizeContext(v *fastjson.Value) {
	o, err := v.Object()
	if err != nil {
		rq.walkText(v)
		return
	}
	kc := rq.keyCheck(o, "context", true)
	dropIP := false
	o.Visit(func(kb []byte, v *fastjson.Value) {
		kc.add(view(kb))
		switch string(kb) {
		case "ip":
			if v.Type() != fastjson.TypeString || rq.s.cfg.IPMode == "drop" {
				dropIP = true
				return
			}
			if rq.s.cfg.IPMode == "raw" {
				return
			}
			b, _ := v.StringBytes()
			rq.setString(v, rq.s.anonymizeString(string(b), rq))
		case "traits":
			rq.traits(v)
		case "page":
			p, err := v.Object()
			if err != nil {
				rq.walkText(v)
				return
			}
			rq.sanitizeURLs(p, "context.page", &rq.pageInfo)
			rq.renameKeys(p)
		default:
			rq.walkText(v)
		}
	})
	if dropIP {
		o.Del("ip")
	}
	rq.renameKeys(o)
}

// sanitizeProps scrubs properties (and their nested objects): URLs as
// URLs, ids verbatim, everything else as text.
func (rq *request) sanitizeProps(v *fastjson.Value, field string, info *urlInfo) {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		rq.sanitizeURLs(o, field, info)
		rq.renameKeys(o)
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, x := range a {
			rq.sanitizeProps(x, field, nil)
		}
	default:
		rq.walkText(v)
	}
}

// sanitizeURLs scrubs an object whose url, referrer, search and path are
// URLs (context.page, properties); info, when not nil, learns from url;
// field names the object in errors.
func (rq *request) sanitizeURLs(o *fastjson.Object, field string, info *urlInfo) {
	kc := rq.keyCheck(o, field, true)
	o.Visit(func(kb []byte, v *fastjson.Value) {
		kc.add(view(kb))
		k := view(kb)
		if v.Type() != fastjson.TypeString {
			if v.Type() == fastjson.TypeObject || v.Type() == fastjson.TypeArray {
				rq.sanitizeProps(v, k, nil)
			}
			return
		}
		b, _ := v.StringBytes()
		s := view(b)
		var c string
		switch {
		case k == "url":
			c = rq.cleaner.cleanURL(s, false, info)
		case k == "referrer":
			c = rq.cleaner.cleanURL(s, true, nil)
		case k == "search":
			c = rq.cleaner.cleanSearch(s)
		case k == "path":
			c = redactPath(s)
		case rq.textClean || idKeys[k]:
			return
		default:
			c = redactText(s, textRules)
		}
		if c != s {
			rq.setString(v, c)
		}
	})
}

// walkText redacts every string and key of v (and checks its objects'
// keys for duplicates).
func (rq *request) walkText(v *fastjson.Value) {
	switch v.Type() {
	case fastjson.TypeString:
		if rq.textClean {
			return
		}
		b, _ := v.StringBytes()
		if c := redactText(view(b), textRules); c != view(b) {
			rq.setString(v, c)
		}
	case fastjson.TypeObject:
		o, _ := v.Object()
		kc := rq.keyCheck(o, "", true)
		o.Visit(func(kb []byte, x *fastjson.Value) {
			kc.add(view(kb))
			rq.walkText(x)
		})
		rq.renameKeys(o)
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, x := range a {
			rq.walkText(x)
		}
	}
}

// traits applies the site's trait policy: hashTraits hashed, dropTraits
// removed, everything else verbatim (a shop sends traits on purpose).
func (rq *request) traits(v *fastjson.Value) {
	o, err := v.Object()
	if err != nil {
		rq.walkText(v) // no traits: scrubbed as any other value
		return
	}
	kc := rq.keyCheck(o, "traits", false)
	o.Visit(func(kb []byte, _ *fastjson.Value) { kc.add(view(kb)) })
	site := rq.site
	if !site.HasTraitActions() {
		return
	}
	var drops []string
	o.Visit(func(kb []byte, x *fastjson.Value) {
		switch site.TraitAction(view(kb)) {
		case shoptrail.TraitDrop:
			drops = append(drops, string(kb))
		case shoptrail.TraitHash:
			if isNull(x) {
				return
			}
			var raw string
			if x.Type() == fastjson.TypeString {
				b, _ := x.StringBytes()
				raw = string(b)
			} else {
				raw = string(x.MarshalTo(nil))
			}
			sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(raw))))
			rq.setString(x, "sha256:"+hex.EncodeToString(sum[:]))
		}
	})
	for _, k := range drops {
		o.Del(k)
	}
}

// keyCheck watches an object's keys while the visit its caller makes
// anyway goes on: the first key repeated anywhere becomes rq.dup, and,
// with rename, keys holding an email, a phone or a token are queued for
// renameKeys (after the visit).
type keyCheck struct {
	rq     *request
	o      *fastjson.Object
	field  string // the object's path in errors ("" at the top)
	rename bool
	n      int
	keys   [8]string
	seen   map[string]struct{} // beyond 8 keys
}

func (rq *request) keyCheck(o *fastjson.Object, field string, rename bool) keyCheck {
	return keyCheck{rq: rq, o: o, field: field, rename: rename && !rq.textClean}
}

func (kc *keyCheck) add(k string) {
	rq := kc.rq
	if kc.rename {
		if c := redactText(k, textRules); c != k {
			rq.renames = append(rq.renames, keyRename{kc.o, strings.Clone(k), c})
		}
	}
	if rq.dup != nil {
		return
	}
	repeated := false
	if kc.seen == nil {
		for _, p := range kc.keys[:kc.n] {
			if p == k {
				repeated = true
				break
			}
		}
		if !repeated {
			if kc.n < len(kc.keys) {
				kc.keys[kc.n] = k
				kc.n++
			} else {
				kc.seen = make(map[string]struct{}, 32)
				for _, p := range kc.keys {
					kc.seen[p] = struct{}{}
				}
				kc.seen[k] = struct{}{}
			}
		}
	} else {
		_, repeated = kc.seen[k]
		kc.seen[k] = struct{}{}
	}
	if repeated {
		name := truncate(redactText(k, textRules), 64)
		if kc.field != "" {
			name = kc.field + "." + name
		}
		rq.dup = invalid(name, "is given twice")
	}
}

type keyRename struct {
	o        *fastjson.Object
	from, to string
}

// renameKeys renames o's keys queued by keyCheck (a renamed key that
// meets another keeps the last value).
func (rq *request) renameKeys(o *fastjson.Object) {
	if len(rq.renames) == 0 {
		return
	}
	rest := rq.renames[:0]
	for _, r := range rq.renames {
		if r.o != o {
			rest = append(rest, r)
			continue
		}
		for {
			v := o.Get(r.from)
			if v == nil {
				break
			}
			o.Del(r.from)
			o.Set(r.to, v)
		}
	}
	rq.renames = rest
}

// setString replaces the value v in place (every copy of a repeated key
// is its own value, so each is replaced).
func (rq *request) setString(v *fastjson.Value, s string) {
	*v = *rq.ps.arena.NewString(s)
}

// redactRules say which shapes redactText replaces.
type redactRules uint8

const (
	redactEmail     redactRules = 1 << iota
	redactPhone                 // '+' or '(' and 7 to 15 digits, or 10 to 15 digits
	redactPlusPhone             // only '+' or '(' and 7 to 15 digits (paths: ids are long numbers)
	redactToken
)

const textRules = redactEmail | redactPhone | redactToken

// redactText replaces the emails, phone numbers and tokens inside s by
// [email], [phone] and [token]. A string without any is returned as it
// is, without allocating.
//
//   - email: local@domain.tld, the local part of letters, digits and
//     ._%+-, the domain of letters, digits, . and -, ending in a dot and
//     two or more characters;
//   - phone: a run of digits and + - . ( ) (and spaces when it starts with
//   - or ( ), standing apart from letters and digits, holding 7 to 15
//     digits and starting with + or ( — or, without them and without
//     spaces, 10 to 15 digits (a Chinese mobile number, 13800138000); a
//     decimal number (digits and one dot) is no phone;
//   - token: a JWT (eyJ… with two dots), or 32 or more letters, digits,
//     _ and . mixing letters and digits (a hex or base64 secret; slugs
//     have hyphens).
func redactText(s string, rules redactRules) string {
	if !mayNeedRedacting(s) {
		return s
	}
	// Until nothing changes (a redaction can end a run that hid another
	// shape, e.g. "(0000000 000…A000" keeps its phone behind a token), so
	// that redacting twice is redacting once.
	for range 4 {
		t := redactOnce(s, rules)
		if t == s {
			break
		}
		s = t
	}
	return s
}

func redactOnce(s string, rules redactRules) string {
	var b []byte
	last := 0 // s[:last] is in b (or unchanged)
	emit := func(start, end int, with string) {
		if b == nil {
			b = make([]byte, 0, len(s))
		}
		b = append(b, s[last:start]...)
		b = append(b, with...)
		last = end
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '@' {
			if rules&redactEmail == 0 {
				continue
			}
			l := i
			for l > last && isEmailLocal(s[l-1]) {
				l--
			}
			r := i + 1
			for r < len(s) && isEmailDomain(s[r]) {
				r++
			}
			for r > i+1 && (s[r-1] == '.' || s[r-1] == '-') {
				r--
			}
			if l < i && looksLikeEmail(s[l:r]) {
				emit(l, r, "[email]")
				i = r - 1
			}
			continue
		}
		if rules&(redactPhone|redactPlusPhone) != 0 && (c == '+' || c == '(' || isDigit(c)) && (i == 0 || phoneMayFollow(s[i-1])) {
			if end := phoneEnd(s, i, rules&redactPhone != 0); end > 0 {
				emit(i, end, "[phone]")
				i = end - 1
				continue
			}
		}
		if rules&redactToken != 0 && isTokenChar(c) && (i == 0 || !isTokenChar(s[i-1])) {
			j := i
			if strings.HasPrefix(s[i:], "eyJ") {
				for j < len(s) && (isTokenChar(s[j]) || s[j] == '-') {
					j++
				}
				if strings.Count(s[i:j], ".") == 2 {
					emit(i, j, "[token]")
					i = j - 1
					continue
				}
				j = i
			}
			for j < len(s) && isTokenChar(s[j]) {
				j++
			}
			if j-i >= 32 && looksLikeToken(s[i:j]) {
				emit(i, j, "[token]")
				i = j - 1
				continue
			}
		}
	}
	if b == nil {
		return s
	}
	b = append(b, s[last:]...)
	return string(b)
}

// mayNeedRedacting is a cheap, conservative test before redactText: false
// only when redactText would change nothing. It looks for the shapes
// redactText looks for, counted more loosely: an '@' (email), 7 digits
// after a + or ( or 10 among phone separators (phone), 32 token
// characters in a row (token), "eyJ" (JWT).
func mayNeedRedacting[T string | []byte](s T) bool {
	if len(s) < 32 {
		// No run of 32 token characters fits: only an '@', a 'J' (of
		// "eyJ") or 7 digits (a phone) can make the answer true, so a
		// string with none of them is passed after a simpler loop.
		digits := 0
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c-'0' < 10 {
				digits++
			} else if c == '@' || c == 'J' {
				return mayNeedRedactingScan(s)
			}
		}
		if digits < 7 {
			return false
		}
	}
	return mayNeedRedactingScan(s)
}

// mayNeedRedactingScan is mayNeedRedacting's full scan.
func mayNeedRedactingScan[T string | []byte](s T) bool {
	digits, run, dots, others := 0, 0, 0, 0
	open := false     // the digits follow a + or (
	afterDot := false // the last byte was a dot
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch byteClass[c] {
		case clsLetter:
			run++
			digits, dots, others, open, afterDot = 0, 0, 0, false, false
			if run >= 32 || c == 'J' && i >= 2 && s[i-2] == 'e' && s[i-1] == 'y' {
				return true
			}
			continue
		case clsDigit:
			if afterDot {
				dots++
				afterDot = false
			}
			digits++
			run++
		case clsDot:
			run++
			afterDot = true
		case clsOpen:
			if digits == 0 {
				open = true
			}
			run, others, afterDot = 0, others+1, false
		case clsSep:
			run, others, afterDot = 0, others+1, false
		case clsAt:
			return true
		default:
			run, digits, dots, others, open, afterDot = 0, 0, 0, 0, false, false
			continue
		}
		// A decimal number (digits and one dot) is no phone.
		if run >= 32 || (open && digits >= 7) || (digits >= 10 && (dots != 1 || others > 0)) {
			return true
		}
	}
	return false
}

// Byte classes of mayNeedRedacting.
const (
	clsOther  = iota
	clsLetter // letters and _: token characters, and they end a phone
	clsDigit
	clsDot  // a token character and a phone separator
	clsOpen // + (
	clsSep  // - ) and space: phone separators
	clsAt
)

var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
			t[c] = clsLetter
		case c >= '0' && c <= '9':
			t[c] = clsDigit
		case c == '.':
			t[c] = clsDot
		case c == '+' || c == '(':
			t[c] = clsOpen
		case c == '-' || c == ')' || c == ' ':
			t[c] = clsSep
		case c == '@':
			t[c] = clsAt
		}
	}
	return t
}()

// maxPhoneRun bounds the scan for a phone number from one position, so
// redacting stays linear in the text.
const maxPhoneRun = 40

// phoneEnd returns the end of the phone number starting at s[i], or 0.
func phoneEnd(s string, i int, bare bool) int {
	open := s[i] == '+' || s[i] == '('
	if !open && !bare {
		return 0
	}
	digits, dots, others, end := 0, 0, 0, 0
	capped := true // the run goes on past maxPhoneRun
scan:
	for j := i; j < i+maxPhoneRun; j++ {
		if j == len(s) {
			capped = false
			break
		}
		switch c := s[j]; {
		case isDigit(c):
			digits++
			end = j + 1
		case c == '.':
			if j+1 < len(s) && isDigit(s[j+1]) {
				dots++ // a dot between digits (a sentence's full stop is none)
			}
		case (c == ')' || c == '(' || c == '+') && !open:
			// a bare phone is digits, dots and hyphens
			capped = false
			break scan
		case c == ')':
			others++
			end = j + 1
		case c == '-' || c == '(' || c == '+':
			others++
		case c == ' ' && open && j+1 < len(s) && s[j+1] != ' ':
		default:
			capped = false
			break scan
		}
	}
	// A phone stands apart from letters and digits; a run cut at
	// maxPhoneRun is judged on what was read.
	if end == 0 || (!capped && end < len(s) && isAlnum(s[end])) {
		return 0
	}
	if open {
		if digits >= 7 {
			return end
		}
		return 0
	}
	if digits > 15 {
		return 0
	}
	if digits >= 10 && !(dots == 1 && others == 0) {
		return end
	}
	return 0
}

// phoneMayFollow tells whether a phone number may start after c: not
// inside a word or a number, nor right after a redaction.
func phoneMayFollow(c byte) bool {
	return !isAlnum(c) && c != '.' && c != '-' && c != ']'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
func isTokenChar(c byte) bool { return isAlnum(c) || c == '_' || c == '.' }
func isEmailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}
func isEmailDomain(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

// redactSegment redacts a URL path segment: emails, tokens, and phones
// written with + or ( (a bare long number in a path is an id).
func redactSegment(p string) string {
	if len(p) < 5 { // the shortest shape is a JWT: "eyJ.."
		return p
	}
	d := p
	if strings.Contains(p, "%") {
		if x, err := url.PathUnescape(p); err == nil {
			d = x
		}
	}
	red := redactText(d, redactEmail|redactPlusPhone|redactToken)
	if red == d {
		return p
	}
	if d != p {
		return url.PathEscape(red)
	}
	return red
}
