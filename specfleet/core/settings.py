"""specfleet's configuration: one :class:`Settings` object read from ``SPECFLEET_*`` variables.

Every setting can be given as an environment variable (``SPECFLEET_HOME``,
``SPECFLEET_DATABASE_URL`` ...) or in a ``.env`` file in the working directory. Secrets are
:class:`pydantic.SecretStr` so they never print by accident, and :meth:`Settings.secret_values`
feeds redaction (logs, prompts, merge requests, the guard rails). What is redacted: each
configured secret (``gitlab_token``, ``llm_api_key``) of at least 8 characters
(``core.secrets.MIN_SECRET_LENGTH``), wherever it stands as a whole token (not inside a longer
word: a key ``test`` would otherwise cut "latest" apart), plus known token shapes (GitLab,
GitHub, OpenAI, AWS, Slack, JWT, PEM keys, bearer tokens) and passwords in URLs. A shorter
configured value is not treated as a secret to look for; see docs/gate.md.
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
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port where `specfleet worker` and `specfleet scheduler` serve Prometheus "
        "metrics; unset: none (the web process serves /metrics on its own port).",
    )
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
    broker_url: str | None = Field(
        default=None,
        description="Celery broker; default: redis_url in fleet mode, else a SQLite queue "
        "under home (sqla+sqlite:///$SPECFLEET_HOME/broker.sqlite, no server).",
    )
    result_backend: str | None = Field(
        default=None,
        description="Celery results; default: redis_url, else db+sqlite:///$SPECFLEET_HOME/"
        "results.sqlite.",
    )
    task_soft_time_limit: int = Field(
        default=1500, gt=0, description="Seconds before an evaluation is asked to stop."
    )
    task_time_limit: int = Field(
        default=1800, gt=0, description="Seconds before an evaluation's process is killed."
    )
    task_max_retries: int = Field(
        default=5, ge=0, description="Retries of an evaluation after a transient failure."
    )
    window_cron: str = Field(
        default="0 6 * * 1",
        description="When the weekly window opens (cron: minute hour day month weekday).",
    )
    timezone: str = Field(default="UTC", description="Time zone of window_cron (IANA name).")
    schedule_overrides: dict[str, str] = Field(
        default_factory=dict,
        description='Per-product schedule, JSON: {"orders": "0 6 * * 3", "legacy": "paused"}.',
    )
    fanout_batch_size: int = Field(
        default=1000, gt=0, description="Evaluations inserted and enqueued per batch."
    )
    gitlab_url: str | None = Field(
        default=None, description="GitLab base URL for the gitlab forge."
    )
    gitlab_token: SecretStr | None = Field(default=None, description="GitLab API token (secret).")
    forge: Literal["local", "gitlab", "github"] = Field(
        default="local",
        description="Default forge for products registered without one: local, gitlab or github.",
    )
    gitlab_max_retries: int = Field(
        default=5, ge=0, description="Retries of a GitLab request answered 429 or 5xx."
    )
    gitlab_timeout_seconds: float = Field(
        default=30, gt=0, description="Time limit for one GitLab API request."
    )
    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint; unset means deterministic only."
    )
    llm_api_key: SecretStr | None = Field(default=None, description="LLM API key (secret).")
    llm_model: str = Field(default="gpt-4o-mini", description="Model name sent to the endpoint.")
    llm_organization: str | None = Field(
        default=None, description="OpenAI organisation id sent with every request, if any."
    )
    llm_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Time limit for one LLM request (each retry included)."
    )
    llm_max_retries: int = Field(
        default=3, ge=0, description="Retries on 429/5xx/timeouts, with backoff and Retry-After."
    )
    llm_prices: dict[str, tuple[float, float, float]] = Field(
        default_factory=lambda: {
            "gpt-4o-mini": (0.15, 0.075, 0.60),
            "gpt-4o": (2.50, 1.25, 10.00),
            "gpt-4.1": (2.00, 0.50, 8.00),
            "gpt-4.1-mini": (0.40, 0.10, 1.60),
            "gpt-4.1-nano": (0.10, 0.025, 0.40),
            "o4-mini": (1.10, 0.275, 4.40),
        },
        description="USD per million tokens per model as JSON: "
        '{"model": [input, cached input, output]}; unknown models cost 0 (and say so).',
    )
    llm_json_schema: bool = Field(
        default=True,
        description="Ask for structured output by JSON schema; falls back to plain JSON anyway.",
    )
    agent_max_rounds: int = Field(
        default=3, ge=1, le=10, description="Plan-verify-repair rounds per evaluation."
    )
    agent_candidates: int = Field(
        default=1, ge=1, le=5, description="Candidate plans per round (best-of-N)."
    )
    budget_calls: int = Field(default=12, ge=0, description="LLM calls per product per window.")
    budget_tokens: int = Field(
        default=400_000,
        ge=0,
        description="LLM tokens (prompt + completion) per product per window.",
    )
    budget_cost_usd: float = Field(
        default=2.0, ge=0, description="Estimated LLM cost (USD) per product per window."
    )

    # --- evaluation ledger: leases, sweep, database outages (issue 18, helper "centre") ---
    lease_seconds: float = Field(
        default=120,
        gt=0,
        description="How long a worker's claim on an evaluation lasts unless "
        "renewed (renewed every third of it while the evaluation runs).",
    )
    sweep_seconds: float = Field(
        default=60,
        gt=0,
        description="How often the scheduler re-queues expired leases and "
        "re-sends stale queued evaluations.",
    )
    stale_after: float = Field(
        default=180,
        gt=0,
        description="Seconds a queued evaluation's message may go unclaimed "
        "before the sweep sends it again.",
    )
    database_outage: float = Field(
        default=120,
        ge=0,
        description="Seconds a worker keeps retrying an unreachable database "
        "before it gives the message back to the broker (requeued, never acknowledged unrun).",
    )
    max_attempts: int = Field(
        default=4,
        gt=0,
        description="Claims of one evaluation (deliveries whose worker died) "
        "before it is given up.",
    )

    # --- fleet observability and clean-up (issue 18 items 4-5) ---
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address where `specfleet worker` and `specfleet scheduler` serve "
        "Prometheus metrics (SPECFLEET_METRICS_PORT); 0.0.0.0 exposes them to the network.",
    )
    worker_name: str | None = Field(
        default=None,
        max_length=200,
        description="Celery node name of `specfleet worker` (Celery's %h, %n, %d expand); "
        "default specfleet-PID@HOSTNAME, unique per process on a host.",
    )

    # -- console and API security (web) ---------------------------------------------------
    login_free_attempts: int = Field(
        default=5, ge=1, description="Failed sign-ins per account and per address before backoff."
    )
    login_backoff_seconds: float = Field(
        default=30.0, gt=0, description="First sign-in backoff; it doubles with each failure."
    )
    login_backoff_max_seconds: float = Field(
        default=900.0, gt=0, description="Longest sign-in backoff (no lock-out beyond it)."
    )
    upload_max_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Largest registration import upload."
    )
    body_max_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest JSON or form body of any other request."
    )
    repo_allow: str | None = Field(
        default=None,
        description="Comma-separated repository URL patterns registration may fetch: "
        "'local' (paths and file://), 'https://host', 'ssh://host', 'host' (any scheme), '*'. "
        "Default: local paths and the configured forges' hosts.",
    )
    repo_fetch_timeout_seconds: int = Field(
        default=60, gt=0, description="Time limit for fetching a repository at registration."
    )
    sandbox: Literal["auto", "bwrap", "none"] = Field(
        default="auto",
        description="How product code runs: bwrap (required), none (explicitly unsandboxed, "
        "said in every MR and fleet status), auto (bwrap; fleet workers refuse without it).",
    )

    # -- the GitHub forge (core/forges/github.py) ------------------------------------------
    github_url: str = Field(
        default="https://api.github.com",
        description="GitHub REST API base URL; GitHub Enterprise Server: https://HOST/api/v3.",
    )
    github_token: SecretStr | None = Field(
        default=None, description="GitHub token for the github forge (secret)."
    )
    github_max_retries: int = Field(
        default=5, ge=0, description="Retries of a GitHub request answered 5xx or rate-limited."
    )
    github_timeout_seconds: float = Field(
        default=30, gt=0, description="Time limit for one GitHub API request."
    )
    github_max_wait_seconds: float = Field(
        default=60,
        ge=0,
        description="Longest Retry-After/rate-limit reset waited out in-process; a longer one "
        "fails the attempt as transient so the task is retried later.",
    )

    # -- notifications: weekly digest and needs-human notices (core/notify) -----------------
    smtp_host: str | None = Field(
        default=None, description="SMTP server for e-mail notifications; unset: no e-mail."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP server port.")
    smtp_starttls: bool = Field(
        default=False, description="Upgrade the SMTP connection (STARTTLS)."
    )
    smtp_username: str | None = Field(default=None, description="SMTP login, if it needs one.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password (secret).")
    smtp_from: str = Field(
        default="specfleet@localhost", description="Sender address of notification e-mails."
    )
    smtp_timeout_seconds: float = Field(default=30, gt=0, description="Time limit per SMTP call.")
    notify_webhook_url: SecretStr | None = Field(
        default=None,
        description="Incoming-webhook URL every owner's digest is posted to (secret: it carries "
        "the channel's token); unset: no webhook.",
    )
    notify_owner_webhooks: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='Per-owner webhook URLs as JSON, {"ana@example.com": "https://..."}; they '
        "replace notify_webhook_url for that owner.",
    )
    notify_webhook_format: Literal["slack", "mattermost", "teams"] = Field(
        default="slack", description="JSON shape of webhook posts: slack, mattermost or teams."
    )
    notify_console_url: str | None = Field(
        default=None, description="Web console address used for links in notifications."
    )
    digest_cron: str = Field(
        default="0 8 * * 1", description="When the weekly digest is sent (cron, in timezone)."
    )

    # --- rate limits and automerge (console) ---
    mr_hourly_limit: int | None = Field(
        default=None,
        ge=0,
        description="New merge requests opened per hour, fleet-wide; unset: no limit. Proposals "
        "over it wait (deferred) and go out in priority order as capacity frees.",
    )
    mr_open_per_owner: int | None = Field(
        default=None,
        ge=0,
        description="Merge requests open at the same time per owner e-mail; unset: no limit.",
    )
    automerge_grace_hours: float = Field(
        default=24.0,
        ge=0,
        description="How long an opted-in, verified-green merge request stays open for people "
        "to look before specfleet merges it.",
    )

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

    @property
    def forge_dir(self) -> Path:
        """The local forge's bare repositories."""
        return self.home / "forge"

    def secret_values(self) -> list[str]:
        """Every configured secret's plain value, for redaction; never log this list."""
        secrets = [
            value.get_secret_value()
            for value in (self.gitlab_token, self.llm_api_key, self.github_token)
            if value is not None and value.get_secret_value()
        ]
        notify = [self.smtp_password, self.notify_webhook_url, *self.notify_owner_webhooks.values()]
        secrets += [value.get_secret_value() for value in notify if value is not None]
        return [secret for secret in secrets if secret]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once; tests call ``get_settings.cache_clear()``."""
    return Settings()
