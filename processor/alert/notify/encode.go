package notify

import (
	"encoding/json"
	"time"

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
	e := encoder{shoptrail.JSONWriter{B: make([]byte, 0, 1536), OK: true}}
	e.B = append(e.B, `{"type":`...)
	e.Str(typ)
	e.B = append(e.B, `,"timestamp":`...)
	e.Time(ts)
	e.B = append(e.B, `,"data":`...)
	e.alert(a)
	e.B = append(e.B, '}')
	if !e.OK {
		return json.Marshal(webhookBody{Type: typ, Timestamp: ts, Data: a})
	}
	return e.B, nil
}

// encoder is the shared JSON writer of the signal types, and the alert.
type encoder struct{ shoptrail.JSONWriter }

func (e *encoder) alert(a *Alert) {
	if a == nil {
		e.B = append(e.B, "null"...)
		return
	}
	e.Key(`{"id":`)
	e.Str(a.ID)
	e.Key(`,"type":`)
	e.Str(a.Type)
	e.Key(`,"rule":`)
	e.Str(a.Rule)
	e.Key(`,"site":`)
	e.Str(a.Site)
	e.Key(`,"at":`)
	e.Time(a.At)
	e.Key(`,"subject":`)
	e.Str(a.Subject)
	e.StrOmit(`,"followUp":`, a.FollowUp)
	if c := a.Customer; c != nil {
		e.Key(`,"customer":`)
		e.Customer(c)
	}
	if c := a.Cart; c != nil {
		e.Key(`,"cart":`)
		e.Cart(c)
	}
	if t := a.Transition; t != nil {
		e.Key(`,"transition":`)
		e.Transition(t)
	}
	if len(a.Digest) > 0 {
		e.Key(`,"digest":`)
		e.Marshal(a.Digest)
	}
	if a.Lead != nil {
		e.Key(`,"lead":`)
		e.Marshal(a.Lead)
	}
	if a.Drop != nil {
		e.Key(`,"drop":`)
		e.Marshal(a.Drop)
	}
	e.StrOmit(`,"group":`, a.Group)
	if a.Test {
		e.Key(`,"test":true`)
	}
	e.B = append(e.B, '}')
}
