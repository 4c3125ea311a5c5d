-- Stranger stage: visitors, sessions, new and returning visitors, bounces, second clicks and traffic -> order conversion per period, with growth against the previous period.
-- One row per period (${grain}) and breakdown value (${breakdown}: channel, source,
-- medium, campaign, device_class, landing_page, or site for one row per period).
-- A bounce is a session of one page without engagement (under 10 s, no key
-- event); a second click is a session of two or more pages; conversion is
-- the share of sessions with an order. new_visitors had no earlier session,
-- returning_visitors had one (a visitor may be both within one period).
-- prev_* are the same figures for the period before (the range is widened
-- back by one period for them: one read serves both), *_growth the change
-- against it (NULL when the previous period had none). Bots are left out.
-- Closed sessions of whole days come from session_days (migration 0044),
-- the range's last two days, a start within a day, and every day when a
-- customer filter is set, from sessions_by_start FINAL (open sessions
-- included); sessions and visitors are counted as distinct ids, so a row
-- written twice counts once.
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
        -- per period and breakdown value: the closed sessions of whole
        -- days from session_days, the rest from sessions_by_start (see
        -- the note at the top); cur marks what lies in the range, and
        -- sessions in it and before it are disjoint
        SELECT
            period,
            key,
            uniqExactMergeIf(v, cur) AS visitors,
            uniqExactMergeIf(v, cur AND is_returning = 0) AS new_visitors,
            uniqExactMergeIf(v, cur AND is_returning = 1) AS returning_visitors,
            sumIf(n, cur) AS sessions,
            sumIf(n, cur AND pages = 0) AS bounces,
            sumIf(n, cur AND pages = 2) AS second_clicks,
            sumIf(n, cur AND ordered = 1) AS order_sessions,
            -- a period after the range's first holds only sessions in the range
            if(period <= ${grain}($__fromTime), uniqExactMergeIf(v, period <= ${grain}($__fromTime)), visitors) AS all_visitors,
            sum(n) AS all_sessions,
            sumIf(n, ordered = 1) AS all_order_sessions
        FROM
        (
            -- a closed session lies in one row of session_days and one
            -- group here: its sessions' count is the group's
            SELECT
                ${grain}(day) AS period,
                toString(${breakdown}) AS key,
                toDateTime(day) >= $__fromTime AS cur,
                pages, ordered, is_returning,
                uniqExactMerge(sessions) AS n,
                uniqExactMergeState(visitors) AS v
            FROM session_days
            WHERE site = '${site}'
              AND day >= ${grain}(${grain}($__fromTime) - 1) AND day <= toDate($__toTime)
              AND NOT (day >= if(has([${customer_type}], '__all') AND has([${tier}], '__all'), toDate($__toTime) - 1, toDate(0))
                  OR day = if(toDate($__fromTime - 1) = toDate($__fromTime), toDate($__fromTime), toDate(0)))
              AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
            GROUP BY period, key, cur, pages, ordered, is_returning
            UNION ALL
            SELECT
                ${grain}(start_time) AS period,
                toString(${breakdown}) AS key,
                start_time >= $__fromTime AS cur,
                multiIf(page_views >= 2, 2, is_engaged = 1, 1, 0) AS pages,
                orders > 0 AS ordered,
                is_returning,
                count() AS n,
                uniqExactState(sipHash64(anonymous_id)) AS v
            FROM sessions_by_start FINAL
            WHERE site = '${site}' AND is_bot = 0
              AND toDate(start_time) >= ${grain}(${grain}($__fromTime) - 1) AND start_time >= toDateTime(${grain}(${grain}($__fromTime) - 1)) AND toDate(start_time) <= toDate($__toTime) AND start_time <= $__toTime
              AND (toDate(start_time) >= if(has([${customer_type}], '__all') AND has([${tier}], '__all'), toDate($__toTime) - 1, toDate(0))
                  OR toDate(start_time) = if(toDate($__fromTime - 1) = toDate($__fromTime), toDate($__fromTime), toDate(0)))
              AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${device}) OR device_class IN (${device}))
              AND (('__all' IN (${customer_type}) AND '__all' IN (${tier})) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}'
                  AND NOT (has([${customer_type}], '__all') AND has([${tier}], '__all'))
                  AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type})) AND ('__all' IN (${tier}) OR tier IN (${tier}))))
            GROUP BY period, key, cur, pages, ordered, is_returning
        )
        GROUP BY period, key
    )
    GROUP BY key
)
ARRAY JOIN cur AS r
WHERE sessions > 0
ORDER BY period, sessions DESC, key
