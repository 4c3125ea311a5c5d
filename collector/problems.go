package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Reasons a whole request is refused, the "reason" label of
// shoptrail_collector_requests_refused_total.
const (
	refusedNotJSON     = "not_json"     // the body is not JSON, or gzip without Content-Encoding
	refusedEmpty       = "empty"        // empty body or empty batch
	refusedBadRequest  = "bad_request"  // other malformed requests (not a batch, bad gzip, bad sentAt)
	refusedEncoding    = "encoding"     // 415: an unknown Content-Encoding
	refusedNoKey       = "no_write_key" // 401
	refusedBadKey      = "unknown_key"  // 401
	refusedOrigin      = "origin"       // 403, also preflights
	refusedTooLarge    = "too_large"    // 413: body or batch over the limits
	refusedRateLimit   = "rate_limited" // 429
	refusedUnavailable = "unavailable"  // 503: overloaded, Kafka, shutting down
	refusedNotFound    = "not_found"    // 404: no such endpoint, or GET on an ingest path
)

// notJSONError is fastjson's validator's words for a body scanJSON
// refused (run only on this error path); what it accepts is nested deeper
// than fastjson parses (not parsed here: its values were not reserved).
func notJSONError(body []byte) error {
	if err := fastjson.ValidateBytes(body); err != nil {
		return err
	}
	return errors.New("too big depth for the nested JSON; it exceeds " + strconv.Itoa(fastjson.MaxDepth))
}

// jsonProblem says, in words a shop developer understands, why body is not
// JSON and where: "body is not valid JSON: at line 3, column 14 (byte 41):
// unexpected '}' after a value, near `"price": 9.5}`". The strict check
// failed (err); encoding/json, run only on this error path, gives the
// offset, and a few cases get plainer words.
func jsonProblem(body []byte, single bool, err error) string {
	what := "a JSON batch"
	if single {
		what = "a JSON message"
	}
	var v struct{} // nothing kept: a valid body (too deep for fastjson) is not built
	jerr := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if jerr == nil || !errors.As(jerr, &se) {
		// encoding/json accepts it (or fails otherwise): fastjson's own words.
		return "body is not " + what + ": " + truncate(err.Error(), 200)
	}
	off := int(se.Offset)
	if off > len(body) {
		off = len(body)
	}
	line, col := 1, 1
	for i := 0; i < off && i < len(body); i++ {
		if body[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	if off > 0 {
		col-- // Offset is just after the offending byte
	}
	var b strings.Builder
	b.WriteString("body is not ")
	b.WriteString(what)
	b.WriteString(": invalid JSON at line ")
	b.WriteString(strconv.Itoa(line))
	b.WriteString(", column ")
	b.WriteString(strconv.Itoa(max(col, 1)))
	b.WriteString(" (byte ")
	b.WriteString(strconv.Itoa(max(off-1, 0)))
	b.WriteString("): ")
	msg := se.Error()
	switch {
	case strings.Contains(msg, "unexpected end of JSON input"):
		msg = "the JSON ends too early (a missing } or ], or a cut-off body)"
	case strings.Contains(msg, "looking for beginning of object key string"):
		msg = "expected a quoted property name (a trailing comma, or a key without double quotes?)"
	case strings.Contains(msg, "invalid character '\\''"):
		msg = "strings and keys take double quotes, not single quotes"
	case strings.Contains(msg, "after object key:value pair"), strings.Contains(msg, "after array element"):
		msg += " (a missing comma?)"
	case strings.Contains(msg, "looking for beginning of value") && bytes.Contains(body[max(off-3, 0):off], []byte("N")):
		msg += " (NaN and Infinity are not JSON numbers)"
	}
	b.WriteString(msg)
	if off > 0 {
		from := max(off-24, 0)
		for from > 0 && !utf8.RuneStart(body[from]) {
			from++
		}
		near := strings.ToValidUTF8(string(body[from:min(off+8, len(body))]), "?")
		near = strings.Map(func(r rune) rune {
			if r < 0x20 {
				return ' '
			}
			return r
		}, near)
		b.WriteString(", near `")
		b.WriteString(near)
		b.WriteString("`")
	}
	return b.String()
}
