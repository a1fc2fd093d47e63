"""The thumbor section splits imgpipe's ``run`` process CPU into a part per image and a part per MB."""

from __future__ import annotations

from typing import Any

import pytest
from bench.misses import explain_misses
from bench.sections import peer_section
from bench.stats import line_fit
from bench.targets import Target


def _row(mb: float, run_ms: float) -> dict[str, Any]:
    return {
        "kernel_ips": 100.0,
        "imgpipe_ips": 60.0,
        "thumbor_ips": 80.0,
        "imgpipe_cpu_ms": run_ms + 20.0,
        "imgpipe_run_cpu_ms": run_ms,
        "imgpipe_run_system_ms": run_ms / 2,
        "thumbor_cpu_ms": 20.0,
        "bytes_per_image": mb * 1e6,
    }


def _peer(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"version": "Thumbor v7", "processes": 2, "rounds": 2, "classes": rows}


def test_a_least_squares_line_recovers_intercept_and_slope() -> None:
    on_a_line = line_fit([(0.5, 4.7), (1.5, 6.1), (5.0, 11.0), (2.0, 6.8)])  # 4 + 1.4 x
    assert on_a_line == pytest.approx((4.0, 1.4))
    assert line_fit([(0.0, 0.0), (1.0, 2.0), (2.0, 2.0)]) == pytest.approx((1 / 3, 1.0))  # worked by hand
    assert line_fit([(1.0, 2.0), (3.0, 4.0)]) is None  # two points: no fit worth quoting
    assert line_fit([(2.0, 1.0), (2.0, 3.0), (2.0, 5.0)]) is None  # one size: no slope


def test_the_peer_table_shows_the_run_process_and_the_fit_through_the_classes() -> None:
    rows = {"a": _row(0.5, 5.0), "b": _row(1.5, 6.5), "c": _row(4.0, 10.25)}  # 4.25 ms + 1.5 ms per MB
    lines = peer_section(_peer(rows))
    (row,) = [line for line in lines if line.startswith("| `b`")]
    assert "| 26 | 6.5 | 3.2 | 20 | 0 | 1.50 |" in row
    (fit,) = [line for line in lines if line.startswith("imgpipe's `run` process costs")]
    assert "about 4.2 CPU ms per image plus 1.5 per MB uploaded" in fit


def test_without_the_run_process_figures_there_is_no_fit() -> None:
    rows = {c: {k: v for k, v in _row(mb, 5.0).items() if k != "bytes_per_image"} for c, mb in (("a", 1), ("b", 2))}
    rows["c"] = _row(3.0, 7.0)
    lines = peer_section(_peer(rows))
    assert not [line for line in lines if line.startswith("imgpipe's `run` process costs")]


def test_a_missed_own_cpu_target_quotes_the_fit() -> None:
    run = {"stack": "embedded", "concurrency": 1, "jpeg": {"cpu_ms_per_image": {"api": 7.0, "kernel": 20.0}}}
    peer = _peer({"a": _row(0.5, 5.0), "b": _row(1.5, 6.5), "c": _row(4.0, 10.25)})
    miss = Target("imgpipe's own CPU per image (API + worker, kernel excluded)", "≤ 25%", "35", "MISS")
    results = {"pipeline": {"runs": [run]}, "peer": peer}
    (line,) = [x for x in explain_misses(results, [miss]) if x.startswith("- **imgpipe's own")]
    assert line.endswith(
        "splits into 4.2 ms per image and 1.5 per MB uploaded (fitted over the thumbor section's classes)"
    )


def test_the_page_cache_cost_before_the_section_is_quoted_when_measured() -> None:
    rows = {"a": _row(0.5, 5.0)}
    assert not [line for line in peer_section(_peer(rows)) if line.startswith("Writing into the page cache")]
    measured = {**_peer(rows), "page_cache_ms_per_mb": 1.234}
    (line,) = [line for line in peer_section(measured) if line.startswith("Writing into the page cache")]
    assert "cost 1.23 CPU ms per MB just before this section" in line
