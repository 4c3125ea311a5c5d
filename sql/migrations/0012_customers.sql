-- Customers (processor customer stage, one current row per stitched
-- customer id; see the README's "Customers"). Rewritten whenever the
-- customer changes; version is the event time (unix ms) the row is current
-- at, so a replay after a crash writes the same rows and they collapse.
-- Read with FINAL (or argMax(column, version) GROUP BY site, customer_id).
-- Times are UTC; 1970-01-01 00:00:00 means "never" (no order yet ...).
-- stage: stranger, registered, potential, potential_dormant, first_buyer,
-- second_buyer, third_buyer, loyal, at_risk, dormant, lost. tier: A (best)
-- to E, empty before the first order. median_days_between_orders is 0 with
-- fewer than two orders.
CREATE TABLE IF NOT EXISTS customers
(
    site                        String,
    customer_id                 String,
    first_seen                  DateTime,
    registered_at               DateTime,
    first_channel               String,
    first_source                String,
    customer_type               String,
    role                        String,
    industry                    String,
    company                     String,
    level                       String,
    first_order_at              DateTime,
    last_order_at               DateTime,
    order_count                 UInt32,
    net_revenue                 Float64,
    currency                    String,
    avg_order_value             Float64,
    avg_items                   Float64,
    median_days_between_orders  Float64,
    favorites                   UInt32,
    inquiries                   UInt32,
    last_visit_at               DateTime,
    stage                       String,
    tier                        String,
    version                     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (site, customer_id);

-- Every change of a customer's lifecycle stage (kind = 'stage') or value
-- tier (kind = 'tier'): from_value -> to_value at event time at. cause is
-- 'event:' and the event name and message id that caused it, or 'timer:'
-- and the threshold that passed (at_risk, dormant, lost,
-- potential_dormant, recency). transition_id is derived from the site,
-- customer, kind, to_value and at, so replays collapse. Read with FINAL.
CREATE TABLE IF NOT EXISTS customer_transitions
(
    site           String,
    transition_id  String,
    customer_id    String,
    kind           String,
    from_value     String,
    to_value       String,
    at             DateTime,
    cause          String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (site, kind, at, customer_id, transition_id);

-- The customer stage's view of each order of a known customer: which of
-- the customer's orders it was (order_number 1 is the first order) and
-- the session's channel and source. Join orders on (site, order_id).
CREATE TABLE IF NOT EXISTS customer_orders
(
    site          String,
    order_id      String,
    customer_id   String,
    order_time    DateTime,
    order_number  UInt32,
    first_order   UInt8,
    channel       String,
    source        String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(order_time)
ORDER BY (site, order_id);
