-- Abandoned carts to act on: the 100 most valuable carts abandoned in the range and not recovered, with the customer and company, items, channel, the suggested follow-up and the alert's status.
-- One row per abandonment (cart_abandonments, read with FINAL, so the
-- latest version of a cart counts: a recovered cart leaves the list).
-- suggested_follow_up is the alert's (the rules' follow-up for the
-- customer's value: auto_email, personal_email, phone_call, as the alerter
-- records it) when an alert was decided, else by value: phone_call from
-- 1000, personal_email from 200, auto_email below. alert_status is the alert's final status
-- (sent, held_out: the hold-out group gets no alert, rejected, gave_up), or
-- none. customer is the customer id, or the anonymous id of a visitor who
-- never logged in; company is the customer's (customers, FINAL), empty for
-- a visitor or a customer who gave none. Filters (dashboard variables,
-- multi-value; '__all' is the value of All): ${channel} the cart's channel,
-- ${tier} the customer's value tier when the cart was abandoned,
-- ${customer_type} the customer's type (a visitor's cart matches only All).
SELECT
    abandoned_at,
    if(customer_id != '', customer_id, concat('visitor ', anonymous_id)) AS customer,
    company,
    stage,
    tier,
    value,
    currency,
    item_count AS items,
    arrayStringConcat(arraySlice(items_name, 1, 3), ', ') AS products,
    channel,
    if(follow_up != '', follow_up, multiIf(value >= 1000, 'phone_call', value >= 200, 'personal_email', 'auto_email')) AS suggested_follow_up,
    if(alert_status = '', 'none', alert_status) AS alert_status
FROM
(
    SELECT abandonment_id, abandoned_at, customer_id, anonymous_id, company, stage, tier, value, currency, item_count, items_name, channel
    FROM
    (
        SELECT abandonment_id, abandoned_at, customer_id, anonymous_id, stage, tier, value, currency, item_count, items_name, channel
        FROM cart_abandonments FINAL
        WHERE site = '${site}' AND recovered = 0 AND $__timeFilter(abandoned_at)
          AND ('__all' IN (${channel}) OR channel IN (${channel})) AND ('__all' IN (${tier}) OR tier IN (${tier}))
    ) AS ab
    ANY LEFT JOIN
    (
        SELECT customer_id, company, customer_type
        FROM customers FINAL
        WHERE site = '${site}' AND customer_id != ''
    ) AS c USING customer_id
    WHERE '__all' IN (${customer_type}) OR customer_type IN (${customer_type})
) AS a
ANY LEFT JOIN
(
    SELECT abandonment_id, argMax(follow_up, recorded_at) AS follow_up, argMax(status, recorded_at) AS alert_status
    FROM alert_deliveries
    WHERE site = '${site}' AND abandonment_id != '' AND final = 1
    GROUP BY abandonment_id
) AS d USING abandonment_id
ORDER BY value DESC, abandoned_at DESC
LIMIT 100
