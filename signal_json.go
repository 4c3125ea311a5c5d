package shoptrail

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendSignalJSON appends json.Marshal(s) to dst, byte for byte, written
// by hand: the processor writes a signal for every abandonment and every
// stage and tier change, and encoding/json's reflection (with time.Time's
// MarshalJSON) was 4 % of its CPU in the pipeline benchmark. What
// json.Marshal refuses or writes differently (NaN, a year outside
// 0-9999) goes through json.Marshal. TestSignalJSONAsMarshal compares the
// two on a signal with every field set by reflection, so a field added to
// the signal types and not here fails it.
func AppendSignalJSON(dst []byte, s *Signal) ([]byte, error) {
	w := JSONWriter{B: dst, OK: true}
	w.Key(`{"v":`)
	w.Int(s.V)
	w.Key(`,"id":`)
	w.Str(s.ID)
	w.Key(`,"type":`)
	w.Str(s.Type)
	w.Key(`,"site":`)
	w.Str(s.Site)
	w.Key(`,"at":`)
	w.Time(s.At)
	w.StrOmit(`,"customerId":`, s.CustomerID)
	w.StrOmit(`,"anonymousId":`, s.AnonymousID)
	if c := s.Customer; c != nil {
		w.Key(`,"customer":`)
		w.Customer(c)
	}
	if c := s.Cart; c != nil {
		w.Key(`,"cart":`)
		w.Cart(c)
	}
	if t := s.Transition; t != nil {
		w.Key(`,"transition":`)
		w.Transition(t)
	}
	w.B = append(w.B, '}')
	if !w.OK {
		b, err := json.Marshal(s)
		return append(dst, b...), err
	}
	return w.B, nil
}

// JSONWriter writes the signal types' JSON as json.Marshal does, byte for
// byte (the processor's signals, the alerter's webhook bodies). A value
// only json.Marshal can write (NaN, a year outside 0-9999) clears OK: the
// caller then uses json.Marshal for the whole.
type JSONWriter struct {
	B  []byte
	OK bool // false: something only json.Marshal can say
}

func (e *JSONWriter) Key(k string) { e.B = append(e.B, k...) } // k is `,"name":` as written

func (e *JSONWriter) Str(s string) { e.B = appendJSONStringHTML(e.B, s) }

// StrOmit writes a string field with omitempty.
func (e *JSONWriter) StrOmit(k, s string) {
	if s != "" {
		e.Key(k)
		e.Str(s)
	}
}

func (e *JSONWriter) Int(n int) { e.B = strconv.AppendInt(e.B, int64(n), 10) }

// Float writes f as encoding/json does (ES6 number formatting).
func (e *JSONWriter) Float(f float64) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		e.OK = false
		return
	}
	abs, format := math.Abs(f), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.B = strconv.AppendFloat(e.B, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9
		if n := len(e.B); n >= 4 && e.B[n-4] == 'e' && e.B[n-3] == '-' && e.B[n-2] == '0' {
			e.B[n-2] = e.B[n-1]
			e.B = e.B[:n-1]
		}
	}
}

// Time writes t as its MarshalJSON does (RFC 3339 with nanoseconds);
// what that refuses is left to json.Marshal.
func (e *JSONWriter) Time(t time.Time) {
	_, off := t.Zone()
	if y := t.Year(); y < 0 || y > 9999 || off <= -24*3600 || off >= 24*3600 || off%60 != 0 {
		e.OK = false
		return
	}
	e.B = append(e.B, '"')
	e.B = t.AppendFormat(e.B, time.RFC3339Nano)
	e.B = append(e.B, '"')
}

// TimeOmit writes a time field with omitzero.
func (e *JSONWriter) TimeOmit(k string, t time.Time) {
	if !t.IsZero() {
		e.Key(k)
		e.Time(t)
	}
}

// Marshal writes v with json.Marshal.
func (e *JSONWriter) Marshal(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		e.OK = false
		return
	}
	e.B = append(e.B, b...)
}

