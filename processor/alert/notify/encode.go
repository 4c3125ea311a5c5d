package notify

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/shoptrail/shoptrail"
)

// webhookJSON is json.Marshal(webhookBody{typ, ts, a}), byte for byte,
// written by hand for the parts every alert has (the envelope, customer,
// cart, change): the reflection encoder, with time.Time's MarshalJSON and
// the check of its output, was over half of building a request (8 % of the
// alerter's CPU in BenchmarkDeliver). Digests, leads and conversion drops
// are rare and go through json.Marshal. A value json.Marshal refuses or
// writes differently (NaN, a year outside 0-9999) sends the whole body to
// json.Marshal. TestWebhookJSONAsMarshal compares the two on an alert with
// every field set by reflection, so a field added to the signal types and
// not here fails that test.
func webhookJSON(typ string, ts time.Time, a *Alert) ([]byte, error) {
	e := encoder{b: make([]byte, 0, 1536), ok: true}
	e.b = append(e.b, `{"type":`...)
	e.str(typ)
	e.b = append(e.b, `,"timestamp":`...)
	e.time(ts)
	e.b = append(e.b, `,"data":`...)
	e.alert(a)
	e.b = append(e.b, '}')
	if !e.ok {
		return json.Marshal(webhookBody{Type: typ, Timestamp: ts, Data: a})
	}
	return e.b, nil
}

type encoder struct {
	b  []byte
	ok bool // false: something only json.Marshal can say
}

func (e *encoder) key(k string) { e.b = append(e.b, k...) } // k is `,"name":` as written

func (e *encoder) str(s string) { e.b = appendString(e.b, s) }

// strOmit writes a string field with omitempty.
func (e *encoder) strOmit(k, s string) {
	if s != "" {
		e.key(k)
		e.str(s)
	}
}

func (e *encoder) int(n int) { e.b = strconv.AppendInt(e.b, int64(n), 10) }

// float writes f as encoding/json does (ES6 number formatting).
func (e *encoder) float(f float64) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		e.ok = false
		return
	}
	abs, format := math.Abs(f), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.b = strconv.AppendFloat(e.b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9
		if n := len(e.b); n >= 4 && e.b[n-4] == 'e' && e.b[n-3] == '-' && e.b[n-2] == '0' {
			e.b[n-2] = e.b[n-1]
			e.b = e.b[:n-1]
		}
	}
}

// time writes t as its MarshalJSON does (RFC 3339 with nanoseconds);
// what that refuses is left to json.Marshal.
func (e *encoder) time(t time.Time) {
	_, off := t.Zone()
	if y := t.Year(); y < 0 || y > 9999 || off <= -24*3600 || off >= 24*3600 || off%60 != 0 {
		e.ok = false
		return
	}
	e.b = append(e.b, '"')
	e.b = t.AppendFormat(e.b, time.RFC3339Nano)
	e.b = append(e.b, '"')
}

// timeOmit writes a time field with omitzero.
func (e *encoder) timeOmit(k string, t time.Time) {
	if !t.IsZero() {
		e.key(k)
		e.time(t)
	}
}

// marshal writes v with json.Marshal.
func (e *encoder) marshal(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		e.ok = false
		return
	}
	e.b = append(e.b, b...)
}

func (e *encoder) alert(a *Alert) {
	if a == nil {
		e.b = append(e.b, "null"...)
		return
	}
	e.key(`{"id":`)
	e.str(a.ID)
	e.key(`,"type":`)
	e.str(a.Type)
	e.key(`,"rule":`)
	e.str(a.Rule)
	e.key(`,"site":`)
	e.str(a.Site)
	e.key(`,"at":`)
	e.time(a.At)
	e.key(`,"subject":`)
	e.str(a.Subject)
	e.strOmit(`,"followUp":`, a.FollowUp)
	if c := a.Customer; c != nil {
		e.key(`,"customer":`)
		e.customer(c)
	}
	if c := a.Cart; c != nil {
		e.key(`,"cart":`)
		e.cart(c)
	}
	if t := a.Transition; t != nil {
		e.key(`,"transition":{"kind":`)
		e.str(t.Kind)
		e.key(`,"from":`)
		e.str(t.From)
		e.key(`,"to":`)
		e.str(t.To)
		e.key(`,"cause":`)
		e.str(t.Cause)
		e.b = append(e.b, '}')
	}
	if len(a.Digest) > 0 {
		e.key(`,"digest":`)
		e.marshal(a.Digest)
	}
	if a.Lead != nil {
		e.key(`,"lead":`)
		e.marshal(a.Lead)
	}
	if a.Drop != nil {
		e.key(`,"drop":`)
		e.marshal(a.Drop)
	}
	e.strOmit(`,"group":`, a.Group)
	if a.Test {
		e.key(`,"test":true`)
	}
	e.b = append(e.b, '}')
}

