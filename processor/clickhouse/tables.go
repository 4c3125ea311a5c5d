package clickhouse

import (
	"strconv"
	"strings"
	"time"

	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/session"
)

// The tables of migration 0002, one table value each: the INSERT with its
// column list (ClickHouse 18.16 needs one) and the row in that order.

func insertInto(name string, cols ...string) string {
	return "INSERT INTO " + name + " (" + strings.Join(cols, ", ") + ")"
}

func boolU8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

var sessionsTable = table[session.Session]{
	name: "sessions",
	rows: func(b *processor.Batch) []session.Session { return b.Sessions },
	query: insertInto("sessions",
		"site", "session_id", "anonymous_id", "customer_id", "start_time", "end_time", "duration_ms",
		"events", "page_views", "landing_page", "exit_page", "referrer",
		"source", "medium", "campaign", "term", "content", "click_id_kind", "channel", "rules_version",
		"device_class", "browser", "os", "is_bot", "is_returning", "is_engaged",
		"funnel_step", "cart_value", "orders", "revenue", "is_final"),
	row: func(s *session.Session) []any {
		return []any{
			s.Site, s.SessionID, s.AnonymousID, s.UserID, dt(s.Start), dt(s.End), uint32(s.Duration.Milliseconds()),
			s.Events, s.PageViews, s.LandingPage, s.ExitPage, s.Referrer,
			s.Source, s.Medium, s.Campaign, s.Term, s.Content, s.ClickIDKind, s.Channel, s.RulesVersion,
			s.DeviceClass, s.Browser, s.OS, boolU8(s.IsBot), boolU8(s.Returning), boolU8(s.Engaged),
			s.Funnel.String(), s.CartValue, s.Orders, s.Revenue, boolU8(s.Final),
		}
	},
	columns: sessionColumnValues,
	dead: func(s *session.Session, _ *processor.Batch, _ int) processor.DeadLetter {
		return processor.DeadLetter{RowKey: s.SessionID, Time: s.Start, Payload: payload(s)}
	},
}

// sessionColumnValues returns sessions rows column by column, in the order
// of sessionsTable's query.
func sessionColumnValues(batches []*processor.Batch, refs []rowRef) ([]any, func()) {
	n := len(refs)
	var strs [18][]string
	for i := range strs {
		strs[i] = make([]string, n)
	}
	start, end := make([]time.Time, n), make([]time.Time, n)
	var u32 [4][]uint32 // duration_ms, events, page_views, orders
	for i := range u32 {
		u32[i] = make([]uint32, n)
	}
	var u8 [4][]uint8 // is_bot, is_returning, is_engaged, is_final
	for i := range u8 {
		u8[i] = make([]uint8, n)
	}
	rules, cart, revenue := make([]uint16, n), make([]float64, n), make([]float64, n)
	for j, r := range refs {
		s := &batches[r.b].Sessions[r.i]
		for i, v := range [...]string{
			s.Site, s.SessionID, s.AnonymousID, s.UserID, s.LandingPage, s.ExitPage, s.Referrer,
			s.Source, s.Medium, s.Campaign, s.Term, s.Content, s.ClickIDKind, s.Channel,
			s.DeviceClass, s.Browser, s.OS, s.Funnel.String(),
		} {
			strs[i][j] = v
		}
		start[j], end[j] = dt(s.Start), dt(s.End)
		u32[0][j], u32[1][j], u32[2][j], u32[3][j] = uint32(s.Duration.Milliseconds()), s.Events, s.PageViews, s.Orders
		u8[0][j], u8[1][j], u8[2][j], u8[3][j] = boolU8(s.IsBot), boolU8(s.Returning), boolU8(s.Engaged), boolU8(s.Final)
		rules[j], cart[j], revenue[j] = s.RulesVersion, s.CartValue, s.Revenue
	}
	return []any{
		strs[0], strs[1], strs[2], strs[3], start, end, u32[0],
		u32[1], u32[2], strs[4], strs[5], strs[6],
		strs[7], strs[8], strs[9], strs[10], strs[11], strs[12], strs[13], rules,
		strs[14], strs[15], strs[16], u8[0], u8[1], u8[2],
		strs[17], cart, u32[3], revenue, u8[3],
	}, func() {}
}

