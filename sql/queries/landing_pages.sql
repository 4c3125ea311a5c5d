-- Landing pages: sessions, visitors, bounce rate and conversion of the pages sessions start on, top 50 over the range.
-- Bots are left out; sessions are read with FINAL, so a row written twice
-- counts once.
SELECT
    landing_page,
    sessions,
    visitors,
    round(bounces / sessions, 4) AS bounce_rate,
    order_sessions,
    round(order_sessions / sessions, 4) AS conversion,
    revenue_sum AS revenue
FROM
(
    SELECT
        landing_page,
        count() AS sessions,
        uniqExact(anonymous_id) AS visitors,
        countIf(page_views <= 1 AND is_engaged = 0) AS bounces,
        countIf(orders > 0) AS order_sessions,
        round(sum(revenue), 2) AS revenue_sum
    FROM sessions_by_start FINAL
    WHERE site = '${site}' AND is_bot = 0 AND toDate(start_time) >= toDate($__fromTime) AND toDate(start_time) <= toDate($__toTime) AND $__timeFilter(start_time)
    GROUP BY landing_page
)
ORDER BY sessions DESC, landing_page
LIMIT 50
