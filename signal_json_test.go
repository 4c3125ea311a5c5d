package shoptrail_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/internal/testenv"
)

// TestSignalJSONAsMarshal: AppendSignalJSON writes what json.Marshal
// writes, on a signal with every field set, on zero and omitted values
// and on values json.Marshal refuses (the same error).
func TestSignalJSONAsMarshal(t *testing.T) {
	f := func(what string, s *shoptrail.Signal) {
		t.Helper()
		got, gotErr := shoptrail.AppendSignalJSON([]byte("prefix"), s)
		want, wantErr := json.Marshal(s)
		if wantErr == nil {
			want = append([]byte("prefix"), want...)
		}
		if (gotErr == nil) != (wantErr == nil) || wantErr == nil && !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s, %v\nwant %s, %v", what, got, gotErr, want, wantErr)
		}
	}
	var full shoptrail.Signal
	testenv.Fill(t, reflect.ValueOf(&full).Elem())
	f("every field set", &full)
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	f("zero", &shoptrail.Signal{})
	f("empty items", &shoptrail.Signal{ID: "x", At: at, Cart: &shoptrail.SignalCart{Items: []shoptrail.SignalCartItem{}}, Customer: &shoptrail.SignalCustomer{}})
	f("transition", &shoptrail.Signal{ID: "x", At: at, Transition: &shoptrail.SignalTransition{Kind: "stage", From: "a", To: "b"}})
	for _, v := range []float64{0, math.Copysign(0, -1), 1e-6, 9.99e-7, 1e21, 123456789.125, math.MaxFloat64} {
		f(fmt.Sprint(v), &shoptrail.Signal{ID: "x", At: at, Customer: &shoptrail.SignalCustomer{NetRevenue: v}})
	}
	f("NaN", &shoptrail.Signal{ID: "x", At: at, Cart: &shoptrail.SignalCart{Value: math.NaN()}})
	f("year 10000", &shoptrail.Signal{ID: "x", At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
	f("now", &shoptrail.Signal{ID: "x", At: time.Now()})
}