// assignmentRank orders the statuses of copies of one message id: the
// highest wins in event_sessions (ReplacingMergeTree(rank)).
func assignmentRank(s session.Status) uint8 {
	switch s {
	case session.Assigned:
		return 3
	case session.Duplicate:
		return 2
	case session.Late:
		return 1
	}
	return 0
}

var assignmentsTable = table[session.Assignment]{
	name:    "event_sessions",
	rows:    func(b *processor.Batch) []session.Assignment { return b.Assignments },
	columns: assignmentColumnValues,
	query:   insertInto("event_sessions", "site", "message_id", "session_id", "status", "rank"),
	row: func(a *session.Assignment) []any {
		return []any{a.Site, a.MessageID, a.SessionID, a.Status.String(), assignmentRank(a.Status)}
	},
	dead: func(a *session.Assignment, _ *processor.Batch, _ int) processor.DeadLetter {
		return processor.DeadLetter{RowKey: a.MessageID, Payload: payload(a)}
	},
}

var linksTable = table[session.IdentityLink]{
	name:  "identity_links",
	rows:  func(b *processor.Batch) []session.IdentityLink { return b.Links },
	query: insertInto("identity_links", "site", "anonymous_id", "customer_id", "first_seen"),
	row: func(l *session.IdentityLink) []any {
		return []any{l.Site, l.AnonymousID, l.UserID, dt(l.FirstSeen)}
	},
	dead: func(l *session.IdentityLink, _ *processor.Batch, _ int) processor.DeadLetter {
		return processor.DeadLetter{RowKey: l.AnonymousID + " " + l.UserID, Time: l.FirstSeen, Payload: payload(l)}
	},
}

// maxDate is the last day a Date column holds on every ClickHouse version.
var maxDate = time.Date(2105, 12, 31, 0, 0, 0, 0, time.UTC)

func date(t time.Time) time.Time {
	t = dt(t)
	if t.After(maxDate) {
		t = maxDate
	}
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

var lossTable = table[processor.LossRow]{
	name: "delivery_loss",
	rows: func(b *processor.Batch) []processor.LossRow { return b.Loss },
	query: insertInto("delivery_loss", "site", "browser", "page_path", "kafka_partition", "bucket_offset",
		"day", "received", "lost", "through_offset"),
	row: func(r *processor.LossRow) []any {
		return []any{r.Site, r.Browser, r.Path, uint32(r.Partition), uint64(r.Bucket),
			date(r.Day), r.Received, r.Lost, uint64(r.Through)}
	},
	dead: func(r *processor.LossRow, _ *processor.Batch, _ int) processor.DeadLetter {
		return processor.DeadLetter{
			RowKey: r.Site + " " + r.Browser + " " + r.Path + " " + strconv.Itoa(r.Partition) + "/" + strconv.FormatInt(r.Bucket, 10),
			Time:   r.Day, Offset: r.Through, Payload: payload(r),
		}
	},
}

var deadLettersTable = table[processor.DeadLetter]{
	name: "dead_letters",
	rows: func(b *processor.Batch) []processor.DeadLetter { return b.DeadLetters },
	query: insertInto("dead_letters", "table_name", "row_key", "topic", "kafka_partition", "kafka_offset",
		"time", "error_code", "error", "payload"),
	row: func(d *processor.DeadLetter) []any {
		return []any{d.Table, d.RowKey, d.Topic, uint32(d.Partition), d.Offset, dt(d.Time), d.Code, d.Error, d.Payload}
	},
}

// assignmentColumnValues returns event_sessions rows column by column.
func assignmentColumnValues(batches []*processor.Batch, refs []rowRef) ([]any, func()) {
	site, msg, sid, status := make([]string, len(refs)), make([]string, len(refs)), make([]string, len(refs)), make([]string, len(refs))
	rank := make([]uint8, len(refs))
	for j, r := range refs {
		a := &batches[r.b].Assignments[r.i]
		site[j], msg[j], sid[j], status[j], rank[j] = a.Site, a.MessageID, a.SessionID, a.Status.String(), assignmentRank(a.Status)
	}
	return []any{site, msg, sid, status, rank}, func() {}
}
