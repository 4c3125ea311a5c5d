-- The events table, sorted so that a time range reads only its days, with
-- typed e-commerce columns the processor fills (no JSON parsing at query
-- time; ClickHouse 18.16 has no JSONExtract).
--
-- Sort key (site, toDate(event_time), event, message_id): a query for a site
-- and a range of days reads those days' granules only, and one for some
-- event names within them even fewer. A redelivered event (the same Kafka
-- message, so the same time and name) still collapses into one row: the
-- ReplacingMergeTree key still ends in message_id. Count events with
-- uniqExact(message_id) or read with FINAL until parts merge.
--
-- Typed columns (empty or 0 when the event has none): product_id, sku,
-- category, price, quantity of the event's product (the top-level product,
-- else the first of properties.products); products, the number of product
-- lines; items, the sum of their quantities (1 when a line has none);
-- revenue, the event's amount (revenue, else total, value, subtotal, else
-- the sum of price x quantity of its lines); discount, coupon, currency;
-- order_id, cart_id, checkout_id; promotion_id, creative (banners);
-- search_query (Products Searched); step (checkout step).
--
-- Existing data moves forward: the old table's rows are copied with their
-- typed columns read from the properties text, then the tables are swapped;
-- the old table stays as events_0001 (drop it once satisfied). Run the
-- migration with the processors stopped (`shoptrail migrate`); rows a running
-- processor wrote to the old table during the copy are copied again at the
-- end (a copy collapses with the row already there).
CREATE TABLE IF NOT EXISTS events_v2
(
    site               String,
    message_id         String,
    type               String,
    event              String,
    name               String,
    anonymous_id       String,
    user_id            String,
    event_time         DateTime,
    event_ms           UInt16,
    original_time      DateTime,
    sent_at            DateTime,
    received_at        DateTime,
    page_url           String,
    page_path          String,
    page_referrer      String,
    page_title         String,
    utm_source         String,
    utm_medium         String,
    utm_campaign       String,
    utm_term           String,
    utm_content        String,
    click_id_kind      String,
    click_id           String,
    user_agent         String,
    ip                 String,
    device_class       String,
    browser            String,
    os                 String,
    is_bot             UInt8,
    bot_reason         String,
    library            String,
    locale             String,
    tab_id             String,
    seq                Int64,
    transport          String,
    flags              Array(String),
    properties         String,
    traits             String,
    schema_version     UInt8,
    product_id         String,
    sku                String,
    category           String,
    price              Float64,
    quantity           Float64,
    products           UInt16,
    items              Float64,
    revenue            Float64,
    discount           Float64,
    coupon             String,
    currency           String,
    order_id           String,
    cart_id            String,
    checkout_id        String,
    promotion_id       String,
    creative           String,
    search_query       String,
    step               Int64
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (site, toDate(event_time), event, message_id);

INSERT INTO events_v2
SELECT
    site, message_id, type, event, name, anonymous_id, user_id,
    event_time, event_ms, original_time, sent_at, received_at,
    page_url, page_path, page_referrer, page_title,
    utm_source, utm_medium, utm_campaign, utm_term, utm_content,
    click_id_kind, click_id, user_agent, ip, device_class, browser, os,
    is_bot, bot_reason, library, locale, tab_id, seq, transport,
    flags, properties, traits, schema_version,
    if(visitParamExtractString(properties, 'product_id') != '', visitParamExtractString(properties, 'product_id'), replaceAll(visitParamExtractRaw(properties, 'product_id'), 'null', '')) AS product_id,
    visitParamExtractString(properties, 'sku') AS sku,
    visitParamExtractString(properties, 'category') AS category,
    visitParamExtractFloat(properties, 'price') AS price,
    visitParamExtractFloat(properties, 'quantity') AS quantity,
    toUInt16(product_id != '' OR sku != '') AS products,
    if(products = 0, 0, if(visitParamHas(properties, 'quantity'), quantity, 1)) AS items,
    multiIf(visitParamHas(properties, 'revenue'), visitParamExtractFloat(properties, 'revenue'),
            visitParamHas(properties, 'total'), visitParamExtractFloat(properties, 'total'),
            visitParamHas(properties, 'value'), visitParamExtractFloat(properties, 'value'),
            visitParamHas(properties, 'subtotal'), visitParamExtractFloat(properties, 'subtotal'),
            price * if(visitParamHas(properties, 'quantity'), quantity, 1)) AS revenue,
    visitParamExtractFloat(properties, 'discount') AS discount,
    visitParamExtractString(properties, 'coupon') AS coupon,
    visitParamExtractString(properties, 'currency') AS currency,
    if(visitParamExtractString(properties, 'order_id') != '', visitParamExtractString(properties, 'order_id'), replaceAll(visitParamExtractRaw(properties, 'order_id'), 'null', '')) AS order_id,
    visitParamExtractString(properties, 'cart_id') AS cart_id,
    visitParamExtractString(properties, 'checkout_id') AS checkout_id,
    visitParamExtractString(properties, 'promotion_id') AS promotion_id,
    visitParamExtractString(properties, 'creative') AS creative,
    visitParamExtractString(properties, 'query') AS search_query,
    toInt64(visitParamExtractFloat(properties, 'step')) AS step
FROM events
WHERE (SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'events' AND sorting_key = 'site, message_id') = 1;

RENAME TABLE events TO events_0001, events_v2 TO events;

INSERT INTO events
SELECT
    site, message_id, type, event, name, anonymous_id, user_id,
    event_time, event_ms, original_time, sent_at, received_at,
    page_url, page_path, page_referrer, page_title,
    utm_source, utm_medium, utm_campaign, utm_term, utm_content,
    click_id_kind, click_id, user_agent, ip, device_class, browser, os,
    is_bot, bot_reason, library, locale, tab_id, seq, transport,
    flags, properties, traits, schema_version,
    if(visitParamExtractString(properties, 'product_id') != '', visitParamExtractString(properties, 'product_id'), replaceAll(visitParamExtractRaw(properties, 'product_id'), 'null', '')) AS product_id,
    visitParamExtractString(properties, 'sku') AS sku,
    visitParamExtractString(properties, 'category') AS category,
    visitParamExtractFloat(properties, 'price') AS price,
    visitParamExtractFloat(properties, 'quantity') AS quantity,
    toUInt16(product_id != '' OR sku != '') AS products,
    if(products = 0, 0, if(visitParamHas(properties, 'quantity'), quantity, 1)) AS items,
    multiIf(visitParamHas(properties, 'revenue'), visitParamExtractFloat(properties, 'revenue'),
            visitParamHas(properties, 'total'), visitParamExtractFloat(properties, 'total'),
            visitParamHas(properties, 'value'), visitParamExtractFloat(properties, 'value'),
            visitParamHas(properties, 'subtotal'), visitParamExtractFloat(properties, 'subtotal'),
            price * if(visitParamHas(properties, 'quantity'), quantity, 1)) AS revenue,
    visitParamExtractFloat(properties, 'discount') AS discount,
    visitParamExtractString(properties, 'coupon') AS coupon,
    visitParamExtractString(properties, 'currency') AS currency,
    if(visitParamExtractString(properties, 'order_id') != '', visitParamExtractString(properties, 'order_id'), replaceAll(visitParamExtractRaw(properties, 'order_id'), 'null', '')) AS order_id,
    visitParamExtractString(properties, 'cart_id') AS cart_id,
    visitParamExtractString(properties, 'checkout_id') AS checkout_id,
    visitParamExtractString(properties, 'promotion_id') AS promotion_id,
    visitParamExtractString(properties, 'creative') AS creative,
    visitParamExtractString(properties, 'query') AS search_query,
    toInt64(visitParamExtractFloat(properties, 'step')) AS step
FROM events_0001
WHERE received_at >= now() - INTERVAL 1 HOUR;
