package processor

import (
	"encoding/binary"
	"encoding/json"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/commerce"
)

// eventDecoder decodes the JSON events of the topic into shoptrail.Event
// exactly as encoding/json does, several times faster: at 100,000 events a
// second encoding/json alone would take most of a core.
//
// The fast path handles the shape the collector writes: the known field
// names, spelled exactly, strings without escapes in valid UTF-8, integer
// numbers and RFC 3339 times in UTC. Anything else (an unknown or
// differently cased field, an escape, a null, a type mismatch, malformed
// JSON) makes it start over with encoding/json, whose result or error is
// then the answer, so the two never differ (TestDecodeMatchesEncodingJSON).
//
// Short strings that repeat across events (site, event name, browser,
// campaign, path) are interned, which saves most allocations; a visitor's
// tab and address, too many to intern, are shared with the event before
// when they repeat it (parser.recent). An
// eventDecoder is not safe for concurrent use: one per partition worker.
type eventDecoder struct {
	strs map[string]string
	// last is the last string interned into each string field of the
	// event, by the field's offset in 16-byte words: most fields repeat
	// the event before far more often than not (site, type, library,
	// device), and comparing to it costs less than a map lookup.
	last [unsafe.Sizeof(shoptrail.Event{}) / 16]string
	// cp parses the events' e-commerce properties (see commerce).
	cp commerce.Parser
}

// maxInterned bounds the interned strings; the table starts over when full.
const maxInterned = 8192

func newEventDecoder() *eventDecoder {
	return &eventDecoder{strs: make(map[string]string, 256)}
}

// decode decodes data into e, which must be zero: the worker decodes into
// the slots of its batch, which Batch.reset clears in one pass when the
// batch was written (clearing each cold 720-byte slot here cost 5 % of the
// processor's CPU in the pipeline benchmark).
func (d *eventDecoder) decode(data []byte, e *shoptrail.Event) error {
	p := parser{b: data, d: d, e: e}
	if p.event(e) {
		return nil
	}
	*e = shoptrail.Event{}
	return json.Unmarshal(data, e)
}

// intern returns b as a string, shared with earlier equal ones.
func (d *eventDecoder) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > 200 {
		return string(b)
	}
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.strs) >= maxInterned {
		clear(d.strs)
	}
	d.strs[s] = s
	return s
}

// parser is the fast path: every method returns false (or ok false) when
// the input is not of the simple shape, and the caller falls back.
type parser struct {
	b []byte
	i int
	d *eventDecoder
	e *shoptrail.Event // being decoded
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) eat(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// plain skips the plain bytes of a string eight at a time (user agents
// and URLs are long), stopping at the first word that may hold a '"', a
// '\\', a control character or a non-ASCII byte: the caller goes on byte by
// byte from there.
func (p *parser) plain() {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for ; p.i+8 <= len(p.b); p.i += 8 {
		x := binary.LittleEndian.Uint64(p.b[p.i:])
		q, s := x^(lo*'"'), x^(lo*'\\')
		if ((x-lo*0x20)&^x|(q-lo)&^q|(s-lo)&^s|x)&hi != 0 {
			return
		}
	}
}

// str reads a string without escapes, in valid UTF-8, and returns its
// contents.
func (p *parser) str() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	ascii := true
	p.plain()
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return nil, false
}

// object reads an object, calling field with each key (after the colon);
// field reads the value and returns false to give up.
func (p *parser) object(field func(key []byte) bool) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return true
	}
	for {
		key, ok := p.str()
		if !ok || !p.eat(':') {
			return false
		}
		p.ws()
		if !field(key) {
			return false
		}
		if p.eat(',') {
			continue
		}
		return p.eat('}')
	}
}

func (p *parser) string(dst *string) bool {
	s, ok := p.str()
	if ok {
		*dst = string(s)
	}
	return ok
}

// interned reads a string into dst, a field of p.e, interned.
func (p *parser) interned(dst *string) bool {
	return p.shared(dst, true)
}

// recent reads a string into dst, a field of p.e, shared with the same
// field of the event before when equal, else copied: for values that
// repeat in a row (a tab's events, a visitor's address) but are too many
// to intern (each would take a slot of the table, which then starts over
// more often and loses the values that do repeat across visitors).
func (p *parser) recent(dst *string) bool {
	return p.shared(dst, false)
}

