package shoptrail

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fill sets every field of v (recursively) to a non-zero value, so that a
// field added to Event shows up in the encoder test.
func fill(v reflect.Value, r *rand.Rand) {
	switch v.Kind() {
	case reflect.String:
		words := []string{"a", "é漢", "q\"uo\\te", "tab\t", "<html>&", "\u2028", "ctl\x01"}
		v.SetString(words[r.IntN(len(words))] + strings.Repeat("x", r.IntN(5)))
	case reflect.Int, reflect.Int64:
		v.SetInt(r.Int64N(1<<40) + 1)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		if v.Type() == reflect.TypeOf(json.RawMessage{}) {
			v.SetBytes([]byte(`{"k":[1,2.5,"s",null,true],"n":{"x":"y"}}`))
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(s.Index(i), r)
		}
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(r.Int64N(4e9), r.Int64N(1e9)).UTC()))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			fill(v.Field(i), r)
		}
	}
}

// TestEncodeMatchesEncodingJSON: the hand-written encoder says the same as
// encoding/json for fully filled events, empty ones and mixes.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		var e Event
		fill(reflect.ValueOf(&e).Elem(), r)
		if i%3 == 1 { // zero some parts to exercise omitempty/omitzero
			e.Context = Context{UserAgent: e.Context.UserAgent}
			e.Properties, e.Flags, e.OriginalTimestamp = nil, nil, time.Time{}
		}
		if i == 2 {
			e = Event{}
		}
		got := e.AppendJSON(nil)
		want, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("encoder output is not JSON: %v\n%s", err, got)
		}
		json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("event %d:\n got %s\nwant %s", i, got, want)
		}
		var back Event
		if err := json.Unmarshal(got, &back); err != nil || back.Site != e.Site {
			t.Fatalf("round trip: %v", err)
		}
	}
}

func TestAppendStringInvalidUTF8(t *testing.T) {
	got := string(AppendJSONString(nil, "a\xffb\xc3"))
	want, _ := json.Marshal("a\xffb\xc3")
	if got != string(want) {
		t.Errorf("got %s, want %s", got, want)
	}
}

// FuzzAppendJSONString: the encoder that skips 8 plain bytes at a time
// writes exactly what the byte-at-a-time one did, and encoding/json reads
// back the string (invalid UTF-8 as U+FFFD).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain ascii text longer than eight", "q\"uo\\te", "tab\there", "ctl\x01\x1f", "é漢字 and more", "\u2028\u2029", "bad \xff\xfe utf8", "12345678\"", "1234567\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendJSONString(nil, s)
		if want := appendJSONStringRef(nil, s); string(got) != string(want) {
			t.Fatalf("AppendJSONString(%q) = %s, want %s", s, got, want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != strings.ToValidUTF8(back, "\uFFFD") {
			t.Fatalf("%s does not read back: %v", got, err)
		}
	})
}

// appendJSONStringRef is AppendJSONString as it was, one byte at a time.
func appendJSONStringRef(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
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

// FuzzAppendRFC3339Nano: the hand-written time format is what
// time.Time.AppendFormat(time.RFC3339Nano) writes, for any instant, in UTC
// and elsewhere.
func FuzzAppendRFC3339Nano(f *testing.F) {
	for _, s := range [][2]int64{{0, 0}, {1764403200, 123000000}, {1764403200, 1}, {1764403200, 999999999},
		{-62135596800, 0}, {4291747199, 500}, {253402300799, 999999999}, {253402300800, 0}, {-62135596801, 0}} {
		f.Add(s[0], s[1], false)
	}
	f.Fuzz(func(t *testing.T, sec, nsec int64, east bool) {
		tm := time.Unix(sec, nsec%1e9).UTC()
		if east {
			tm = tm.In(time.FixedZone("east", 8*3600))
		}
		if got, want := appendRFC3339Nano(nil, tm), tm.AppendFormat(nil, time.RFC3339Nano); string(got) != string(want) {
			t.Fatalf("appendRFC3339Nano(%v) = %s, want %s", tm, got, want)
		}
	})
}
