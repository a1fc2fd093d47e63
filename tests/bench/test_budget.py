"""``bench.budget``: on a slow host the later sections shrink so the run ends by its limit; on time, nothing shrinks."""

from __future__ import annotations

import pytest
from bench.__main__ import pipeline_params
from bench.budget import FLOOR, LIMIT_S, SHARES, Budget

NOMINAL = 335.0  # seconds a full-settings run's sections take on the hosts the shares come from


def _after_kernel(slowdown: float) -> tuple[Budget, float]:
    """A budget whose kernel and memory sections ran ``slowdown`` times their nominal time; and the clock now."""
    budget = Budget(started=1000.0)
    now = budget.started
    for section in ("kernel", "memory"):
        seconds = SHARES[section] * NOMINAL * slowdown
        budget.record(section, seconds)
        now += seconds
    return budget, now


def test_a_host_on_time_runs_every_section_at_its_full_settings() -> None:
    budget, now = _after_kernel(1.0)
    assert budget.scale(["pipeline", "peer"], now=now) == 1.0


def test_a_slow_host_shrinks_the_rest_so_that_it_ends_by_the_limit() -> None:
    budget, now = _after_kernel(2.0)
    scale = budget.scale(["pipeline", "peer"], now=now)
    assert FLOOR < scale < 1.0
    at_this_speed = 2.0 * NOMINAL * (SHARES["pipeline"] + SHARES["peer"]) * scale
    assert now - budget.started + at_this_speed == pytest.approx(LIMIT_S)


def test_a_section_that_ran_shrunk_counts_as_that_much_work() -> None:
    budget, now = _after_kernel(2.0)
    scale = budget.scale(["pipeline", "peer"], now=now)
    pipeline = SHARES["pipeline"] * NOMINAL * 2.0 * scale  # it ran at the same speed, on less work
    budget.record("pipeline", pipeline, scale)
    # Counted as full work, the pipeline would make the host look faster and give the peer more than fits.
    assert budget.scale(["peer"], now=now + pipeline) == pytest.approx(scale)


def test_no_scale_goes_below_the_floor_however_slow_the_host() -> None:
    budget, now = _after_kernel(20.0)
    assert budget.scale(["pipeline", "peer"], now=now) == FLOOR


def test_with_nothing_measured_yet_there_is_no_speed_to_go_by() -> None:
    budget = Budget(started=0.0)
    assert budget.scale(["pipeline", "peer"], now=LIMIT_S * 2) == 1.0
    # The kernel section skipped: the memory section's few seconds alone would make a guess, not a measure.
    budget.record("memory", SHARES["memory"] * NOMINAL * 3)
    assert budget.scale(["pipeline", "peer"], now=LIMIT_S - 1) == 1.0


def test_time_set_aside_for_set_up_is_not_charged_to_the_limit() -> None:
    budget, now = _after_kernel(1.0)
    installing = 300.0  # a first run building thumbor's environment
    assert budget.scale(["pipeline", "peer"], now=now + installing) < 1.0
    budget.set_aside(installing)
    assert budget.scale(["pipeline", "peer"], now=now + installing) == 1.0


def test_the_pipeline_settings_shrink_with_the_scale_and_stay_full_at_one() -> None:
    full, least = pipeline_params(1.0), pipeline_params(FLOOR)
    assert full == {
        "passes": 3,
        "copies": 2,
        "idle_count": 15,
        "jpeg_count": 96,
        "upload_count": 10,
        "upload_seconds": 2.0,
    }
    assert least["passes"] == 3  # a median of three stays a median
    assert least["copies"] < full["copies"]
    assert least["idle_count"] < full["idle_count"]
    assert least["jpeg_count"] < full["jpeg_count"]
    assert least["jpeg_count"] // 2 // 3 >= 6  # each pass still times a dozen 12 MP JPEGs
