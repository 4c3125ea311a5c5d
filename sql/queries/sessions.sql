-- Stranger stage: visitors, sessions, new and returning visitors, bounces, second clicks and traffic -> order conversion per period, with growth against the previous period.
-- One row per period (${grain}) and breakdown value (${breakdown}: channel, source,
-- medium, campaign, device_class, landing_page, or site for one row per period).
-- A bounce is a session of one page without engagement (under 10 s, no key
-- event); a second click is a session of two or more pages; conversion is
-- the share of sessions with an order. new_visitors had no earlier session,
-- returning_visitors had one (a visitor may be both within one period).
-- prev_* are the same figures for the period before (the range is widened
-- back by one period for them: one read of sessions_by_start serves both),
-- *_growth the change against it (NULL when the previous period had
-- none). Bots are left out; sessions are read with FINAL, so a row written
-- twice counts once.
-- Filters (dashboard variables, multi-value; '__all' is the value of All
-- and matches every session): ${channel} the session's channel, ${device}
-- its device class, ${customer_type} and ${tier} the customer type and
-- value tier of the session's customer (customers, FINAL; a session without
-- a customer id matches only when both are All).
SELECT
    r.1 AS period,
    key,
    r.2 AS visitors,
    r.3 AS new_visitors,
    r.4 AS returning_visitors,
    r.5 AS sessions,
    r.6 AS bounces,
    round(bounces / sessions, 4) AS bounce_rate,
    r.7 AS second_clicks,
    round(second_clicks / sessions, 4) AS second_click_rate,
    r.8 AS order_sessions,
    round(order_sessions / sessions, 4) AS conversion,
    if(indexOf(periods, ${grain}(period - 1)) = 0, toUInt64(0), all_visitors[indexOf(periods, ${grain}(period - 1))]) AS prev_visitors,
    if(prev_visitors = 0, NULL, round((visitors - prev_visitors) / prev_visitors, 4)) AS visitors_growth,
    if(indexOf(periods, ${grain}(period - 1)) = 0, toUInt64(0), all_sessions[indexOf(periods, ${grain}(period - 1))]) AS prev_sessions,
    if(prev_sessions = 0, NULL, round((sessions - prev_sessions) / prev_sessions, 4)) AS sessions_growth,
    if(indexOf(periods, ${grain}(period - 1)) = 0, toUInt64(0), all_order_sessions[indexOf(periods, ${grain}(period - 1))]) AS prev_order_sessions,
    if(prev_order_sessions = 0, NULL, round((order_sessions - prev_order_sessions) / prev_order_sessions, 4)) AS order_sessions_growth
FROM
(
    -- per breakdown value, its periods in the widened range: the figures
    -- of the range (cur) and of the whole period (all_*, for the next
    -- period's prev_*)
    SELECT
        key,
        groupArray(period) AS periods,
        groupArray(all_visitors) AS all_visitors,
        groupArray(all_sessions) AS all_sessions,
        groupArray(all_order_sessions) AS all_order_sessions,
        groupArray((period, visitors, new_visitors, returning_visitors, sessions, bounces, second_clicks, order_sessions)) AS cur
    FROM
    (
        SELECT
            ${grain}(start_time) AS period,
            toString(${breakdown}) AS key,
            uniqExactIf(sipHash64(anonymous_id), start_time >= $__fromTime) AS visitors,
            uniqExactIf(sipHash64(anonymous_id), start_time >= $__fromTime AND is_returning = 0) AS new_visitors,
            uniqExactIf(sipHash64(anonymous_id), start_time >= $__fromTime AND is_returning = 1) AS returning_visitors,
            countIf(start_time >= $__fromTime) AS sessions,
            countIf(start_time >= $__fromTime AND page_views <= 1 AND is_engaged = 0) AS bounces,
            countIf(start_time >= $__fromTime AND page_views >= 2) AS second_clicks,
            countIf(start_time >= $__fromTime AND orders > 0) AS order_sessions,
            -- a period after the range's first holds only sessions in the range
            if(period <= ${grain}($__fromTime), uniqExactIf(sipHash64(anonymous_id), ${grain}(start_time) <= ${grain}($__fromTime)), visitors) AS all_visitors,
            count() AS all_sessions,
            countIf(orders > 0) AS all_order_sessions
        FROM sessions_by_start FINAL
        WHERE site = '${site}' AND is_bot = 0
          AND toDate(start_time) >= ${grain}(${grain}($__fromTime) - 1) AND start_time >= toDateTime(${grain}(${grain}($__fromTime) - 1)) AND toDate(start_time) <= toDate($__toTime) AND start_time <= $__toTime
          AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
          AND (('__all' IN (${customer_type}) AND '__all' IN (${tier})) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}'
              AND NOT (has([${customer_type}], '__all') AND has([${tier}], '__all'))
              AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))))
        GROUP BY period, key
    )
    GROUP BY key
)
ARRAY JOIN cur AS r
WHERE sessions > 0
ORDER BY period, sessions DESC, key
