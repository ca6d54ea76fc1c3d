"""The shared release-facts cache is a cache: with Redis down, reads miss and writes are
skipped, so an evaluation carries on against the index instead of failing."""

from __future__ import annotations

import socket

import redis
from packaging.utils import canonicalize_name

from specfleet.core.health.releases import RedisFactsCache


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_redis_is_a_miss_not_an_error() -> None:
    """get answers None and put returns quietly when nothing listens."""
    client = redis.Redis(port=_closed_port(), socket_connect_timeout=0.5)
    cache = RedisFactsCache(client)
    name = canonicalize_name("pandas")
    assert cache.get(name) is None
    cache.put(name, {"releases": {}}, 60)