func (e *JSONWriter) Customer(c *SignalCustomer) {
	e.Key(`{"id":`)
	e.Str(c.ID)
	e.StrOmit(`,"email":`, c.Email)
	e.StrOmit(`,"name":`, c.Name)
	e.StrOmit(`,"phone":`, c.Phone)
	e.StrOmit(`,"company":`, c.Company)
	e.StrOmit(`,"industry":`, c.Industry)
	e.StrOmit(`,"customerType":`, c.Type)
	e.StrOmit(`,"role":`, c.Role)
	e.StrOmit(`,"level":`, c.Level)
	e.Key(`,"stage":`)
	e.Str(c.Stage)
	e.StrOmit(`,"tier":`, c.Tier)
	e.Key(`,"orderCount":`)
	e.Int(c.OrderCount)
	e.Key(`,"netRevenue":`)
	e.Float(c.NetRevenue)
	e.StrOmit(`,"currency":`, c.Currency)
	e.TimeOmit(`,"firstSeenAt":`, c.FirstSeenAt)
	e.TimeOmit(`,"lastOrderAt":`, c.LastOrderAt)
	e.TimeOmit(`,"lastVisitAt":`, c.LastVisitAt)
	e.StrOmit(`,"firstChannel":`, c.FirstChannel)
	e.StrOmit(`,"firstSource":`, c.FirstSource)
	e.B = append(e.B, '}')
}

func (e *JSONWriter) Cart(c *SignalCart) {
	e.Key(`{"cartId":`)
	e.Str(c.CartID)
	e.Key(`,"value":`)
	e.Float(c.Value)
	e.StrOmit(`,"currency":`, c.Currency)
	e.Key(`,"itemCount":`)
	e.Int(c.ItemCount)
	e.Key(`,"items":`)
	if c.Items == nil {
		e.B = append(e.B, "null"...)
	} else {
		e.B = append(e.B, '[')
		for i := range c.Items {
			it := &c.Items[i]
			if i > 0 {
				e.B = append(e.B, ',')
			}
			e.Key(`{"productId":`)
			e.Str(it.ProductID)
			e.StrOmit(`,"sku":`, it.SKU)
			e.StrOmit(`,"name":`, it.Name)
			e.StrOmit(`,"category":`, it.Category)
			e.Key(`,"price":`)
			e.Float(it.Price)
			e.Key(`,"quantity":`)
			e.Int(it.Quantity)
			e.B = append(e.B, '}')
		}
		e.B = append(e.B, ']')
	}
	e.Key(`,"step":`)
	e.Str(c.Step)
	e.Key(`,"lastActivityAt":`)
	e.Time(c.LastActivityAt)
	e.Key(`,"abandonedAt":`)
	e.Time(c.AbandonedAt)
	e.StrOmit(`,"sessionId":`, c.SessionID)
	e.StrOmit(`,"channel":`, c.Channel)
	e.StrOmit(`,"source":`, c.Source)
	e.StrOmit(`,"medium":`, c.Medium)
	e.StrOmit(`,"campaign":`, c.Campaign)
	e.Key(`,"abandonmentId":`)
	e.Str(c.AbandonmentID)
	e.TimeOmit(`,"recoveredAt":`, c.RecoveredAt)
	e.StrOmit(`,"recoveredOrderId":`, c.RecoveredOrderID)
	if c.RecoveredValue != 0 {
		e.Key(`,"recoveredValue":`)
		e.Float(c.RecoveredValue)
	}
	e.B = append(e.B, '}')
}

// appendJSONStringHTML writes s as a JSON string the way encoding/json does with
// HTML escaping on (its default): <, > and & as \u003c.., control
// characters, invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendJSONStringHTML(dst []byte, s string) []byte {
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

// Transition writes t as json.Marshal does.
func (e *JSONWriter) Transition(t *SignalTransition) {
	e.Key(`{"kind":`)
	e.Str(t.Kind)
	e.Key(`,"from":`)
	e.Str(t.From)
	e.Key(`,"to":`)
	e.Str(t.To)
	e.Key(`,"cause":`)
	e.Str(t.Cause)
	e.B = append(e.B, '}')
}
