"""specfleet's configuration: one :class:`Settings` object read from ``SPECFLEET_*`` variables.

Every setting can be given as an environment variable (``SPECFLEET_HOME``,
``SPECFLEET_DATABASE_URL`` ...) or in a ``.env`` file in the working directory. Secrets are
:class:`pydantic.SecretStr` so they never print by accident, and :meth:`Settings.secret_values`
feeds the log redaction processor.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything specfleet reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="SPECFLEET_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(
        default=Path(".specfleet"),
        description="Directory for the embedded database, git mirrors, caches and the local forge.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///$SPECFLEET_HOME/specfleet.db. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db.",
    )
    log_format: Literal["console", "json"] = Field(
        default="console", description="console for people, json for services."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info")
    git_timeout_seconds: int = Field(
        default=120, gt=0, description="Time limit for one git fetch or clone."
    )
    index_url: str = Field(
        default="https://pypi.org", description="Package index whose JSON API gives release facts."
    )
    index_cache_hours: int = Field(
        default=24, gt=0, description="How long release facts are cached (per package)."
    )
    advisory_source: Literal["osv-directory", "pip-audit"] = Field(
        default="osv-directory",
        description="Where vulnerabilities come from: an offline OSV directory or pip-audit.",
    )
    advisory_dir: Path | None = Field(
        default=None,
        description="OSV advisory directory (PyPA advisory-database layout) for osv-directory.",
    )
    osv_url: str | None = Field(
        default=None,
        description="OSV query endpoint for pip-audit (e.g. from `specfleet advisories serve`).",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for fleet mode; also shares the release-facts cache."
    )
    gitlab_url: str | None = Field(
        default=None, description="GitLab base URL for the gitlab forge."
    )
    gitlab_token: SecretStr | None = Field(default=None, description="GitLab API token (secret).")
    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint; unset means deterministic only."
    )
    llm_api_key: SecretStr | None = Field(default=None, description="LLM API key (secret).")
    llm_model: str = Field(default="gpt-4o-mini", description="Model name sent to the endpoint.")

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # The CLI may change directory (e.g. into a worktree); an absolute home stays put.
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'specfleet.db'}"

    @property
    def mirrors_dir(self) -> Path:
        return self.home / "mirrors"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def secret_values(self) -> list[str]:
        """Every configured secret's plain value, for redaction; never log this list."""
        secrets = [
            value.get_secret_value()
            for value in (self.gitlab_token, self.llm_api_key)
            if value is not None and value.get_secret_value()
        ]
        return secrets


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once; tests call ``get_settings.cache_clear()``."""
    return Settings()
