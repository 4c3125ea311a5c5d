-- Funnel: sessions -> product view -> add to cart -> checkout -> order, counts and step conversion per period.
-- One row per period (${grain}) and breakdown value (${breakdown}: channel,
-- source, medium, campaign, device_class, landing_page, customer_type or
-- tier of the session's customer (customers, FINAL; empty for a session
-- without a customer), or site for one row per period).
-- Each session counts in every step up to the furthest it reached
-- (sessions.funnel_step), so the counts only fall from step to step;
-- *_rate is the share of the step before that went on. Bots are left out;
-- sessions are read with FINAL, so a row written twice counts once.
-- Filters (dashboard variables, multi-value; '__all' is the value of All
-- and matches every session): ${channel} the session's channel, ${device}
-- its device class, ${customer_type} and ${tier} the customer type and
-- value tier of the session's customer (customers, FINAL; a session without
-- a customer id matches only when both are All).
SELECT
    period,
    key,
    sessions,
    product_views,
    carts,
    checkouts,
    orders,
    round(product_views / sessions, 4) AS product_view_rate,
    if(product_views = 0, NULL, round(carts / product_views, 4)) AS cart_rate,
    if(carts = 0, NULL, round(checkouts / carts, 4)) AS checkout_rate,
    if(checkouts = 0, NULL, round(orders / checkouts, 4)) AS order_rate,
    round(orders / sessions, 4) AS conversion
FROM
(
    SELECT
        ${grain}(start_time) AS period,
        toString(${breakdown}) AS key,
        count() AS sessions,
        countIf(toInt8(funnel_step) >= 2) AS product_views,
        countIf(toInt8(funnel_step) >= 3) AS carts,
        countIf(toInt8(funnel_step) >= 4) AS checkouts,
        countIf(toInt8(funnel_step) >= 5) AS orders
    FROM
    (
        SELECT site, start_time, funnel_step, channel, source, medium, campaign, device_class, landing_page, customer_id
        FROM sessions_by_start FINAL
        WHERE site = '${site}' AND is_bot = 0 AND toDate(start_time) >= toDate($__fromTime) AND toDate(start_time) <= toDate($__toTime) AND $__timeFilter(start_time)
          AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
          AND (('__all' IN (${customer_type}) AND '__all' IN (${tier})) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}'
              AND NOT (has([${customer_type}], '__all') AND has([${tier}], '__all'))
              AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))))
    ) AS s
    ANY LEFT JOIN
    (
        -- only for a breakdown by customer_type or tier: 18.16 folds has()
        -- over constants and reads no customers row otherwise
        SELECT customer_id, customer_type, tier
        FROM customers FINAL
        WHERE site = '${site}' AND customer_id != '' AND has(['customer_type', 'tier'], '${breakdown}')
    ) AS c USING (customer_id)
    GROUP BY period, key
)
ORDER BY period, sessions DESC, key
