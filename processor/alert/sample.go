package alert

import (
	"context"
	"fmt"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/alert/drop"
	"github.com/shoptrail/shoptrail/processor/alert/notify"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
	"github.com/shoptrail/shoptrail/processor/alert/safehttp"
)

// TestResult is the outcome of sending a sample alert to one destination.
type TestResult struct {
	Destination string
	AlertID     string
	Verdict     notify.Verdict
	Status      int
	Answer      string
	Err         error
}

// SendSample sends a sample alert of the named rule (marked "test") to each
// of the rule's destinations, once, without retries, and reports each
// answer. It is what `shoptrail alerts test --rule NAME` runs.
func SendSample(ctx context.Context, set *rules.Set, ruleName string, client *safehttp.Client, now time.Time) ([]TestResult, error) {
	var rule *rules.Rule
	for _, s := range set.Sites {
		for _, r := range s.Rules {
			if r.Name == ruleName {
				rule = r
			}
		}
	}
	if rule == nil {
		return nil, fmt.Errorf("no rule named %q in the rules file", ruleName)
	}
	sig := SampleSignal(rule, now)
	dests := map[string]bool{}
	for _, d := range rule.To {
		dests[d] = true
	}
	for _, ds := range rule.TierRoute {
		for _, d := range ds {
			dests[d] = true
		}
	}
	var out []TestResult
	for name := range dests {
		d := set.Destinations[name]
		dc := rules.Decision{AlertID: rules.AlertID(sig.ID, rule.Name, name), Rule: rule, Destination: d,
			Subject: sig.Key(), FollowUp: rule.SuggestFollowUp(sig)}
		if rule.Type != rules.TypeCartAbandoned {
			dc.FollowUp = ""
		}
		a := notify.FromSignal(&dc, sig)
		switch rule.Type {
		case rules.TypeConversionDrop:
			a = &notify.Alert{ID: dc.AlertID, Type: notify.TypeConversion, Rule: rule.Name, Site: rule.Site, At: now,
				Subject: "step:view_to_cart", Drop: &drop.Finding{Step: "view_to_cart", Rate: 0.056, Baseline: 0.08, Spread: 0.0045,
					Z: 5.3, Volume: 5000, Weeks: 4, Hours: int(rule.Drop.Window.Hours()),
					Products: []drop.Suspect{{ProductID: "sample-product", BaselinePrice: 100, Price: 130, BaselineCartRate: 0.08, CartRate: 0.02, Views: 2000}}}}
		case rules.TypeHotLead:
			a = &notify.Alert{ID: dc.AlertID, Type: notify.TypeHotLead, Rule: rule.Name, Site: rule.Site, At: now,
				Subject: "sample-customer", Lead: &notify.Lead{AnonymousID: "sample-visitor", CustomerID: "sample-customer",
					Returning: true, Inquiries: 1, Products: []notify.LeadProduct{{ProductID: "sample-product", Views: rule.MinViews}}}}
		}
		a.Test = true
		res := TestResult{Destination: d.String(), AlertID: a.ID}
		req, err := notify.Request(d, a, now)
		if err != nil {
			res.Err = err
			out = append(out, res)
			continue
		}
		ans, err := client.Do(ctx, req)
		if err != nil {
			res.Err = err
		} else {
			res.Status, res.Answer = ans.Status, truncate(string(ans.Body), 256)
			res.Verdict, _ = notify.Judge(d.Type, ans.Status, ans.Header, ans.Body, now)
		}
		out = append(out, res)
	}
	return out, nil
}

// SampleSignal makes a signal the rule matches, with a made-up customer.
func SampleSignal(rule *rules.Rule, now time.Time) *shoptrail.Signal {
	tier := "B"
	if len(rule.Tiers) > 0 {
		tier = rule.Tiers[0]
	}
	sig := &shoptrail.Signal{V: shoptrail.SignalVersion, ID: fmt.Sprintf("test-%d", now.UnixNano()), Site: rule.Site, At: now,
		CustomerID: "sample-customer",
		Customer: &shoptrail.SignalCustomer{ID: "sample-customer", Name: "Sample Customer", Company: "Sample Co.",
			Email: "buyer@example.com", Stage: shoptrail.StageSecondBuyer, Tier: tier, OrderCount: 2, NetRevenue: 2400,
			Currency: "CNY", LastOrderAt: now.AddDate(0, -1, 0), FirstChannel: "Organic Search", FirstSource: "baidu"}}
	switch rule.Type {
	case rules.TypeCartAbandoned:
		v := max(rule.MinValue, 1280)
		sig.Type = shoptrail.SignalCartAbandoned
		sig.Cart = &shoptrail.SignalCart{CartID: "sample-cart", Value: v, Currency: "CNY", ItemCount: 1, Step: "checkout",
			Items:          []shoptrail.SignalCartItem{{ProductID: "sample-product", Name: "Sample product", Price: v, Quantity: 1}},
			LastActivityAt: now.Add(-time.Hour), AbandonedAt: now, Channel: "Organic Search", Source: "baidu", AbandonmentID: "sample"}
	case rules.TypeCustomerTier:
		from, to := "B", "A"
		if len(rule.FromTiers) > 0 {
			from = rule.FromTiers[0]
		}
		if len(rule.Tiers) > 0 {
			to = rule.Tiers[0]
		} else if to == from {
			to = "C" // out of A, into something else
		}
		sig.Type = shoptrail.SignalTierChanged
		sig.Customer.Tier = to
		sig.Transition = &shoptrail.SignalTransition{Kind: "tier", From: from, To: to, Cause: "test"}
	default:
		to := shoptrail.StageDormant
		if len(rule.Stages) > 0 {
			to = rule.Stages[0]
		}
		sig.Type = shoptrail.SignalStageChanged
		sig.Customer.Stage = to
		sig.Transition = &shoptrail.SignalTransition{Kind: "stage", From: shoptrail.StageLoyal, To: to, Cause: "test"}
	}
	return sig
}
