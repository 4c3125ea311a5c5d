// Package notify turns an alert into the HTTP request a destination expects:
// a generic JSON webhook signed the Standard Webhooks way, or the native
// message of a Slack incoming webhook, DingTalk custom robot (signed),
// WeCom group robot or Feishu/Lark custom bot (signed). Requests are built
// anew for every attempt (timestamps and signatures are per attempt); the
// alert id, the webhook-id, stays the same.
package notify

import (
	"fmt"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor/alert/drop"
	"github.com/shoptrail/shoptrail/processor/alert/rules"
)

// Alert types.
const (
	TypeCartAbandoned = "alert.cart_abandoned"
	TypeCustomerStage = "alert.customer_stage"
	TypeCustomerTier  = "alert.customer_tier"
	TypeDigest        = "alert.digest"
	TypeConversion    = "alert.conversion_drop"
	TypeHotLead       = "alert.hot_lead"
)

// Alert is what a destination receives, as the data of a webhook or
// rendered as a chat message.
type Alert struct {
	// ID is the alert id (the webhook-id), the same on every attempt.
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Rule    string    `json:"rule"`
	Site    string    `json:"site"`
	At      time.Time `json:"at"`
	Subject string    `json:"subject"`
	// FollowUp is auto_email, personal_email or phone_call (carts).
	FollowUp   string                      `json:"followUp,omitempty"`
	Customer   *shoptrail.SignalCustomer   `json:"customer,omitempty"`
	Cart       *shoptrail.SignalCart       `json:"cart,omitempty"`
	Transition *shoptrail.SignalTransition `json:"transition,omitempty"`
	// Digest lists a day's alerts of a digest rule.
	Digest []DigestItem `json:"digest,omitempty"`
	// Lead is a hot lead.
	Lead *Lead `json:"lead,omitempty"`
	// Drop is a conversion drop and its suspects.
	Drop *drop.Finding `json:"drop,omitempty"`
	// Group is the digest's group (destination or channel).
	Group string `json:"group,omitempty"`
	// Test marks a sample sent by `shoptrail alerts test`.
	Test bool `json:"test,omitempty"`
}

// Lead is a hot lead: a known customer or returning visitor who keeps
// viewing products or inquires, without ordering.
type Lead struct {
	AnonymousID string        `json:"anonymousId"`
	CustomerID  string        `json:"customerId,omitempty"`
	Returning   bool          `json:"returning"`
	Inquiries   int           `json:"inquiries"`
	Products    []LeadProduct `json:"products,omitempty"`
}

// LeadProduct is a product a lead viewed repeatedly.
type LeadProduct struct {
	ProductID string `json:"productId"`
	Views     int    `json:"views"`
}

// DigestItem is one customer of a digest.
type DigestItem struct {
	Subject string    `json:"subject"`
	At      time.Time `json:"at"`
	// Kind is what changed: "stage" or "tier" (empty: stage).
	Kind       string  `json:"kind,omitempty"`
	Name       string  `json:"name,omitempty"`
	Company    string  `json:"company,omitempty"`
	Email      string  `json:"email,omitempty"`
	Phone      string  `json:"phone,omitempty"`
	Tier       string  `json:"tier,omitempty"`
	From       string  `json:"from"`
	To         string  `json:"to"`
	OrderCount int     `json:"orderCount"`
	NetRevenue float64 `json:"netRevenue"`
	Currency   string  `json:"currency,omitempty"`
	Channel    string  `json:"channel,omitempty"`
}

// FromSignal builds the alert of a decision about a signal.
func FromSignal(d *rules.Decision, sig *shoptrail.Signal) *Alert {
	a := &Alert{ID: d.AlertID, Rule: d.Rule.Name, Site: sig.Site, At: sig.At, Subject: d.Subject,
		FollowUp: d.FollowUp, Customer: sig.Customer, Cart: sig.Cart, Transition: sig.Transition}
	switch d.Rule.Type {
	case rules.TypeCartAbandoned:
		a.Type = TypeCartAbandoned
	case rules.TypeCustomerTier:
		a.Type = TypeCustomerTier
	default:
		a.Type = TypeCustomerStage
	}
	return a
}

// followUpText is how a follow-up reads in a message.
var followUpText = map[string]string{
	rules.FollowUpAutoEmail:     "automatic email",
	rules.FollowUpPersonalEmail: "personal email",
	rules.FollowUpPhoneCall:     "phone call",
}

// spanText names a window: "hour", "24 hours".
func spanText(hours int) string {
	if hours <= 1 {
		return "hour"
	}
	return fmt.Sprintf("%d hours", hours)
}

var stepText = map[string]string{"view_to_cart": "view -> cart", "cart_to_checkout": "cart -> checkout", "checkout_to_order": "checkout -> order"}
var stepBase = map[string]string{"view_to_cart": "product views", "cart_to_checkout": "adds to cart", "checkout_to_order": "checkouts"}

