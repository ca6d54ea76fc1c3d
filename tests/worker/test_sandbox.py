"""The sandbox product commands run in: scrubbed, isolated, limited, bounded; JUnit read."""

from __future__ import annotations

import itertools
import json
import os
import resource
import socket
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from specfleet.core.errors import VerificationError
from specfleet.worker.verify.environments import ProductEnvironment
from specfleet.worker.verify.junit import junit_test_name, parse_junit
from specfleet.worker.verify.sandbox import (
    NO_BWRAP_WARNING,
    bwrap_command,
    python_installation,
    run_sandboxed,
    sandbox_available,
)

needs_bwrap = pytest.mark.skipif(not sandbox_available(), reason="bubblewrap cannot run here")
BOTH_MODES = pytest.mark.parametrize(
    "use_bwrap",
    [pytest.param(True, marks=needs_bwrap, id="bwrap"), pytest.param(False, id="plain")],
)
ALLOWED_VARIABLES = {
    "PATH",
    "LANG",
    "HOME",
    "TMPDIR",
    "VIRTUAL_ENV",
    "PYTHONDONTWRITEBYTECODE",
    "TZ",
    "PWD",  # bwrap sets it after --chdir
}


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "worktree"
    path.mkdir()
    return path


def script(worktree: Path, name: str, code: str) -> str:
    """Write a Python script into the worktree; return the command running it."""
    (worktree / name).write_text(textwrap.dedent(code))
    return f"python {name}"


def living_processes_with(token: str) -> list[int]:
    """Host pids of processes (not zombies) whose command line mentions ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@pytest.fixture
def secrets_in_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """Canaries in this process's environment and in a HOME holding .netrc, .ssh, .gitconfig."""
    home = tmp_path / "user-home"
    (home / ".ssh").mkdir(parents=True)
    canaries = {
        "SPECFLEET_GITLAB_TOKEN": "canary-gitlab-" + uuid.uuid4().hex,
        "OPENAI_API_KEY": "canary-openai-" + uuid.uuid4().hex,
        "netrc": "canary-netrc-" + uuid.uuid4().hex,
    }
    (home / ".netrc").write_text(f"machine gitlab.example.com password {canaries['netrc']}\n")
    (home / ".ssh" / "id_ed25519").write_text(canaries["netrc"])
    (home / ".gitconfig").write_text(f"[credential]\n\thelper = {canaries['netrc']}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SPECFLEET_GITLAB_TOKEN", canaries["SPECFLEET_GITLAB_TOKEN"])
    monkeypatch.setenv("OPENAI_API_KEY", canaries["OPENAI_API_KEY"])
    yield canaries | {"home": str(home)}


SNOOP = """
    import json, os, sys
    seen = {"environ": dict(os.environ), "files": {}}
    for path in sys.argv[1:] + ["~/.netrc", "~/.ssh/id_ed25519", "~/.gitconfig"]:
        try:
            seen["files"][path] = open(os.path.expanduser(path)).read()
        except OSError as error:
            seen["files"][path] = type(error).__name__
    print(json.dumps(seen))
"""


@BOTH_MODES
def test_product_code_sees_no_credentials(
    use_bwrap: bool,
    worktree: Path,
    bare_environment: ProductEnvironment,
    secrets_in_environment: dict[str, str],
) -> None:
    """Tokens in the worker's environment and secrets in its HOME never reach product code."""
    command = script(worktree, "snoop.py", SNOOP)
    real_netrc = Path(secrets_in_environment["home"]) / ".netrc"
    extra = f" {real_netrc}" if use_bwrap else ""  # plain subprocess: the path stays readable

    result = run_sandboxed(
        command + extra,
        worktree,
        bare_environment,
        timeout_seconds=30,
        memory_mb=1024,
        use_bwrap=use_bwrap,
    )

    assert result.exit_code == 0, result.stderr
    seen = json.loads(result.stdout)
    assert set(seen["environ"]) <= ALLOWED_VARIABLES
    assert seen["environ"]["PATH"].startswith(f"{bare_environment.path.resolve()}/bin:")
    assert seen["environ"]["HOME"] != secrets_in_environment["home"]
    assert all(
        value in ("FileNotFoundError", "PermissionError") for value in seen["files"].values()
    )
    assert len(seen["files"]) == (4 if use_bwrap else 3)
    for canary in ("SPECFLEET_GITLAB_TOKEN", "OPENAI_API_KEY", "netrc"):
        assert secrets_in_environment[canary] not in result.stdout
    assert (NO_BWRAP_WARNING in result.warnings) is not use_bwrap
    assert result.sandbox == ("bwrap" if use_bwrap else "subprocess")


