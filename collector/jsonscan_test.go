package collector

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// FuzzScanJSON: scanJSON accepts exactly what encoding/json calls valid
// (and fastjson parses: nested at most fastjson.MaxDepth), and on it finds
// the same shape as the two passes it replaced (jsonShapeRef, utf8.Valid).
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":[1,2,{"b":null}],"c":"d"}`, ` [ -0.5e+3 , true , false ] `,
		`{"k":"bob@example.com"}`, `"\u0041"`, `"\ud800"`, "\"\xff\"", `01`, `+1`, `NaN`, `[1,]`, `{"a":1,}`, `{"a"}`,
		`"\x"`, "\"\x01\"", `1.`, `1e`, `-`, `tru`, `[1 2]`, `{"a":1}}`, `""`, `"é"`, strings.Repeat("[", 301) + strings.Repeat("]", 301),
		strings.Repeat("[", 300) + strings.Repeat("]", 300), `{"a\"":"x\\","b":["\\\"",1],"c":"\u0041"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sh, ok := scanJSON(b)
		deepest, values, may := jsonShapeRef(b)
		want := json.Valid(b) && deepest <= fastjson.MaxDepth
		if ok != want {
			t.Fatalf("scanJSON(%q) = %v, encoding/json says %v", b, ok, want)
		}
		if !ok {
			return
		}
		if _, err := new(fastjson.Parser).ParseBytes(b); err != nil {
			t.Fatalf("scanJSON accepts %q, which fastjson cannot parse: %v", b, err)
		}
		if sh.deepest != deepest || sh.values != values || sh.mayPII != may || sh.badUTF8 == utf8.Valid(b) {
			t.Fatalf("scanJSON(%q) = %+v; the two passes: deepest %d, values %d, PII %v, valid UTF-8 %v", b, sh, deepest, values, may, utf8.Valid(b))
		}
	})
}

// jsonShapeRef is the pre-parse pass scanJSON replaced (kept as the
// reference its shape must equal on JSON): it reads a JSON text once, without parsing: the deepest nesting
// of objects and arrays, an upper bound of the number of values in it
// (every value but the first follows a '[', ',' or ':'), and whether any
// string in it may hold an email, a phone or a token (mayNeedRedacting; a \u
// escape may hide one), so that a body without any skips redacting.
func jsonShapeRef(b []byte) (deepest, values int, mayPII bool) {
	d := 0
	values = 1
	// The next '"' and '\\' at or after i (len(b) when none), found with
	// bytes.IndexByte and looked for again only once i has passed them:
	// each byte is searched at most once for each, so the scan stays
	// linear however many escapes a string holds.
	quote, slash := -1, -1
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			// The string, in pieces between escapes (none of which is part
			// of an email, a phone or a token, except \u, which may hide
			// anything).
			for i++; i < len(b); i++ {
				if quote < i {
					quote = nextByteRef(b, i, '"')
				}
				if slash < i {
					slash = nextByteRef(b, i, '\\')
				}
				j := min(quote, slash)
				// Shorter than 5 bytes, a piece holds no email (a@b.cd),
				// phone (7 digits) or token (a JWT, eyJ and two dots, is
				// at least 5: "eyJ.." is one).
				if !mayPII && j-i >= 5 && mayNeedRedacting(b[i:j]) {
					mayPII = true
				}
				i = j
				if j == len(b) || b[j] == '"' {
					break
				}
				if j+1 < len(b) && b[j+1] == 'u' {
					mayPII = true
				}
				i++ // the escaped byte
			}
		case '{', '[':
			d++
			deepest = max(deepest, d)
			if b[i] == '[' {
				values++
			}
		case '}', ']':
			d--
		case ',', ':':
			values++
		}
	}
	return deepest, values, mayPII
}

// nextByteRef is the index of the first c in b at or after i, or len(b).
func nextByteRef(b []byte, i int, c byte) int {
	if k := bytes.IndexByte(b[i:], c); k >= 0 {
		return i + k
	}
	return len(b)
}

// BenchmarkPreParseBefore: the three passes scanJSON replaced
// (utf8.Valid, jsonShape, fastjson.ValidateBytes) over the body of
// BenchmarkScanJSON, for comparison.
func BenchmarkPreParseBefore(b *testing.B) {
	body := benchBatchBody(20)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		_ = utf8.Valid(body)
		if _, _, may := jsonShapeRef(body); may {
			b.Fatal("the load generator's events hold no PII")
		}
		if err := fastjson.ValidateBytes(body); err != nil {
			b.Fatal(err)
		}
	}
}