func (p *parser) shared(dst *string, intern bool) bool {
	s, ok := p.str()
	if !ok {
		return false
	}
	slot := (uintptr(unsafe.Pointer(dst)) - uintptr(unsafe.Pointer(p.e))) / 16
	if slot >= uintptr(len(p.d.last)) { // not a field of p.e
		*dst = p.d.intern(s)
		return true
	}
	last := &p.d.last[slot]
	if *last != string(s) {
		if intern {
			*last = p.d.intern(s)
		} else {
			*last = string(s)
		}
	}
	*dst = *last
	return true
}

// integer reads an integer that fits in 53 bits (what an int field holds
// on every platform and encoding/json reads exactly).
func (p *parser) integer(dst *int64) bool {
	p.ws()
	neg := false
	if p.i < len(p.b) && p.b[p.i] == '-' {
		neg = true
		p.i++
	}
	start := p.i
	var n int64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > 15 || (digits > 1 && p.b[start] == '0') {
		return false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return false
		}
	}
	if neg {
		n = -n
	}
	*dst = n
	return true
}

func (p *parser) boolean(dst *bool) bool {
	p.ws()
	switch {
	case len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "true":
		*dst = true
		p.i += 4
	case len(p.b)-p.i >= 5 && string(p.b[p.i:p.i+5]) == "false":
		*dst = false
		p.i += 5
	default:
		return false
	}
	return true
}

// time reads an RFC 3339 time in UTC: 2006-01-02T15:04:05[.fraction]Z.
func (p *parser) time(dst *time.Time) bool {
	s, ok := p.str()
	if !ok {
		return false
	}
	t, ok := parseUTC(s)
	if ok {
		*dst = t
	}
	return ok
}

func parseUTC(s []byte) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for j := i; j < i+n; j++ {
			c := s[j]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if rest := s[19 : len(s)-1]; len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
			return time.Time{}, false
		}
		frac, ok := num(20, len(rest)-1)
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(rest) {
			frac *= 10
		}
		nsec = frac
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

func daysIn(m time.Month, year int) int {
	if m == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int(m-1)%7%2
}

// raw reads any JSON value, checking it, and returns a copy of its text.
// A null is left to encoding/json.
func (p *parser) raw(dst *json.RawMessage) bool {
	p.ws()
	start := p.i
	if !p.skip(0) {
		return false
	}
	v := p.b[start:p.i]
	if string(v) == "null" {
		return false
	}
	*dst = append(json.RawMessage(nil), v...)
	return true
}

// skip reads one JSON value of any type, checking that it is valid JSON.
func (p *parser) skip(depth int) bool {
	if depth > 10000 {
		return false
	}
	p.ws()
	if p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.skipString()
	case c == '{':
		p.i++
		if p.eat('}') {
			return true
		}
		for {
			p.ws()
			if !p.skipString() || !p.eat(':') || !p.skip(depth+1) {
				return false
			}
			if p.eat(',') {
				continue
			}
			return p.eat('}')
		}
	case c == '[':
		p.i++
		if p.eat(']') {
			return true
		}
		for {
			if !p.skip(depth + 1) {
				return false
			}
			if p.eat(',') {
				continue
			}
			return p.eat(']')
		}
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return p.skipNumber()
	}
}

func (p *parser) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// skipString reads a string, escapes allowed, checking it.
func (p *parser) skipString() bool {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false
	}
	p.i++
	start := p.i
	ascii := true
	p.plain()
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return ascii || utf8.Valid(s)
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return false
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.b) {
					return false
				}
				for _, h := range p.b[p.i+2 : p.i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				p.i += 6
			default:
				return false
			}
			continue
		case c < 0x20:
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return false
}

