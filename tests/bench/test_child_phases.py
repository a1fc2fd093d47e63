"""The all-cores kernel phases: the first image of each phase warms up and is not counted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench import child, renderers


def test_each_phase_counts_every_image_but_its_first(monkeypatch: pytest.MonkeyPatch) -> None:
    timed: list[str] = []

    def time_one(tool: str, path: str, out: Path, pixels: int) -> float:
        timed.append(path)
        cold = sum(1 for p in timed if p.startswith(path[:1])) == 1  # the first image of its class
        return 0.5 if cold else 0.01

    monkeypatch.setattr(renderers, "prepare", lambda: None)
    monkeypatch.setattr(renderers, "time_one", time_one)
    t0 = time.time()
    phases = [
        {"cls": "a", "paths": ["a1", "a2"], "start": 0.0, "seconds": 0.05, "estimate": 0.001},
        {"cls": "b", "paths": ["b1"], "start": 0.1, "seconds": 0.05, "estimate": 0.001},
    ]
    result = child._multi({"tool": "imgpipe", "t0": t0, "phases": phases})["phases"]
    for cls in ("a", "b"):
        runs = sum(1 for p in timed if p.startswith(cls))
        assert runs >= 2
        assert result[cls]["count"] == runs - 1
        assert result[cls]["busy"] == pytest.approx(0.01 * (runs - 1))