RUNAWAY = """
    import os, signal, subprocess, sys, time
    token = sys.argv[1]
    child = (
        "import signal, sys, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "pathlib.Path('child.started').write_text('yes'); time.sleep(600)"
    )
    subprocess.Popen([sys.executable, "-c", child, token])
    if sys.argv[2] == "daemon":
        # a double-forked daemon in a session of its own, out of the process group
        subprocess.Popen([sys.executable, "-c", child, token], start_new_session=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        pass
"""


@BOTH_MODES
def test_a_runaway_build_is_killed_at_its_timeout_with_its_children(
    use_bwrap: bool, worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """Busy loop + a child ignoring SIGTERM: both gone after the timeout (SIGKILL after grace)."""
    token = f"runaway-{uuid.uuid4().hex}"
    command = script(worktree, "runaway.py", RUNAWAY) + f" {token} group"
    started = time.monotonic()

    result = run_sandboxed(
        command,
        worktree,
        bare_environment,
        timeout_seconds=1.5,
        memory_mb=1024,
        use_bwrap=use_bwrap,
    )

    assert (worktree / "child.started").exists()  # the child did run before the timeout
    assert result.timed_out and result.exit_code is None and not result.ok
    assert result.killed_reason == "exceeded 1.5 s"
    assert time.monotonic() - started < 10
    assert living_processes_with(token) == []


@needs_bwrap
def test_a_daemon_in_its_own_session_dies_with_the_sandbox(
    worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """Under bwrap even a child that left the process group (setsid) does not survive."""
    token = f"daemon-{uuid.uuid4().hex}"
    command = script(worktree, "runaway.py", RUNAWAY) + f" {token} daemon"

    result = run_sandboxed(command, worktree, bare_environment, timeout_seconds=1.5, memory_mb=1024)

    assert result.timed_out and (worktree / "child.started").exists()
    assert living_processes_with(token) == []


@BOTH_MODES
def test_background_children_do_not_outlive_a_finished_command(
    use_bwrap: bool, worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """A command that exits leaving a sleeper behind: the sleeper is stopped too."""
    token = f"leftover-{uuid.uuid4().hex}"
    command = script(
        worktree,
        "leave.py",
        """
        import subprocess, sys, time, pathlib
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", sys.argv[1]])
        time.sleep(0.3)
        """,
    )

    result = run_sandboxed(
        f"{command} {token}",
        worktree,
        bare_environment,
        timeout_seconds=30,
        memory_mb=1024,
        use_bwrap=use_bwrap,
    )

    assert result.exit_code == 0 and not result.timed_out
    assert living_processes_with(token) == []


def test_huge_output_is_bounded_in_memory_and_in_the_result(
    worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """200 MB on stdout: the result keeps the last max_output_bytes, memory barely moves."""
    command = script(
        worktree,
        "loud.py",
        """
        import sys
        line = b"x" * 1023 + b"\\n"
        for _ in range(200 * 1024):
            sys.stdout.buffer.write(line)
        sys.stdout.buffer.write(b"THE END\\n")
        sys.stderr.write("small\\n")
        """,
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    result = run_sandboxed(
        command,
        worktree,
        bare_environment,
        timeout_seconds=60,
        memory_mb=1024,
        max_output_bytes=4096,
    )

    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert result.exit_code == 0
    assert result.stdout.startswith("[... 200.0 MB cut ...]\n")
    assert result.stdout.endswith("THE END\n")
    assert len(result.stdout) < 4096 + 100
    assert result.stderr == "small\n"
    assert grown_kb < 50 * 1024


@BOTH_MODES
def test_exit_code_and_stderr_are_captured(
    use_bwrap: bool, worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """A failing build's exit code and standard error come back as they were."""
    command = script(
        worktree,
        "fail.py",
        """
        import sys
        print("partial output")
        sys.stderr.write("raw_orders is missing\\n")
        sys.exit(3)
        """,
    )
    result = run_sandboxed(
        command, worktree, bare_environment, timeout_seconds=30, memory_mb=1024, use_bwrap=use_bwrap
    )
    assert result.exit_code == 3 and not result.ok and not result.timed_out
    assert result.stdout == "partial output\n"
    assert result.stderr == "raw_orders is missing\n"
    assert result.duration_seconds > 0


def test_an_unknown_command_is_a_failed_run(
    worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """A build command that does not exist fails like in a shell, in both modes."""
    plain = run_sandboxed(
        "no-such-tool --go",
        worktree,
        bare_environment,
        timeout_seconds=5,
        memory_mb=256,
        use_bwrap=False,
    )
    assert plain.exit_code == 127 and "no-such-tool" in plain.stderr
    if sandbox_available():
        sandboxed = run_sandboxed(
            "no-such-tool --go", worktree, bare_environment, timeout_seconds=5, memory_mb=256
        )
        assert sandboxed.exit_code != 0 and "no-such-tool" in sandboxed.stderr


def test_a_command_that_cannot_be_split_is_refused(
    worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """Unbalanced quotes are the caller's error; nothing is run through a shell."""
    with pytest.raises(VerificationError, match="cannot split"):
        run_sandboxed(
            "python -c 'oops", worktree, bare_environment, timeout_seconds=5, memory_mb=256
        )


def test_shell_syntax_is_not_interpreted(
    worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """The command is split with shlex: ``;`` and ``$HOME`` reach the program as text."""
    result = run_sandboxed(
        "python -c 'import sys; print(sys.argv[1:])' ; $HOME",
        worktree,
        bare_environment,
        timeout_seconds=30,
        memory_mb=1024,
    )
    assert result.stdout == "[';', '$HOME']\n"


@needs_bwrap
def test_the_memory_limit_stops_a_greedy_build(
    worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """Allocating past memory_mb fails in the product, and the result says which limit."""
    command = script(
        worktree, "greedy.py", "block = bytearray(600 * 1024 * 1024)\nprint('got it')\n"
    )
    result = run_sandboxed(command, worktree, bare_environment, timeout_seconds=30, memory_mb=256)
    assert result.exit_code not in (0, None) and "got it" not in result.stdout
    assert "MemoryError" in result.stderr
    assert result.killed_reason == "exceeded 256 MB"


def test_limits_above_the_global_caps_are_capped(
    worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """A spec cannot ask for more than the caps: the run says they were applied."""
    result = run_sandboxed(
        "python -c pass", worktree, bare_environment, timeout_seconds=10**6, memory_mb=10**6
    )
    assert result.exit_code == 0
    assert "limits capped at 3600 s and 8192 MB" in result.warnings


@needs_bwrap
def test_writes_outside_the_worktree_fail_or_stay_in_the_sandbox(
    tmp_path: Path, worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """/tmp is the sandbox's own; the worktree's parent and the system are read-only."""
    name = f"specfleet-escape-{uuid.uuid4().hex}"
    outputs = tmp_path / "outputs"
    command = script(
        worktree,
        "escape.py",
        """
        import json, sys
        results = {}
        for path in sys.argv[1:]:
            try:
                with open(path, "w") as handle:
                    handle.write("escaped")
                results[path] = "written"
            except OSError as error:
                results[path] = error.errno
        print(json.dumps(results))
        """,
    )
    targets = {
        "tmp": f"/tmp/{name}",
        "parent": str(tmp_path / name),
        "grandparent": str(tmp_path.parent / name),
        "etc": f"/etc/{name}",
        "venv": str(bare_environment.path / name),
        "worktree": str(worktree / "inside.txt"),
        "writable": str(outputs / "out.csv"),
    }

    result = run_sandboxed(
        f"{command} {' '.join(targets.values())}",
        worktree,
        bare_environment,
        timeout_seconds=30,
        memory_mb=1024,
        writable=(outputs,),
    )

    outcome = {key: json.loads(result.stdout)[path] for key, path in targets.items()}
    assert outcome == {
        "tmp": "written",
        "parent": 30,  # EROFS
        "grandparent": "written",  # plain sandbox /tmp there: the product's tools use it
        "etc": 30,
        "venv": 30,
        "worktree": "written",
        "writable": "written",
    }
    for leaked in (Path(f"/tmp/{name}"), tmp_path / name, tmp_path.parent / name):
        assert not leaked.exists()
    assert (worktree / "inside.txt").read_text() == "escaped"
    assert (outputs / "out.csv").read_text() == "escaped"


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        yield server.getsockname()[1]


CONNECT = """
    import socket, sys
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
        print("connected")
    except OSError as error:
        print(type(error).__name__)
"""


@needs_bwrap
def test_the_network_is_off_in_the_sandbox(
    worktree: Path, bare_environment: ProductEnvironment, listening_port: int
) -> None:
    """A port the host listens on cannot be reached, unless network=True."""
    command = f"{script(worktree, 'connect.py', CONNECT)} {listening_port}"

    offline = run_sandboxed(command, worktree, bare_environment, timeout_seconds=30, memory_mb=1024)
    online = run_sandboxed(
        command, worktree, bare_environment, timeout_seconds=30, memory_mb=1024, network=True
    )

    assert offline.stdout == "ConnectionRefusedError\n"
    assert online.stdout == "connected\n"


def test_bwrap_command_line_isolates_by_default(
    tmp_path: Path, bare_environment: ProductEnvironment
) -> None:
    """Namespaces, no network, no capabilities, the interpreter's installation read-only."""
    worktree = tmp_path / "worktree"
    argv = bwrap_command(["pytest", "-q"], worktree, bare_environment, scratch_tmp=tmp_path / "s")
    for flag in ("--unshare-all", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert "--share-net" not in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert argv[-5:] == ["--chdir", str(worktree), "--", "pytest", "-q"]
    pairs = list(itertools.pairwise(argv))
    assert ("--bind", str(worktree)) in pairs
    assert ("--ro-bind", str(bare_environment.path.resolve())) in pairs
    for prefix in python_installation(bare_environment):
        assert ("--ro-bind", str(prefix)) in pairs
    assert ("--remount-ro", "/") in pairs
    home = Path.home()
    sources = [Path(source) for flag, source in pairs if flag in ("--bind", "--ro-bind")]
    assert not any(home.is_relative_to(source) for source in sources if source != Path("/"))


def test_the_fallback_runs_in_the_worktree_with_a_warning(
    worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """Without bubblewrap: a plain subprocess in the worktree, its Python, and the warning."""
    command = script(worktree, "where.py", "import os, sys\nprint(os.getcwd(), sys.prefix)\n")
    result = run_sandboxed(
        command, worktree, bare_environment, timeout_seconds=30, memory_mb=1024, use_bwrap=False
    )
    assert result.exit_code == 0
    assert result.stdout.split() == [str(worktree.resolve()), str(bare_environment.path)]
    assert result.sandbox == "subprocess"
    assert NO_BWRAP_WARNING in result.warnings


# ---------------------------------------------------------------------------------------------
# JUnit

PRODUCT_TESTS = """
import pytest

def test_passes(tmp_path):
    (tmp_path / "scratch.txt").write_text("pytest's own /tmp/pytest-of-<user> works")
    assert 1 + 1 == 2

def test_fails():
    assert {"orders": 3} == {"orders": 4}, "order count drifted"

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
"""


@pytest.mark.network
def test_pytest_junit_report_is_parsed(
    tmp_path: Path, worktree: Path, env_with_pytest: ProductEnvironment
) -> None:
    """pytest in the product's env writes JUnit XML; counts and the failing test come back."""
    (worktree / "test_product.py").write_text(PRODUCT_TESTS)
    reports = tmp_path / "reports"
    junit = reports / "junit.xml"

    result = run_sandboxed(
        f"pytest -q -p no:cacheprovider --junitxml={junit}",
        worktree,
        env_with_pytest,
        timeout_seconds=60,
        memory_mb=2048,
        writable=(reports,),
        junit_xml=junit,
    )

    assert result.exit_code == 1, result.stdout + result.stderr
    summary = result.junit
    assert summary is not None
    assert (summary.total, summary.passed, summary.failed, summary.skipped, summary.errors) == (
        3,
        1,
        1,
        1,
        0,
    )
    failed = [case for case in summary.cases if case.outcome == "failed"]
    assert [case.name for case in failed] == ["test_product.py::test_fails"]
    assert "order count drifted" in failed[0].message


DOCTYPE_REPORT = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<testsuite tests="1"><testcase classname="t" name="&lol2;"/></testsuite>
"""


def test_a_junit_report_with_a_doctype_is_refused(tmp_path: Path) -> None:
    """DOCTYPE (and so entities) in a report: refused, never expanded."""
    report = tmp_path / "junit.xml"
    report.write_text(DOCTYPE_REPORT)
    with pytest.raises(VerificationError, match="DOCTYPE"):
        parse_junit(report)


def test_a_refused_junit_report_is_a_warning_of_the_run(
    worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """The run still reports its exit code; the report is left out with the reason."""
    (worktree / "report.xml").write_text(DOCTYPE_REPORT)
    result = run_sandboxed(
        'python -c \'import shutil; shutil.copy("report.xml", "junit.xml")\'',
        worktree,
        bare_environment,
        timeout_seconds=30,
        memory_mb=1024,
        junit_xml=worktree / "junit.xml",
    )
    assert result.exit_code == 0 and result.junit is None
    assert any("DOCTYPE" in warning for warning in result.warnings)


def test_a_report_left_from_before_the_run_is_not_read(
    worktree: Path, bare_environment: ProductEnvironment
) -> None:
    """A junit file committed in the worktree, or left by an earlier run, is not this run's."""
    stale = worktree / "junit.xml"
    stale.write_text('<testsuite tests="1"><testcase classname="t" name="test_ok"/></testsuite>')
    result = run_sandboxed(
        "python -c pass",
        worktree,
        bare_environment,
        timeout_seconds=30,
        memory_mb=1024,
        junit_xml=stale,
    )
    assert result.exit_code == 0 and result.junit is None and not stale.exists()


def test_junit_outcomes_and_bounded_messages(tmp_path: Path) -> None:
    """failure, error, skipped and passing cases are counted; long messages are cut."""
    long_trace = "\n".join(f"line {number}" for number in range(500))
    report = tmp_path / "junit.xml"
    report.write_text(
        f"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
  <testcase classname="tests.test_a.TestOrders" name="test_ok" file="tests/test_a.py"/>
  <testcase classname="tests.test_a" name="test_bad"><failure message="boom">{long_trace}</failure></testcase>
  <testcase classname="tests.test_a" name="test_broken"><error message="fixture failed"/></testcase>
  <testcase classname="tests.test_a" name="test_later"><skipped message="later"/></testcase>
</testsuite></testsuites>"""
    )

    summary = parse_junit(report)

    assert summary is not None
    assert (summary.total, summary.passed, summary.failed, summary.errors, summary.skipped) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert summary.cases[0].name == "tests/test_a.py::TestOrders::test_ok"
    bad = summary.cases[1]
    assert bad.outcome == "failed" and bad.message.startswith("boom\nline 0")
    assert len(bad.message) <= 2000 and "line 499" not in bad.message
    assert parse_junit(tmp_path / "absent.xml") is None


def test_junit_names_follow_pytest_when_the_checkout_tells_the_module(tmp_path: Path) -> None:
    """xunit2 dotted class names become file paths when that file exists in the checkout."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("")
    assert junit_test_name("tests.test_x.TestY", "test_z", root=tmp_path) == (
        "tests/test_x.py::TestY::test_z"
    )
    assert junit_test_name("tests.test_x", "test_z", root=tmp_path) == "tests/test_x.py::test_z"
    assert junit_test_name("other.mod", "test_z", root=tmp_path) == "other.mod::test_z"
    assert junit_test_name("", "test_z") == "test_z"


def test_a_report_that_is_not_xml_is_refused(tmp_path: Path) -> None:
    """A truncated report is an error with the file's name, not a crash."""
    report = tmp_path / "junit.xml"
    report.write_text("<testsuite><testcase")
    with pytest.raises(VerificationError, match=r"junit\.xml is not XML"):
        parse_junit(report)
