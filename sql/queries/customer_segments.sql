-- Customer segments: orders of known customers per period by ${segment} (customer type, tier, first channel): buying customers, orders, first and repeat orders, revenue, average order value and items per order.
-- An order of a known customer is a row of customer_orders (the customer
-- stage's view: order_number, first_order), its amount and items those of
-- orders (joined on order_id), the segment the customer's current row
-- (customers FINAL, joined on customer_id; empty for a customer without
-- one). ${segment}: customer_type, tier, first_channel, or site for one row
-- per period. Orders and rows written twice count once (FINAL).
SELECT
    ${grain}(order_time) AS period,
    toString(${segment}) AS key,
    uniqExact(customer_id) AS customers,
    count() AS orders,
    countIf(first_order = 1) AS first_orders,
    orders - first_orders AS repeat_orders,
    round(sum(revenue), 2) AS revenue,
    round(revenue / orders, 2) AS avg_order_value,
    round(sum(item_count) / orders, 2) AS items_per_order
FROM
(
    SELECT order_id, customer_id, order_time, first_order, site, revenue, item_count
    FROM
    (
        SELECT order_id, customer_id, order_time, first_order, site
        FROM customer_orders FINAL
        WHERE site = '${site}' AND $__timeFilter(order_time)
    ) AS co
    ANY LEFT JOIN
    (
        SELECT order_id, revenue, item_count
        FROM orders FINAL
        WHERE site = '${site}' AND order_time >= $__fromTime - 86400 AND order_time <= $__toTime + 86400
    ) AS o USING (order_id)
) AS x
ANY LEFT JOIN
(
    SELECT customer_id, customer_type, tier, first_channel
    FROM customers FINAL
    WHERE site = '${site}'
) AS c USING (customer_id)
GROUP BY period, key
ORDER BY period, orders DESC, key
