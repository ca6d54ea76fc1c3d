"""Clean-up after a SIGKILLed worker: its build process groups and scratch directories go."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from specfleet.worker import reaper
from specfleet.worker.reaper import OwnerName, group_is_orphan, owner_is_gone, reap

# A stand-in worker: registers as an owner, starts a build in its own process group (a shell
# that leaves a grandchild behind, as a build without bwrap could), records the group, then
# waits to be killed.
FAKE_WORKER = """
import subprocess, sys, time
from pathlib import Path
from specfleet.worker import reaper
owner = reaper.register_process(Path(sys.argv[1]))
(owner.scratch / "specfleet-eval-x").mkdir()
build = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300"], start_new_session=True)
reaper.record_group(build.pid)
print(build.pid, owner.directory, flush=True)
time.sleep(300)
"""


def alive_in_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_dead_workers_build_group_and_scratch_are_removed_on_the_next_start(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    worker = subprocess.Popen(
        [sys.executable, "-c", FAKE_WORKER, str(work)], stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None
    pgid_text, directory = worker.stdout.readline().split()
    pgid = int(pgid_text)
    try:
        assert alive_in_group(pgid) and Path(directory, "tmp", "specfleet-eval-x").is_dir()
        # the live owner is left alone
        assert reap(work / reaper.OWNERS).directories_removed == []
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        assert alive_in_group(pgid), "a SIGKILLed worker leaves its build behind"

        report = reap(work / reaper.OWNERS)

        assert report.groups_killed == [pgid]
        assert report.directories_removed == [Path(directory).name]
        deadline = time.monotonic() + 10
        while alive_in_group(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive_in_group(pgid)
        assert not Path(directory).exists()
    finally:
        if alive_in_group(pgid):
            os.killpg(pgid, signal.SIGKILL)


def test_owner_identity_survives_pid_reuse() -> None:
    owner = OwnerName.parse("worker-host-1-4242-99")
    assert owner == OwnerName("worker-host-1", 4242, 99)
    assert owner_is_gone(owner, lambda pid: None)
    assert owner_is_gone(owner, lambda pid: 123)  # the pid is another process now
    assert not owner_is_gone(owner, lambda pid: 99)
    # a group id whose leader is now an unrelated process is not ours to kill
    assert not group_is_orphan(4242, 99, lambda pid: 555)
    assert group_is_orphan(4242, 99, lambda pid: None)
    assert OwnerName.parse("not-an-owner") is None
