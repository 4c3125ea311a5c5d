package clickhouse

import (
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/customer"
)

// The tables of migration 0012: customers, customer_transitions and
// customer_orders (the customer stage).

var customersTable = table[customer.Row]{
	name: "customers",
	rows: func(b *processor.Batch) []customer.Row { return b.Customers },
	query: insertInto("customers",
		"site", "customer_id", "first_seen", "registered_at", "first_channel", "first_source",
		"customer_type", "role", "industry", "company", "level",
		"first_order_at", "last_order_at", "order_count", "net_revenue", "currency",
		"avg_order_value", "avg_items", "median_days_between_orders", "favorites", "inquiries",
		"last_visit_at", "stage", "tier", "version"),
	row: func(r *customer.Row) []any {
		return []any{
			r.Site, r.CustomerID, dt(r.FirstSeen), dt(r.RegisteredAt), r.FirstChannel, r.FirstSource,
			r.CustomerType, r.Role, r.Industry, r.Company, r.Level,
			dt(r.FirstOrderAt), dt(r.LastOrderAt), uint32(max(r.OrderCount, 0)), r.NetRevenue, r.Currency,
			r.AvgOrderValue, r.AvgItems, r.MedianDaysBetweenOrders, uint32(max(r.Favorites, 0)), uint32(max(r.Inquiries, 0)),
			dt(r.LastVisitAt), r.Stage, r.Tier, uint64(max(r.Version, 0)),
		}
	},
	dead: func(r *customer.Row, _ *processor.Batch, _ int) processor.DeadLetter {
		return processor.DeadLetter{RowKey: r.CustomerID, Time: r.LastVisitAt, Payload: payload(r)}
	},
}

var transitionsTable = table[customer.Transition]{
	name: "customer_transitions",
	rows: func(b *processor.Batch) []customer.Transition { return b.Transitions },
	query: insertInto("customer_transitions",
		"site", "transition_id", "customer_id", "kind", "from_value", "to_value", "at", "cause"),
	row: func(r *customer.Transition) []any {
		return []any{r.Site, r.ID, r.CustomerID, r.Kind, r.From, r.To, dt(r.At), r.Cause}
	},
	dead: func(r *customer.Transition, _ *processor.Batch, _ int) processor.DeadLetter {
		return processor.DeadLetter{RowKey: r.ID, Time: r.At, Payload: payload(r)}
	},
}

var customerOrdersTable = table[customer.Order]{
	name: "customer_orders",
	rows: func(b *processor.Batch) []customer.Order { return b.CustomerOrders },
	query: insertInto("customer_orders",
		"site", "order_id", "customer_id", "order_time", "order_number", "first_order", "channel", "source"),
	row: func(r *customer.Order) []any {
		return []any{r.Site, r.OrderID, r.CustomerID, dt(r.At), uint32(max(r.Number, 0)), boolU8(r.FirstOrder), r.Channel, r.Source}
	},
	dead: func(r *customer.Order, _ *processor.Batch, _ int) processor.DeadLetter {
		return processor.DeadLetter{RowKey: r.OrderID, Time: r.At, Payload: payload(r)}
	},
}
