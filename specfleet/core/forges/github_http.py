"""GitHub's REST API over httpx: authentication, pagination and GitHub's retry rules.

GitHub answers a primary rate limit with 403 or 429 and ``x-ratelimit-remaining: 0`` (wait
until ``x-ratelimit-reset``) and a secondary one with 403 or 429 and ``Retry-After``
(https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api). Both are
waited out here, but only up to ``max_wait_seconds``: a longer wait becomes a
:class:`ForgeTransientError` so the task is retried later instead of holding a worker.
5xx answers and lost connections are retried with exponential backoff.

The token travels only in the ``Authorization`` header; error messages carry GitHub's
``message`` field, redacted, never the request headers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from specfleet.core.errors import ForgeError, ForgeTransientError
from specfleet.core.metrics import count_forge_error
from specfleet.core.secrets import redact_text

API_VERSION = "2022-11-28"
MAX_PAGES = 50  # 5,000 items: more open pull requests or comments than one product ever has


@dataclass(frozen=True)
class RetryPlan:
    """Whether to send a failed request again, after how long, and how to call the failure."""

    retry: bool
    wait_seconds: float
    kind: str  # rate-limited, server, timeout or other (the forge-error metric's label)


def plan_retry(
    status: int | None,
    headers: Mapping[str, str],
    attempt: int,
    max_retries: int,
    max_wait_seconds: float,
    now: float,
) -> RetryPlan:
    """What to do after answer ``status`` (None: no answer) to the ``attempt``-th try (0-based).

    A pure decision over GitHub's documented rate-limit headers; ``now`` is epoch seconds.
    """
    if status is None or status >= 500:
        kind = "timeout" if status is None else "server"
        wait = min(0.5 * 2**attempt, max_wait_seconds)
        return RetryPlan(attempt < max_retries, wait, kind)
    if status not in (403, 429):
        return RetryPlan(False, 0, "other")
    retry_after = headers.get("retry-after")
    if retry_after is not None and retry_after.strip().isdigit():
        wait = float(retry_after.strip())
    elif headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        wait = max(float(reset) - now, 0) + 1 if reset.isdigit() else 60.0
    elif status == 429:
        wait = 60.0  # GitHub: without headers, wait at least a minute
    else:
        return RetryPlan(False, 0, "other")  # a 403 that is not a rate limit: a permission
    return RetryPlan(attempt < max_retries and wait <= max_wait_seconds, wait, "rate-limited")


class GitHubAPI:
    """A small GitHub REST client: JSON in and out, retries, pagination, clear errors."""

    def __init__(
        self,
        url: str,
        token: str,
        max_retries: int = 5,
        timeout_seconds: float = 30,
        max_wait_seconds: float = 60,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.max_retries = max_retries
        self.max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=self.url,
            timeout=timeout_seconds,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "specfleet",
            },
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"GitHubAPI({self.url!r})"

    @property
    def graphql_url(self) -> str:
        """api.github.com/graphql, or HOST/api/graphql on GitHub Enterprise Server."""
        if self.url.endswith("/api/v3"):
            return self.url[: -len("/v3")] + "/graphql"
        return self.url + "/graphql"

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        retry_server_errors: bool = True,
    ) -> Any:
        """One API call; returns the decoded JSON (None for an empty answer)."""
        return self._send(method, path, json, params, retry_server_errors).json_body

    def paginate(self, path: str, params: Mapping[str, str | int] | None = None) -> Iterator[Any]:
        """Every item of a list endpoint, following ``Link: rel="next"``."""
        url: str | None = path
        query: Mapping[str, str | int] | None = {**(params or {}), "per_page": 100}
        for _ in range(MAX_PAGES):
            if url is None:
                return
            answer = self._send("GET", url, None, query, True)
            yield from answer.json_body or ()
            next_link = answer.response.links.get("next", {}).get("url")
            url, query = (next_link, None) if next_link else (None, None)

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        params: Mapping[str, str | int] | None,
        retry_server_errors: bool,
    ) -> _Answer:
        attempt = 0
        while True:
            status: int | None
            try:
                response = self._client.request(method, path, json=body, params=params)
                status, headers = response.status_code, response.headers
            except httpx.TransportError as error:
                response, status, headers = None, None, httpx.Headers()
                failure: Exception = error
            if response is not None and status is not None and status < 400:
                return _Answer(response)
            plan = plan_retry(
                status, headers, attempt, self.max_retries, self.max_wait_seconds, time.time()
            )
            unsafe = status is None or status >= 500
            if plan.retry and (retry_server_errors or not unsafe):
                self._sleep(plan.wait_seconds)
                attempt += 1
                continue
            count_forge_error("github", plan.kind)
            if response is None:
                raise ForgeTransientError(
                    f"GitHub at {self.url} cannot be reached: {type(failure).__name__}"
                ) from failure
            raise self._error(method, path, response, plan, attempt)

    def _error(
        self, method: str, path: str, response: httpx.Response, plan: RetryPlan, attempt: int
    ) -> ForgeError:
        status = response.status_code
        message = self.redact(_message(response))[:500]
        where = f"GitHub at {self.url} answered {status} to {method} {path.split('?')[0]}"
        if status == 401:
            return ForgeError(f"GitHub at {self.url} refused the token (401)")
        if plan.kind == "rate-limited":
            return ForgeTransientError(
                f"{where}: rate limited, retry in {plan.wait_seconds:.0f} s ({message})"
            )
        if plan.kind == "server":
            return ForgeTransientError(f"{where} after {attempt} retries: {message}")
        return GitHubRefused(f"{where}: {message}", status)

    def redact(self, text: str) -> str:
        return redact_text(text.replace(self._token, "[REDACTED]"))


@dataclass(frozen=True)
class _Answer:
    response: httpx.Response

    @property
    def json_body(self) -> Any:
        return self.response.json() if self.response.content else None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if not isinstance(body, dict):
        return str(body)[:200]
    details = [
        str(item.get("message") or item.get("code") or "")
        for item in body.get("errors") or ()
        if isinstance(item, dict)
    ]
    return "; ".join(filter(None, [str(body.get("message", "")), *details]))


class GitHubRefused(ForgeError):
    """GitHub answered a 4xx that is neither an authentication failure nor a rate limit."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