func (e *encoder) customer(c *shoptrail.SignalCustomer) {
	e.key(`{"id":`)
	e.str(c.ID)
	e.strOmit(`,"email":`, c.Email)
	e.strOmit(`,"name":`, c.Name)
	e.strOmit(`,"phone":`, c.Phone)
	e.strOmit(`,"company":`, c.Company)
	e.strOmit(`,"industry":`, c.Industry)
	e.strOmit(`,"customerType":`, c.Type)
	e.strOmit(`,"role":`, c.Role)
	e.strOmit(`,"level":`, c.Level)
	e.key(`,"stage":`)
	e.str(c.Stage)
	e.strOmit(`,"tier":`, c.Tier)
	e.key(`,"orderCount":`)
	e.int(c.OrderCount)
	e.key(`,"netRevenue":`)
	e.float(c.NetRevenue)
	e.strOmit(`,"currency":`, c.Currency)
	e.timeOmit(`,"firstSeenAt":`, c.FirstSeenAt)
	e.timeOmit(`,"lastOrderAt":`, c.LastOrderAt)
	e.timeOmit(`,"lastVisitAt":`, c.LastVisitAt)
	e.strOmit(`,"firstChannel":`, c.FirstChannel)
	e.strOmit(`,"firstSource":`, c.FirstSource)
	e.b = append(e.b, '}')
}

func (e *encoder) cart(c *shoptrail.SignalCart) {
	e.key(`{"cartId":`)
	e.str(c.CartID)
	e.key(`,"value":`)
	e.float(c.Value)
	e.strOmit(`,"currency":`, c.Currency)
	e.key(`,"itemCount":`)
	e.int(c.ItemCount)
	e.key(`,"items":`)
	if c.Items == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.b = append(e.b, '[')
		for i := range c.Items {
			it := &c.Items[i]
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.key(`{"productId":`)
			e.str(it.ProductID)
			e.strOmit(`,"sku":`, it.SKU)
			e.strOmit(`,"name":`, it.Name)
			e.strOmit(`,"category":`, it.Category)
			e.key(`,"price":`)
			e.float(it.Price)
			e.key(`,"quantity":`)
			e.int(it.Quantity)
			e.b = append(e.b, '}')
		}
		e.b = append(e.b, ']')
	}
	e.key(`,"step":`)
	e.str(c.Step)
	e.key(`,"lastActivityAt":`)
	e.time(c.LastActivityAt)
	e.key(`,"abandonedAt":`)
	e.time(c.AbandonedAt)
	e.strOmit(`,"sessionId":`, c.SessionID)
	e.strOmit(`,"channel":`, c.Channel)
	e.strOmit(`,"source":`, c.Source)
	e.strOmit(`,"medium":`, c.Medium)
	e.strOmit(`,"campaign":`, c.Campaign)
	e.key(`,"abandonmentId":`)
	e.str(c.AbandonmentID)
	e.timeOmit(`,"recoveredAt":`, c.RecoveredAt)
	e.strOmit(`,"recoveredOrderId":`, c.RecoveredOrderID)
	if c.RecoveredValue != 0 {
		e.key(`,"recoveredValue":`)
		e.float(c.RecoveredValue)
	}
	e.b = append(e.b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string the way encoding/json does with
// HTML escaping on (its default): <, > and & as \u003c.., control
// characters, invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
