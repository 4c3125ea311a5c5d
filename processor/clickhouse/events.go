package clickhouse

import (
	"strings"
	"time"

	"github.com/shoptrail/shoptrail"
	"github.com/shoptrail/shoptrail/processor"
)

// eventColumns are the columns of the events table,
// in the order of eventRow. Always list columns: ClickHouse 18.16 refuses a
// prepared INSERT without them.
var eventColumns = []string{
	"site", "message_id", "type", "event", "name", "anonymous_id", "user_id",
	"event_time", "event_ms", "original_time", "sent_at", "received_at",
	"page_url", "page_path", "page_referrer", "page_title",
	"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
	"click_id_kind", "click_id", "user_agent", "ip", "device_class", "browser", "os",
	"is_bot", "bot_reason", "library", "locale", "tab_id", "seq", "transport",
	"flags", "properties", "traits", "schema_version",
}

var insertEvents = "INSERT INTO events (" + strings.Join(eventColumns, ", ") + ")"

// minTime and maxTime bound what a DateTime column holds; zero times are
// stored as minTime (1970-01-01 00:00:00), absurd ones clamped.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Unix(1<<32-1, 0).UTC()
)

func dt(t time.Time) time.Time {
	switch {
	case t.Before(minTime):
		return minTime
	case t.After(maxTime):
		return maxTime
	}
	return t.UTC()
}

// eventRow returns the values of one events row, in eventColumns order.
func eventRow(e *shoptrail.Event) []any {
	c := &e.Context
	isBot := uint8(0)
	if c.Bot.IsBot {
		isBot = 1
	}
	flags := e.Flags
	if flags == nil {
		flags = []string{}
	}
	lib := c.Library.Name
	if c.Library.Version != "" {
		lib += "/" + c.Library.Version
	}
	return []any{
		e.Site, e.MessageID, e.Type, e.Event, e.Name, e.AnonymousID, e.UserID,
		dt(e.Timestamp), uint16(e.Timestamp.Nanosecond() / 1e6), dt(e.OriginalTimestamp), dt(e.SentAt), dt(e.ReceivedAt),
		c.Page.URL, c.Page.Path, c.Page.Referrer, c.Page.Title,
		c.Campaign.Source, c.Campaign.Medium, c.Campaign.Name, c.Campaign.Term, c.Campaign.Content,
		c.Campaign.ClickIDKind, c.Campaign.ClickID, c.UserAgent, c.IP, c.Device.Class, c.Device.Browser, c.Device.OS,
		isBot, c.Bot.Reason, lib, c.Locale, c.Delivery.Tab, c.Delivery.Seq, c.Delivery.Transport,
		flags, string(orEmpty(e.Properties)), string(orEmpty(e.Traits)), uint8(e.V),
	}
}

func orEmpty(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

// eventsTable is the events table: ReplacingMergeTree keyed by (site,
// message_id), so an event written twice collapses.
var eventsTable = table[shoptrail.Event]{
	name:  "events",
	query: insertEvents,
	row:   eventRow,
	dead: func(e *shoptrail.Event, b *processor.Batch, i int) processor.DeadLetter {
		d := processor.DeadLetter{RowKey: e.MessageID, Time: e.Timestamp, Payload: payload(e)}
		if i < len(b.Offsets) {
			d.Offset = b.Offsets[i]
		}
		return d
	},
}
