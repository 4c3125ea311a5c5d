package testenv

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// Filler sets every field reachable from a value to one that is not zero,
// so that a test comparing a hand-written encoder or decoder with
// encoding/json covers a field added later without being touched. Its
// functions choose the strings, floats and times by the running count of
// fields; integers are 7 times it, booleans true, slices two long.
type Filler struct {
	Str   func(n int) string
	Float func(n int) float64
	Time  func(n int) time.Time
}

// OddValues: strings with every character JSON escapes (HTML ones, control
// characters, U+2028, invalid UTF-8), floats at the edges of their
// formatting, times in another zone.
var OddValues = Filler{
	Str: func(n int) string { return fmt.Sprintf("s%d-张三 <b>&\"\\\n\t\x01\u2028\xff", n) },
	Float: func(n int) float64 {
		return []float64{1234.5678901234567, 1e-7, 1e21, 0.1, 99.99, 5e-324}[n%6] + float64(n%2)
	},
	Time: func(n int) time.Time {
		return time.Date(2026, 3, 2, 10, n%60, 5, 120000000, time.FixedZone("CST", 8*3600))
	},
}

// Fill fills v with OddValues.
func Fill(t testing.TB, v reflect.Value) { OddValues.Fill(t, v) }

// Fill sets every field reachable from v.
func (f Filler) Fill(t testing.TB, v reflect.Value) {
	n := 0
	f.fill(t, v, &n)
}

func (f Filler) fill(t testing.TB, v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(f.Str(*n))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n * 7))
	case reflect.Float64:
		v.SetFloat(f.Float(*n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		f.fill(t, v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			f.fill(t, v.Index(i), n)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(f.Time(*n)))
			return
		}
		for i := range v.NumField() {
			f.fill(t, v.Field(i), n)
		}
	default:
		t.Fatalf("fill: a %s field: teach testenv.Filler (and the hand-written encoders and decoders) about it", v.Kind())
	}
}
