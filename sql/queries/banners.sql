-- Banners: impressions, clicks, click-through rate, and the orders and revenue of visitors after clicking, per promotion and creative over the range.
-- impressions and clicks count distinct Promotion Viewed / Promotion
-- Clicked events (a redelivered event counts once); viewers and clickers
-- count visitors. orders and revenue are the distinct orders (Order
-- Completed, by order id) the clicking visitor placed after their first
-- click on the banner, within the range. Bots are left out.
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
        uniqExactIf(message_id, event = 'Promotion Viewed') AS impressions,
        uniqExactIf(anonymous_id, event = 'Promotion Viewed') AS viewers,
        uniqExactIf(message_id, event = 'Promotion Clicked') AS clicks,
        uniqExactIf(anonymous_id, event = 'Promotion Clicked') AS clickers
    FROM events
    WHERE site = '${site}' AND is_bot = 0 AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time)
      AND event IN ('Promotion Viewed', 'Promotion Clicked') AND promotion_id != ''
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
