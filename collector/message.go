package collector

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/collector/useragent"
)

// Event checks. Identifiers and names are rejected when too long (they are
// keys); descriptive texts are cut and the event flagged "truncated".
const (
	maxNameLen  = 200  // event, name
	maxIDLen    = 256  // messageId, anonymousId, userId, groupId, previousId and property ids
	maxURLLen   = 2048 // page url and referrer, after cleaning
	maxTextLen  = 512  // title, search, userAgent
	maxShortLen = 128  // campaign fields, library, locale, timezone, delivery
	maxProducts = 500  // products[] of one event
	maxDepth    = 16   // nesting inside properties and traits
	maxAmount   = 1e15 // prices, revenue, ...: beyond any shop
	maxQuantity = 1e9

	// maxSkewFuture and maxAge (the default of Config.MaxEventAge) bound
	// a corrected event time: later than receivedAt+maxSkewFuture or older
	// than maxAge is clamped to receivedAt and flagged clock_clamped.
	maxSkewFuture = 5 * time.Minute
	maxAge        = 7 * 24 * time.Hour
)

// fieldError is why one event was rejected: the field (a JSON path such as
// "properties.products[2].price") and the reason.
type fieldError struct {
	field string // empty when the event as a whole is wrong
	msg   string // a sentence naming the field
	label string // metrics reason
}

func (e *fieldError) Error() string { return e.msg }

// invalid says that field, as sent, is wrong: reason is a predicate ("must
// be a number, not a string").
func invalid(field, reason string) *fieldError {
	return &fieldError{field: field, msg: field + " " + reason, label: reasonInvalid}
}

// missing says that a required field is absent.
func missing(field, msg string) *fieldError {
	return &fieldError{field: field, msg: msg, label: reasonInvalid}
}

// view returns b as a string without copying: valid while the request's
// parser buffer is, which outlives every use (encoding happens within the
// request).
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func typeName(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeString:
		return "a string"
	case fastjson.TypeNumber:
		return "a number"
	case fastjson.TypeObject:
		return "an object"
	case fastjson.TypeArray:
		return "an array"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "a boolean"
	}
	return "null"
}

func isNull(v *fastjson.Value) bool { return v == nil || v.Type() == fastjson.TypeNull }

// str reads an optional string field.
func str(v *fastjson.Value, field string) (string, *fieldError) {
	if isNull(v) {
		return "", nil
	}
	if v.Type() != fastjson.TypeString {
		return "", invalid(field, "must be a string, not "+typeName(v))
	}
	b, _ := v.StringBytes()
	return view(b), nil
}

// name reads an event or page name: bounded, without control characters.
func name(v *fastjson.Value, field string) (string, *fieldError) {
	s, err := str(v, field)
	if err != nil {
		return "", err
	}
	if len(s) > maxNameLen {
		return "", invalid(field, "is longer than 200 bytes")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return "", invalid(field, "contains control characters")
		}
	}
	return s, nil
}

// id reads an optional top-level identifier: a non-empty string or a
// number, as Segment allows. An empty (or blank) string counts as absent:
// SDKs send "userId": "" before identify (RudderStack always, analytics.js
// after reset), and the message is valid with its other id.
func (rq *request) id(v *fastjson.Value, field string) (string, *fieldError) {
	if v != nil && v.Type() == fastjson.TypeString {
		if b, _ := v.StringBytes(); len(bytes.TrimSpace(b)) == 0 {
			return "", nil
		}
	}
	s, reason := rq.idValue(v)
	if reason != "" {
		return "", invalid(field, reason)
	}
	return s, nil
}

// checkID checks an identifier without keeping it; it returns why it is
// wrong, or "".
func (rq *request) checkID(v *fastjson.Value) string {
	if v != nil && v.Type() == fastjson.TypeNumber {
		if f, err := v.Float64(); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "is not a finite number"
		}
		return ""
	}
	_, reason := rq.idValue(v)
	return reason
}

