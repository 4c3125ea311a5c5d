-- Orders (processor cart stage, from the events alone): one row per
-- Order Completed, keyed by (site, order_id) so a redelivered or retried
-- order collapses (the row of the latest event wins). revenue follows
-- Segment: revenue, else total, value, subtotal, else the lines' price x
-- quantity; a negative or absurd amount (over 1e9) is stored as 0 with
-- problem set; an order without items keeps its amount (problem set).
-- session_id is the session the order event was placed in (empty for a
-- late event). Whether it is the customer's first order needs the customer
-- stage (not wired yet): count orders per customer_id instead.
CREATE TABLE IF NOT EXISTS orders
(
    site              String,
    order_id          String,
    message_id        String,
    customer_id       String,
    anonymous_id      String,
    order_time        DateTime,
    items_product_id  Array(String),
    items_sku         Array(String),
    items_name        Array(String),
    items_category    Array(String),
    items_price       Array(Float64),
    items_quantity    Array(Float64),
    item_count        Float64,
    revenue           Float64,
    subtotal          Float64,
    discount          Float64,
    coupon            String,
    shipping          Float64,
    tax               Float64,
    currency          String,
    session_id        String,
    problem           String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(order_time)
ORDER BY (site, order_id);

-- Order Updated, Order Refunded and Order Cancelled, one row per event
-- (site, order_id, message_id): status updated / refunded / cancelled and
-- the event's amount (revenue, else total, value, subtotal, else its
-- lines; -1 when it sent none: a refund of all that is left, a
-- cancellation). Net revenue of an order: its revenue, or the amount of its
-- latest 'updated' row, less the sum of its 'refunded' amounts; 0 once
-- 'cancelled'.
CREATE TABLE IF NOT EXISTS order_updates
(
    site              String,
    order_id          String,
    message_id        String,
    customer_id       String,
    anonymous_id      String,
    update_time       DateTime,
    status            Enum8('updated' = 1, 'refunded' = 2, 'cancelled' = 3),
    amount            Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(update_time)
ORDER BY (site, order_id, message_id);
