-- Typed orders with their UTC day; orders of test accounts removed (amendment A3).
-- order_day is the UTC calendar day: the runner pins the session time zone to UTC, so the
-- cast does not depend on the machine the build runs on.
SELECT
    o.order_id,
    o.customer_id,
    o.ordered_at,
    CAST(o.ordered_at AS DATE) AS order_day,
    lower(o.status) AS status,
    o.amount
FROM raw_orders AS o
WHERE o.customer_id NOT IN (
    SELECT t.customer_id FROM raw_customers AS t WHERE t.is_test_account
)
