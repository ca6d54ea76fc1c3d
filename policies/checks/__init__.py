"""Checks of a product against policy rules, one module per rule kind."""
