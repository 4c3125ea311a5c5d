-- First-order discount cohorts: customers whose first order fell in the period, with and without a discount, and how many came back to order again by the end of the range.
-- A first order with a discount carried one (the typed discount column,
-- e.g. the FIRST10 coupon). An order is an order id of Order Completed
-- (taken once); a customer is the userId, else the anonymous id. Bots are
-- left out.
SELECT
    ${grain}(first_order) AS period,
    if(first_discount > 0, 'discount', 'full price') AS first_order_kind,
    count() AS customers,
    countIf(orders > 1) AS came_back,
    round(came_back / customers, 4) AS came_back_rate,
    round(avg(first_amount), 2) AS avg_first_amount
FROM
(
    SELECT
        person,
        min(ordered) AS first_order,
        argMin(order_discount, ordered) AS first_discount,
        argMin(order_amount, ordered) AS first_amount,
        count() AS orders
    FROM
    (
        SELECT order_id, any(if(user_id != '', user_id, anonymous_id)) AS person, min(event_time) AS ordered,
               any(revenue) AS order_amount, any(discount) AS order_discount
        FROM events
        WHERE site = '${site}' AND is_bot = 0 AND event = 'Order Completed' AND order_id != '' AND toDate(event_time) <= toDate($__toTime) AND event_time <= $__toTime
        GROUP BY order_id
    )
    GROUP BY person
    HAVING first_order >= $__fromTime
)
GROUP BY period, first_order_kind
ORDER BY period, first_order_kind
