package collector

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shoptrail/shoptrail"
)

// message is one message of the Segment HTTP Tracking API as a client sends it.
type message struct {
	Type              string          `json:"type"`
	Event             string          `json:"event"`
	Name              string          `json:"name"`
	MessageID         string          `json:"messageId"`
	AnonymousID       json.RawMessage `json:"anonymousId"` // Segment allows strings and numbers
	UserID            json.RawMessage `json:"userId"`
	GroupID           json.RawMessage `json:"groupId"`
	PreviousID        json.RawMessage `json:"previousId"`
	Timestamp         string          `json:"timestamp"`
	OriginalTimestamp string          `json:"originalTimestamp"`
	SentAt            string          `json:"sentAt"`
	Context           msgContext      `json:"context"`
	Properties        json.RawMessage `json:"properties"`
	Traits            json.RawMessage `json:"traits"`
	WriteKey          string          `json:"writeKey"`
}

type msgContext struct {
	Page      shoptrail.Page     `json:"page"`
	Campaign  shoptrail.Campaign `json:"campaign"`
	UserAgent string             `json:"userAgent"`
	Library   shoptrail.Library  `json:"library"`
	Locale    string             `json:"locale"`
	Timezone  string             `json:"timezone"`
	Delivery  shoptrail.Delivery `json:"delivery"`
	Traits    json.RawMessage    `json:"traits"`
}

// batchBody is the body of /v1/batch.
type batchBody struct {
	Batch    []json.RawMessage `json:"batch"`
	SentAt   string            `json:"sentAt"`
	WriteKey string            `json:"writeKey"`
}

// maxSkewFuture and maxAge bound a corrected event time: later than
// receivedAt+maxSkewFuture or older than maxAge is clamped to receivedAt
// and flagged.
const (
	maxSkewFuture = 5 * time.Minute
	maxAge        = 7 * 24 * time.Hour
)

// normalize turns a decoded message into an Event. typ is the type the
// endpoint implies ("" for /v1/batch, where each message names its own).
func normalize(m *message, typ, site, batchSentAt string, receivedAt time.Time) (shoptrail.Event, error) {
	if typ != "" {
		if m.Type != "" && m.Type != typ {
			return shoptrail.Event{}, fmt.Errorf("type %q does not match the endpoint's %q", m.Type, typ)
		}
		m.Type = typ
	}
	e := shoptrail.Event{
		V:          shoptrail.EventVersion,
		Site:       site,
		MessageID:  m.MessageID,
		Type:       m.Type,
		Event:      m.Event,
		Name:       m.Name,
		ReceivedAt: receivedAt,
		Properties: m.Properties,
		Traits:     m.Traits,
	}
	var err error
	if e.AnonymousID, err = idString(m.AnonymousID, "anonymousId"); err != nil {
		return e, err
	}
	if e.UserID, err = idString(m.UserID, "userId"); err != nil {
		return e, err
	}
	if e.GroupID, err = idString(m.GroupID, "groupId"); err != nil {
		return e, err
	}
	if e.PreviousID, err = idString(m.PreviousID, "previousId"); err != nil {
		return e, err
	}
	switch e.Type {
	case shoptrail.TypeTrack:
		if e.Event == "" {
			return e, fmt.Errorf("track message needs an event name")
		}
	case shoptrail.TypePage, shoptrail.TypeScreen, shoptrail.TypeIdentify:
	case shoptrail.TypeGroup:
		if e.GroupID == "" {
			return e, fmt.Errorf("group message needs a groupId")
		}
	case shoptrail.TypeAlias:
		if e.PreviousID == "" {
			return e, fmt.Errorf("alias message needs a previousId")
		}
	case "":
		return e, fmt.Errorf("message has no type")
	default:
		return e, fmt.Errorf("unknown message type %q", e.Type)
	}
	if e.AnonymousID == "" && e.UserID == "" {
		return e, fmt.Errorf("message needs an anonymousId or a userId")
	}
	if e.Type == shoptrail.TypeIdentify && len(e.Traits) == 0 && len(m.Context.Traits) > 0 {
		e.Traits = m.Context.Traits
	}
	if e.MessageID == "" {
		e.MessageID = newMessageID()
		e.Flags = append(e.Flags, shoptrail.FlagGeneratedID)
	}
	c := &e.Context
	c.Page = m.Context.Page
	c.Campaign = m.Context.Campaign
	c.UserAgent = m.Context.UserAgent
	c.Library = m.Context.Library
	c.Locale = m.Context.Locale
	c.Timezone = m.Context.Timezone
	c.Delivery = m.Context.Delivery

	ts := m.Timestamp
	if m.OriginalTimestamp != "" {
		ts = m.OriginalTimestamp
	}
	sentAt := m.SentAt
	if sentAt == "" {
		sentAt = batchSentAt
	}
	if e.OriginalTimestamp, err = parseTime(ts, "timestamp"); err != nil {
		return e, err
	}
	if e.SentAt, err = parseTime(sentAt, "sentAt"); err != nil {
		return e, err
	}
	e.Timestamp, e.Flags = correctTime(e.OriginalTimestamp, e.SentAt, receivedAt, e.Flags)
	return e, nil
}

// correctTime applies Segment's clock-skew correction,
// timestamp = receivedAt - (sentAt - originalTimestamp), and clamps times in
// the future or older than maxAge to receivedAt, flagging them.
func correctTime(orig, sentAt, receivedAt time.Time, flags []string) (time.Time, []string) {
	t := orig
	switch {
	case orig.IsZero():
		return receivedAt, flags
	case !sentAt.IsZero():
		t = receivedAt.Add(-sentAt.Sub(orig))
	}
	if t.After(receivedAt.Add(maxSkewFuture)) || t.Before(receivedAt.Add(-maxAge)) {
		return receivedAt, append(flags, shoptrail.FlagClockClamped)
	}
	return t, flags
}

func parseTime(s, field string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not an ISO 8601 time", field, s)
	}
	return t.UTC(), nil
}

// idString accepts an id sent as a JSON string or number.
func idString(raw json.RawMessage, field string) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%s is not a valid string", field)
		}
		return s, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	}
	return "", fmt.Errorf("%s must be a string or a number", field)
}

func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
