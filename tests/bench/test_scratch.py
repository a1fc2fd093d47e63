"""The stacks' folder: a run first deletes what finished runs left, and reports what a new file costs there."""

from __future__ import annotations

from pathlib import Path

from bench.scratch import file_creation_cost, work_folder


def test_a_run_starts_by_deleting_what_finished_runs_left_and_ends_by_emptying_its_own(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with work_folder(runs) as earlier:
        (earlier / "embedded-1").mkdir()
        (earlier / "embedded-1" / "a.jpg").write_bytes(b"x" * 5000)
    assert (earlier / "embedded-1" / "a.jpg").stat().st_size == 0  # emptied, not deleted

    with work_folder(runs) as work:
        assert not earlier.exists()
        assert [p for p in runs.iterdir()] == [work]


def test_a_run_going_on_beside_keeps_its_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with work_folder(runs) as first:
        (first / "kept.jpg").write_bytes(b"x")
        with work_folder(runs) as second:
            assert first.exists() and (first / "kept.jpg").read_bytes() == b"x"
            assert second != first


def test_the_creation_cost_is_measured_on_new_files_that_stay(tmp_path: Path) -> None:
    cost = file_creation_cost(tmp_path, count=50)
    (probe,) = tmp_path.iterdir()
    assert len(list(probe.iterdir())) == 50  # kept: deleting them would slow the next files made here
    assert 0 < cost < 1_000_000
