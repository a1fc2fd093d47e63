"""The machine table names the file system the stacks write to, and for ext4 whether it keeps a journal."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from bench import machine


def test_a_path_is_on_the_longest_mount_that_holds_it() -> None:
    root = next(p for p in psutil.disk_partitions(all=True) if p.mountpoint == "/")
    assert machine.filesystem("/").startswith(f"{root.fstype} ({root.device})")
    assert machine.filesystem("/proc/self").startswith("proc ")


@pytest.mark.parametrize(("task", "said"), [("<none>", "no journal"), ("jbd2/vdb-8", "with a journal")])
def test_ext4_says_whether_it_keeps_a_journal(
    task: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounts = [SimpleNamespace(mountpoint="/", fstype="ext4", device="/dev/vdb")]
    monkeypatch.setattr(machine.psutil, "disk_partitions", lambda all: mounts)
    (tmp_path / "vdb").mkdir()
    (tmp_path / "vdb" / "journal_task").write_text(task + "\n")
    assert machine.filesystem("/srv/work", ext4=tmp_path) == f"ext4 (/dev/vdb), {said}"