func (rq *request) idValue(v *fastjson.Value) (string, string) {
	if isNull(v) {
		return "", ""
	}
	var s string
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		s = view(b)
	case fastjson.TypeNumber:
		f, err := v.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", "is not a finite number"
		}
		start := len(rq.scratch)
		rq.scratch = v.MarshalTo(rq.scratch)
		s = view(rq.scratch[start:])
	default:
		return "", "must be a string or a number, not " + typeName(v)
	}
	if strings.TrimSpace(s) == "" {
		return "", "must not be empty"
	}
	if len(s) > maxIDLen {
		return "", "is longer than 256 bytes"
	}
	return s, ""
}

// text reads a descriptive string, cut to max bytes (flagging the event).
func (rq *request) text(v *fastjson.Value, field string, max int) (string, *fieldError) {
	s, err := str(v, field)
	if err != nil || len(s) <= max {
		return s, err
	}
	rq.truncated = true
	return truncate(s, max), nil
}

func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

func parseTime(v *fastjson.Value, field string) (time.Time, *fieldError) {
	s, err := str(v, field)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, perr := time.Parse(time.RFC3339Nano, s)
	if perr != nil {
		return time.Time{}, invalid(field, "is not an ISO 8601 time such as 2006-01-02T15:04:05.000Z")
	}
	// Times outside what is stored (ClickHouse's DateTime: 1970 to 2105)
	// are brought to its edge, so that the clock-skew correction sees them
	// as the wrong clocks they are and clamps and flags the event; year
	// 0001 (Go's and .NET's zero time) would otherwise read as "absent".
	switch {
	case t.Before(minTime):
		t = minTime
	case t.After(maxTime):
		t = maxTime
	}
	return t.UTC(), nil
}

func outOfRange(t time.Time) bool { return t.Equal(minTime) || t.Equal(maxTime) }

// The range of the times an event carries: ClickHouse's DateTime.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Date(2105, 12, 31, 23, 59, 59, 0, time.UTC)
)

var messageTypes = map[string]bool{
	shoptrail.TypeTrack: true, shoptrail.TypePage: true, shoptrail.TypeScreen: true,
	shoptrail.TypeIdentify: true, shoptrail.TypeGroup: true, shoptrail.TypeAlias: true,
}

// message holds the top-level fields of one Segment message.
type message struct {
	typ, event, name, messageID, anon, user, group, prev *fastjson.Value
	timestamp, originalTimestamp, sentAt                 *fastjson.Value
	context, properties, traits                          *fastjson.Value
}

