package notify

import (
	"io"
	"testing"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/alert/drop"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// The exact payload of each kind of alert (stage change, tier change,
// digests of either, conversion drop, hot lead) as a webhook's data and as chat text.
func TestAlertKindsPayloads(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	kinds := map[string]*Alert{
		"stage": {ID: "msg_stage", Type: TypeCustomerStage, Rule: "dormant", Site: "shop-1", At: at, Subject: "c-7",
			Customer:   &shoptrail.SignalCustomer{ID: "c-7", Name: "Zhang San", Company: "Acme", Tier: "A", Stage: shoptrail.StageDormant, OrderCount: 9, NetRevenue: 20450, Currency: "CNY"},
			Transition: &shoptrail.SignalTransition{Kind: "stage", From: shoptrail.StageLoyal, To: shoptrail.StageDormant, Cause: "timer"}},
		"tier": {ID: "msg_tier", Type: TypeCustomerTier, Rule: "new-key-accounts", Site: "shop-1", At: at, Subject: "c-7",
			Customer:   &shoptrail.SignalCustomer{ID: "c-7", Name: "Zhang San", Company: "Acme", Tier: "A", Stage: shoptrail.StageLoyal, OrderCount: 9, NetRevenue: 20450, Currency: "CNY", LastOrderAt: at.AddDate(0, 0, -12)},
			Transition: &shoptrail.SignalTransition{Kind: "tier", From: "B", To: "A", Cause: "Order Completed m-81"}},
		"tierdigest": {ID: "msg_tierdigest", Type: TypeDigest, Rule: "slipping", Site: "shop-1", At: at, Subject: "Organic Search", Group: "Organic Search",
			Digest: []DigestItem{{Subject: "c-7", At: at, Kind: "tier", Name: "Zhang San", Company: "Acme", Tier: "C", From: "A", To: "C", OrderCount: 9, NetRevenue: 20450, Currency: "CNY", Channel: "Organic Search"}}},
		"digest": {ID: "msg_digest", Type: TypeDigest, Rule: "dormant", Site: "shop-1", At: at, Subject: "team", Group: "team",
			Digest: []DigestItem{{Subject: "c-7", At: at, Name: "Zhang San", Company: "Acme", Tier: "A", From: "loyal", To: "dormant", OrderCount: 9, NetRevenue: 20450, Currency: "CNY"},
				{Subject: "c-9", At: at, Tier: "C", From: "second_buyer", To: "at_risk", OrderCount: 2, NetRevenue: 300, Currency: "CNY"}}},
		"drop": {ID: "msg_drop", Type: TypeConversion, Rule: "conversion", Site: "shop-1", At: at, Subject: "step:view_to_cart",
			Drop: &drop.Finding{Step: "view_to_cart", Rate: 0.056, Baseline: 0.08, Spread: 0.0045, Z: 5.3, Volume: 5000, Weeks: 4,
				Products: []drop.Suspect{{ProductID: "p1", BaselinePrice: 100, Price: 130, BaselineCartRate: 0.08, CartRate: 0.02, Views: 2000}},
				Sources:  []drop.Shift{{Source: "douyin", BaselineShare: 0.2, Share: 0.45}}}},
		"lead": {ID: "msg_lead", Type: TypeHotLead, Rule: "leads", Site: "shop-1", At: at, Subject: "u1",
			Lead: &Lead{AnonymousID: "a1", CustomerID: "u1", Returning: true, Inquiries: 1, Products: []LeadProduct{{ProductID: "p1", Views: 4}}}},
	}
	now := time.Date(2026, 3, 2, 9, 1, 0, 0, time.UTC)
	for name, a := range kinds {
		for _, d := range []*rules.Destination{
			{Name: "w", Type: rules.DestWebhook, URL: "https://hooks.example.com/x", Secret: webhookSecret},
			{Name: "wc", Type: rules.DestWeCom, URL: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"},
		} {
			req, err := Request(d, a, now)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(req.Body)
			golden(t, name+"."+d.Type+".json", b)
		}
	}
}
