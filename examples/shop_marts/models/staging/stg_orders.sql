{# Orders as the shop exports them; refunded and pending orders stay, marts filter. #}
with source as (
    select * from {{ ref('raw_orders') }}
)

select
    order_id,
    customer_id,
    cast(ordered_at as date) as order_date,
    status,
    cast(amount as decimal(12, 2)) as amount
from source