// build turns one Segment message into e: parse, check, enrich. e's
// strings may be views of the request's buffers.
func (rq *request) build(v *fastjson.Value, e *shoptrail.Event) *fieldError {
	o, err := v.Object()
	if err != nil {
		return &fieldError{msg: "is not a JSON object", label: reasonNotJSON}
	}
	var m message
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "type":
			m.typ = v
		case "event":
			m.event = v
		case "name":
			m.name = v
		case "messageId":
			m.messageID = v
		case "anonymousId":
			m.anon = v
		case "userId":
			m.user = v
		case "groupId":
			m.group = v
		case "previousId":
			m.prev = v
		case "timestamp":
			m.timestamp = v
		case "originalTimestamp":
			m.originalTimestamp = v
		case "sentAt":
			m.sentAt = v
		case "context":
			m.context = v
		case "properties":
			m.properties = v
		case "traits":
			m.traits = v
		}
	})
	rq.truncated = false
	*e = shoptrail.Event{V: shoptrail.EventVersion, Site: rq.site.ID, ReceivedAt: rq.receivedAt}
	e.Flags = rq.flags[:0]

	var fe *fieldError
	if e.Type, fe = str(m.typ, "type"); fe != nil {
		return fe
	}
	if rq.typ != "" {
		if e.Type != "" && e.Type != rq.typ {
			return invalid("type", "is \""+e.Type+"\" but the endpoint is /v1/"+rq.typ)
		}
		e.Type = rq.typ
	}
	if e.Type == "" && rq.pixel {
		e.Type = shoptrail.TypePage
		if !isNull(m.event) {
			e.Type = shoptrail.TypeTrack
		}
	}
	switch {
	case e.Type == "":
		return invalid("type", "is missing")
	case !messageTypes[e.Type]:
		return invalid("type", "must be track, page, screen, identify, group or alias")
	}
	if e.Event, fe = name(m.event, "event"); fe != nil {
		return fe
	}
	if e.Name, fe = name(m.name, "name"); fe != nil {
		return fe
	}
	if e.MessageID, fe = rq.id(m.messageID, "messageId"); fe != nil {
		return fe
	}
	if e.AnonymousID, fe = rq.id(m.anon, "anonymousId"); fe != nil {
		return fe
	}
	if e.UserID, fe = rq.id(m.user, "userId"); fe != nil {
		return fe
	}
	if e.GroupID, fe = rq.id(m.group, "groupId"); fe != nil {
		return fe
	}
	if e.PreviousID, fe = rq.id(m.prev, "previousId"); fe != nil {
		return fe
	}
	switch e.Type {
	case shoptrail.TypeTrack:
		if strings.TrimSpace(e.Event) == "" {
			return missing("event", "track message needs an event name")
		}
	case shoptrail.TypeGroup:
		if e.GroupID == "" {
			return missing("groupId", "group message needs a groupId")
		}
	case shoptrail.TypeAlias:
		if e.PreviousID == "" {
			return missing("previousId", "alias message needs a previousId")
		}
	}
	if e.AnonymousID == "" && e.UserID == "" {
		return missing("anonymousId", "message needs an anonymousId or a userId")
	}
	if rq.adoptFrom != "" && e.AnonymousID == rq.adoptFrom {
		e.AnonymousID = rq.adoptTo
	}

	// Times: Segment's clock-skew correction.
	ts := m.originalTimestamp
	tsField := "originalTimestamp"
	if isNull(ts) {
		ts, tsField = m.timestamp, "timestamp"
	}
	if e.OriginalTimestamp, fe = parseTime(ts, tsField); fe != nil {
		return fe
	}
	e.SentAt = rq.sentAt
	if !isNull(m.sentAt) {
		if e.SentAt, fe = parseTime(m.sentAt, "sentAt"); fe != nil {
			return fe
		}
	}
	var clamped bool
	e.Timestamp, clamped = correctTime(e.OriginalTimestamp, e.SentAt, rq.receivedAt, rq.s.cfg.MaxEventAge)
	// A time parseTime brought into range came from a wrong clock, even
	// when the correction cancels it out (timestamp and sentAt both 0001).
	clamped = clamped || outOfRange(e.OriginalTimestamp) || outOfRange(e.SentAt)
	if clamped {
		e.Flags = append(e.Flags, shoptrail.FlagClockClamped)
	}

	rq.props = m.properties
	if fe = rq.context(m.context, e); fe != nil {
		return fe
	}

	// Properties and traits: objects, bounded, checked by event.
	start := len(rq.scratch)
	if fe = rq.properties(m.properties, e); fe != nil {
		return fe
	}
	if !allFinite(m.properties) {
		return finiteNumbers(m.properties, "properties")
	}
	if !isNull(m.properties) {
		rq.scratch = m.properties.MarshalTo(rq.scratch)
		e.Properties = rq.scratch[start:]
	}
	traits := m.traits
	if e.Type == shoptrail.TypeIdentify && isNull(traits) {
		traits = rq.ctxTraits
	}
	if !isNull(traits) {
		if traits.Type() != fastjson.TypeObject {
			return invalid("traits", "must be an object, not "+typeName(traits))
		}
		if !allFinite(traits) {
			return finiteNumbers(traits, "traits")
		}
		t := len(rq.scratch)
		rq.scratch = traits.MarshalTo(rq.scratch)
		e.Traits = rq.scratch[t:]
	}
	// Properties and traits alone over the limit: no need to build the
	// rest (the whole event is measured once encoded).
	if len(rq.scratch)-start > rq.s.cfg.MaxEventBytes {
		return &fieldError{msg: "event is larger than " + strconv.Itoa(rq.s.cfg.MaxEventBytes) + " bytes", label: reasonTooLarge}
	}

	if e.MessageID == "" {
		e.MessageID = rq.newMessageID(e)
		e.Flags = append(e.Flags, shoptrail.FlagGeneratedID)
	}
	if rq.truncated {
		e.Flags = append(e.Flags, shoptrail.FlagTruncated)
	}
	return nil
}

