-- Order amounts: orders, customers and revenue per amount bucket over the range, to choose a promotion threshold where customers are.
-- ${bounds} holds the buckets' lower bounds in order, for example
-- 0,50,100,500,1000,5000 (a bucket runs from its bound to the next; the
-- last has no end). An order is an order id of Order Completed (taken
-- once); its amount is the typed revenue column; a customer is the userId,
-- else the anonymous id. Bots are left out.
SELECT
    bucket,
    if(bucket >= length([${bounds}]),
       concat(toString([${bounds}][bucket]), '+'),
       concat(toString([${bounds}][bucket]), '-', toString([${bounds}][bucket + 1]))) AS amount,
    orders,
    customers,
    revenue,
    avg_amount
FROM
(
    SELECT
        arrayCount(b -> order_amount >= b, [${bounds}]) AS bucket,
        count() AS orders,
        uniqExact(person) AS customers,
        round(sum(order_amount), 2) AS revenue,
        round(avg(order_amount), 2) AS avg_amount
    FROM
    (
        SELECT order_id, any(revenue) AS order_amount, any(if(user_id != '', user_id, anonymous_id)) AS person
        FROM events
        WHERE site = '${site}' AND is_bot = 0 AND event = 'Order Completed' AND order_id != '' AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time)
        GROUP BY order_id
    )
    GROUP BY bucket
)
ORDER BY bucket
