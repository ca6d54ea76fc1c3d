-- Customers as delivered by the CRM export, without QA's test accounts (amendment A3).
SELECT *
FROM raw_customers
WHERE NOT is_test_account
