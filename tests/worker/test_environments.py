"""Product environments: keyed by runtime, dependency files and platform; built once, evicted."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from specfleet.core.errors import DependencyFileError, VerificationError
from specfleet.worker.verify.environments import (
    COMPLETE_MARKER,
    IN_USE_SECONDS,
    USED_MARKER,
    EnvironmentBuildError,
    EnvironmentCache,
    ProductEnvironment,
    environment_key,
    python_version,
)

from .conftest import make_product, make_spec

DAY = 86400.0


def installed(environment: ProductEnvironment) -> set[str]:
    """``name==version`` of every distribution in the venv, read from its dist-info folders."""
    site = next((environment.path / "lib").glob("python3.*/site-packages"))
    found = set()
    for info in site.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        found.add(f"{name.lower()}=={version}")
    return found


def fake_environment(root: Path, key: str, *, used: float, size: int = 0) -> Path:
    """A complete-looking environment last used at ``used``, holding ``size`` bytes."""
    path = root / key
    (path / "bin").mkdir(parents=True)
    (path / COMPLETE_MARKER).write_text(key)
    (path / "payload").write_bytes(b"x" * size)
    (path / USED_MARKER).touch()
    os.utime(path / USED_MARKER, (used, used))
    return path


def test_runtime_names_the_uv_python_version() -> None:
    """python3.11 is asked of uv as 3.11; anything else is refused."""
    assert python_version("python3.11") == "3.11"
    assert python_version("python3.9") == "3.9"
    with pytest.raises(VerificationError, match="unsupported runtime"):
        python_version("pypy3.10")


def test_key_changes_with_runtime_files_and_platform_only() -> None:
    """The key is the same for the same inputs and differs when any one of them changes."""
    files = (("requirements.txt", b"six==1.16.0\n"),)
    key = environment_key("python3.11", files, "linux-x86_64-glibc2.36")
    assert key == environment_key("python3.11", files, "linux-x86_64-glibc2.36")
    assert key.startswith("python3.11-")
    others = {
        environment_key("python3.12", files, "linux-x86_64-glibc2.36"),
        environment_key(
            "python3.11", (("requirements.txt", b"six==1.17.0\n"),), "linux-x86_64-glibc2.36"
        ),
        environment_key("python3.11", (("reqs.txt", b"six==1.16.0\n"),), "linux-x86_64-glibc2.36"),
        environment_key("python3.11", files, "linux-aarch64-glibc2.36"),
    }
    assert key not in others and len(others) == 4


@pytest.mark.network
def test_same_pins_share_one_environment_and_reuse_is_fast(tmp_path: Path) -> None:
    """Baseline and candidate with the same pins get one env; the second ensure only reuses it."""
    cache = EnvironmentCache(tmp_path / "envs")
    baseline = make_product(tmp_path / "baseline", {"requirements.txt": "six==1.16.0\n"})
    candidate = make_product(
        tmp_path / "candidate", {"requirements.txt": "six==1.16.0\n", "build.py": "changed\n"}
    )

    first = cache.ensure(baseline, make_spec())
    second = cache.ensure(candidate, make_spec())

    assert not first.reused and second.reused
    assert second.path == first.path and second.key == first.key
    assert "six==1.16.0" in installed(first)
    assert first.python == first.path / "bin" / "python" and first.python.resolve().is_file()
    assert second.seconds < first.seconds / 5
    assert [p.name for p in (tmp_path / "envs").iterdir() if not p.name.startswith(".")] == [
        first.key
    ]


@pytest.mark.network
def test_changed_pins_get_a_new_environment(tmp_path: Path) -> None:
    """A different pin means a different key and a fresh env; the old one stays for others."""
    cache = EnvironmentCache(tmp_path / "envs")
    product = make_product(tmp_path / "product", {"requirements.txt": "six==1.16.0\n"})
    old = cache.ensure(product, make_spec())
    (product / "requirements.txt").write_text("six==1.17.0\n")

    new = cache.ensure(product, make_spec())

    assert not new.reused and new.key != old.key
    assert "six==1.17.0" in installed(new) and "six==1.16.0" in installed(old)


@pytest.mark.network
def test_pyproject_products_get_their_optional_groups(tmp_path: Path) -> None:
    """pyproject.toml is installed with --all-extras: test tools live in optional groups."""
    pyproject = (
        '[project]\nname = "tiny"\nversion = "0"\ndependencies = ["six==1.16.0"]\n'
        '[project.optional-dependencies]\ntest = ["iniconfig==2.0.0"]\n'
    )
    product = make_product(tmp_path / "product", {"pyproject.toml": pyproject})
    environment = EnvironmentCache(tmp_path / "envs").ensure(product, make_spec("pyproject.toml"))
    assert {"six==1.16.0", "iniconfig==2.0.0"} <= installed(environment)
    assert not any(name.startswith("tiny==") for name in installed(environment))


@pytest.mark.network
def test_a_compiled_product_installs_its_lock(tmp_path: Path) -> None:
    """requirements.in + compiled requirements.txt: the lock's exact pins are what is installed."""
    lock = (
        "# This file was autogenerated by uv via the following command:\n"
        "#    uv pip compile requirements.in -o requirements.txt\n"
        "six==1.16.0\n"
    )
    product = make_product(
        tmp_path / "product", {"requirements.in": "six\n", "requirements.txt": lock}
    )
    environment = EnvironmentCache(tmp_path / "envs").ensure(product, make_spec("requirements.in"))
    assert "six==1.16.0" in installed(environment)


