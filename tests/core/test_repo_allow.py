"""SPECFLEET_REPO_ALLOW: which repository URLs the server may fetch; stale mirror locks."""

from __future__ import annotations

from pathlib import Path

import pytest

from specfleet.core.errors import RepositoryError
from specfleet.core.git import MirrorCache
from specfleet.core.repo_allow import RepoAllowList, RepoNotAllowed, default_allow_text


def test_default_allows_local_paths_and_the_configured_forge_only() -> None:
    """Local paths and the forge's host (https and ssh) pass; other hosts and loopback ports
    are refused with a reason naming the setting."""
    allow = RepoAllowList.parse(default_allow_text(["https://gitlab.example.com"]))
    assert allow.refusal("/srv/repos/orders") is None
    assert allow.refusal("file:///srv/repos/orders") is None
    assert allow.refusal("https://gitlab.example.com/data/orders.git") is None
    assert allow.refusal("git@gitlab.example.com:data/orders.git") is None
    assert "not among the allowed" in (allow.refusal("https://evil.example.net/x.git") or "")
    assert allow.refusal("http://127.0.0.1:6379/x.git") is not None
    assert allow.refusal("https://gitlab.example.com:8443/x.git") is not None  # another port


def test_wildcard_still_refuses_the_servers_neighbourhood() -> None:
    """'*' allows public hosts but not loopback, private or link-local addresses, unless a
    pattern names them exactly; unknown schemes and bad patterns are refused."""
    allow = RepoAllowList.parse("*, http://127.0.0.1:8929")
    assert allow.refusal("https://github.com/acme/orders.git") is None
    for internal in (
        "http://127.0.0.1:6379/",
        "http://localhost:5432/x",
        "https://10.0.0.5/x.git",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:22/x",
    ):
        assert allow.refusal(internal) is not None, internal
    assert allow.refusal("http://127.0.0.1:8929/group/orders.git") is None
    assert allow.refusal("/local/path") is not None  # 'local' not listed
    assert RepoAllowList.parse("local").refusal("ftp://host/x") is not None
    with pytest.raises(Exception, match="SPECFLEET_REPO_ALLOW"):
        RepoAllowList.parse("https://")


def test_a_refused_url_is_never_fetched_and_failed_fetches_leave_no_locks(tmp_path: Path) -> None:
    """The mirror cache refuses before touching the network; a failed first fetch removes its
    lock file; stale locks from earlier processes are swept unless held."""
    mirrors = MirrorCache(tmp_path / "mirrors", 10, allow=RepoAllowList.parse("local"))
    with pytest.raises(RepoNotAllowed, match="refused"):
        mirrors.fetch("http://127.0.0.1:9/x.git")
    with pytest.raises(RepositoryError):
        mirrors.fetch(str(tmp_path))  # exists, but is not a git repository
    assert list((tmp_path / "mirrors").glob("*.lock")) == []
    stale = tmp_path / "mirrors" / "gone-0123.lock"
    stale.write_text("")
    assert mirrors.clean_stale_locks() == 1 and not stale.exists()
