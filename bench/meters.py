"""CPU seconds and RSS of groups of processes, sampled on a thread while a run goes on."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

__all__ = ["Groups", "Meter", "Metered", "system_busy_seconds"]

Groups = Callable[[], dict[str, list[psutil.Process]]]


def system_busy_seconds() -> float:
    """CPU seconds every core has spent not idle since boot."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0))


@dataclass
class Metered:
    """What a Meter saw between start and stop."""

    seconds: float
    cpu: dict[str, float]  # group -> CPU seconds used in the window
    system: dict[str, float]  # group -> the part of ``cpu`` spent in the operating system's kernel (syscalls)
    busy: float  # CPU seconds the whole machine used in the window
    peak_rss: dict[str, int]  # group -> highest summed RSS seen
    last_rss: dict[str, int]  # group -> summed RSS at the last sample
    series: list[tuple[float, dict[str, int]]] = field(default_factory=list)  # (t, group -> RSS)

    @property
    def others(self) -> float:
        """CPU seconds used by processes outside every group (other users of this machine)."""
        return max(0.0, self.busy - sum(self.cpu.values()))


class Meter:
    """Use as ``with Meter(groups) as m: ...``, then read ``m.result``.

    ``groups`` is called again every ``refresh`` seconds, so processes that start during
    the run (a replaced kernel child, a new database backend) are counted, from at most
    that long after their birth; a process gone before the end keeps the CPU it had at
    its last sample. Finding the processes walks every process on the machine: doing it
    at every sample cost the harness (and so the cores it measures) over 10 % of a core.
    """

    def __init__(self, groups: Groups, interval: float = 0.1, refresh: float = 1.0) -> None:
        self._groups = groups
        self._interval = interval
        self._refresh = refresh
        self._found: dict[str, list[psutil.Process]] = {}
        self._found_at = float("-inf")
        self._base: dict[int, tuple[float, float]] = {}  # pid -> (CPU seconds, of them in the OS kernel)
        self._last: dict[int, tuple[str, float, float]] = {}
        self._series: list[tuple[float, dict[str, int]]] = []
        self._peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-meter", daemon=True)
        self._t0 = 0.0
        self._busy0 = 0.0
        self.result: Metered | None = None

    @property
    def started_at(self) -> float:
        """When the meter started (time.monotonic): series times count from here."""
        return self._t0

    def __enter__(self) -> Meter:
        # Dirty pages left by whatever ran before are written back now, not charged to the
        # first process that writes during the measurement (here that costs several ms of
        # CPU per MB once a few hundred MB are pending).
        os.sync()
        self._t0 = time.monotonic()
        self._busy0 = system_busy_seconds()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)
        cpu: dict[str, float] = {}
        system: dict[str, float] = {}
        for pid, (group, seconds, in_os) in self._last.items():
            base, base_os = self._base.get(pid, (0.0, 0.0))
            cpu[group] = cpu.get(group, 0.0) + max(0.0, seconds - base)
            system[group] = system.get(group, 0.0) + max(0.0, in_os - base_os)
        last = self._series[-1][1] if self._series else {}
        self.result = Metered(
            seconds=time.monotonic() - self._t0,
            cpu=cpu,
            system=system,
            busy=system_busy_seconds() - self._busy0,
            peak_rss=dict(self._peak),
            last_rss=dict(last),
            series=list(self._series),
        )

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample(first=False)

    def _sample(self, *, first: bool) -> None:
        rss: dict[str, int] = {}
        now = time.monotonic()
        if first or now - self._found_at >= self._refresh:
            try:
                self._found, self._found_at = self._groups(), now
            except psutil.Error:
                return
        groups = self._found
        for group, procs in groups.items():
            rss.setdefault(group, 0)
            for proc in procs:
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        mem = proc.memory_info().rss
                except psutil.Error:
                    continue
                seconds, in_os = float(times.user + times.system), float(times.system)
                if first:
                    self._base[proc.pid] = (seconds, in_os)
                self._last[proc.pid] = (group, seconds, in_os)
                rss[group] += int(mem)
        self._series.append((time.monotonic() - self._t0, rss))
        for group, value in rss.items():
            self._peak[group] = max(self._peak.get(group, 0), value)
