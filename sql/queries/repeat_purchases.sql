-- Repeat purchases: customers by how often they ordered in the range (once, twice, three times, more), their revenue, items per order, and the median over customers of their mean days between orders.
-- An order is an order id of Order Completed (taken once); a customer is the
-- userId, else the anonymous id. items is the sum of the order's line
-- quantities (typed column items). Bots are left out.
SELECT
    multiIf(n = 1, '1', n = 2, '2', n = 3, '3', '4+') AS orders_per_customer,
    count() AS customers,
    sum(n) AS orders,
    round(sum(spent), 2) AS revenue,
    round(sum(items_total) / sum(n), 2) AS items_per_order,
    if(countIf(n > 1) = 0, NULL, round(medianExactIf(gap_days, n > 1), 2)) AS median_days_between_orders
FROM
(
    SELECT
        person,
        count() AS n,
        sum(order_amount) AS spent,
        sum(order_items) AS items_total,
        (toUInt32(max(ordered)) - toUInt32(min(ordered))) / 86400 / greatest(n - 1, 1) AS gap_days
    FROM
    (
        SELECT order_id, any(if(user_id != '', user_id, anonymous_id)) AS person, any(revenue) AS order_amount,
               any(items) AS order_items, min(event_time) AS ordered
        FROM events
        WHERE site = '${site}' AND is_bot = 0 AND event = 'Order Completed' AND order_id != '' AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time)
        GROUP BY order_id
    )
    GROUP BY person
)
GROUP BY orders_per_customer
ORDER BY orders_per_customer
