-- Sources: visitors, sessions, registrations, orders, revenue and revenue per session per period by ${breakdown} (channel, source, medium, campaign).
-- registrations counts the visitors of this source who signed up
-- ('Signed Up') within the range (a visitor who came by two sources counts
-- under both); orders and revenue are those of the source's sessions. Bots
-- are left out; sessions are read with FINAL, so a row written twice counts
-- once.
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
        uniqExact(anonymous_id) AS visitors,
        count() AS sessions,
        uniqExactIf(anonymous_id, anonymous_id IN
        (
            SELECT anonymous_id FROM events
            WHERE site = '${site}' AND event = 'Signed Up' AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time)
        )) AS registrations,
        sum(orders) AS order_count,
        countIf(orders > 0) AS order_sessions,
        round(sum(revenue), 2) AS revenue_sum
    FROM sessions_by_start FINAL
    WHERE site = '${site}' AND is_bot = 0 AND toDate(start_time) >= toDate($__fromTime) AND toDate(start_time) <= toDate($__toTime) AND $__timeFilter(start_time)
    GROUP BY period, key
)
ORDER BY period, sessions DESC, key
