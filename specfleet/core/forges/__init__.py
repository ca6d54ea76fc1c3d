"""Forges: where product repositories live and merge requests are opened (DESIGN.md section 7).

``interface.py`` holds the :class:`Forge` protocol and its value types; ``local.py`` is the
embedded forge (bare repositories under ``SPECFLEET_HOME`` plus merge-request rows) and
``gitlab.py`` speaks to GitLab through python-gitlab, ``github.py`` to GitHub through httpx.
Which one a product uses is decided by :func:`forge_for` from the product's ``forge`` field
and the settings; entry points call it (and may cache the result per name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from specfleet.core.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from specfleet.core.db import Product
    from specfleet.core.forges.interface import Forge
    from specfleet.core.settings import Settings

FORGE_NAMES = ("local", "gitlab", "github")


def forge_named(name: str, settings: Settings, engine: Engine) -> Forge:
    """The forge called ``name``, built from the settings (the local one keeps rows in ``engine``).

    Imports are lazy: a fleet without GitLab products never loads python-gitlab.
    """
    if name == "local":
        from specfleet.core.forges.local import LocalForge

        return LocalForge(engine, settings.forge_dir, settings.git_timeout_seconds)
    if name == "gitlab":
        if not settings.gitlab_url or settings.gitlab_token is None:
            raise ConfigurationError(
                "products on the gitlab forge need SPECFLEET_GITLAB_URL and SPECFLEET_GITLAB_TOKEN"
            )
        from specfleet.core.forges.gitlab import GitLabForge

        return GitLabForge(
            settings.gitlab_url,
            settings.gitlab_token,
            max_retries=settings.gitlab_max_retries,
            timeout_seconds=settings.gitlab_timeout_seconds,
        )
    if name == "github":
        if settings.github_token is None or not settings.github_token.get_secret_value():
            raise ConfigurationError("products on the github forge need SPECFLEET_GITHUB_TOKEN")
        from specfleet.core.forges.github import GitHubForge

        return GitHubForge(
            settings.github_url,
            settings.github_token,
            max_retries=settings.github_max_retries,
            timeout_seconds=settings.github_timeout_seconds,
            max_wait_seconds=settings.github_max_wait_seconds,
            git_timeout_seconds=settings.git_timeout_seconds,
        )
    raise ConfigurationError(f"unknown forge {name!r} ({', '.join(FORGE_NAMES)})")


def forge_for(settings: Settings, product: Product, engine: Engine) -> Forge:
    """The forge ``product`` lives on (its registered ``forge`` field; local when unset)."""
    return forge_named(product.forge or "local", settings, engine)
