-- Dormant and lost customers to win back: the customers whose lifecycle stage is dormant or lost now, by tier (A first) and net revenue, with their company, last order, order count and net revenue.
-- From the customer stage's current rows (customers, read with FINAL, so
-- only a customer's latest row counts); it shows the state now, whatever
-- the time range. since is when the customer entered that stage (its
-- latest change to it in customer_transitions); days_since_last_order
-- counts from the last order to now. Filters (dashboard variables,
-- multi-value; '__all' is the value of All): ${tier} the customer's value
-- tier, ${customer_type} its type. The 500 first rows.
SELECT
    customer_id AS customer,
    company,
    tier,
    stage,
    if(stage = 'lost', lost_since, dormant_since) AS since,
    last_order_at AS last_order,
    order_count AS orders,
    round(net_revenue, 2) AS net_revenue,
    currency,
    intDiv(toUInt32(now()) - toUInt32(last_order_at), 86400) AS days_since_last_order
FROM
(
    SELECT customer_id, company, tier, stage, last_order_at, order_count, net_revenue, currency
    FROM customers FINAL
    WHERE site = '${site}' AND stage IN ('dormant', 'lost')
      AND ('__all' IN (${tier}) OR tier IN (${tier}))
      AND ('__all' IN (${customer_type}) OR customer_type IN (${customer_type}))
) AS c
ANY LEFT JOIN
(
    SELECT customer_id, maxIf(at, to_value = 'dormant') AS dormant_since, maxIf(at, to_value = 'lost') AS lost_since
    FROM customer_transitions FINAL
    WHERE site = '${site}' AND kind = 'stage' AND to_value IN ('dormant', 'lost')
    GROUP BY customer_id
) AS t USING (customer_id)
ORDER BY tier = '', tier, net_revenue DESC, customer
LIMIT 500
