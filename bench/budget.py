"""``Budget``: the ten minutes ``make bench`` has. On a slow host the later sections measure less, so it still fits.

Each section's share of a whole run at full settings was measured on the hosts the targets
were set on (the full runs took 346-483 s in all). The sections that ran show how much slower than
those this host is; the sections still to come get a scale (at most 1) such that, at that
speed, they end by the limit. A section that ran scaled counts as that much of its share.
The scale never goes below ``FLOOR``: past that the figures would be noise, and the run
is allowed to take longer instead. The report says when and how much it scaled.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["FLOOR", "LIMIT_S", "MEASURED_ENOUGH", "SHARES", "Budget"]

# The measuring after the corpus is built; the rest of the ten minutes is start-up and the report.
LIMIT_S = 540.0
FLOOR = 0.4
MEASURED_ENOUGH = 0.1  # of a run's work: a few seconds of one small section say little about the host
# Share of a full-settings run, by section: kernel 136 s, memory 4, pipeline 81, peer 114 of 335 (Xeon, 2026-12-07).
SHARES = {"kernel": 0.40, "memory": 0.01, "pipeline": 0.25, "peer": 0.34}


@dataclass
class Budget:
    limit: float = LIMIT_S
    started: float = field(default_factory=time.monotonic)
    ran: dict[str, tuple[float, float]] = field(default_factory=dict)  # section -> (seconds, scale it ran at)

    def record(self, section: str, seconds: float, scale: float = 1.0) -> None:
        self.ran[section] = (seconds, scale)

    def set_aside(self, seconds: float) -> None:
        """Time spent setting up, not measuring (a first run installing thumbor): not charged to the limit."""
        self.started += seconds

    def scale(self, rest: Iterable[str], now: float | None = None) -> float:
        """The scale for the sections in ``rest`` (this one and those after it): 1.0 while the run is on time."""
        work = sum(SHARES[s] * scale for s, (_, scale) in self.ran.items())
        if work < MEASURED_ENOUGH:
            return 1.0  # too little measured yet (the kernel section skipped): no speed to go by
        per_share = sum(seconds for seconds, _ in self.ran.values()) / work
        needed = per_share * sum(SHARES[s] for s in rest)
        left = self.limit - ((time.monotonic() if now is None else now) - self.started)
        return 1.0 if needed <= max(left, 0.0) else max(FLOOR, left / needed)
