{# Customers as the CRM exports them; one row per customer. #}
with source as (
    select * from {{ ref('raw_customers') }}
)

select
    customer_id,
    full_name,
    lower(email) as email,
    upper(country) as country
from source
