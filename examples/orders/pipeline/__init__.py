"""The ``orders`` data product: one row per customer order, built from the shop's exports."""
