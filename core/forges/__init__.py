"""Forges: where product repositories live and merge requests are opened (DESIGN.md section 7).

``interface.py`` holds the :class:`Forge` protocol and its value types; ``local.py`` is the
embedded forge (bare repositories under ``SPECFLEET_HOME`` plus merge-request rows) and
``gitlab.py`` speaks to GitLab through python-gitlab. Which one a product uses is wiring,
decided in entry points from the product's ``forge`` field and the settings.
"""
