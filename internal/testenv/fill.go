package testenv

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// Fill sets every field reachable from v to a value that is not zero (odd
// strings, floats at the edges of their formatting, times in another
// zone), so that a test comparing a hand-written encoder with
// encoding/json covers a field added later without being touched.
func Fill(t testing.TB, v reflect.Value) {
	n := 0
	fill(t, v, &n)
}

func fill(t testing.TB, v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d-张三 <b>&\"\\\n\t\x01\u2028\xff", *n))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n * 7))
	case reflect.Float64:
		v.SetFloat([]float64{1234.5678901234567, 1e-7, 1e21, 0.1, 99.99, 5e-324}[*n%6] + float64(*n%2))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(t, v.Index(i), n)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 3, 2, 10, *n%60, 5, 120000000, time.FixedZone("CST", 8*3600))))
			return
		}
		for i := range v.NumField() {
			fill(t, v.Field(i), n)
		}
	default:
		t.Fatalf("fill: a %s field: teach testenv.Fill (and the hand-written encoders) about it", v.Kind())
	}
}
