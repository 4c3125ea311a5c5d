package shoptrail

import "time"

// SignalVersion is the schema version of Signal written by this build. A
// consumer accepts every version up to its own and skips (and counts) newer
// ones, so processor and alerter can be upgraded independently: alerters
// first.
const SignalVersion = 1

// TopicSignals is the default Kafka topic of signals: what the processor
// concluded about carts and customers, for the alert hooks. Records are keyed
// by Signal.Key() so one subject's signals stay in order on one partition.
const TopicSignals = "shoptrail.signals"

// Signal types.
const (
	// SignalCartAbandoned: a cart held items and no order followed within the
	// abandonment window. Carries Cart.
	SignalCartAbandoned = "cart.abandoned"
	// SignalCartRecovered: an abandoned cart's visitor or customer ordered
	// within the recovery window. Carries Cart (with Recovered* set).
	SignalCartRecovered = "cart.recovered"
	// SignalStageChanged: a customer's lifecycle stage changed. Carries
	// Transition (Kind "stage").
	SignalStageChanged = "customer.stage_changed"
	// SignalTierChanged: a customer's value tier changed. Carries Transition
	// (Kind "tier").
	SignalTierChanged = "customer.tier_changed"
)

// Lifecycle stages of a customer, lowest first (see the README for the rules).
const (
	StageStranger         = "stranger"
	StageRegistered       = "registered"
	StagePotential        = "potential"
	StagePotentialDormant = "potential_dormant"
	StageFirstBuyer       = "first_buyer"
	StageSecondBuyer      = "second_buyer"
	StageThirdBuyer       = "third_buyer"
	StageLoyal            = "loyal"
	StageAtRisk           = "at_risk"
	StageDormant          = "dormant"
	StageLost             = "lost"
)

// Signal is one record of the signals topic, JSON-encoded. Its ID is
// deterministic (derived from what caused it, never from the wall clock or a
// random source), so a replay after a crash or rebalance produces the same
// ID and consumers collapse duplicates by it.
type Signal struct {
	// V is the schema version (SignalVersion).
	V int `json:"v"`
	// ID is the deterministic signal id (hex).
	ID string `json:"id"`
	// Type is one of the Signal* type constants.
	Type string `json:"type"`
	// Site is the id of the site the subject belongs to.
	Site string `json:"site"`
	// At is the event time at which the processor concluded this (for a
	// timer, the moment the timer fired in event time).
	At time.Time `json:"at"`
	// CustomerID is the stitched customer id, empty if the visitor is unknown.
	CustomerID string `json:"customerId,omitempty"`
	// AnonymousID is the visitor (device) the signal is about, if any.
	AnonymousID string `json:"anonymousId,omitempty"`

	// Customer is what is known of the customer at At (nil when unknown).
	Customer *SignalCustomer `json:"customer,omitempty"`
	// Cart is set for cart.* signals.
	Cart *SignalCart `json:"cart,omitempty"`
	// Transition is set for customer.* signals.
	Transition *SignalTransition `json:"transition,omitempty"`
}

// Key is the Kafka record key of the signal: the customer id when known,
// else "anon:" and the anonymous id.
func (s *Signal) Key() string {
	if s.CustomerID != "" {
		return s.CustomerID
	}
	return "anon:" + s.AnonymousID
}

// SignalCustomer is a salesperson's view of a customer: who, how valuable,
// how they came.
type SignalCustomer struct {
	ID          string    `json:"id"`
	Email       string    `json:"email,omitempty"` // identify trait, as the shop sent it
	Name        string    `json:"name,omitempty"`
	Phone       string    `json:"phone,omitempty"`
	Company     string    `json:"company,omitempty"`
	Industry    string    `json:"industry,omitempty"`
	Type        string    `json:"customerType,omitempty"` // enterprise / individual
	Role        string    `json:"role,omitempty"`         // engineer / purchaser / other
	Level       string    `json:"level,omitempty"`
	Stage       string    `json:"stage"`
	Tier        string    `json:"tier,omitempty"` // value tier, e.g. "A".."E"
	OrderCount  int       `json:"orderCount"`
	NetRevenue  float64   `json:"netRevenue"`
	Currency    string    `json:"currency,omitempty"`
	FirstSeenAt time.Time `json:"firstSeenAt,omitzero"`
	LastOrderAt time.Time `json:"lastOrderAt,omitzero"`
	LastVisitAt time.Time `json:"lastVisitAt,omitzero"`
	// FirstChannel and FirstSource: how the customer first came.
	FirstChannel string `json:"firstChannel,omitempty"`
	FirstSource  string `json:"firstSource,omitempty"`
}

// SignalCart is an abandoned (and possibly recovered) cart.
type SignalCart struct {
	CartID         string           `json:"cartId"`
	Value          float64          `json:"value"`
	Currency       string           `json:"currency,omitempty"`
	ItemCount      int              `json:"itemCount"`
	Items          []SignalCartItem `json:"items"`
	Step           string           `json:"step"` // cart / checkout / payment
	LastActivityAt time.Time        `json:"lastActivityAt"`
	AbandonedAt    time.Time        `json:"abandonedAt"`
	SessionID      string           `json:"sessionId,omitempty"`
	Channel        string           `json:"channel,omitempty"`
	Source         string           `json:"source,omitempty"`
	Medium         string           `json:"medium,omitempty"`
	Campaign       string           `json:"campaign,omitempty"`
	// AbandonmentID is the id of the cart_abandonments row.
	AbandonmentID string `json:"abandonmentId"`
	// Set on cart.recovered only.
	RecoveredAt      time.Time `json:"recoveredAt,omitzero"`
	RecoveredOrderID string    `json:"recoveredOrderId,omitempty"`
	RecoveredValue   float64   `json:"recoveredValue,omitempty"`
}

// SignalCartItem is one line of a cart.
type SignalCartItem struct {
	ProductID string  `json:"productId"`
	SKU       string  `json:"sku,omitempty"`
	Name      string  `json:"name,omitempty"`
	Category  string  `json:"category,omitempty"`
	Price     float64 `json:"price"`
	Quantity  int     `json:"quantity"`
}

// SignalTransition is a change of a customer's lifecycle stage or value tier.
type SignalTransition struct {
	Kind  string `json:"kind"` // "stage" or "tier"
	From  string `json:"from"`
	To    string `json:"to"`
	Cause string `json:"cause"` // the event (name and message id) or the timer that caused it
}
