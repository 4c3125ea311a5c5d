package clickhouse

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/shoptrail/shoptrail"
)

// Sink writes events to the events table.
type Sink struct{ Conn driver.Conn }

// Insert writes events in one insert.
func (s *Sink) Insert(ctx context.Context, events []shoptrail.Event) error {
	return InsertEvents(ctx, s.Conn, events)
}