// skipNumber reads a number in JSON's grammar.
func (p *parser) skipNumber() bool {
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	start := p.i
	if n := digits(); n == 0 || (n > 1 && p.b[start] == '0') {
		return false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// event reads a whole event; anything after it but whitespace fails.
func (p *parser) event(e *shoptrail.Event) bool {
	ok := p.object(func(key []byte) bool {
		switch string(key) {
		case "v":
			var v int64
			if !p.integer(&v) {
				return false
			}
			e.V = int(v)
			return true
		case "site":
			return p.interned(&e.Site)
		case "messageId":
			return p.string(&e.MessageID)
		case "type":
			return p.interned(&e.Type)
		case "event":
			return p.interned(&e.Event)
		case "name":
			return p.interned(&e.Name)
		case "anonymousId":
			return p.string(&e.AnonymousID)
		case "userId":
			return p.string(&e.UserID)
		case "groupId":
			return p.string(&e.GroupID)
		case "previousId":
			return p.string(&e.PreviousID)
		case "timestamp":
			return p.time(&e.Timestamp)
		case "originalTimestamp":
			return p.time(&e.OriginalTimestamp)
		case "sentAt":
			return p.time(&e.SentAt)
		case "receivedAt":
			return p.time(&e.ReceivedAt)
		case "context":
			return p.context(&e.Context)
		case "properties":
			return p.raw(&e.Properties)
		case "traits":
			return p.raw(&e.Traits)
		case "flags":
			return p.flags(&e.Flags)
		}
		return false
	})
	p.ws()
	return ok && p.i == len(p.b)
}

func (p *parser) flags(dst *[]string) bool {
	if !p.eat('[') {
		return false
	}
	f := []string{}
	if !p.eat(']') {
		for {
			s, ok := p.str()
			if !ok {
				return false
			}
			f = append(f, p.d.intern(s))
			if p.eat(',') {
				continue
			}
			if !p.eat(']') {
				return false
			}
			break
		}
	}
	*dst = f
	return true
}

func (p *parser) context(c *shoptrail.Context) bool {
	return p.object(func(key []byte) bool {
		switch string(key) {
		case "page":
			return p.object(func(key []byte) bool {
				switch string(key) {
				case "url":
					return p.string(&c.Page.URL)
				case "path":
					return p.interned(&c.Page.Path)
				case "referrer":
					return p.interned(&c.Page.Referrer)
				case "title":
					return p.interned(&c.Page.Title)
				case "search":
					return p.interned(&c.Page.Search)
				}
				return false
			})
		case "campaign":
			return p.object(func(key []byte) bool {
				switch string(key) {
				case "name":
					return p.interned(&c.Campaign.Name)
				case "source":
					return p.interned(&c.Campaign.Source)
				case "medium":
					return p.interned(&c.Campaign.Medium)
				case "term":
					return p.interned(&c.Campaign.Term)
				case "content":
					return p.interned(&c.Campaign.Content)
				case "clickIdKind":
					return p.interned(&c.Campaign.ClickIDKind)
				case "clickId":
					return p.string(&c.Campaign.ClickID)
				}
				return false
			})
		case "userAgent":
			return p.interned(&c.UserAgent)
		case "ip":
			return p.recent(&c.IP)
		case "library":
			return p.object(func(key []byte) bool {
				switch string(key) {
				case "name":
					return p.interned(&c.Library.Name)
				case "version":
					return p.interned(&c.Library.Version)
				}
				return false
			})
		case "locale":
			return p.interned(&c.Locale)
		case "timezone":
			return p.interned(&c.Timezone)
		case "device":
			return p.object(func(key []byte) bool {
				switch string(key) {
				case "class":
					return p.interned(&c.Device.Class)
				case "browser":
					return p.interned(&c.Device.Browser)
				case "os":
					return p.interned(&c.Device.OS)
				}
				return false
			})
		case "bot":
			return p.object(func(key []byte) bool {
				switch string(key) {
				case "isBot":
					return p.boolean(&c.Bot.IsBot)
				case "reason":
					return p.interned(&c.Bot.Reason)
				}
				return false
			})
		case "delivery":
			return p.object(func(key []byte) bool {
				switch string(key) {
				case "tab":
					return p.recent(&c.Delivery.Tab)
				case "seq":
					return p.integer(&c.Delivery.Seq)
				case "transport":
					return p.interned(&c.Delivery.Transport)
				}
				return false
			})
		}
		return false
	})
}

// hasCommerce tells whether e may have e-commerce properties: a track call
// with properties.
func hasCommerce(e *shoptrail.Event) bool {
	return e.Type == shoptrail.TypeTrack && len(e.Properties) > 0
}

// commerce parses the e-commerce properties of e (a decoded event with
// any, hasCommerce) into dst, interning its short strings.
func (d *eventDecoder) commerce(e *shoptrail.Event, dst *commerce.Props) {
	if d.cp.Intern == nil {
		d.cp.Intern = d.intern
	}
	d.cp.Parse(e.Properties, dst)
}
