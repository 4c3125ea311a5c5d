package cart

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/commerce"
)

// TestRestoreContinues: checkpointing now and then into a compacted log,
// then restoring a new Tracker from it at any point and going on, yields
// the same output as never stopping.
func TestRestoreContinues(t *testing.T) {
	var steps []step
	names := []string{add, add, rem, view, co, pay, buy, shoptrail.EventProductViewed, shoptrail.EventLoggedIn}
	for i := range 400 {
		anon := fmt.Sprintf("v%d", i%13)
		at := time.Duration(i) * 11 * time.Minute
		s := ev(at, anon, fmt.Sprintf("m%d", i), names[(i/13+i/7)%len(names)],
			fmt.Sprintf(`{"product_id":"p%d","price":%d,"order_id":"o%d","cart_id":"k%d","currency":"EUR"}`, i%3, i%11, i, i%2))
		if i%13 < 4 && (s.name == shoptrail.EventLoggedIn || i > 300) {
			s.user = "u-" + anon
		}
		steps = append(steps, s)
		if i%9 == 0 {
			steps = append(steps, wm(at))
		}
	}
	steps = append(steps, wm(400*11*time.Minute+8*24*time.Hour))
	cfg := Config{HandOff: true}
	want := run(t, cfg, steps)
	if len(want.Abandonments) == 0 || len(want.Recoveries) == 0 || len(want.Handoffs) == 0 {
		t.Fatalf("scenario too tame: %d abandonments, %d recoveries, %d handoffs", len(want.Abandonments), len(want.Recoveries), len(want.Handoffs))
	}
	for _, cut := range []int{1, 37, 120, 250, len(steps) - 1} {
		log := map[string][]byte{}
		var got Output
		tr, _ := New(cfg)
		var ps commerce.Parser
		for i, s := range steps {
			if i == cut {
				for _, r := range tr.Checkpoint(nil) {
					log[r.Key] = r.Value
				}
				var recs []Record
				for k, v := range log {
					recs = append(recs, Record{Key: k, Value: v})
				}
				tr, _ = New(cfg)
				if err := tr.Restore(recs); err != nil {
					t.Fatal(err)
				}
				// A torn checkpoint: the cart state is saved, yet the
				// sessionizer releases the last events again.
				for _, r := range steps[max(0, i-6):i] {
					if r.name != "" {
						var p commerce.Props
						ps.Parse([]byte(r.props), &p)
						tr.Add(&Event{Site: "shop", AnonymousID: r.anon, CustomerID: r.user, MessageID: r.msg, Name: r.name,
							Time: t0.Add(r.at), Props: &p, SessionID: r.session, Channel: "Organic Search", Source: "google"})
					}
				}
			} else if i%17 == 0 {
				for _, r := range tr.Checkpoint(nil) {
					log[r.Key] = r.Value
				}
			}
			if s.name == "" {
				tr.Advance(t0.Add(s.at))
				continue
			}
			var p commerce.Props
			ps.Parse([]byte(s.props), &p)
			tr.Add(&Event{Site: "shop", AnonymousID: s.anon, CustomerID: s.user, MessageID: s.msg, Name: s.name,
				Time: t0.Add(s.at), Props: &p, SessionID: s.session, Channel: "Organic Search", Source: "google"})
			tr.Drain(&got)
		}
		tr.Drain(&got)
		if !reflect.DeepEqual(got.Abandonments, want.Abandonments) || !reflect.DeepEqual(got.Recoveries, want.Recoveries) || len(got.Handoffs) != len(want.Handoffs) {
			t.Fatalf("cut at %d: %d/%d abandonments, %d/%d recoveries, %d/%d handoffs", cut,
				len(got.Abandonments), len(want.Abandonments), len(got.Recoveries), len(want.Recoveries), len(got.Handoffs), len(want.Handoffs))
		}
		for i := range got.Handoffs {
			if !reflect.DeepEqual(got.Handoffs[i].Abandonment, want.Handoffs[i].Abandonment) {
				t.Fatalf("cut at %d: handoff %d differs", cut, i)
			}
		}
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	for _, recs := range [][]Record{
		{{Key: "cart\x00shop\x00a", Value: []byte("{")}},
		{{Key: "other", Value: []byte("{}")}},
		{{Key: MetaKey, Value: []byte("[")}},
	} {
		tr, _ := New(Config{})
		if err := tr.Restore(recs); err == nil {
			t.Errorf("restore of %q: no error", recs)
		}
	}
}
