"""Kernel measurements: ms per image on one core and images/s on all cores, per class, against the references."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.corpus import Corpus, Item
from bench.meters import system_busy_seconds
from bench.renderers import TOOLS, available, clean_env, takes
from bench.stats import median

__all__ = ["child_command", "measure_kernel"]

ROOT = Path(__file__).resolve().parent.parent
_MULTI_TOOLS = ("imgpipe", "pillow", "vipsthumbnail-batch")


def child_command(mode: str, plan: dict[str, Any]) -> tuple[list[str], Path]:
    """The command line of a bench.child process, and the plan file it reads (the caller deletes it)."""
    fd, name = tempfile.mkstemp(prefix=f"bench-{mode}-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(plan, f)
    return [sys.executable, "-m", "bench.child", mode, name], Path(name)


def _run_child(mode: str, plan: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    args, plan_file = child_command(mode, plan)
    try:
        done = subprocess.run(
            args, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    finally:
        plan_file.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench.child {mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _children_cpu() -> float:
    """CPU seconds of every child process this one has waited for (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wanted(tool: str, item: Item) -> bool:
    if not takes(tool, item.format):
        return False
    if tool == "tjbench":  # the floor the baseline-JPEG target is about
        return item.cls.startswith("jpeg-base")
    return True


def measure_kernel(corpus: Corpus, *, rounds: int, phase_seconds: float, log: Callable[[str], None]) -> dict[str, Any]:
    tools = {t: {"description": d, "available": available(t)} for t, (d, _, _) in TOOLS.items()}
    usable = [t for t in TOOLS if tools[t]["available"]]
    singles = [t for t in usable if t != "vipsthumbnail-batch"]
    pairs = [(t, _plain(i)) for i in corpus.items for t in singles if _wanted(t, i)]
    by_class = corpus.by_class()
    batches = [[_plain(i) for i in items] for items in by_class.values()] if "vipsthumbnail-batch" in usable else []
    cpu = max(os.sched_getaffinity(0))
    log(f"kernel, one core (cpu {cpu}): {len(pairs) + len(batches)} timings x {rounds} rounds, interleaved")
    t0 = time.monotonic()
    plan = {"cpu": cpu, "rounds": rounds, "seed": 5, "pairs": pairs, "batches": batches}
    busy0, ours0 = system_busy_seconds(), _children_cpu()
    single_out = _run_child("single", plan)
    busy, ours = system_busy_seconds() - busy0, _children_cpu() - ours0
    samples = single_out["samples"]
    for error in single_out["errors"]:
        log(f"kernel, one core: dropped a sample: {error}")
    per_file: dict[str, dict[str, list[float]]] = {}
    for s in samples:
        per_file.setdefault(s["path"], {}).setdefault(s["tool"], []).append(s["s"] * 1000)
    single: dict[str, dict[str, float]] = {}
    for cls, items in by_class.items():
        for tool in usable:
            medians = [median(per_file.get(i.path, {}).get(tool, [])) for i in items]
            if tool == "vipsthumbnail-batch":
                medians = [median([s["s"] * 1000 for s in samples if s["tool"] == tool and s["cls"] == cls])]
            found = [m for m in medians if m is not None]
            if found:
                single.setdefault(cls, {})[tool] = sum(found) / len(found)
    single_seconds = time.monotonic() - t0
    others = max(0.0, busy - ours)
    log(f"kernel, one core: done in {single_seconds:.0f} s; other processes used {others:.0f} CPU s meanwhile")

    cores = len(os.sched_getaffinity(0))
    multi: dict[str, dict[str, float]] = {}
    for tool in [t for t in _MULTI_TOOLS if t in usable]:
        log(f"kernel, all {cores} cores: {tool}")
        for cls, rate in _multi(tool, by_class, single, cores, phase_seconds).items():
            multi.setdefault(cls, {})[tool] = rate
    log("kernel: where its time goes, per class (probe, decode+resize, encode)")
    stages = _run_child(
        "stages",
        {"cpu": cpu, "repeats": rounds, "files": [[c, item.path] for c, items in by_class.items() for item in items]},
    )
    return {
        "stages_ms": stages,
        "tools": tools,
        "rounds": rounds,
        "cpu": cpu,
        "cores": cores,
        "single_ms": single,
        "multi_ips": multi,
        "files_ms": {p: {t: median(v) for t, v in tools_.items()} for p, tools_ in per_file.items()},
        "samples": len(samples),
        "errors": single_out["errors"],
        "seconds": time.monotonic() - t0,
        "single_seconds": single_seconds,
        "single_others_cpu_s": others,
        "glibc_tunables": clean_env().get("GLIBC_TUNABLES", ""),  # what every tool ran with, for the report
    }


def _plain(item: Item) -> dict[str, Any]:
    return {"path": item.path, "cls": item.cls, "pixels": item.width * item.height}


def _multi(
    tool: str, by_class: dict[str, list[Item]], single: dict[str, dict[str, float]], cores: int, seconds: float
) -> dict[str, float]:
    """images/s of ``cores`` processes side by side, class after class in synchronised phases."""
    phases, offset = [], 0.0
    for cls, items in by_class.items():
        estimate = single.get(cls, {}).get(tool, 100.0) / 1000
        phase = max(seconds, 3 * estimate)
        phases.append(
            {"cls": cls, "paths": [i.path for i in items], "start": offset, "seconds": phase, "estimate": estimate}
        )
        offset += phase + min(estimate, 0.5) + 0.1
    plan = {"tool": tool, "t0": time.time() + 2.0, "phases": phases}
    children = []
    files = []
    for _ in range(cores):
        args, plan_file = child_command("multi", plan)
        files.append(plan_file)
        children.append(
            subprocess.Popen(args, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    rates: dict[str, float] = {}
    try:
        for child in children:
            out, err = child.communicate(timeout=offset + 120)
            if child.returncode != 0:
                raise RuntimeError(f"bench.child multi {tool} failed:\n{err[-3000:]}")
            for cls, r in json.loads(out)["phases"].items():
                if r["busy"] > 0:
                    rates[cls] = rates.get(cls, 0.0) + r["count"] / r["busy"]
    finally:
        for f in files:
            f.unlink(missing_ok=True)
    return rates
