-- Banners: impressions, clicks, click-through rate, and the orders and revenue of visitors after clicking, per promotion and creative over the range.
-- impressions and clicks count distinct Promotion Viewed / Promotion
-- Clicked events (a redelivered event counts once); viewers and clickers
-- count visitors. orders and revenue are the distinct orders (Order
-- Completed, by order id) the clicking visitor placed after their first
-- click on the banner, within the range. Bots are left out. Impressions,
-- viewers, clicks and clickers come from promotion_hours (migration 0043,
-- whole hours: a range starting at 10:37 counts them from 10:00).
SELECT
    promotion_id,
    creative,
    impressions,
    viewers,
    clicks,
    clickers,
    if(impressions = 0, NULL, round(clicks / impressions, 4)) AS ctr,
    orders,
    revenue
FROM
(
    SELECT
        promotion_id,
        creative,
        sumIf(n, event = 'Promotion Viewed') AS impressions,
        sumIf(v, event = 'Promotion Viewed') AS viewers,
        sumIf(n, event = 'Promotion Clicked') AS clicks,
        sumIf(v, event = 'Promotion Clicked') AS clickers
    FROM
    (
        SELECT promotion_id, creative, event, uniqExactMerge(events) AS n, uniqExactMerge(visitors) AS v
        FROM promotion_hours
        WHERE site = '${site}' AND hour >= toStartOfHour($__fromTime) AND hour <= $__toTime
        GROUP BY promotion_id, creative, event
    )
    GROUP BY promotion_id, creative
) AS shown
ANY LEFT JOIN
(
    SELECT
        promotion_id,
        creative,
        count() AS orders,
        round(sum(order_revenue), 2) AS revenue
    FROM
    (
        SELECT anonymous_id, promotion_id, creative, min(event_time) AS clicked
        FROM events
        WHERE site = '${site}' AND is_bot = 0 AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time)
          AND event = 'Promotion Clicked' AND promotion_id != ''
        GROUP BY anonymous_id, promotion_id, creative
    ) AS clicks
    ALL INNER JOIN
    (
        SELECT anonymous_id, order_id, min(event_time) AS ordered, any(revenue) AS order_revenue
        FROM events
        WHERE site = '${site}' AND is_bot = 0 AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time)
          AND event = 'Order Completed' AND order_id != ''
        GROUP BY anonymous_id, order_id
    ) AS orders USING (anonymous_id)
    WHERE ordered >= clicked
    GROUP BY promotion_id, creative
) AS after USING (promotion_id, creative)
ORDER BY impressions DESC, clicks DESC, promotion_id, creative
