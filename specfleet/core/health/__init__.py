"""Dependency health: a product's pins, their release facts and their known vulnerabilities."""
