-- Sources: visitors, sessions, registrations, orders, revenue and revenue per session per period by ${breakdown} (channel, source, medium, campaign).
-- registrations counts the visitors of this source who signed up
-- ('Signed Up') within the range (a visitor who came by two sources counts
-- under both); orders and revenue are those of the source's sessions. Bots
-- are left out; sessions are read from sessions_narrow (migration 0045: the
-- rows of sessions_by_start with 64-bit ids) with FINAL, so a row written
-- twice counts once and an open session counts as its latest row; visitors
-- are counted as distinct sipHash64(anonymous_id).
-- Filters (dashboard variables, multi-value; '__all' is the value of All
-- and matches every session): ${channel} the session's channel, ${device}
-- its device class, ${customer_type} and ${tier} the customer type and
-- value tier of the session's customer (customers, FINAL; a session without
-- a customer id matches only when both are All).
SELECT
    period,
    key,
    visitors,
    sessions,
    registrations,
    order_count AS orders,
    revenue_sum AS revenue,
    round(revenue_sum / sessions, 2) AS revenue_per_session,
    round(order_sessions / sessions, 4) AS conversion
FROM
(
    SELECT
        ${grain}(start_time) AS period,
        toString(${breakdown}) AS key,
        uniqExact(visitor) AS visitors,
        count() AS sessions,
        uniqExactIf(visitor, visitor IN
        (
            SELECT sipHash64(anonymous_id) FROM events
            WHERE site = '${site}' AND event = 'Signed Up' AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time)
        )) AS registrations,
        sum(orders) AS order_count,
        countIf(orders > 0) AS order_sessions,
        round(sum(revenue), 2) AS revenue_sum
    FROM sessions_narrow FINAL
    WHERE site = '${site}' AND is_bot = 0 AND day >= toDate($__fromTime) AND day <= toDate($__toTime) AND $__timeFilter(start_time)
      AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
      AND (('__all' IN (${customer_type}) AND '__all' IN (${tier})) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}'
          AND NOT (has([${customer_type}], '__all') AND has([${tier}], '__all'))
          AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))))
    GROUP BY period, key
)
ORDER BY period, sessions DESC, key
