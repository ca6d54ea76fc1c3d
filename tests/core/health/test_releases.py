"""Release facts from the index JSON API: parsed, cached per day, degraded never crashed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from specfleet.core.health.releases import DiskFactsCache, IndexClient, ReleaseFacts, UnknownFacts
from tests.support.fake_index import IndexScript, fake_index


def test_facts_from_recorded_answers() -> None:
    """Latest version, release dates, requires_python and yanked flags come through."""
    script = IndexScript.recorded()
    with fake_index(script) as url:
        facts = IndexClient(url).facts(["PyArrow", "pandas"])
    pyarrow = facts["pyarrow"]
    assert isinstance(pyarrow, ReleaseFacts)
    assert pyarrow.latest == script.documents["pyarrow"]["info"]["version"]
    release = pyarrow.release("14.0.1")
    assert release is not None and release.uploaded_at is not None
    assert release.uploaded_at.date() == dt.date(2023, 11, 8)
    assert [r.version for r in pyarrow.releases].index("14.0.0") < [
        r.version for r in pyarrow.releases
    ].index("14.0.1")
    pandas = facts["pandas"]
    assert isinstance(pandas, ReleaseFacts)
    assert pandas.release("1.5.3") is not None
    assert pandas.release("2.2.3").requires_python == ">=3.9"  # type: ignore[union-attr]


def test_cache_asks_the_index_once_per_package(tmp_path: Path) -> None:
    """A second client on the same disk cache answers without asking the index again."""
    script = IndexScript.recorded()
    with fake_index(script) as url:
        cache = DiskFactsCache(tmp_path / "cache")
        first = IndexClient(url, cache=cache).facts(["requests", "duckdb", "requests"])
        second_client = IndexClient(url, cache=cache)
        second = second_client.facts(["requests", "duckdb"])
    assert script.requests == {"requests": 1, "duckdb": 1}
    assert second_client.requests_made == 0
    assert first["requests"] == second["requests"] or (
        isinstance(second["requests"], ReleaseFacts)
        and second["requests"].latest == first["requests"].latest  # type: ignore[union-attr]
    )


def test_expired_cache_entries_are_fetched_again(tmp_path: Path) -> None:
    """Entries live for the configured time; after it the index is asked again."""
    script = IndexScript.recorded()
    with fake_index(script) as url:
        cache = DiskFactsCache(tmp_path / "cache")
        IndexClient(url, cache=cache, ttl_seconds=-1).facts(["pytest"])
        IndexClient(url, cache=cache).facts(["pytest"])
    assert script.requests["pytest"] == 2


def test_unknown_package_is_unknown_with_a_reason(tmp_path: Path) -> None:
    """A package the index does not know (private, or a typo) is reported, not raised."""
    script = IndexScript.recorded()
    with fake_index(script) as url:
        facts = IndexClient(url, cache=DiskFactsCache(tmp_path)).facts(["acme-internal-lib"])
    unknown = facts["acme-internal-lib"]
    assert isinstance(unknown, UnknownFacts)
    assert "not found" in unknown.reason and "private package" in unknown.reason


def test_transient_errors_are_retried() -> None:
    """A 503 from the index is retried with backoff and the facts still arrive."""
    script = IndexScript.recorded()
    script.fail_first["numpy"] = 2
    with fake_index(script) as url:
        facts = IndexClient(url, retries=2).facts(["numpy"])
    assert isinstance(facts["numpy"], ReleaseFacts)
    assert script.requests["numpy"] == 3


def test_an_index_that_hangs_degrades_to_unknown() -> None:
    """A request past the timeout becomes UnknownFacts; other packages are unaffected."""
    script = IndexScript.recorded()
    script.hang_seconds["pandas"] = 2.0
    with fake_index(script) as url:
        facts = IndexClient(url, timeout_seconds=0.3, retries=0).facts(["pandas", "pytest"])
    assert isinstance(facts["pandas"], UnknownFacts)
    assert "unreachable" in facts["pandas"].reason
    assert isinstance(facts["pytest"], ReleaseFacts)


def test_an_unreachable_index_degrades_to_unknown() -> None:
    """Nothing listening at the index URL: every package is unknown, nothing raises."""
    facts = IndexClient("http://127.0.0.1:9", timeout_seconds=0.5, retries=1).facts(["six"])
    assert isinstance(facts["six"], UnknownFacts)


@pytest.mark.redis
def test_redis_cache_is_shared_between_clients(redis_url: str) -> None:
    """In fleet mode, a second worker's client reads what the first one fetched."""
    import redis

    from specfleet.core.health.releases import RedisFactsCache

    client = redis.Redis.from_url(redis_url)
    prefix = f"specfleet-test:{dt.datetime.now().timestamp()}:"
    script = IndexScript.recorded()
    try:
        with fake_index(script) as url:
            IndexClient(url, cache=RedisFactsCache(client, prefix)).facts(["pyarrow"])
            again = IndexClient(url, cache=RedisFactsCache(client, prefix))
            facts = again.facts(["pyarrow"])
        assert again.requests_made == 0 and isinstance(facts["pyarrow"], ReleaseFacts)
        assert 0 < client.ttl(prefix + "pyarrow") <= 24 * 3600
    finally:
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)