// Title is the one-line summary of an alert.
func (a *Alert) Title() string {
	test := ""
	if a.Test {
		test = "[test] "
	}
	switch a.Type {
	case TypeCartAbandoned:
		v := 0.0
		cur := ""
		if a.Cart != nil {
			v, cur = a.Cart.Value, a.Cart.Currency
		}
		return fmt.Sprintf("%sAbandoned cart %s %s by %s", test, money(v), cur, a.who())
	case TypeCustomerStage:
		to := ""
		if a.Transition != nil {
			to = a.Transition.To
		}
		return fmt.Sprintf("%sCustomer %s turned %s", test, a.who(), strings.ReplaceAll(to, "_", "-"))
	case TypeCustomerTier:
		from, to := "", ""
		if a.Transition != nil {
			from, to = a.Transition.From, a.Transition.To
		}
		if from == "" {
			return fmt.Sprintf("%sCustomer %s is now tier %s", test, a.who(), to)
		}
		return fmt.Sprintf("%sCustomer %s moved from tier %s to tier %s", test, a.who(), from, to)
	case TypeDigest:
		what := "stage"
		if len(a.Digest) > 0 && a.Digest[0].Kind == "tier" {
			what = "tier" // a rule's digest holds one kind
		}
		customers := "customers"
		if len(a.Digest) == 1 {
			customers = "customer"
		}
		return fmt.Sprintf("%s%d %s changed %s (%s, %s)", test, len(a.Digest), customers, what, a.Rule, a.Group)
	case TypeHotLead:
		if l := a.Lead; l != nil {
			who := l.CustomerID
			if who == "" {
				who = "returning visitor " + l.AnonymousID
			}
			what := "an inquiry"
			if len(l.Products) > 0 {
				what = fmt.Sprintf("%d views of %s", l.Products[0].Views, l.Products[0].ProductID)
				if l.Inquiries > 0 {
					what += " and an inquiry"
				}
			}
			return fmt.Sprintf("%sHot lead: %s, %s, no order", test, who, what)
		}
	case TypeConversion:
		if d := a.Drop; d != nil {
			return fmt.Sprintf("%sConversion %s fell to %.1f%% (usual %.1f%%) on %s", test, stepText[d.Step], 100*d.Rate, 100*d.Baseline, a.Site)
		}
	}
	return test + a.Type
}

func (a *Alert) who() string {
	if c := a.Customer; c != nil {
		name := c.Name
		if name == "" {
			name = c.ID
		}
		if c.Company != "" {
			name += " (" + c.Company + ")"
		}
		return name
	}
	return "an anonymous visitor"
}

func money(v float64) string { return fmt.Sprintf("%.2f", v) }

// Lines are the details of an alert as "label: value" lines, in a fixed
// order; chat formats render them.
func (a *Alert) Lines() []string {
	var l []string
	add := func(label, v string) {
		if v != "" {
			l = append(l, label+": "+v)
		}
	}
	if c := a.Customer; c != nil {
		add("Customer", c.Name)
		add("Company", c.Company)
		add("Email", c.Email)
		add("Phone", c.Phone)
		add("Tier", c.Tier)
		add("Stage", c.Stage)
		add("Orders", fmt.Sprintf("%d, net revenue %s %s", c.OrderCount, money(c.NetRevenue), c.Currency))
		if !c.LastOrderAt.IsZero() {
			add("Last order", c.LastOrderAt.UTC().Format("2006-01-02"))
		}
	}
	if ct := a.Cart; ct != nil {
		add("Value", strings.TrimSpace(money(ct.Value)+" "+ct.Currency))
		for _, it := range ct.Items {
			name := it.Name
			if name == "" {
				name = it.ProductID
			}
			l = append(l, fmt.Sprintf("- %d x %s @ %s", it.Quantity, name, money(it.Price)))
		}
		add("Step", ct.Step)
		came := strings.Trim(ct.Channel+" / "+ct.Source, " /")
		add("Came via", came)
		add("Campaign", ct.Campaign)
	}
	if tr := a.Transition; tr != nil {
		if tr.Kind == "tier" {
			from := tr.From
			if from == "" {
				from = "(none)"
			}
			add("Tier change", from+" -> "+tr.To)
		} else {
			add("Change", tr.From+" -> "+tr.To)
		}
	}
	for _, it := range a.Digest {
		who := it.Name
		if who == "" {
			who = it.Subject
		}
		if it.Company != "" {
			who += " (" + it.Company + ")"
		}
		l = append(l, fmt.Sprintf("- %s, tier %s: %s -> %s, %d orders, %s %s", who, it.Tier, it.From, it.To, it.OrderCount, money(it.NetRevenue), it.Currency))
	}
	if ld := a.Lead; ld != nil {
		add("Customer", ld.CustomerID)
		add("Visitor", ld.AnonymousID)
		if ld.Returning {
			add("Returning", "yes")
		}
		if ld.Inquiries > 0 {
			add("Inquiries", fmt.Sprint(ld.Inquiries))
		}
		for _, p := range ld.Products {
			l = append(l, fmt.Sprintf("- %s viewed %d times", p.ProductID, p.Views))
		}
	}
	if d := a.Drop; d != nil {
		add("Window", fmt.Sprintf("the %s to %s, %.0f %s", spanText(d.Hours), a.At.UTC().Format("2006-01-02 15:04 UTC"), d.Volume, stepBase[d.Step]))
		add("Usual", fmt.Sprintf("%.2f%% (median of the same %s in %d weeks), z %.1f", 100*d.Baseline, spanText(d.Hours), d.Weeks, d.Z))
		for _, p := range d.Products {
			l = append(l, fmt.Sprintf("- product %s: price %s -> %s, cart rate %.1f%% -> %.1f%%", p.ProductID,
				money(p.BaselinePrice), money(p.Price), 100*p.BaselineCartRate, 100*p.CartRate))
		}
		for _, s := range d.Sources {
			l = append(l, fmt.Sprintf("- source %s: share %.0f%% -> %.0f%%", s.Source, 100*s.BaselineShare, 100*s.Share))
		}
	}
	if a.FollowUp != "" {
		add("Suggested follow-up", followUpText[a.FollowUp])
	}
	return l
}