// correctTime applies Segment's clock-skew correction,
// timestamp = receivedAt - (sentAt - originalTimestamp), and clamps times
// in the future or older than maxAge to receivedAt.
func correctTime(orig, sentAt, receivedAt time.Time, maxAge time.Duration) (t time.Time, clamped bool) {
	if orig.IsZero() {
		return receivedAt, false
	}
	t = orig
	if !sentAt.IsZero() {
		t = receivedAt.Add(-sentAt.Sub(orig))
	}
	if t.After(receivedAt.Add(maxSkewFuture)) || t.Before(receivedAt.Add(-maxAge)) {
		return receivedAt, true
	}
	return t, false
}

// context reads the Segment context and enriches it: page (cleaned),
// campaign (from the page URL when absent), user agent, device, bot, IP.
func (rq *request) context(v *fastjson.Value, e *shoptrail.Event) *fieldError {
	c := &e.Context
	rq.ctxTraits = nil
	var ua string
	webdriver := false
	var ip string
	if !isNull(v) {
		o, err := v.Object()
		if err != nil {
			return invalid("context", "must be an object, not "+typeName(v))
		}
		var fe *fieldError
		o.Visit(func(k []byte, v *fastjson.Value) {
			if fe != nil {
				return
			}
			switch string(k) {
			case "page":
				fe = rq.page(v, &c.Page)
			case "campaign":
				fe = rq.campaign(v, &c.Campaign)
			case "userAgent":
				ua, fe = str(v, "context.userAgent")
			case "ip":
				ip, fe = str(v, "context.ip")
			case "library":
				fe = rq.library(v, &c.Library)
			case "locale":
				c.Locale, fe = rq.text(v, "context.locale", maxShortLen)
			case "timezone":
				c.Timezone, fe = rq.text(v, "context.timezone", maxShortLen)
			case "delivery":
				fe = rq.delivery(v, &c.Delivery)
			case "traits":
				rq.ctxTraits = v
			case "webdriver":
				webdriver = v.Type() == fastjson.TypeTrue
			}
		})
		if fe != nil {
			return fe
		}
	}
	// A page call carries its page in properties (Segment); use them when
	// the context has none. The URLs are cleaned already (sanitize), and
	// info is what cleaning the page URL learned; cut what is too long.
	info := &rq.pageInfo
	if c.Page.URL == "" && (e.Type == shoptrail.TypePage || e.Type == shoptrail.TypeScreen) && !isNull(rq.props) {
		if u := rq.props.Get("url"); u != nil && u.Type() == fastjson.TypeString {
			b, _ := u.StringBytes()
			c.Page.URL, info = view(b), &rq.propsInfo
		}
	}
	c.Page.URL = truncateFlag(rq, c.Page.URL, maxURLLen)
	c.Page.Referrer = truncateFlag(rq, c.Page.Referrer, maxURLLen)
	cp := &c.Campaign
	if cp.Name == "" && cp.Source == "" && cp.Medium == "" && cp.Term == "" && cp.Content == "" {
		cp.Source, cp.Medium, cp.Name = truncate(info.utmSource, maxShortLen), truncate(info.utmMedium, maxShortLen), truncate(info.utmCampaign, maxShortLen)
		cp.Term, cp.Content = truncate(info.utmTerm, maxShortLen), truncate(info.utmContent, maxShortLen)
	}
	if cp.ClickIDKind == "" && info.clickKind != "" {
		cp.ClickIDKind, cp.ClickID = info.clickKind, truncate(info.clickID, maxIDLen)
	}

	// Device and bot: from context.userAgent, else the request's header.
	// A message without context.userAgent that no browser sent (no Origin
	// header, not the pixel) comes from a server-side library: its user
	// agent is the library's.
	switch {
	case ua == "" && !rq.browser:
		c.Device.Class = useragent.ClassServer
	default:
		if ua == "" {
			ua = rq.headerUA
			rq.truncated = rq.truncated || rq.headerUACut
		}
		// Cut before classifying: the classifier's cache holds what it is given.
		if len(ua) > maxTextLen {
			ua = truncate(ua, maxTextLen)
			rq.truncated = true
		}
		ent := rq.s.ua.Classify(unsafe.Slice(unsafe.StringData(ua), len(ua)))
		c.UserAgent = ent.UA
		c.Device = shoptrail.Device{Class: ent.Class, Browser: ent.Browser, OS: ent.OS}
		if ent.Bot {
			c.Bot = shoptrail.Bot{IsBot: true, Reason: ent.BotReason}
		} else if webdriver {
			c.Bot = shoptrail.Bot{IsBot: true, Reason: "webdriver"}
			c.Device.Class = useragent.ClassBot
		}
	}
	// The connection's address, unless a server-side library (no browser)
	// relays its visitor's: a page's script cannot choose its IP.
	c.IP = rq.ip
	if ip != "" && !rq.browser && rq.s.cfg.IPMode != "drop" {
		c.IP = rq.s.anonymizeString(ip, rq)
	}
	return nil
}

