"""The ``customer_revenue`` data product: SQL models in ``models/`` run on DuckDB."""
