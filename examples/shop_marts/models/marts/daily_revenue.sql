-- Revenue of completed orders per day, for the finance dashboard (amendment A1).
select
    order_date,
    count(*) as completed_orders,
    cast(sum(amount) as decimal(12, 2)) as revenue
from {{ ref('stg_orders') }}
where status = 'completed'
group by order_date
