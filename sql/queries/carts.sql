-- Carts: abandoned carts, their value, recoveries and recovered revenue per period by follow-up (alert sent, held out, none), with the abandonment rate.
-- Abandonments are cart_abandonments (read with FINAL: a recovered cart's
-- later row wins) abandoned in the range; follow_up is 'held out' when the
-- alerter held the cart's alert back (alert_deliveries.held_out), 'alert
-- sent' when it delivered or tried one, else 'none'. carts counts the
-- distinct carts started in the period (Product Added events: cart_id, or
-- the visitor when none), so abandonment_rate sums to the share of all
-- carts abandoned over the follow-ups of a period.
-- Filters (dashboard variables, multi-value; '__all' is the value of All):
-- ${channel} the cart's channel, ${tier} the customer's value tier when the
-- cart was abandoned, ${customer_type} the customer's type (customers,
-- FINAL; a visitor's cart matches only All). carts (Product Added events)
-- knows none of them, so abandonment_rate is NULL while any is not All.
SELECT
    period,
    if(follow_up = '', 'none', follow_up) AS follow_up,
    abandoned,
    abandoned_value,
    recovered_n AS recovered,
    round(recovered_n / abandoned, 4) AS recovery_rate,
    recovered_revenue,
    carts,
    if(carts = 0 OR NOT ('__all' IN (${channel}) AND '__all' IN (${tier}) AND '__all' IN (${customer_type})), NULL, round(abandoned / carts, 4)) AS abandonment_rate
FROM
(
    SELECT
        period,
        follow_up,
        count() AS abandoned,
        round(sum(value), 2) AS abandoned_value,
        countIf(recovered = 1) AS recovered_n,
        round(sumIf(recovered_value, recovered = 1), 2) AS recovered_revenue
    FROM
    (
        SELECT ${grain}(abandoned_at) AS period, abandonment_id, value, recovered, recovered_value
        FROM cart_abandonments FINAL
        WHERE site = '${site}' AND $__timeFilter(abandoned_at)
          AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${tier}) OR tier IN (${tier}))
          AND ('__all' IN (${customer_type}) OR customer_id IN (SELECT customer_id FROM customers FINAL WHERE site = '${site}' AND NOT has([${customer_type}], '__all') AND customer_type IN (${customer_type})))
    ) AS a
    ANY LEFT JOIN
    (
        SELECT abandonment_id, if(max(held_out) = 1, 'held out', 'alert sent') AS follow_up
        FROM alert_deliveries
        WHERE site = '${site}' AND abandonment_id != ''
        GROUP BY abandonment_id
    ) AS d USING (abandonment_id)
    GROUP BY period, follow_up
) AS ab
ANY LEFT JOIN
(
    SELECT ${grain}(event_time) AS period, uniqExact(if(cart_id != '', cart_id, anonymous_id)) AS carts
    FROM events
    WHERE site = '${site}' AND is_bot = 0 AND event = 'Product Added' AND toDate(event_time) >= toDate($__fromTime) AND toDate(event_time) <= toDate($__toTime) AND $__timeFilter(event_time)
    GROUP BY period
) AS c USING (period)
ORDER BY period, follow_up
