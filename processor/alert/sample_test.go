package alert

import (
	"testing"
	"time"

	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// `alerts test --rule` sends a sample its rule matches, for every rule
// type that decides on signals (conversion drops and hot leads build
// their own).
func TestSampleSignalMatchesItsRule(t *testing.T) {
	set, err := rules.Parse([]byte(`destinations:
  s: {type: slack, url: "https://hooks.slack.com/services/T/B/X"}
sites:
  shop-1:
    rules:
      - {name: carts, type: cart_abandoned, min_value: 5000, route: {to: [s]}}
      - {name: key-carts, type: cart_abandoned, tiers: [A], route: {to: [s]}}
      - {name: lost, type: customer_stage, stages: [lost], tiers: [C], route: {to: [s]}}
      - {name: new-a, type: customer_tier, tiers: [A], route: {to: [s]}}
      - {name: slipping, type: customer_tier, from_tiers: [A], tiers: [D], route: {to: [s]}}
      - {name: leaving-a, type: customer_tier, from_tiers: [A], route: {to: [s]}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for _, r := range set.Sites["shop-1"].Rules {
		sig := SampleSignal(r, now)
		if !r.Matches(sig) {
			t.Errorf("%s: the sample %+v (transition %+v) does not match", r.Name, sig, sig.Transition)
		}
	}
}
