package shoptrail

import (
	"encoding/json"
	"time"
)

// EventVersion is the schema version of Event written by this build. A
// consumer must accept every version up to its own and reject newer ones
// (into the dead-letter topic), so collector and processor can be upgraded
// independently: processors first.
const EventVersion = 1

// Default Kafka topic names. Events are keyed by anonymous id (or user id when
// there is none) so that one visitor's events stay in order on one partition.
const (
	TopicEvents     = "shoptrail.events"
	TopicDeadLetter = "shoptrail.events.dlq"
)

// Event types, as in the Segment Spec.
const (
	TypeTrack    = "track"
	TypePage     = "page"
	TypeScreen   = "screen"
	TypeIdentify = "identify"
	TypeGroup    = "group"
	TypeAlias    = "alias"
)

// Segment E-commerce v2 event names (and the few B2B events of ours) that
// the pipeline gives meaning to. Any other name is carried as it is.
const (
	EventProductsSearched       = "Products Searched"
	EventProductListViewed      = "Product List Viewed"
	EventPromotionViewed        = "Promotion Viewed"
	EventPromotionClicked       = "Promotion Clicked"
	EventProductClicked         = "Product Clicked"
	EventProductViewed          = "Product Viewed"
	EventProductAdded           = "Product Added"
	EventProductRemoved         = "Product Removed"
	EventCartViewed             = "Cart Viewed"
	EventCheckoutStarted        = "Checkout Started"
	EventCheckoutStepCompleted  = "Checkout Step Completed"
	EventPaymentInfoEntered     = "Payment Info Entered"
	EventOrderCompleted         = "Order Completed"
	EventOrderRefunded          = "Order Refunded"
	EventOrderCancelled         = "Order Cancelled"
	EventProductAddedToWishlist = "Product Added to Wishlist"
	EventSignedUp               = "Signed Up"
	EventLoggedIn               = "Logged In"
	EventInquiry                = "Inquiry Started"
)

// Event is one normalized event as it travels on Kafka, JSON-encoded. Its
// shape follows the Segment Spec so that a Segment message maps onto it field
// by field; the collector adds what it knows (site, receive time, corrected
// event time, enrichment) and the processor reads nothing else.
type Event struct {
	// V is the schema version (EventVersion).
	V int `json:"v"`
	// Site is the id of the site whose write key sent the event.
	Site string `json:"site"`

	MessageID   string `json:"messageId"`
	Type        string `json:"type"`
	Event       string `json:"event,omitempty"` // track: event name
	Name        string `json:"name,omitempty"`  // page/screen: page name
	AnonymousID string `json:"anonymousId,omitempty"`
	UserID      string `json:"userId,omitempty"`
	GroupID     string `json:"groupId,omitempty"`    // group
	PreviousID  string `json:"previousId,omitempty"` // alias

	// Timestamp is when the event happened, corrected for the client's
	// clock skew: receivedAt - (sentAt - originalTimestamp).
	Timestamp time.Time `json:"timestamp"`
	// OriginalTimestamp is the time the client claimed, unchanged.
	OriginalTimestamp time.Time `json:"originalTimestamp,omitzero"`
	// SentAt is the client's time when it sent the request.
	SentAt time.Time `json:"sentAt,omitzero"`
	// ReceivedAt is the collector's time when the request arrived.
	ReceivedAt time.Time `json:"receivedAt"`

	Context    Context         `json:"context"`
	Properties json.RawMessage `json:"properties,omitempty"`
	Traits     json.RawMessage `json:"traits,omitempty"`

	// Flags lists what the collector noticed about the event, for example
	// FlagClockClamped. Stored with the event; never a reason to drop it.
	Flags []string `json:"flags,omitempty"`
}

// Flags the collector may set on an event.
const (
	// FlagClockClamped: the corrected time was in the future or absurdly
	// old and was clamped to the receive time.
	FlagClockClamped = "clock_clamped"
	// FlagGeneratedID: the client sent no messageId; the collector made one
	// (derived from the event's content when it has a timestamp, so that a
	// client's retry gets the same id).
	FlagGeneratedID = "generated_id"
	// FlagTruncated: a descriptive text (URL, referrer, title, user agent,
	// campaign field) was longer than the collector keeps and was cut.
	FlagTruncated = "truncated"
)

// Context is the Segment context object, plus the collector's enrichment.
type Context struct {
	Page      Page     `json:"page,omitzero"`
	Campaign  Campaign `json:"campaign,omitzero"`
	UserAgent string   `json:"userAgent,omitempty"`
	// IP is the client address as stored: anonymized by the collector
	// (last octet or last 80 bits zeroed), never the raw address.
	IP       string  `json:"ip,omitempty"`
	Library  Library `json:"library,omitzero"`
	Locale   string  `json:"locale,omitempty"`
	Timezone string  `json:"timezone,omitempty"`

	// Device is the user agent parsed by the collector.
	Device Device `json:"device,omitzero"`
	// Bot is set by the collector when the user agent or behaviour is a
	// crawler's. Bot events are kept, flagged, and left out of dashboards.
	Bot Bot `json:"bot,omitzero"`
	// Delivery is the beacon's loss telemetry.
	Delivery Delivery `json:"delivery,omitzero"`
}

// Page is context.page of the Segment Spec.
type Page struct {
	URL      string `json:"url,omitempty"`
	Path     string `json:"path,omitempty"`
	Referrer string `json:"referrer,omitempty"`
	Title    string `json:"title,omitempty"`
	Search   string `json:"search,omitempty"`
}

// Campaign is context.campaign of the Segment Spec (the utm_* parameters),
// plus the ad click id the landing URL carried.
type Campaign struct {
	Name    string `json:"name,omitempty"`
	Source  string `json:"source,omitempty"`
	Medium  string `json:"medium,omitempty"`
	Term    string `json:"term,omitempty"`
	Content string `json:"content,omitempty"`
	// ClickIDKind names the click id parameter (gclid, msclkid, bd_vid, ...).
	ClickIDKind string `json:"clickIdKind,omitempty"`
	ClickID     string `json:"clickId,omitempty"`
}

// Library is context.library of the Segment Spec.
type Library struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

// Device is what the collector parsed from the user agent.
type Device struct {
	Class   string `json:"class,omitempty"` // desktop, mobile, tablet, bot, server (sent by a server-side library), other
	Browser string `json:"browser,omitempty"`
	OS      string `json:"os,omitempty"`
}

// Bot tells whether the event came from a crawler, and why it is thought so.
type Bot struct {
	IsBot  bool   `json:"isBot,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Delivery is the beacon's loss telemetry: a per-tab sequence number lets the
// processor count events that never arrived, and the transport tells how the
// event was sent (fetch, beacon, pixel, retry).
type Delivery struct {
	Tab       string `json:"tab,omitempty"`
	Seq       int64  `json:"seq,omitempty"`
	Transport string `json:"transport,omitempty"`
}

// Key is the Kafka message key of the event: the anonymous id, or the user id
// for server-side events that have none.
func (e *Event) Key() string {
	if e.AnonymousID != "" {
		return e.AnonymousID
	}
	return e.UserID
}
