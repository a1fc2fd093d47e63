"""The job state machine: which moves are legal."""

from __future__ import annotations

import pytest

from imgpipe.domain.job import JobStatus, can_move, sources

P, R, D, F = JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.DONE, JobStatus.FAILED


@pytest.mark.parametrize(("current", "target"), [(P, R), (P, F), (R, D), (R, F), (R, P), (R, R)])
def test_forward_moves_and_hand_backs_are_allowed(current: JobStatus, target: JobStatus) -> None:
    assert can_move(current, target)


@pytest.mark.parametrize("target", list(JobStatus))
@pytest.mark.parametrize("final", [D, F])
def test_a_final_job_never_moves_again(final: JobStatus, target: JobStatus) -> None:
    assert final.is_final
    assert not can_move(final, target)


def test_a_pending_job_cannot_jump_to_done_without_being_processed() -> None:
    assert not can_move(P, D)


def test_the_sources_of_each_move_are_what_the_conditional_updates_allow() -> None:
    assert sources(R) == {P, R}  # a claim, or a takeover from a holder that is gone
    assert sources(D) == {R}
    assert sources(F) == {P, R}
    assert sources(P) == {R}  # a hand-back