func truncateFlag(rq *request, s string, max int) string {
	if len(s) > max {
		rq.truncated = true
		return truncate(s, max)
	}
	return s
}

func objectFields(v *fastjson.Value, field string, f func(k string, v *fastjson.Value) *fieldError) *fieldError {
	if isNull(v) {
		return nil
	}
	o, err := v.Object()
	if err != nil {
		return invalid(field, "must be an object, not "+typeName(v))
	}
	var fe *fieldError
	o.Visit(func(k []byte, v *fastjson.Value) {
		if fe == nil {
			fe = f(view(k), v)
		}
	})
	return fe
}

func (rq *request) page(v *fastjson.Value, p *shoptrail.Page) *fieldError {
	return objectFields(v, "context.page", func(k string, v *fastjson.Value) (fe *fieldError) {
		switch k {
		case "url":
			p.URL, fe = str(v, "context.page.url")
		case "path":
			p.Path, fe = rq.text(v, "context.page.path", maxURLLen)
		case "referrer":
			p.Referrer, fe = str(v, "context.page.referrer")
		case "title":
			p.Title, fe = rq.text(v, "context.page.title", maxTextLen)
		case "search":
			p.Search, fe = rq.text(v, "context.page.search", maxURLLen)
		}
		return fe
	})
}

func (rq *request) campaign(v *fastjson.Value, c *shoptrail.Campaign) *fieldError {
	return objectFields(v, "context.campaign", func(k string, v *fastjson.Value) (fe *fieldError) {
		switch k {
		case "name":
			c.Name, fe = rq.text(v, "context.campaign.name", maxShortLen)
		case "source":
			c.Source, fe = rq.text(v, "context.campaign.source", maxShortLen)
		case "medium":
			c.Medium, fe = rq.text(v, "context.campaign.medium", maxShortLen)
		case "term":
			c.Term, fe = rq.text(v, "context.campaign.term", maxShortLen)
		case "content":
			c.Content, fe = rq.text(v, "context.campaign.content", maxShortLen)
		case "clickIdKind":
			c.ClickIDKind, fe = rq.text(v, "context.campaign.clickIdKind", maxShortLen)
		case "clickId":
			c.ClickID, fe = rq.text(v, "context.campaign.clickId", maxIDLen)
		}
		return fe
	})
}

