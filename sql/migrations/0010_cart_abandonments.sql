-- One row per abandoned cart (processor/cart): a cart that held items and
-- saw no cart activity for the abandonment window (default 1 hour of event
-- time, -cart.abandon-after, per site in the sites file). abandonment_id is
-- derived from the site, the visitor and the message id of the cart's last
-- activity, so a replay after a crash writes the same row again and it
-- collapses. version 1 is the row as flagged; version 2 the same row once
-- an order of the same visitor within the recovery window (default 7 days)
-- recovered it (recovered = 1 and the order). Read with FINAL, or
-- argMax(column, version) GROUP BY site, abandonment_id.
--
-- items_* are the cart's lines, in parallel arrays. value sums price x
-- quantity of the lines in currency; mixed_currency = 1 when some lines were
-- in another currency (left out of value). step is the furthest step the
-- visitor reached: cart, checkout or payment. session_id is the session of
-- the last cart activity; channel and source are that session's (empty when
-- the session had not closed before the abandonment: join sessions on
-- session_id). stage is 'stranger' for a visitor not known as a customer,
-- empty when the customer's stage is not known to the cart stage; tier is
-- the customer's value tier when known. alert_id is empty: the alerter
-- records its alerts by signal id and abandonment id (alert_deliveries,
-- alert_recoveries).
CREATE TABLE IF NOT EXISTS cart_abandonments
(
    site              String,
    abandonment_id    String,
    cart_id           String,
    anonymous_id      String,
    customer_id       String,
    items_product_id  Array(String),
    items_sku         Array(String),
    items_name        Array(String),
    items_category    Array(String),
    items_price       Array(Float64),
    items_quantity    Array(Float64),
    item_count        Float64,
    value             Float64,
    currency          String,
    mixed_currency    UInt8,
    last_activity_at  DateTime,
    abandoned_at      DateTime,
    step              Enum8('cart' = 0, 'checkout' = 1, 'payment' = 2),
    session_id        String,
    channel           String,
    source            String,
    stage             String,
    tier              String,
    recovered         UInt8,
    recovered_at      DateTime,
    recovered_order_id String,
    recovered_value   Float64,
    alert_id          String,
    version           UInt8
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(abandoned_at)
ORDER BY (site, abandonment_id);
