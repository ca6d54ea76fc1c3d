"""No silent unsandboxed runs: the SPECFLEET_SANDBOX decision, the fleet worker's refusal, the
MR banner, and a bwrap build that cannot reach the network, the worker's secrets or anything
outside its worktree."""

from __future__ import annotations

import json
import os
import shutil
import socket
import textwrap
import uuid
from pathlib import Path

import pytest

from specfleet.core.settings import get_settings
from specfleet.worker.verify.environments import ProductEnvironment
from specfleet.worker.verify.sandbox import run_sandboxed, sandbox_available
from specfleet.worker.verify.sandbox_policy import (
    MR_BANNER,
    SANDBOX_OFF_WARNING,
    SandboxRefused,
    decide,
    unsandboxed_banner,
)
from tests.conftest import SPECFLEET


def test_decision_refuses_unsandboxed_fleet_runs_unless_explicitly_none() -> None:
    """Fleet + no bwrap: refused; explicit none: allowed with a warning; embedded: allowed
    (run_sandboxed warns); 'bwrap' requires it everywhere."""
    assert decide("auto", fleet=True, available=False).kind is None
    assert "SPECFLEET_SANDBOX=none" in (decide("auto", True, False).refusal or "")
    assert decide("bwrap", fleet=False, available=False).kind is None
    none = decide("none", fleet=True, available=True)
    assert none.kind == "subprocess" and none.warning == SANDBOX_OFF_WARNING
    assert decide("auto", fleet=False, available=False).kind == "subprocess"
    assert decide("auto", fleet=True, available=True).kind == "bwrap"


def test_fleet_mode_without_a_working_sandbox_refuses_to_run_product_code(
    tmp_path: Path,
    specfleet_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    bare_environment: ProductEnvironment,
) -> None:
    """With Redis configured (fleet mode) and bwrap unusable, a build is refused; with
    SPECFLEET_SANDBOX=none it runs and every result says UNSANDBOXED."""
    import specfleet.worker.verify.sandbox_policy as policy

    monkeypatch.setenv("SPECFLEET_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setattr("specfleet.worker.verify.sandbox.sandbox_available", lambda: False)
    get_settings.cache_clear()
    (tmp_path / "wt").mkdir()
    with pytest.raises(SandboxRefused, match="bubblewrap"):
        run_sandboxed("python -V", tmp_path / "wt", bare_environment, timeout_seconds=30,
                      memory_mb=512)  # fmt: skip
    monkeypatch.setenv("SPECFLEET_SANDBOX", "none")
    get_settings.cache_clear()
    result = run_sandboxed(
        "python -V", tmp_path / "wt", bare_environment, timeout_seconds=30, memory_mb=512
    )
    assert result.exit_code == 0 and result.sandbox == "subprocess"
    assert SANDBOX_OFF_WARNING in result.warnings
    assert policy.current_decision().warning == SANDBOX_OFF_WARNING
    get_settings.cache_clear()


def test_unsandboxed_verification_puts_a_banner_first_in_the_mr() -> None:
    """The banner is the MR's first lines when the verification notes say UNSANDBOXED."""
    assert unsandboxed_banner("### Notes\n\n- " + SANDBOX_OFF_WARNING) == MR_BANNER
    assert unsandboxed_banner("| build | pass |") == ""


def test_worker_refuses_to_start_and_fleet_status_warns(
    specfleet_home: Path, tmp_path: Path
) -> None:
    """`specfleet worker` in fleet mode without a usable bwrap exits 2 naming the fix;
    `fleet status` with SPECFLEET_SANDBOX=none says so in its first line."""
    import subprocess

    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    for tool in ("git", "uv"):  # everything the worker finds on PATH except bwrap
        found = shutil.which(tool)
        if found:
            (empty_path / tool).symlink_to(found)
    env = {
        **os.environ,
        "SPECFLEET_REDIS_URL": "redis://127.0.0.1:6379/0",
        "PATH": str(empty_path),  # no bwrap on PATH
        "NO_COLOR": "1",
    }
    started = subprocess.run(
        [SPECFLEET, "worker", "--pool", "solo"], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert started.returncode == 2, started.stdout + started.stderr
    assert "SPECFLEET_SANDBOX=none" in started.stderr
    status = subprocess.run(
        [SPECFLEET, "fleet", "status"],
        env={**os.environ, "SPECFLEET_SANDBOX": "none", "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0].startswith("WARNING: SPECFLEET_SANDBOX=none")


ESCAPE = """
    import json, os, socket, sys
    home, outside, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seen = {"env": {k: v for k, v in os.environ.items()}}
    def attempt(name, action):
        try:
            seen[name] = ["ok", str(action())[:200]]
        except Exception as error:
            seen[name] = ["refused", type(error).__name__]
    attempt("loopback", lambda: socket.create_connection(("127.0.0.1", port), timeout=3))
    attempt("internet", lambda: socket.create_connection(("1.1.1.1", 443), timeout=3))
    attempt("dns", lambda: socket.getaddrinfo("pypi.org", 443))
    attempt("web_secret", lambda: open(os.path.join(home, "web-secret")).read())
    attempt("database", lambda: open(os.path.join(home, "specfleet.db"), "rb").read(16))
    attempt("list_home", lambda: os.listdir(home))
    attempt("write_outside", lambda: open(outside, "w").write("escaped"))
    attempt("write_home", lambda: open(os.path.join(home, "planted"), "w").write("x"))
    attempt("write_root", lambda: open("/planted", "w").write("x"))
    attempt("write_worktree", lambda: open("built.txt", "w").write("fine"))
    print(json.dumps(seen))
"""


@pytest.mark.skipif(not sandbox_available(), reason="bubblewrap cannot run here (CI has it)")
def test_a_sandboxed_build_cannot_reach_the_network_secrets_or_outside_its_worktree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bare_environment: ProductEnvironment
) -> None:
    """Under bwrap a build cannot connect (loopback or internet), cannot read the worker's
    secrets (environment, files in SPECFLEET_HOME), cannot write outside its worktree - and
    can write inside it."""
    home = tmp_path / "specfleet-home"
    home.mkdir()
    canary = "canary-" + uuid.uuid4().hex
    (home / "web-secret").write_text(canary)
    (home / "specfleet.db").write_bytes(b"SQLite format 3\x00" + canary.encode())
    monkeypatch.setenv("SPECFLEET_HOME", str(home))
    monkeypatch.setenv("SPECFLEET_GITLAB_TOKEN", canary)
    monkeypatch.setenv("SPECFLEET_WEB_SECRET", canary)
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    (worktree / "escape.py").write_text(textwrap.dedent(ESCAPE))
    outside = tmp_path / "outside.txt"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        result = run_sandboxed(
            f"python escape.py {home} {outside} {port}",
            worktree,
            bare_environment,
            timeout_seconds=60,
            memory_mb=1024,
            use_bwrap=True,
        )
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected to the worker's loopback
    assert result.exit_code == 0, result.stderr
    assert result.sandbox == "bwrap"
    seen = json.loads(result.stdout)
    assert canary not in result.stdout
    assert not any(name.startswith("SPECFLEET") for name in seen["env"])
    for name in ("loopback", "internet", "dns", "web_secret", "database", "list_home"):
        assert seen[name][0] == "refused", (name, seen[name])
    for name in ("write_outside", "write_home", "write_root"):
        assert seen[name][0] == "refused", (name, seen[name])
    assert seen["write_worktree"][0] == "ok"
    assert not outside.exists() and not (home / "planted").exists()
    assert (worktree / "built.txt").read_text() == "fine"
