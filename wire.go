package shoptrail

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The wire format of Event is its JSON as encoding/json marshals it (the
// struct tags in event.go). AppendJSON is the collector's fast encoder of
// it; the processor's fast decoder reads it back, and FuzzEventRoundTrip
// (processor) checks the two against each other and against
// encoding/json.

// AppendJSON appends e as JSON, the way encoding/json marshals Event (same
// names, omitempty and omitzero rules, times as RFC 3339 with
// nanoseconds), several times faster and without allocating. Properties
// and Traits must be valid JSON; they are copied as they are.
// TestEncodeMatchesEncodingJSON fills every field of Event by reflection,
// so a field added to Event fails it until it is added here.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.V), 10)
	b = appendField(b, "site", e.Site, false)
	b = appendField(b, "messageId", e.MessageID, false)
	b = appendField(b, "type", e.Type, false)
	b = appendField(b, "event", e.Event, true)
	b = appendField(b, "name", e.Name, true)
	b = appendField(b, "anonymousId", e.AnonymousID, true)
	b = appendField(b, "userId", e.UserID, true)
	b = appendField(b, "groupId", e.GroupID, true)
	b = appendField(b, "previousId", e.PreviousID, true)
	b = appendTime(b, "timestamp", e.Timestamp, false)
	b = appendTime(b, "originalTimestamp", e.OriginalTimestamp, true)
	b = appendTime(b, "sentAt", e.SentAt, true)
	b = appendTime(b, "receivedAt", e.ReceivedAt, false)

	c := &e.Context
	b = append(b, `,"context":{`...)
	n := len(b)
	if c.Page != (Page{}) {
		b = append(b, `,"page":{`...)
		m := len(b)
		b = appendField(b, "url", c.Page.URL, true)
		b = appendField(b, "path", c.Page.Path, true)
		b = appendField(b, "referrer", c.Page.Referrer, true)
		b = appendField(b, "title", c.Page.Title, true)
		b = appendField(b, "search", c.Page.Search, true)
		b = closeObject(b, m)
	}
	if c.Campaign != (Campaign{}) {
		b = append(b, `,"campaign":{`...)
		m := len(b)
		b = appendField(b, "name", c.Campaign.Name, true)
		b = appendField(b, "source", c.Campaign.Source, true)
		b = appendField(b, "medium", c.Campaign.Medium, true)
		b = appendField(b, "term", c.Campaign.Term, true)
		b = appendField(b, "content", c.Campaign.Content, true)
		b = appendField(b, "clickIdKind", c.Campaign.ClickIDKind, true)
		b = appendField(b, "clickId", c.Campaign.ClickID, true)
		b = closeObject(b, m)
	}
	b = appendField(b, "userAgent", c.UserAgent, true)
	b = appendField(b, "ip", c.IP, true)
	if c.Library != (Library{}) {
		b = append(b, `,"library":{`...)
		m := len(b)
		b = appendField(b, "name", c.Library.Name, true)
		b = appendField(b, "version", c.Library.Version, true)
		b = closeObject(b, m)
	}
	b = appendField(b, "locale", c.Locale, true)
	b = appendField(b, "timezone", c.Timezone, true)
	if c.Device != (Device{}) {
		b = append(b, `,"device":{`...)
		m := len(b)
		b = appendField(b, "class", c.Device.Class, true)
		b = appendField(b, "browser", c.Device.Browser, true)
		b = appendField(b, "os", c.Device.OS, true)
		b = closeObject(b, m)
	}
	if c.Bot != (Bot{}) {
		b = append(b, `,"bot":{`...)
		m := len(b)
		if c.Bot.IsBot {
			b = append(b, `,"isBot":true`...)
		}
		b = appendField(b, "reason", c.Bot.Reason, true)
		b = closeObject(b, m)
	}
	if c.Delivery != (Delivery{}) {
		b = append(b, `,"delivery":{`...)
		m := len(b)
		b = appendField(b, "tab", c.Delivery.Tab, true)
		if c.Delivery.Seq != 0 {
			b = append(b, `,"seq":`...)
			b = strconv.AppendInt(b, c.Delivery.Seq, 10)
		}
		b = appendField(b, "transport", c.Delivery.Transport, true)
		b = closeObject(b, m)
	}
	b = closeObject(b, n)

	if len(e.Properties) > 0 {
		b = append(b, `,"properties":`...)
		b = append(b, e.Properties...)
	}
	if len(e.Traits) > 0 {
		b = append(b, `,"traits":`...)
		b = append(b, e.Traits...)
	}
	if len(e.Flags) > 0 {
		b = append(b, `,"flags":[`...)
		for i, f := range e.Flags {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, f)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// closeObject ends an object whose fields, each written with a leading
// comma, start at b[start:]: the first comma goes.
func closeObject(b []byte, start int) []byte {
	if len(b) > start && b[start] == ',' {
		copy(b[start:], b[start+1:])
		b = b[:len(b)-1]
	}
	return append(b, '}')
}

func appendField(b []byte, name, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return AppendJSONString(b, v)
}

func appendTime(b []byte, name string, t time.Time, omitZero bool) []byte {
	if omitZero && t.IsZero() {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":"`...)
	b = appendRFC3339Nano(b, t)
	return append(b, '"')
}

// appendRFC3339Nano is t.AppendFormat(b, time.RFC3339Nano), byte for byte,
// written by hand for UTC times of years 0-9999 (every time on an event):
// an event has up to four, and the general formatter was 4 % of the
// collector's CPU on batches.
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	if t.Location() != time.UTC {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	hour, min, sec := t.Clock()
	b = append(b,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+min/10), byte('0'+min%10), ':',
		byte('0'+sec/10), byte('0'+sec%10))
	if ns := t.Nanosecond(); ns != 0 {
		// Nine digits without the trailing zeros, as .999999999 does.
		var d [10]byte
		d[0] = '.'
		for i := 9; i >= 1; i-- {
			d[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for d[n-1] == '0' {
			n--
		}
		b = append(b, d[:n]...)
	}
	return append(b, 'Z')
}

const hexDigits = "0123456789abcdef"

// load64 is the 8 bytes of s at i, little-endian (one load).
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// mayNeedEscape tells whether any of the 8 bytes in x may be a '"', a
// '\\', a control character or non-ASCII (never false when one is; true
// for some plain bytes after one that is).
func mayNeedEscape(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lo * '"')
	s := x ^ (lo * '\\')
	return ((x-lo*0x20)&^x|(q-lo)&^q|(s-lo)&^s|x)&hi != 0
}

// AppendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD as with encoding/json. HTML characters are not escaped (the
// output is no HTML; decoders read both forms alike).
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time while none may need escaping.
		for i+8 <= len(s) && !mayNeedEscape(load64(s, i)) {
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
