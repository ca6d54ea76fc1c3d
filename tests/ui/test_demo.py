"""``specfleet demo``, the README's main command: the whole weekly story on the embedded
default (no server, no LLM), and a second run in the same home that duplicates nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_index import IndexScript, fake_index

pytestmark = pytest.mark.network  # product environments are installed from PyPI by uv


@pytest.fixture(scope="module")
def index_url() -> Iterator[str]:
    with fake_index(IndexScript.recorded()) as url:
        yield url


def _rows(home: Path, query: str) -> list[tuple]:
    with sqlite3.connect(home / "specfleet.db") as connection:
        return connection.execute(query).fetchall()


@pytest.mark.timeout(1800)  # four products, one a dbt project: two dbt builds and a failure mode
def test_demo_plays_the_week_and_replays_without_duplicates(
    cli, tmp_path: Path, index_url: str
) -> None:  # type: ignore[no-untyped-def]
    """MRs for orders, customer_revenue and the dbt project shop_marts (on its trunk branch),
    no-change for store_footfall; again: nothing new."""
    home = tmp_path / "home"
    env = {"SPECFLEET_HOME": str(home), "SPECFLEET_INDEX_URL": index_url}
    first = cli("demo", env=env, timeout=1800)  # four products, one of them dbt
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "Traceback" not in first.stderr
    for step in ("registers them", "publishes the organisation's policy pack", "weekly window"):
        assert step in first.stdout
    merge_requests = _rows(home, "SELECT product_id, state, description FROM merge_request")
    assert sorted(product for product, _, _ in merge_requests) == [
        "customer_revenue",
        "orders",
        "shop_marts",
    ]
    for product, state, description in merge_requests:
        assert state == "open"
        assert description.count("**Verification: passed.**") == 1, product
    orders = next(d for p, _, d in merge_requests if p == "orders")
    assert "pyarrow" in orders and "ORG-PY-004" in orders and "pandas" in orders
    shop = next(d for p, _, d in merge_requests if p == "shop_marts")
    assert "requests" in shop and "idna" in shop and "`trunk`" in shop
    outcomes = dict(
        _rows(home, "SELECT product_id, outcome FROM evaluation WHERE product_id='store_footfall'")
    )
    assert outcomes["store_footfall"] in ("no-change", "no-op")
    assert [v for (v,) in _rows(home, "SELECT version FROM policy_set ORDER BY version")] == [1, 2]
    assert "Monday digest" in first.stdout and "would be sent" in first.stdout
    assert _rows(home, "SELECT count(*) FROM notification_sent") == [(0,)]  # a dry run

    second = cli("demo", env=env)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert "already published as policy set v1" in second.stdout
    assert "already registered" in second.stdout or "Nothing changed" in second.stdout
    again = _rows(home, "SELECT product_id, state FROM merge_request ORDER BY id")
    assert again == [(p, s) for p, s, _ in merge_requests]
    assert _rows(home, "SELECT count(*) FROM policy_set") == [(2,)]
    assert _rows(home, "SELECT count(*) FROM product") == [(4,)]
