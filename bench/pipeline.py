"""Pipeline measurements: throughput, upload-to-DONE latency, CPU per image per process, memory, ``/health``."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.client import HealthProbe, JobTimes, slow_uploads, upload_all
from bench.corpus import Corpus, Item
from bench.meters import Meter, Metered
from bench.procs import S3Server
from bench.s3trips import time_s3_trips
from bench.stacks import Stack, embedded_stack, server_stack
from bench.stats import summary

__all__ = ["jpeg_class", "measure_pipeline", "run_workload"]

Log = Callable[[str], None]


def jpeg_class(corpus: Corpus) -> str:
    """The class the overhead and latency targets are about: 12 MP baseline JPEG (or the quick corpus's JPEG)."""
    classes = corpus.by_class()
    return "jpeg-base-12mp" if "jpeg-base-12mp" in classes else next(c for c in classes if c.startswith("jpeg"))


def _files(items: list[Item], copies: int, seed: int = 1) -> list[tuple[str, bytes]]:
    data = {i.path: Path(i.path).read_bytes() for i in items}
    files = [(Path(i.path).name, data[i.path]) for _ in range(copies) for i in items]
    random.Random(seed).shuffle(files)
    return files


def _groups(stack: Stack) -> Callable[[], dict[str, list[psutil.Process]]]:
    me = psutil.Process()

    def groups() -> dict[str, list[psutil.Process]]:
        return {**stack.imgpipe_processes(), **stack.service_processes(), "client": [me]}

    return groups


def _downsample(series: list[tuple[float, dict[str, int]]], keep: int = 400) -> list[tuple[float, dict[str, int]]]:
    step = max(1, len(series) // keep)
    return series[::step]


def run_workload(
    stack: Stack, files: list[tuple[str, bytes]], *, probe_health: bool = False, concurrency: int = 4
) -> dict[str, Any]:
    """Upload ``files``, wait for all; throughput, latency and CPU seconds per image in every process group."""
    probe = HealthProbe(stack.url)
    started: list[bool] = []

    def on_uploaded() -> None:
        if probe_health:
            probe.__enter__()
            started.append(True)

    meter = Meter(_groups(stack))
    with meter:
        jobs, _ = upload_all(stack.url, files, concurrency=concurrency, on_uploaded=on_uploaded)
        if started:
            probe.__exit__()
    m = meter.result
    assert m is not None
    out = _summarise(jobs, m)
    if probe_health:
        out["health_raw"] = [s * 1000 for s in probe.latencies]
        out["health_ms"] = summary(out["health_raw"])
        out["health_errors"] = probe.errors
    return out


def _summarise(jobs: list[JobTimes], m: Metered) -> dict[str, Any]:
    n = len(jobs)
    span = max(j.finished for j in jobs) - min(j.created for j in jobs)
    finishing = max(j.finished for j in jobs) - min(j.finished for j in jobs)
    return {
        "n": n,
        "failed": sum(j.status != "DONE" for j in jobs),
        "images_per_s": n / span if span > 0 else None,
        # Between the first and the last completion: without the time it takes to fill the pipeline.
        "steady_images_per_s": (n - 1) / finishing if n > 1 and finishing > 0 else None,
        "span_s": span,
        "latency_ms": summary([j.latency * 1000 for j in jobs]),
        "latencies_ms": [round(j.latency * 1000, 2) for j in jobs],
        "cpu_s": m.cpu,
        "cpu_ms_per_image": {g: s * 1000 / n for g, s in m.cpu.items()},
        "system_s": m.system,
        "others_cpu_s": m.others,
        "machine_busy_s": m.busy,
        "wall_s": m.seconds,
        "rss_after": m.last_rss,
        "peak_rss": m.peak_rss,
        "series": _downsample(m.series),
    }


def _idle_latency(stack: Stack, items: list[Item], count: int) -> dict[str, Any]:
    """One 12 MP JPEG at a time on an idle stack: upload-to-DONE and its two halves.

    On the server stack, also the S3 stand-in's three round trips on a job's path, timed alone
    with the same original and the thumbnail the stack made of it.
    """
    files = _files(items, count)
    jobs, _ = upload_all(stack.url, files, sequential=True)
    out = {
        "latency_ms": summary([j.latency * 1000 for j in jobs]),
        "latencies_ms": [round(j.latency * 1000, 2) for j in jobs],
        "queue_ms": summary([(j.started - j.created) * 1000 for j in jobs]),
        "work_ms": summary([(j.finished - j.started) * 1000 for j in jobs]),
    }
    if stack.s3 is not None:
        last_job = {name: (data, job.job_id) for (name, data), job in zip(files, jobs, strict=True)}
        pairs = [(data, _thumbnail(stack, job_id)) for data, job_id in last_job.values()]
        out["s3_trips"] = time_s3_trips(stack.s3, pairs, len(jobs))
    return out


def _thumbnail(stack: Stack, job_id: str) -> bytes:
    response = httpx.get(f"{stack.url}/api/v1/images/{job_id}/variants/thumbnail", follow_redirects=True)
    response.raise_for_status()
    return response.content


def _upload_memory(stack: Stack, big: Item, count: int, seconds: float) -> dict[str, Any]:
    """RSS of the API process while ``count`` uploads of the big PNG stream at once."""
    data = Path(big.path).read_bytes()
    api = psutil.Process(stack.api.pid)
    meter = Meter(lambda: {"api": [api]}, interval=0.02)
    with meter:
        time.sleep(0.5)  # the baseline
        began = time.monotonic()
        statuses, answered = slow_uploads(stack.url, data, count=count, seconds=seconds)
        time.sleep(0.5)
    m = meter.result
    assert m is not None
    t_began, t_answered = began - meter.started_at, answered - meter.started_at
    before = [s["api"] for t, s in m.series if t < t_began]
    during = [s["api"] for t, s in m.series if t_began <= t <= t_answered]
    baseline = sorted(before)[len(before) // 2] if before else 0
    peak = max(during) if during else 0
    return {
        "uploads": count,
        "bytes_each": len(data),
        "statuses": statuses,
        "stream_s": t_answered - t_began,
        "baseline_rss": baseline,
        "peak_rss": peak,
        "growth": max(0, peak - baseline),
        "after_rss": m.last_rss.get("api", 0),
        "series": _downsample([(t, s) for t, s in m.series], 600),
    }


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several passes of one workload on one stack as one result: throughput is the median pass."""
    n = sum(p["n"] for p in parts)
    cpu: dict[str, float] = {}
    system: dict[str, float] = {}
    for p in parts:
        for group, seconds in p["cpu_s"].items():
            cpu[group] = cpu.get(group, 0.0) + seconds
        for group, seconds in p.get("system_s", {}).items():
            system[group] = system.get(group, 0.0) + seconds
    latencies = [x for p in parts for x in p["latencies_ms"]]
    series, offset = [], 0.0
    for p in parts:
        series += [(t + offset, s) for t, s in p["series"]]
        offset += p["wall_s"]
    rates = sorted(p["images_per_s"] for p in parts if p["images_per_s"])
    merged = {
        "n": n,
        "passes": len(parts),
        "failed": sum(p["failed"] for p in parts),
        "images_per_s": rates[len(rates) // 2] if rates else None,
        "images_per_s_passes": rates,
        "latency_ms": summary(latencies),
        "latencies_ms": latencies,
        "cpu_s": cpu,
        "cpu_ms_per_image": {g: s * 1000 / n for g, s in cpu.items()},
        "system_ms_per_image": {g: s * 1000 / n for g, s in system.items()},
        "others_cpu_s": sum(p["others_cpu_s"] for p in parts),
        "machine_busy_s": sum(p["machine_busy_s"] for p in parts),
        "wall_s": offset,
        "rss_after": parts[-1]["rss_after"],
        "peak_rss": {g: max(p["peak_rss"].get(g, 0) for p in parts) for g in parts[-1]["peak_rss"]},
        "series": _downsample(series),
    }
    health = [p for p in parts if "health_ms" in p]
    if health:
        merged["health_ms"] = summary([x for p in health for x in p["health_raw"]])
        merged["health_errors"] = sum(p["health_errors"] for p in health)
    return merged


def measure_pipeline(
    corpus: Corpus,
    *,
    stacks: list[str],
    work: Path,
    s3: S3Server | None,
    passes: int,
    copies: int,
    idle_count: int,
    jpeg_count: int,
    upload_count: int,
    upload_seconds: float,
    log: Log,
) -> dict[str, Any]:
    """Per stack kind: one kernel process and two, both up at once, their passes alternating (A B B A ...)."""
    cores = len(os.sched_getaffinity(0))
    jpeg_items = corpus.by_class()[jpeg_class(corpus)]
    runs: list[dict[str, Any]] = []
    for kind in stacks:
        log(f"pipeline: {kind} stack, 1 and {cores} kernel processes, {passes} alternating passes")
        t0 = time.monotonic()
        with _start(kind, work, 1, s3) as one, _start(kind, work, cores, s3) as many:
            pair = [one, many]
            startup = time.monotonic() - t0
            for stack in pair:
                upload_all(stack.url, _files(corpus.items[:2], 1), sequential=True)  # warm-up
            mix: dict[int, list[dict[str, Any]]] = {1: [], cores: []}
            jpeg: dict[int, list[dict[str, Any]]] = {1: [], cores: []}
            for n in range(passes):
                for stack in pair if n % 2 == 0 else pair[::-1]:
                    saturated = stack.concurrency >= cores
                    files = _files(corpus.items, copies, seed=n)
                    mix[stack.concurrency].append(run_workload(stack, files, probe_health=saturated))
                    jpeg_files = _files(jpeg_items, max(1, jpeg_count // len(jpeg_items) // passes), seed=n)
                    jpeg[stack.concurrency].append(run_workload(stack, jpeg_files))
            for stack in pair:
                run: dict[str, Any] = {"stack": kind, "concurrency": stack.concurrency, "startup_s": startup}
                run["mix"], run["jpeg"] = _merge(mix[stack.concurrency]), _merge(jpeg[stack.concurrency])
                if stack.concurrency >= cores:
                    log(f"pipeline: {kind}: idle latency, and {upload_count} concurrent big uploads")
                    run["idle"] = _idle_latency(stack, jpeg_items, idle_count)
                    run["upload_memory"] = _upload_memory(stack, corpus.big, upload_count, upload_seconds)
                runs.append(run)
        log(f"pipeline: {kind} stack done in {time.monotonic() - t0:.0f} s")
    return {
        "runs": runs,
        "passes": passes,
        "copies": copies,
        "corpus_files": len(corpus.items),
        "jpeg_class": jpeg_class(corpus),
    }


def _start(kind: str, work: Path, concurrency: int, s3: S3Server | None) -> AbstractContextManager[Stack]:
    if kind == "embedded":
        return embedded_stack(work, concurrency)
    assert s3 is not None, "the server stack needs the S3 server"
    return server_stack(work, concurrency, s3)
