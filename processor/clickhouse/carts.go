package clickhouse

import (
	"github.com/shoptrail/shoptrail/processor"
	"github.com/shoptrail/shoptrail/processor/cart"
)

// The table of migration 0010: cart_abandonments.

var abandonmentsTable = table[processor.AbandonmentRow]{
	name: "cart_abandonments",
	rows: func(b *processor.Batch) []processor.AbandonmentRow { return b.Abandonments },
	query: insertInto("cart_abandonments",
		"site", "abandonment_id", "cart_id", "anonymous_id", "customer_id",
		"items_product_id", "items_sku", "items_name", "items_category", "items_price", "items_quantity",
		"item_count", "value", "currency", "mixed_currency", "last_activity_at", "abandoned_at", "step",
		"session_id", "channel", "source", "stage", "tier",
		"recovered", "recovered_at", "recovered_order_id", "recovered_value", "alert_id", "version"),
	row: func(r *processor.AbandonmentRow) []any {
		a := &r.Abandonment
		ids, skus, names, cats, prices, qty := itemColumns(a.Items)
		version := uint8(1)
		if a.Recovered {
			version = 2
		}
		return []any{
			a.Site, a.ID, a.CartID, a.AnonymousID, a.CustomerID,
			ids, skus, names, cats, prices, qty,
			a.ItemCount, a.Value, a.Currency, boolU8(a.MixedCurrency), dt(a.LastActivityAt), dt(a.AbandonedAt), stepOf(a.Step),
			a.SessionID, a.Channel, a.Source, r.Stage, r.Tier,
			boolU8(a.Recovered), dt(a.RecoveredAt), a.RecoveredOrderID, a.RecoveredValue, "", version,
		}
	},
	dead: func(r *processor.AbandonmentRow, _ *processor.Batch, _ int) processor.DeadLetter {
		return processor.DeadLetter{RowKey: r.ID, Time: r.AbandonedAt, Payload: payload(r)}
	},
}

// The tables of migration 0011: orders and order_updates.

var ordersTable = table[processor.OrderRow]{
	name: "orders",
	rows: func(b *processor.Batch) []processor.OrderRow { return b.Orders },
	query: insertInto("orders",
		"site", "order_id", "message_id", "customer_id", "anonymous_id", "order_time",
		"items_product_id", "items_sku", "items_name", "items_category", "items_price", "items_quantity",
		"item_count", "revenue", "subtotal", "discount", "coupon", "shipping", "tax", "currency", "session_id", "problem"),
	row: func(r *processor.OrderRow) []any {
		ids, skus, names, cats, prices, qty := itemColumns(r.Items)
		return []any{
			r.Site, r.OrderID, r.MessageID, r.CustomerID, r.AnonymousID, dt(r.At),
			ids, skus, names, cats, prices, qty,
			r.ItemCount, r.Revenue, r.Subtotal, r.Discount, r.Coupon, r.Shipping, r.Tax, r.Currency, r.SessionID, r.Problem,
		}
	},
	dead: func(r *processor.OrderRow, _ *processor.Batch, _ int) processor.DeadLetter {
		return processor.DeadLetter{RowKey: r.OrderID, Time: r.At, Payload: payload(r)}
	},
}

var orderUpdatesTable = table[processor.OrderUpdateRow]{
	name: "order_updates",
	rows: func(b *processor.Batch) []processor.OrderUpdateRow { return b.OrderUpdates },
	query: insertInto("order_updates",
		"site", "order_id", "message_id", "customer_id", "anonymous_id", "update_time", "status", "amount"),
	row: func(r *processor.OrderUpdateRow) []any {
		return []any{r.Site, r.OrderID, r.MessageID, r.CustomerID, r.AnonymousID, dt(r.At), r.Status, r.Amount}
	},
	dead: func(r *processor.OrderUpdateRow, _ *processor.Batch, _ int) processor.DeadLetter {
		return processor.DeadLetter{RowKey: r.OrderID + "/" + r.MessageID, Time: r.At, Payload: payload(r)}
	},
}

func itemColumns(items []cart.Item) (ids, skus, names, cats []string, prices, qty []float64) {
	n := len(items)
	ids, skus, names, cats = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	prices, qty = make([]float64, n), make([]float64, n)
	for i, it := range items {
		ids[i], skus[i], names[i], cats[i], prices[i], qty[i] = it.ProductID, it.SKU, it.Name, it.Category, it.Price, it.Quantity
	}
	return
}

func stepOf(s string) string {
	switch s {
	case cart.StepCheckout, cart.StepPayment:
		return s
	}
	return cart.StepCart
}
