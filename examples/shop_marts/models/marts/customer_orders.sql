-- One row per customer: completed orders and lifetime revenue (amendment A1, A2).
with completed as (
    select customer_id, order_date, amount
    from {{ ref('stg_orders') }}
    where status = 'completed'
)

select
    c.customer_id,
    c.full_name,
    c.email,
    c.country,
    count(o.customer_id) as completed_orders,
    cast(coalesce(sum(o.amount), 0) as decimal(12, 2)) as lifetime_revenue,
    min(o.order_date) as first_order_date
from {{ ref('stg_customers') }} as c
left join completed as o on o.customer_id = c.customer_id
group by c.customer_id, c.full_name, c.email, c.country