def test_two_workers_building_one_environment_build_it_once(tmp_path: Path) -> None:
    """Concurrent ensures of one key: one builds, the other waits and reuses its result."""
    cache = EnvironmentCache(tmp_path / "envs")
    product = make_product(tmp_path / "product", {"requirements.txt": "# nothing pinned\n"})
    results: list[ProductEnvironment] = []
    start = threading.Barrier(2)

    def ensure() -> None:
        start.wait()
        results.append(cache.ensure(product, make_spec()))

    threads = [threading.Thread(target=ensure) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(result.reused for result in results) == [False, True]
    assert results[0].path == results[1].path
    assert (results[0].path / COMPLETE_MARKER).is_file()


def test_a_crashed_build_is_not_taken_for_a_complete_environment(tmp_path: Path) -> None:
    """A half-built temporary dir and a target without its marker are rebuilt, not reused."""
    root = tmp_path / "envs"
    cache = EnvironmentCache(root)
    product = make_product(tmp_path / "product", {"requirements.txt": "# nothing pinned\n"})
    key = cache.ensure(product, make_spec()).key
    # crashed after `uv venv`, half-way through the install: a runnable venv, no marker
    (root / key / COMPLETE_MARKER).unlink()
    (root / key / "half-installed").touch()
    leftover = root / f".building-{key}-deadbeef"
    leftover.mkdir()

    environment = cache.ensure(product, make_spec())

    assert not environment.reused
    assert (environment.path / COMPLETE_MARKER).is_file() and environment.python.is_symlink()
    assert not (environment.path / "half-installed").exists()
    assert not leftover.exists()


def test_a_failed_build_leaves_nothing_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv failing (here: an unreachable index) raises with uv's message; no env is left."""
    root = tmp_path / "envs"
    product = make_product(
        tmp_path / "product",
        {"requirements.txt": "--index-url http://127.0.0.1:9/simple\nsix==1.16.0\n"},
    )
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # uv retries refused connections otherwise
    with pytest.raises(EnvironmentBuildError, match="uv pip install failed") as raised:
        EnvironmentCache(root).ensure(product, make_spec())

    assert "127.0.0.1:9" in raised.value.stderr
    assert isinstance(raised.value, VerificationError)
    assert [path.name for path in root.iterdir()] == [".locks"]


@pytest.mark.network
def test_an_unknown_package_fails_with_uvs_resolution_message(tmp_path: Path) -> None:
    """A pin PyPI does not have: the error carries uv's "not found" reason."""
    product = make_product(
        tmp_path / "product", {"requirements.txt": "specfleet-no-such-package-zz==1.0\n"}
    )
    with pytest.raises(EnvironmentBuildError, match="specfleet-no-such-package-zz"):
        EnvironmentCache(tmp_path / "envs").ensure(product, make_spec())
    assert not [p for p in (tmp_path / "envs").iterdir() if not p.name.startswith(".")]


def test_a_missing_dependency_file_is_the_spec_readers_error(tmp_path: Path) -> None:
    """No dependency file: DependencyFileError before uv is even started."""
    product = make_product(tmp_path / "product", {"build.py": ""})
    with pytest.raises(DependencyFileError, match="no such file"):
        EnvironmentCache(tmp_path / "envs", uv="/nonexistent/uv").ensure(product, make_spec())


def test_eviction_removes_environments_unused_for_too_long(tmp_path: Path) -> None:
    """Older than max_age_days since last use: removed; used recently: kept."""
    root = tmp_path / "envs"
    now = time.time()
    stale = fake_environment(root, "python3.11-stale", used=now - 31 * DAY)
    fresh = fake_environment(root, "python3.11-fresh", used=now - 29 * DAY)

    crashed = root / ".building-python3.11-gone-0123abcd"  # a build that died half-way
    crashed.mkdir()

    removed = EnvironmentCache(root, max_age_days=30).evict(now)

    assert removed == [stale]
    assert not stale.exists() and fresh.exists()
    assert not crashed.exists()


def test_eviction_by_size_removes_least_recently_used_first(tmp_path: Path) -> None:
    """Over max_bytes: the least recently used go until the rest fits."""
    root = tmp_path / "envs"
    now = time.time()
    oldest = fake_environment(root, "python3.11-a", used=now - 3 * DAY, size=1_000_000)
    middle = fake_environment(root, "python3.11-b", used=now - 2 * DAY, size=1_000_000)
    newest = fake_environment(root, "python3.11-c", used=now - 1 * DAY, size=1_000_000)

    removed = EnvironmentCache(root, max_bytes=2_500_000).evict(now)

    assert removed == [oldest]
    assert middle.exists() and newest.exists()


def test_eviction_by_size_spares_environments_a_run_may_be_using(tmp_path: Path) -> None:
    """An env used within IN_USE_SECONDS stays even above max_bytes (a sandbox may use it)."""
    root = tmp_path / "envs"
    now = time.time()
    busy = fake_environment(root, "python3.11-busy", used=now - IN_USE_SECONDS / 2, size=10_000)
    idle = fake_environment(root, "python3.11-idle", used=now - 2 * IN_USE_SECONDS, size=10_000)

    removed = EnvironmentCache(root, max_bytes=1).evict(now)

    assert removed == [idle]
    assert busy.exists()


def test_ensure_marks_the_environment_as_used(tmp_path: Path) -> None:
    """Each ensure touches the env, so an unchanged product's env survives age eviction."""
    root = tmp_path / "envs"
    cache = EnvironmentCache(root, max_age_days=30)
    product = make_product(tmp_path / "product", {"requirements.txt": "# nothing pinned\n"})
    environment = cache.ensure(product, make_spec())
    long_ago = time.time() - 60 * DAY
    os.utime(environment.path / USED_MARKER, (long_ago, long_ago))

    again = cache.ensure(product, make_spec())

    assert again.reused
    assert cache.evict() == []
    assert environment.path.exists()
