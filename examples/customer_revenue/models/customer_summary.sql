-- One row per (non-test) customer with their completed-order history. The LEFT JOIN keeps
-- customers who have not completed an order yet: account managers onboard exactly those
-- (amendment A4).
SELECT
    c.customer_id,
    c.full_name,
    c.country,
    c.segment,
    c.signed_up_on,
    min(o.ordered_at) AS first_order_at,
    max(o.ordered_at) AS last_order_at,
    CAST(count(o.order_id) AS INTEGER) AS order_count,
    CAST(coalesce(sum(o.amount), 0) AS DECIMAL(12, 2)) AS lifetime_revenue,
    count(o.order_id) >= 2 AS is_repeat_customer
FROM stg_customers AS c
LEFT JOIN stg_orders AS o ON o.customer_id = c.customer_id AND o.status = 'completed'
GROUP BY c.customer_id, c.full_name, c.country, c.segment, c.signed_up_on
