-- Revenue per UTC day and customer country, from completed orders only.
-- Refunded, cancelled and pending orders are not revenue (amendment A3). Orders whose customer
-- is not in the CRM export yet are kept, under country 'unknown', so daily totals still add
-- up to what the shop took (amendment A4).
SELECT
    o.order_day AS day,
    coalesce(c.country, 'unknown') AS country,
    CAST(count(*) AS INTEGER) AS order_count,
    CAST(count(DISTINCT o.customer_id) AS INTEGER) AS customer_count,
    CAST(sum(o.amount) AS DECIMAL(12, 2)) AS revenue,
    CAST(avg(o.amount) AS DOUBLE) AS avg_order_value
FROM stg_orders AS o
LEFT JOIN stg_customers AS c ON c.customer_id = o.customer_id
WHERE o.status = 'completed'
GROUP BY o.order_day, coalesce(c.country, 'unknown')
