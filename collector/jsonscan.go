package collector

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// bodyShape is what scanJSON learns of a body in its one read.
type bodyShape struct {
	// deepest is the deepest nesting of objects and arrays.
	deepest int
	// values bounds the number of JSON values from above, as the parse's
	// memory is reserved by it: every value but the first follows a '[',
	// a ',' or a ':' (counted outside strings).
	values int
	// mayPII: some string (a key or a value) may hold an email, a phone
	// or a token (mayNeedRedacting on each piece between escapes; a \u
	// escape may hide anything). When false, scrubbing skips redacting
	// texts: nothing in the body would change.
	mayPII bool
	// badUTF8: some string holds invalid UTF-8 (the rest of a valid JSON
	// text is ASCII).
	badUTF8 bool
}

// scanJSON reads a body once, without building anything: whether it is
// one JSON value (RFC 8259, what encoding/json.Valid accepts) nested at
// most fastjson.MaxDepth deep (deeper, fastjson's parser fails), and its
// shape. Only a body it accepts is parsed, so that only JSON reaches Kafka
// (fastjson's parser alone takes NaN, +1, 01 and raw control characters
// in strings); FuzzScanJSON checks it against encoding/json.
func scanJSON(b []byte) (sh bodyShape, ok bool) {
	const (
		expectValue = iota // a value
		expectKey          // an object's key (after '{' or ',')
		afterValue         // ',' or the end of the enclosing object or array
	)
	// isObject's bit d-1 tells whether nesting level d is an object.
	var isObject [(fastjson.MaxDepth + 63) / 64]uint64
	d := 0
	sh.values = 1
	i := skipWS(b, 0)
	state := expectValue
	for {
		switch state {
		case expectValue:
			if i >= len(b) {
				return sh, false
			}
			switch c := b[i]; {
			case c == '{' || c == '[':
				d++
				if d > fastjson.MaxDepth {
					return sh, false
				}
				sh.deepest = max(sh.deepest, d)
				i = skipWS(b, i+1)
				if c == '{' {
					isObject[(d-1)/64] |= 1 << ((d - 1) % 64)
					if i < len(b) && b[i] == '}' {
						d--
						i++
						state = afterValue
					} else {
						state = expectKey
					}
					continue
				}
				isObject[(d-1)/64] &^= 1 << ((d - 1) % 64)
				sh.values++
				if i < len(b) && b[i] == ']' {
					d--
					i++
					state = afterValue
				}
				continue
			case c == '"':
				if i = sh.str(b, i+1); i < 0 {
					return sh, false
				}
			case c == '-' || c-'0' < 10:
				if i = jsonNumber(b, i); i < 0 {
					return sh, false
				}
			case c == 't':
				if i = jsonLiteral(b, i, "true"); i < 0 {
					return sh, false
				}
			case c == 'f':
				if i = jsonLiteral(b, i, "false"); i < 0 {
					return sh, false
				}
			case c == 'n':
				if i = jsonLiteral(b, i, "null"); i < 0 {
					return sh, false
				}
			default:
				return sh, false
			}
			state = afterValue
		case expectKey:
			if i >= len(b) || b[i] != '"' {
				return sh, false
			}
			if i = sh.str(b, i+1); i < 0 {
				return sh, false
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return sh, false
			}
			sh.values++
			i = skipWS(b, i+1)
			state = expectValue
		case afterValue:
			i = skipWS(b, i)
			if d == 0 {
				return sh, i == len(b)
			}
			if i >= len(b) {
				return sh, false
			}
			obj := isObject[(d-1)/64]&(1<<((d-1)%64)) != 0
			switch c := b[i]; {
			case c == ',':
				sh.values++
				i = skipWS(b, i+1)
				if obj {
					state = expectKey
				} else {
					state = expectValue
				}
			case c == '}' && obj, c == ']' && !obj:
				d--
				i++
			default:
				return sh, false
			}
		}
	}
}

// str reads a string whose opening quote is before b[i]: it returns the
// index after its closing quote, or -1 when it is not a JSON string.
func (sh *bodyShape) str(b []byte, i int) int {
	piece := i // the piece since the last escape
	for {
		// Eight bytes at a time while none may be special, then one at a
		// time up to the special one.
		for i+8 <= len(b) && !mayBeSpecial(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '"':
			sh.piece(b[piece:i])
			return i + 1
		case c == '\\':
			sh.piece(b[piece:i])
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1
				}
				sh.mayPII = true // it may hide anything
				i += 6
			default:
				return -1
			}
			piece = i
		case c < 0x20:
			return -1
		default: // c >= 0x80
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				sh.badUTF8 = true
			}
			i += size
		}
	}
}

// piece notes whether a piece of a string between escapes may hold PII
// (no escape is part of an email, a phone or a token). Shorter than 5
// bytes, a piece holds no email (a@b.cd), phone (7 digits) or token (a
// JWT, eyJ and two dots, is at least 5: "eyJ.." is one).
func (sh *bodyShape) piece(p []byte) {
	if !sh.mayPII && len(p) >= 5 && mayNeedRedacting(p) {
		sh.mayPII = true
	}
}

// mayBeSpecial tells whether any of the 8 bytes in x may be a '"', a '\\',
// a control character or non-ASCII (never false when one is; true for some
// plain bytes after one that is).
func mayBeSpecial(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lo * '"')
	s := x ^ (lo * '\\')
	return ((x-lo*0x20)&^x|(q-lo)&^q|(s-lo)&^s|x)&hi != 0
}

// plainByte: the bytes a JSON string holds as they are, but for non-ASCII
// ones (read as UTF-8).
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool { return c-'0' < 10 || (c|0x20)-'a' < 6 }

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// jsonLiteral reads want (true, false, null) at b[i]: the index after it, or
// -1.
func jsonLiteral(b []byte, i int, want string) int {
	if len(b)-i < len(want) || string(b[i:i+len(want)]) != want {
		return -1
	}
	return i + len(want)
}

// jsonNumber reads a JSON number at b[i]: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?;
// the index after it, or -1.
func jsonNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i]-'1' < 9:
		i = digits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i]-'0' < 10 {
		i++
	}
	return i
}
