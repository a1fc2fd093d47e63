"""A stopped embedded stack's files are emptied, not deleted: its pages go back, its inodes stay until the run ends."""

from __future__ import annotations

import os
from pathlib import Path

from bench.stacks import release


def test_release_empties_every_file_and_keeps_every_inode(tmp_path: Path) -> None:
    data = tmp_path / "embedded-1"
    (data / "objects" / "images-processed" / "job").mkdir(parents=True)
    files = [data / "imgpipe.db", data / "objects" / "a.jpg", data / "objects" / "images-processed" / "job" / "t.jpg"]
    for path in files:
        path.write_bytes(os.urandom(70_000))
    inodes = {path: path.stat().st_ino for path in files}

    release(data)

    for path in files:
        assert path.stat().st_size == 0
        assert path.stat().st_ino == inodes[path]


def test_release_does_not_empty_what_a_link_points_to(tmp_path: Path) -> None:
    outside = tmp_path / "corpus.jpg"
    outside.write_bytes(b"x" * 1000)
    data = tmp_path / "embedded-1"
    data.mkdir()
    (data / "link.jpg").symlink_to(outside)

    release(data)

    assert outside.stat().st_size == 1000
