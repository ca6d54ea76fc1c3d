"""The web console (FastAPI + Jinja2 + HTMX) and its JSON API: ``specfleet web``."""