func (rq *request) library(v *fastjson.Value, l *shoptrail.Library) *fieldError {
	return objectFields(v, "context.library", func(k string, v *fastjson.Value) (fe *fieldError) {
		switch k {
		case "name":
			l.Name, fe = rq.text(v, "context.library.name", maxShortLen)
		case "version":
			if v.Type() == fastjson.TypeNumber { // some SDKs send 2.1
				start := len(rq.scratch)
				rq.scratch = v.MarshalTo(rq.scratch)
				l.Version = view(rq.scratch[start:])
				return nil
			}
			l.Version, fe = rq.text(v, "context.library.version", maxShortLen)
		}
		return fe
	})
}

func (rq *request) delivery(v *fastjson.Value, d *shoptrail.Delivery) *fieldError {
	return objectFields(v, "context.delivery", func(k string, v *fastjson.Value) (fe *fieldError) {
		switch k {
		case "tab":
			d.Tab, fe = rq.text(v, "context.delivery.tab", maxShortLen)
		case "seq":
			if isNull(v) {
				return nil
			}
			n, err := v.Int64()
			if err != nil || n < 0 {
				return invalid("context.delivery.seq", "must be a non-negative integer")
			}
			d.Seq = n
		case "transport":
			d.Transport, fe = rq.text(v, "context.delivery.transport", maxShortLen)
		}
		return fe
	})
}

// newMessageID makes the id of a message that came without one. With a
// client timestamp it is derived from the content, so a client's retry of
// the same event gets the same id and collapses downstream; without one a
// retry cannot be told from a repetition, and the id is random.
func (rq *request) newMessageID(e *shoptrail.Event) string {
	var sum [32]byte
	if e.OriginalTimestamp.IsZero() {
		rand.Read(sum[:16])
	} else {
		h := sha256.New()
		for _, s := range []string{e.Site, e.Type, e.Event, e.Name, e.AnonymousID, e.UserID, e.GroupID, e.PreviousID,
			e.OriginalTimestamp.Format(time.RFC3339Nano), string(e.Properties), string(e.Traits)} {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		h.Sum(sum[:0])
	}
	return "st-" + hex.EncodeToString(sum[:16])
}

// finiteNumbers checks that every number in v (custom properties and
// traits included) is one a float64 holds: JSON allows 1e999, which
// ClickHouse's JSON functions, JavaScript and Go read as infinity.
func finiteNumbers(v *fastjson.Value, field string) *fieldError {
	if v == nil {
		return nil
	}
	switch v.Type() {
	case fastjson.TypeNumber:
		if f, err := v.Float64(); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return invalid(field, "is "+truncate(v.String(), 40)+", beyond the range of a number (about ±1.8e308)")
		}
	case fastjson.TypeObject:
		o, _ := v.Object()
		var fe *fieldError
		o.Visit(func(k []byte, c *fastjson.Value) {
			if fe == nil && (c.Type() == fastjson.TypeNumber || c.Type() == fastjson.TypeObject || c.Type() == fastjson.TypeArray) {
				fe = finiteNumbers(c, field+"."+string(k))
			}
		})
		return fe
	case fastjson.TypeArray:
		a, _ := v.Array()
		for i, c := range a {
			if c.Type() == fastjson.TypeNumber || c.Type() == fastjson.TypeObject || c.Type() == fastjson.TypeArray {
				if fe := finiteNumbers(c, field+"["+strconv.Itoa(i)+"]"); fe != nil {
					return fe
				}
			}
		}
	}
	return nil
}

// allFinite is finiteNumbers' fast path: no allocation, no field name.
func allFinite(v *fastjson.Value) bool {
	if v == nil {
		return true
	}
	switch v.Type() {
	case fastjson.TypeNumber:
		f, err := v.Float64()
		return err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	case fastjson.TypeObject:
		o, _ := v.Object()
		ok := true
		o.Visit(func(_ []byte, c *fastjson.Value) { ok = ok && allFinite(c) })
		return ok
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, c := range a {
			if !allFinite(c) {
				return false
			}
		}
	}
	return true
}
